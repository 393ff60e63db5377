"""The one HTTP session factory and the one retry policy for provider calls.

A session keeps connections alive (one TCP connection per host per warm container), uses a ~2 s
connect timeout and a per-API read timeout, and never retries by itself (urllib3 retries are off).
`post_json` retries only what cannot have been charged: a connection that was never established,
and answers the classifier marks `auto_retry` (explicit rate-limit / maintenance codes). A read
timeout or a reset after the request was sent is never retried: it may have been billed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

from idv import errors

CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 10.0
USER_AGENT = "idv-gateway/1.0"


def new_session(pool_maxsize: int = 10) -> requests.Session:
    """A keep-alive session with retries disabled (retry decisions belong to `post_json`)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter; `sleep` and `rand` are injectable for tests."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * (2**attempt)) * self.rand())


NO_RETRY = RetryPolicy(attempts=1)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request cannot have reached the provider (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, NameResolutionError))


_sent = threading.local()


def _count_sent() -> None:
    _sent.count = getattr(_sent, "count", 0) + 1


def take_sent() -> int:
    """Requests that reached the provider on this thread since the last call (a retried refusal is a call
    too; a connection that was never established is not): the usage report's `provider_calls`."""
    count = int(getattr(_sent, "count", 0))
    _sent.count = 0
    return count


def post_json(
    session: requests.Session,
    url: str,
    *,
    provider: str,
    data: Mapping[str, Any] | None = None,
    files: Mapping[str, Any] | None = None,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    classify: Callable[[dict[str, Any]], errors.IdvError | None] | None = None,
    retry: RetryPolicy = RetryPolicy(),
) -> dict[str, Any]:
    """POST a form and return the provider's JSON object.

    `classify` looks at a parsed body and returns the error it means (or None for a usable body);
    errors with `auto_retry` are retried under `retry`, then raised. It may return any `IdvError`
    (e.g. `InvalidIdNumber` for a provider-side format rejection); only `ProviderError`s carry
    `auto_retry`. The URL is logged nowhere here,
    and no exception message carries request data.
    """
    last: errors.IdvError | None = None
    for attempt in range(retry.attempts):
        if attempt:
            retry.sleep(retry.delay(attempt - 1))
        try:
            response = session.post(url, data=data, files=files, timeout=(CONNECT_TIMEOUT, read_timeout))
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                last = errors.ProviderUnavailable(
                    f"could not connect to {provider}", provider=provider, charged=False, auto_retry=True
                )
                continue
            _count_sent()
            raise errors.ProviderTimeout(
                f"{provider} closed the connection after the request was sent; it may have been charged,"
                " so it was not retried",
                provider=provider,
                charged=None,
            ) from None
        except requests.Timeout:
            _count_sent()
            raise errors.ProviderTimeout(
                f"{provider} did not answer within {read_timeout:g} s; it may have been charged, so it was not retried",
                provider=provider,
                charged=None,
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            _count_sent()
            raise errors.ProviderTimeout(
                f"{provider}'s answer broke off while it was read; it may have been charged, so it was not retried",
                provider=provider,
                charged=None,
            ) from None
        except requests.RequestException as exc:
            raise errors.ProviderUnavailable(
                f"request to {provider} failed ({type(exc).__name__})", provider=provider, charged=False
            ) from None
        _count_sent()
        body = _parse(response, provider)
        problem = classify(body) if classify else None
        if problem is None:
            return body
        if not getattr(problem, "auto_retry", False):
            raise problem
        last = problem
    assert last is not None
    raise last


def _parse(response: requests.Response, provider: str) -> dict[str, Any]:
    if response.status_code >= 500:
        raise errors.ProviderUnavailable(
            f"{provider} answered HTTP {response.status_code}", provider=provider, charged=False
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        # A page that is no JSON at all (a gateway's HTML) is not the API's answer: nothing was billed.
        # JSON cut short or corrupted may be a billed answer: its charge is unknown, never "free".
        cut_short = response.content.lstrip()[:1] in (b"{", b"[")
        raise errors.ProviderUnavailable(
            f"{provider} answered HTTP {response.status_code} with "
            + (
                "JSON that is cut short or corrupted; it may have been charged"
                if cut_short
                else "a body that is not JSON"
            ),
            provider=provider,
            charged=None if cut_short else False,
        ) from None
    if not isinstance(body, dict):
        raise errors.ProviderUnavailable(f"{provider} answered JSON that is not an object", provider=provider)
    return body
