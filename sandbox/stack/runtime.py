"""A small Lambda runtime: loads each function's app.py in containers and invokes it like Lambda.

One event at a time per container (as in Lambda); a function scales out to more containers, each a
fresh load of its app.py, up to a concurrency limit. Module state (clients, caches) lives per
container, so warm-start behaviour is the same as in AWS.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sandbox.stack.template import ROOT

_COUNTER = itertools.count()
_INVOCATION = threading.local()


class _PerInvocation:
    """A class attribute whose value belongs to the thread (the invocation) that set it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return getattr(_INVOCATION, self.name, None)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(_INVOCATION, self.name, value)


def isolate_invocations() -> None:
    """Keep Powertools' per-invocation state per thread.

    In Lambda an execution environment runs one invocation at a time in its own process. Here the
    containers of every function are threads of one process, and Powertools' event handler keeps the
    event being resolved in class attributes (`BaseRouter.current_event`, `BaseRouter.lambda_context`,
    assigned on every `resolve`): two concurrent invocations would read each other's event (a compare
    request answered with an upload request's body, seen under 200 concurrent requests). The two
    attributes become per-thread, through a metaclass that routes the class-level assignment too.
    """
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    if isinstance(BaseRouter.__dict__.get("current_event"), _PerInvocation):
        return
    names = ("current_event", "lambda_context")

    class PerInvocationMeta(type(BaseRouter)):  # type: ignore[misc]
        def __setattr__(cls, name: str, value: Any) -> None:
            if name in names:
                setattr(_INVOCATION, name, value)
                return
            super().__setattr__(name, value)

    for name in names:
        type.__setattr__(BaseRouter, name, _PerInvocation(name))
    BaseRouter.__class__ = PerInvocationMeta


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 29.0
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = (
            self.invoked_function_arn or f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_app(code_dir: str) -> ModuleType:
    """A fresh module instance of functions/<dir>/app.py (a new 'container')."""
    path = ROOT / code_dir / "app.py"
    name = f"lambda_{Path(code_dir).name}_{next(_COUNTER)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Function:
    """A function's containers; `invoke` runs one event in an idle container (or a new one)."""

    def __init__(self, name: str, code_dir: str, max_concurrency: int = 8, timeout_seconds: float = 29.0) -> None:
        self.name = name
        self.code_dir = code_dir
        self.timeout_seconds = timeout_seconds
        self._idle: list[ModuleType] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.containers = 0
        self.invocations = 0

    def invoke(self, event: dict[str, Any], timeout_seconds: float | None = None) -> Any:
        """Run one event; `timeout_seconds` overrides the function's timeout for this invocation."""
        isolate_invocations()
        with self._slots:
            with self._lock:
                container = self._idle.pop() if self._idle else None
                self.invocations += 1
            if container is None:
                container = load_app(self.code_dir)
                with self._lock:
                    self.containers += 1
            try:
                context = LambdaContext(self.name, timeout_seconds=timeout_seconds or self.timeout_seconds)
                return container.lambda_handler(event, context)
            finally:
                with self._lock:
                    self._idle.append(container)
