"""Faults at the AWS boundary, injected the way the SDK itself would surface them.

`aws_fault` registers a botocore `before-parameter-build` hook (a public botocore event) on the layer's
shared client of a service, so every container of the local stack (threads of this process) sees
the fault exactly where a real outage or a dying Lambda would hit: on that AWS call.

Kinds:
- "error": a ClientError (InternalServerError) — an outage the SDK's own retries did not hide;
- "crash": `Crash`, a BaseException that no handler catches — the Lambda dies at that call;
- "timeout": sleeps past the invocation's deadline, then `Crash` — a Lambda timeout at that call.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class Crash(BaseException):
    """The execution environment dies here (nothing after this line of the invocation runs)."""


@dataclass
class Injected:
    """A fault's record: how often its hook matched and fired."""

    fired: int = 0
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def aws_fault(
    service: str,
    operation: str,
    kind: str = "error",
    *,
    when: Callable[[dict[str, Any]], bool] | None = None,
    times: int | None = None,
    skip: int = 0,
    sleep: float = 0.0,
) -> Iterator[Injected]:
    """Fail `operation` calls of the layer's `service` client that match `when(params)`.

    `skip` matching calls pass first; then `times` of them fail (None: all, until the block ends).
    """
    from botocore.exceptions import ClientError

    from idv import aws

    state = Injected()

    def hook(params: dict[str, Any], **_: Any) -> None:
        if when is not None and not when(params):
            return
        with state.lock:
            state.seen += 1
            if state.seen <= skip or (times is not None and state.fired >= times):
                return
            state.fired += 1
        if kind == "error":
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected outage"}}, operation)
        if kind == "timeout":
            time.sleep(sleep)
        raise Crash(f"{kind} at {service}.{operation}")

    events = aws.client(service).meta.events
    name = f"before-parameter-build.{service}.{operation}"
    events.register(name, hook)
    try:
        yield state
    finally:
        events.unregister(name, hook)


def finishing(params: dict[str, Any]) -> bool:
    """An UpdateItem that ends a claim (the finish write: conditional on the claim's token)."""
    return ":token" in (params.get("ExpressionAttributeValues") or {}) and "claim_token" in str(
        params.get("ExpressionAttributeNames") or {}
    )


def claiming(params: dict[str, Any]) -> bool:
    """A PutItem that writes a claim (a new record with a lease)."""
    return "claim_token" in (params.get("Item") or {})
