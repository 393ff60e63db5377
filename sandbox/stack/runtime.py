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

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._slots:
            with self._lock:
                container = self._idle.pop() if self._idle else None
                self.invocations += 1
            if container is None:
                container = load_app(self.code_dir)
                with self._lock:
                    self.containers += 1
            try:
                context = LambdaContext(self.name, timeout_seconds=self.timeout_seconds)
                return container.lambda_handler(event, context)
            finally:
                with self._lock:
                    self._idle.append(container)
