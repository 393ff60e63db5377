"""The sandbox's bookkeeping: the billing ledger and the fault board (both thread-safe).

APIs are named `verifyface`, `verifyface_aes`, `four_factor`, `faceid_query`, `faceid_search`, `apetime`.
A fault's `api` selector is one of those, a family prefix (`verifyface` also covers `verifyface_aes`,
`faceid` covers both FaceID calls), a provider (`juhe`, `apetime`), a route path, or `*`.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

API_PATHS = {
    "verifyface": "/verifyface/verify",
    "verifyface_aes": "/verifyface/verifyEncry",
    "four_factor": "/verifyface_mobile/query",
    "faceid_query": "/faceid/query",
    "faceid_search": "/faceid/search",
    "apetime": "/api/identity/portrait_verification",
}
API_BY_PATH = {path: api for api, path in API_PATHS.items()}
PROVIDER_OF = {api: ("apetime" if api == "apetime" else "juhe") for api in API_PATHS}

FAULT_KINDS = (
    "latency",  # add `ms` (default config.latency_fault_ms), then answer normally (and charge normally)
    "read_timeout",  # stall `seconds` (default config.read_timeout_fault_s), then drop the connection
    "reset",  # read the request, then close the socket with SO_LINGER 0 (the client sees a TCP RST)
    "http_500",
    "http_502",
    "non_json",  # HTTP 200 with an HTML body
    "rate_limit",  # Juhe 10011 / Apetime 1006
    "maintenance",  # Juhe 10020 / Apetime 2000
    "source_timeout",  # verifyface 226401, four-factor 280105, FaceID 279303, Apetime 2000
    "error",  # answer the documented error `code` given with the fault
)
# HTTP 200 with the fault's `body` verbatim (a str as is, else its JSON): an answer no document
# describes (an odd flag, a missing field, a huge number). Kept out of FAULT_KINDS, the documented
# failures every check is run against; `add` accepts both.
ANSWER_FAULT = "answer"


def selector_matches(selector: str, api: str) -> bool:
    s = selector.strip()
    path = API_PATHS[api]
    return s in ("*", "", api, PROVIDER_OF[api], path, path.lstrip("/")) or api.startswith(s + "_")


@dataclass
class Fault:
    fault: str
    api: str = "*"
    count: int | None = 1  # None: until cleared
    ms: int | None = None
    seconds: float | None = None
    code: str | None = None
    body: Any = None  # "answer": what the call answers
    order: str | None = None  # only calls for this order (jhOrderId / orderId)
    id: int = 0
    used: int = 0
    source: str = "control"  # "control" or "identity:<scenario>"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class FaultBoard:
    """Faults queued through the control endpoint / Python API; each matching call consumes one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        fault: str,
        api: str = "*",
        count: int | None = 1,
        *,
        ms: int | None = None,
        seconds: float | None = None,
        code: str | int | None = None,
        body: Any = None,
        order: str | None = None,
    ) -> Fault:
        if fault not in (*FAULT_KINDS, ANSWER_FAULT):
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join((*FAULT_KINDS, ANSWER_FAULT))}")
        if not any(selector_matches(api, a) for a in API_PATHS):
            raise ValueError(f"api {api!r} matches no API; use one of {', '.join(API_PATHS)}, juhe, apetime or *")
        if count is not None and count < 1:
            count = None
        if fault == "error" and code is None:
            raise ValueError("fault 'error' needs the `code` to answer")
        if fault == ANSWER_FAULT and body is None:
            raise ValueError("fault 'answer' needs the `body` to answer")
        f = Fault(
            fault, api, count, ms=ms, seconds=seconds, code=None if code is None else str(code), body=body, order=order
        )
        with self._lock:
            f.id = next(self._ids)
            self._faults.append(f)
        return f

    def take(self, api: str, order: str | None = None) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if selector_matches(f.api, api) and (f.order is None or f.order == order):
                    f.used += 1
                    if f.count is not None:
                        f.count -= 1
                        if f.count <= 0:
                            self._faults.remove(f)
                    return Fault(**{**asdict(f)})
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass(frozen=True)
class LedgerEntry:
    at: float
    api: str
    key: str
    code: str
    charged: bool
    order_id: str | None = None
    fault: str | None = None


@dataclass
class Ledger:
    """Every provider call, and which ones the provider would bill: Juhe `error_code` 0, Apetime `charge` 1."""

    keep: int = 2000
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _charged: Counter[tuple[str, str]] = field(default_factory=Counter)
    _calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    _entries: deque[LedgerEntry] = field(default_factory=deque)

    def record(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._calls[entry.api, entry.key] += 1
            if entry.charged:
                self._charged[entry.api, entry.key] += 1
            self._entries.append(entry)
            while len(self._entries) > self.keep:
                self._entries.popleft()

    def charged(self, api: str | None = None, key: str | None = None) -> int:
        with self._lock:
            return _total(self._charged, api, key)

    def calls(self, api: str | None = None, key: str | None = None) -> int:
        with self._lock:
            return _total(self._calls, api, key)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "charged": _nested(self._charged),
                "calls": _nested(self._calls),
                "total_charged": sum(self._charged.values()),
                "total_calls": sum(self._calls.values()),
                "entries": [asdict(e) for e in self._entries],
            }

    def reset(self) -> None:
        with self._lock:
            self._charged.clear()
            self._calls.clear()
            self._entries.clear()


def _total(counter: Counter[tuple[str, str]], api: str | None, key: str | None) -> int:
    return sum(n for (a, k), n in counter.items() if (api is None or a == api) and (key is None or k == key))


def _nested(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (api, key), n in sorted(counter.items()):
        out.setdefault(api, {})[key] = n
    return out
