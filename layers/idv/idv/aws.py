"""Lazily created, shared boto3 clients (created on first use so tests can start moto first)."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from botocore.config import Config

from idv.errors import ConfigurationError

_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
_SESSION_LOCK = threading.Lock()


@cache
def _session() -> Any:
    """One boto3 session per container: its loader caches endpoints, partitions and models, so the
    second and later clients cost ~20 ms instead of ~80 ms each on a cold start."""
    import boto3

    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """One client per service per container; region and endpoint come from the environment."""
    with _SESSION_LOCK:  # sessions are not thread-safe; the clients they make are
        return _session().client(service, config=_CONFIG)


def reset() -> None:
    """Forget cached clients and the session (tests that restart the emulated AWS)."""
    with _SESSION_LOCK:
        client.cache_clear()
        _session.cache_clear()


# AWS error codes that mean a resource named in the environment is missing or not usable by the function.
_RESOURCE_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "NotFoundException",
        "NoSuchBucket",
        "AccessDenied",
        "AccessDeniedException",
        "DisabledException",
        "KMSInvalidStateException",
        "InvalidKeyUsageException",
    }
)
# Which setting names the resource an AWS operation works on.
_SETTING_OF_OPERATION = {
    **dict.fromkeys(
        ("PutItem", "GetItem", "UpdateItem", "DeleteItem", "Query", "Scan"), "VERIFICATIONS_TABLE / IDEMPOTENCY_TABLE"
    ),
    **dict.fromkeys(("Encrypt", "Decrypt", "GenerateDataKey"), "DATA_KEY_ID"),
    **dict.fromkeys(("PutObject", "GetObject", "DeleteObject", "HeadObject"), "UPLOAD_BUCKET"),
    "PutEvents": "EVENT_BUS_NAME",
}


def configuration_error(exc: BaseException) -> ConfigurationError | None:
    """A ConfigurationError saying what to fix when an AWS call failed for a missing or forbidden resource."""
    from botocore.exceptions import ClientError

    cause: BaseException | None = exc
    for _ in range(3):  # Powertools wraps DynamoDB errors of the idempotency store
        if isinstance(cause, ClientError):
            break
        cause = cause.__cause__ if cause is not None else None
    if not isinstance(cause, ClientError):
        return None
    code = str(cause.response.get("Error", {}).get("Code", ""))
    if code not in _RESOURCE_ERRORS:
        return None
    operation = cause.operation_name
    setting = _SETTING_OF_OPERATION.get(operation, "the function's environment")
    return ConfigurationError(
        f"AWS {operation} failed with {code}: check {setting} (the resource must exist in this account and"
        " region) and the function's IAM permissions"
    )
