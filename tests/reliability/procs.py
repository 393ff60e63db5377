"""Real concurrency across processes: a pool of 'spawn' workers, each its own Lambda execution environment.

Threads of one process share Powertools' class attributes, the layer's module state (clients, caches,
settings) and the GIL, which serialises and hides races. Each worker here is a fresh interpreter
('spawn' start method) with the parent's os.environ (the local stack's endpoint, table names, ...).
For each task it loads the function's app.py anew (`sandbox.stack.runtime.load_app`, a new
container), waits on a Barrier shared by every worker, and only then invokes `lambda_handler`: the
invocations start together.

    with Pool(8) as pool:
        results = pool.run([Task("functions/faceid_callback", event), ...])  # one task per worker
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

SPAWN = multiprocessing.get_context("spawn")
BARRIER_SECONDS = 60.0


@dataclass(frozen=True)
class Task:
    code_dir: str  # functions/<name>
    event: dict[str, Any]
    timeout_seconds: float = 29.0
    label: str = ""
    env: dict[str, str] = field(default_factory=dict)  # set in the worker before the container starts


@dataclass
class Result:
    label: str
    pid: int
    ok: bool
    value: Any = None  # the handler's return value (JSON-able), or the exception's text
    started: float = 0.0  # time.time() right after the barrier
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def answer(self) -> tuple[int, dict[str, str], Any]:
        """(status, headers, body) of an API Gateway proxy answer; the body parsed when it is JSON."""
        assert self.ok, self.value
        text = self.value.get("body") or ""
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        headers = {k.lower(): v for k, v in (self.value.get("headers") or {}).items()}
        for k, values in (self.value.get("multiValueHeaders") or {}).items():
            headers.setdefault(k.lower(), values[-1] if values else "")
        return int(self.value["statusCode"]), headers, body


def _worker(env: dict[str, str], barrier: Any, tasks: Any, results: Any) -> None:
    os.environ.clear()
    os.environ.update(env)
    from sandbox.stack.runtime import LambdaContext, load_app

    while True:
        task = tasks.get()
        if task is None:
            return
        index, item = task
        if item.env:
            import idv

            os.environ.update(item.env)
            idv.reset()  # the new settings, as a new container would read them
        try:
            app = load_app(item.code_dir)  # a new container for every task
            error = None
        except BaseException:  # reported to the parent
            app, error = None, traceback.format_exc()
        context = LambdaContext(f"proc-{os.path.basename(item.code_dir)}", timeout_seconds=item.timeout_seconds)
        try:
            barrier.wait(BARRIER_SECONDS)
        except Exception:  # a broken barrier: another worker failed before the start
            results.put((index, Result(item.label, os.getpid(), False, "barrier broken")))
            continue
        started = time.time()
        began = time.monotonic()
        if error is not None:
            results.put((index, Result(item.label, os.getpid(), False, error, started)))
            continue
        try:
            value = app.lambda_handler(item.event, context)
            outcome = Result(item.label, os.getpid(), True, _jsonable(value), started, time.monotonic() - began)
        except BaseException:  # reported to the parent
            outcome = Result(item.label, os.getpid(), False, traceback.format_exc(), started, time.monotonic() - began)
        results.put((index, outcome))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class Pool:
    """`size` spawned workers; `run` gives each exactly one task and starts them on one barrier."""

    def __init__(self, size: int, env: dict[str, str] | None = None) -> None:
        self.size = size
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        self.barrier = SPAWN.Barrier(size)
        self.tasks = [SPAWN.Queue() for _ in range(size)]
        self.results = SPAWN.Queue()
        self.procs = [
            SPAWN.Process(target=_worker, args=(self.env, self.barrier, self.tasks[i], self.results), daemon=True)
            for i in range(size)
        ]
        for proc in self.procs:
            proc.start()

    def run(self, tasks: list[Task], timeout: float = 90.0) -> list[Result]:
        assert len(tasks) == self.size, f"{len(tasks)} tasks for {self.size} workers"
        for i, task in enumerate(tasks):
            self.tasks[i].put((i, task))
        out: dict[int, Result] = {}
        deadline = time.monotonic() + timeout
        while len(out) < self.size:
            try:
                index, result = self.results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                dead = [p.pid for p in self.procs if not p.is_alive()]
                raise AssertionError(f"workers did not answer in {timeout} s (dead: {dead})") from None
            out[index] = result
        return [out[i] for i in range(self.size)]

    def close(self) -> None:
        for q in self.tasks:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def distinct_pids(results: list[Result]) -> int:
    return len({r.pid for r in results})


def start_spread(results: list[Result]) -> float:
    """Seconds between the first and the last invocation's start (how simultaneous they were)."""
    starts = [r.started for r in results if r.started]
    return max(starts) - min(starts) if starts else 0.0
