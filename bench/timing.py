"""In-process instrumentation for the warm benchmarks: per-thread timers around boto3 calls, provider
HTTP calls and image preparation, and a way to keep thousands of log lines off the terminal."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

_local = threading.local()
_installed = False


def _bucket() -> dict[str, float]:
    bucket = getattr(_local, "bucket", None)
    if bucket is None:
        bucket = _local.bucket = {"aws": 0.0, "aws_calls": 0, "provider": 0.0, "provider_calls": 0, "image": 0.0}
    return bucket


def take() -> dict[str, float]:
    """This thread's totals since the last take()."""
    bucket = _bucket()
    _local.bucket = None
    return bucket


def _timed(original: Any, timer: str, counter: str | None) -> Any:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            bucket = _bucket()
            bucket[timer] += time.perf_counter() - t0
            if counter:
                bucket[counter] += 1

    wrapper.__bench_wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Time, per thread: every boto3 API call (botocore `_make_api_call`: serialization, the HTTP round
    trip to the emulator, retries, parsing), every requests `Session.send` (the provider call, incl.
    `requests.post`), and `idv.images.prepare_image`."""
    global _installed
    if _installed:
        return
    import botocore.client
    import requests.sessions

    from idv import images

    botocore.client.BaseClient._make_api_call = _timed(botocore.client.BaseClient._make_api_call, "aws", "aws_calls")
    requests.sessions.Session.send = _timed(requests.sessions.Session.send, "provider", "provider_calls")
    images.prepare_image = _timed(images.prepare_image, "image", None)
    _installed = True


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null (the handlers' JSON logs and EMF metrics go to stdout, as in
    Lambda: writing them is part of the handler's work, showing them is not)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
