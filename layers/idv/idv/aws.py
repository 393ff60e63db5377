"""Lazily created, shared boto3 clients (created on first use so tests can start moto first)."""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.config import Config

_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@cache
def client(service: str) -> Any:
    """One client per service per container; region and endpoint come from the environment."""
    import boto3

    return boto3.session.Session().client(service, config=_CONFIG)


def reset() -> None:
    """Forget cached clients (tests that restart the emulated AWS)."""
    client.cache_clear()
