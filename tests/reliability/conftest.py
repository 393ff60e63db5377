"""Shared pieces of the reliability suites: the sandbox people, a metrics recorder, ledger deltas,
stored-item snapshots, and the figures printed at the end of the session."""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

import pytest

ROUTES = {
    "compare": "/v1/compare",
    "four_factor": "/v1/four-factor",
    "portrait": "/v1/portrait",
    "faceid": "/v1/faceid/sessions",
}
# The sandbox API (fault selector) each check calls first.
SANDBOX_API = {"compare": "verifyface", "four_factor": "four_factor", "portrait": "apetime", "faceid": "faceid_query"}


@pytest.fixture(scope="session")
def people():
    from sandbox.providers import identities

    return identities


@pytest.fixture(autouse=True)
def no_faults_left(stack):
    """Every reliability test starts and ends without queued sandbox faults."""
    stack.sandbox.clear_faults()
    yield
    stack.sandbox.clear_faults()


class Metrics:
    """The metric data points the layer emits (ProviderCalls, ChargedCalls, UncertainCharges, Decisions)."""

    def __init__(self) -> None:
        self.points: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def add(self, name: str, dimensions: dict[str, str]) -> None:
        with self._lock:
            self.points.append((name, dict(dimensions)))

    def count(self, name: str, **dimensions: str) -> int:
        with self._lock:
            return sum(
                1 for n, dims in self.points if n == name and all(dims.get(k) == v for k, v in dimensions.items())
            )


@pytest.fixture
def metrics() -> Metrics:
    """Records every metric data point the layer emits in this process (observability's listener API)."""
    from idv import observability

    recorder = Metrics()
    remove = observability.add_metric_listener(recorder.add)
    yield recorder
    remove()


class LedgerDelta:
    """Provider calls and charges in the sandbox's ledger since this object was made."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.start = self._counts()

    def _counts(self) -> tuple[Counter[str], Counter[str]]:
        snapshot = self.sandbox.ledger()
        calls: Counter[str] = Counter()
        charged: Counter[str] = Counter()
        for api, keys in snapshot["calls"].items():
            calls[api] += sum(keys.values())
        for api, keys in snapshot["charged"].items():
            charged[api] += sum(keys.values())
        return calls, charged

    def calls(self, api: str | None = None) -> int:
        now = self._counts()[0]
        return sum(now.values()) - sum(self.start[0].values()) if api is None else now[api] - self.start[0][api]

    def charged(self, api: str | None = None) -> int:
        now = self._counts()[1]
        return sum(now.values()) - sum(self.start[1].values()) if api is None else now[api] - self.start[1][api]


@pytest.fixture
def ledger(stack):
    return lambda: LedgerDelta(stack.sandbox)


_CLIENTS: dict[tuple[int, str], Any] = {}


def client(stack: Any, service: str) -> Any:
    """One boto3 client per service for the session's stack (making one costs ~0.1 s)."""
    key = (id(stack), service)
    if key not in _CLIENTS:
        _CLIENTS[key] = stack.client(service)
    return _CLIENTS[key]


def stored_item(stack: Any, verification_id: str) -> dict[str, Any] | None:
    """The raw DynamoDB item of a verification (None when absent)."""
    return (
        client(stack, "dynamodb")
        .get_item(
            TableName=stack.resource_name("VerificationsTable"),
            Key={"verification_id": {"S": verification_id}},
            ConsistentRead=True,
        )
        .get("Item")
    )


@pytest.fixture
def short_read_timeout():
    """PROVIDER_READ_TIMEOUT_SECONDS=0.5 for this test (clients and settings rebuilt before and after)."""
    from sandbox.stack.local import reset_layer_caches

    os.environ["PROVIDER_READ_TIMEOUT_SECONDS"] = "0.5"
    reset_layer_caches()
    try:
        yield 0.5
    finally:
        os.environ.pop("PROVIDER_READ_TIMEOUT_SECONDS", None)
        reset_layer_caches()
