"""Helpers for tests that run against the local stack (moto + provider sandbox + local API)."""

from __future__ import annotations

import base64
import time
from typing import Any

import requests


class Api:
    """A keep-alive client for the local API with the stack's API key."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.session = requests.Session()
        self.session.headers["x-api-key"] = stack.api_key

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.stack.api_url + path, json=body, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.stack.api_url + path, timeout=60, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.stack.api_url + path, timeout=60, **kwargs)

    def wait_for(
        self, verification_id: str, statuses: tuple[str, ...] = ("completed", "error", "expired"), timeout: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(f"/v1/verifications/{verification_id}").json()
            if record.get("status") in statuses or time.monotonic() > deadline:
                return record
            time.sleep(0.2)


CONSENT = {"granted": True, "text_version": "2026-01"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body(person: Any, image: bytes | None = None, **extra: Any) -> dict[str, Any]:
    """A request body for a sandbox person (name and ID number from the registry)."""
    data: dict[str, Any] = {"name": person.name, "id_number": person.id_number, "consent": CONSENT}
    if image is not None:
        data["image"] = b64(image)
    data.update(extra)
    return data
