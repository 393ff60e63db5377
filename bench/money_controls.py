"""Benchmark: the money controls' cost on a warm compare (issue 13): controls off vs all on.

One warm container of `functions/compare` runs API Gateway events against the local stack. "Off" is
SUBJECT_DAILY_LIMIT=0, DEDUPE_WINDOW_SECONDS=0, no DAILY_SPEND_LIMIT; "on" is all three on (a limit and a
cap that are never reached, a dedupe window that never hits: each request has its own
client_reference). Reported per variant, with and without an Idempotency-Key: AWS round trips per
request, and the handler's own time (handler − AWS round trips − provider call − image preparation),
whose p50 difference on − off is the controls' overhead excluding AWS round trips (target ≤ 1 ms).

    PYTHONPATH=layers/idv:. .venv/bin/python -m bench.run --only controls
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench import events, fixtures, timing
from bench.stats import summary

TARGET_MS = 1.0
VARIANTS = {
    "off": {"SUBJECT_DAILY_LIMIT": "0", "DEDUPE_WINDOW_SECONDS": "0", "DAILY_SPEND_LIMIT": ""},
    "on": {"SUBJECT_DAILY_LIMIT": "1000000", "DEDUPE_WINDOW_SECONDS": "600", "DAILY_SPEND_LIMIT": "100000000.00"},
}


def _measure(container: Any, context: Any, keyed: bool, rounds: int) -> dict[str, Any]:
    calls, own, aws_s, statuses = [], [], [], set()
    for _ in range(rounds):
        body = fixtures.check_body("compare", client_reference=f"bench-{uuid.uuid4().hex[:16]}")
        event = events.check_event("compare", body, idempotency_key=f"bench-{uuid.uuid4()}" if keyed else None)
        timing.take()
        t0 = time.perf_counter()
        answer = container.lambda_handler(event, context)
        elapsed = time.perf_counter() - t0
        got = timing.take()
        statuses.add(answer.get("statusCode"))
        calls.append(got["aws_calls"])
        aws_s.append(got["aws"])
        own.append(elapsed - got["aws"] - got["provider"] - got["image"])
    return {
        "requests": rounds,
        "statuses": sorted(statuses),
        "aws_calls_per_request": sorted(set(calls)),
        "aws_ms": summary(aws_s, 1000),
        "own_ms": summary(own, 1000),
    }


def run(stack: Any, rounds: int = 150, log: Callable[[str], None] = print) -> dict[str, Any]:
    import idv
    from sandbox.stack.runtime import LambdaContext, load_app

    code_dir = next(f.code_dir for f in stack.functions.values() if f.code_dir.endswith("/compare"))
    saved = {k: os.environ.get(k) for k in VARIANTS["on"]}
    timing.install()
    result: dict[str, Any] = {}
    try:
        with timing.quiet_stdout():
            for name, env in VARIANTS.items():
                os.environ.update(env)
                idv.reset()
                container = load_app(code_dir)
                context = LambdaContext("CompareFunction")
                _measure(container, context, False, 10)  # warm-up
                result[name] = {
                    "without_key": _measure(container, context, False, rounds),
                    "with_key": _measure(container, context, True, rounds),
                }
                log(f"  controls {name}: done")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        idv.reset()
    for keyed in ("without_key", "with_key"):
        result[f"overhead_excluding_aws_p50_ms_{keyed}"] = round(
            result["on"][keyed]["own_ms"]["p50"] - result["off"][keyed]["own_ms"]["p50"], 3
        )
    result["target_ms"] = TARGET_MS
    result["met"] = all(result[f"overhead_excluding_aws_p50_ms_{k}"] <= TARGET_MS for k in ("without_key", "with_key"))
    return result


if __name__ == "__main__":
    import json
    import logging

    from sandbox.stack.local import LocalStack, StackOptions

    logging.getLogger("botocore").setLevel(logging.WARNING)
    with LocalStack(StackOptions()).start() as running:
        print(json.dumps(run(running), indent=2))
