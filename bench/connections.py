"""Benchmark 5: provider calls from one warm container share one TCP connection.

A fresh container of `functions/compare` (its provider client forgotten first, as in a new Lambda
container) runs `calls` compare requests one after another; the provider sandbox counts the TCP
connections it accepts. Baseline: the same number of plain `requests.post` calls (one connection each).
"""

from __future__ import annotations

from typing import Any

import requests

from bench import events, fixtures, timing


def run(stack: Any, calls: int = 50) -> dict[str, Any]:
    from idv import providers
    from sandbox.stack.runtime import LambdaContext, load_app

    sandbox = stack.sandbox
    code_dir = next(f.code_dir for f in stack.functions.values() if f.code_dir.endswith("/compare"))
    body = fixtures.check_body("compare")
    statuses: set[int] = set()
    with timing.quiet_stdout():
        providers.juhe_client.cache_clear()  # a new container: no provider client, no connection yet
        container = load_app(code_dir)
        context = LambdaContext("CompareFunction")
        start = sandbox.connections
        first = container.lambda_handler(events.check_event("compare", body), context)
        statuses.add(first["statusCode"])
        after_first = sandbox.connections
        for _ in range(calls - 1):
            answer = container.lambda_handler(events.check_event("compare", body), context)
            statuses.add(answer["statusCode"])
        after_all = sandbox.connections

        url = f"{stack.sandbox.url}/verifyface/verify"
        form = {
            "key": stack.provider_config.juhe_verifyface_key,
            "idcard": body["id_number"],
            "realname": body["name"],
            "image": body["image"],
        }
        base_start = sandbox.connections
        for _ in range(calls):
            requests.post(url, data=form, timeout=30)
        base_after = sandbox.connections
    gateway = after_all - start
    return {
        "calls": calls,
        "statuses": sorted(statuses),
        "gateway_new_connections": gateway,
        "gateway_new_connections_after_first_call": after_all - after_first,
        "baseline_new_connections": base_after - base_start,
        "met": gateway == 1 and after_all == after_first,
    }
