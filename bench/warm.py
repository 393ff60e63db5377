"""Benchmark 2: warm overhead of a compare request through the handler against a plain requests.post.

One warm container of `functions/compare` (loaded in-process like the local stack's runtime) runs
API Gateway events against the local stack with the zero-latency provider sandbox. The baseline is
what a user would write instead: `requests.post(<sandbox>/verifyface/verify, data=<the same form>)`
with the image already prepared (the exact form the handler sent, captured once). A keep-alive
`requests.Session().post` is measured as a second, stricter baseline.

Each round runs the handler and the baselines back to back (order alternating), so the paired
difference cancels machine drift. Inside the handler, per-thread timers (bench/timing.py) measure:
  * AWS round trips: every boto3 call (the claim's PutItem and the finish's UpdateItem, plus the
    Idempotency-Key's PutItem in the keyed rounds; events leave through the table's stream, and the
    secret is cached by the SecretsProvider after the first request, so neither EventBridge nor
    Secrets Manager is called on a warm request) against the moto server — budget 2 without a key,
    3 with one;
  * image preparation: idv.images.prepare_image on the ~20 KB selfie;
  * the provider call: requests' Session.send to the sandbox.
Reported:
  overhead            = handler - requests.post                       (paired, per round)
  excluding AWS       = handler - AWS round trips - requests.post
  without image prep  = the same minus prepare_image
  direct              = handler - provider call - AWS round trips (- image prep): the gateway's own
                        CPU, independent of the sandbox's face matching noise.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import requests

from bench import events, fixtures, timing
from bench.stats import summary

TARGET_MS = 3.0


def _capture_form(container: Any, event: dict[str, Any], context: Any) -> tuple[str, dict[str, str]]:
    """(url, form) of the provider request the handler makes for `event`."""
    from idv import providers

    captured: list[requests.PreparedRequest] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        captured.append(response.request)

    session = providers.juhe_client().session
    session.hooks["response"].append(hook)
    try:
        answer = container.lambda_handler(event, context)
    finally:
        session.hooks["response"].remove(hook)
    if answer.get("statusCode") != 200 or not captured:
        raise RuntimeError(f"compare answered {answer.get('statusCode')}: {str(answer.get('body'))[:300]}")
    request = captured[-1]
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
    return str(request.url), dict(parse_qsl(body, keep_blank_values=True))


def run(stack: Any, requests_count: int = 300, warmup: int = 20, log: Callable[[str], None] = print) -> dict[str, Any]:
    from sandbox.stack.runtime import LambdaContext, load_app

    code_dir = next(f.code_dir for f in stack.functions.values() if f.code_dir.endswith("/compare"))
    container = load_app(code_dir)
    context = LambdaContext("CompareFunction")
    timing.install()
    body = fixtures.check_body("compare")
    event = events.check_event("compare", body)
    selfie = fixtures.selfie()

    with timing.quiet_stdout():
        url, form = _capture_form(container, event, context)
        assert base64.b64decode(form["image"])  # the prepared image the provider receives
        keepalive = requests.Session()
        for _ in range(warmup):
            container.lambda_handler(events.check_event("compare", body), context)
            requests.post(url, data=form, timeout=30)
            keepalive.post(url, data=form, timeout=30)
        timing.take()

        handler_s, aws_s, image_s, provider_s, aws_calls = [], [], [], [], []
        plain_s, session_s, statuses = [], [], set()
        for i in range(requests_count):
            ev = events.check_event("compare", body)

            def through_handler(ev: dict[str, Any] = ev) -> None:
                timing.take()
                t0 = time.perf_counter()
                answer = container.lambda_handler(ev, context)
                handler_s.append(time.perf_counter() - t0)
                got = timing.take()
                aws_s.append(got["aws"])
                aws_calls.append(got["aws_calls"])
                image_s.append(got["image"])
                provider_s.append(got["provider"])
                statuses.add(answer.get("statusCode"))

            def plain() -> None:
                t0 = time.perf_counter()
                requests.post(url, data=form, timeout=30).json()
                plain_s.append(time.perf_counter() - t0)

            def session() -> None:
                t0 = time.perf_counter()
                keepalive.post(url, data=form, timeout=30).json()
                session_s.append(time.perf_counter() - t0)

            order = (through_handler, plain, session) if i % 2 == 0 else (session, plain, through_handler)
            for step in order:
                step()
            if (i + 1) % 100 == 0:
                log(f"  warm: {i + 1}/{requests_count}")
        timing.take()

    n = requests_count
    overhead = [handler_s[i] - plain_s[i] for i in range(n)]
    excl_aws = [handler_s[i] - aws_s[i] - plain_s[i] for i in range(n)]
    excl_aws_image = [handler_s[i] - aws_s[i] - image_s[i] - plain_s[i] for i in range(n)]
    vs_session = [handler_s[i] - aws_s[i] - image_s[i] - session_s[i] for i in range(n)]
    direct = [handler_s[i] - provider_s[i] - aws_s[i] for i in range(n)]
    direct_no_image = [handler_s[i] - provider_s[i] - aws_s[i] - image_s[i] for i in range(n)]
    ms = 1000
    result = {
        "requests": n,
        "statuses": sorted(statuses),
        "selfie_bytes": len(selfie),
        "provider_image_bytes": len(base64.b64decode(form["image"])),
        "idempotency_key": False,
        "aws_calls_per_request": sorted(set(aws_calls)),
        "handler_ms": summary(handler_s, ms),
        "baseline_ms": summary(plain_s, ms),
        "baseline_keepalive_ms": summary(session_s, ms),
        "aws_ms": summary(aws_s, ms),
        "image_prep_ms": summary(image_s, ms),
        "provider_call_in_handler_ms": summary(provider_s, ms),
        "overhead_ms": {
            "with_image_prep": {"total": summary(overhead, ms), "excluding_aws": summary(excl_aws, ms)},
            "without_image_prep": {
                "total": summary([overhead[i] - image_s[i] for i in range(n)], ms),
                "excluding_aws": summary(excl_aws_image, ms),
                "excluding_aws_vs_keepalive_baseline": summary(vs_session, ms),
            },
        },
        "direct_overhead_ms": {
            "with_image_prep": summary(direct, ms),
            "without_image_prep": summary(direct_no_image, ms),
        },
        "target_ms": TARGET_MS,
    }
    result["met"] = result["overhead_ms"]["without_image_prep"]["excluding_aws"]["p50"] <= TARGET_MS
    result["keyed"] = _keyed_round_trips(container, context, body, rounds=max(20, n // 3))
    result["round_trip_budget"] = {"without_key": ROUND_TRIPS_WITHOUT_KEY, "with_key": ROUND_TRIPS_WITH_KEY}
    result["round_trips_met"] = (
        max(aws_calls) <= ROUND_TRIPS_WITHOUT_KEY
        and max(result["keyed"]["aws_calls_per_request"]) <= ROUND_TRIPS_WITH_KEY
    )
    return result


ROUND_TRIPS_WITHOUT_KEY = 2  # the claim (record with a lease) and the finish
ROUND_TRIPS_WITH_KEY = 3  # + the Idempotency-Key's item


def _keyed_round_trips(container: Any, context: Any, body: dict[str, Any], rounds: int) -> dict[str, Any]:
    """AWS round trips and handler time of warm checks that each carry a fresh Idempotency-Key."""
    import uuid

    calls, handler_s, aws_s, provider_s = [], [], [], []
    with timing.quiet_stdout():
        timing.take()
        for _ in range(rounds):
            ev = events.check_event("compare", body, idempotency_key=f"bench-{uuid.uuid4()}")
            t0 = time.perf_counter()
            container.lambda_handler(ev, context)
            handler_s.append(time.perf_counter() - t0)
            got = timing.take()
            calls.append(got["aws_calls"])
            aws_s.append(got["aws"])
            provider_s.append(got["provider"])
    direct = [handler_s[i] - provider_s[i] - aws_s[i] for i in range(rounds)]
    return {
        "requests": rounds,
        "aws_calls_per_request": sorted(set(calls)),
        "aws_ms": summary(aws_s, 1000),
        "direct_overhead_ms": summary(direct, 1000),
    }
