"""One cold start, in a fresh interpreter: load a handler's app.py by path, invoke it once.

    python bench/coldstart_child.py <app.py> <event.json>

Prints one JSON line: import and first-invocation times, the status of the answer, and the root
packages imported at module load and during the first invocation. Nothing but the standard library
is imported before the handler (a minimal Lambda context is defined here for that reason).
"""

import importlib.util
import json
import os
import sys
import time
import uuid


class Context:
    function_name = "bench-cold-start"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-cold-start"
    log_group_name = "/aws/lambda/bench-cold-start"
    log_stream_name = "local"
    function_version = "$LATEST"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 29

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def roots(names):
    """Third-party and project root packages among `names` (the standard library left out)."""
    found = {name.split(".")[0] for name in names}
    return sorted(r for r in found if r not in sys.stdlib_module_names and not r.startswith("_") and r != "app")


def instrument():
    """Diagnostic runs only (BENCH_BREAKDOWN=1): time where the first invocation goes. Installed after
    the handler's import; the modules it needs are imported first, outside the timed invocation."""
    import functools
    import os

    import botocore.client
    import botocore.session
    import requests.sessions

    timers = {"aws_client_creation": 0.0, "aws_calls": 0.0, "provider_http": 0.0, "image_prep": 0.0}
    counts = {"aws_clients": 0, "aws_call_count": 0, "provider_calls": 0}

    def wrap(owner, attr, timer, counter=None):
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers[timer] += time.perf_counter() - t0
                if counter:
                    counts[counter] += 1

        setattr(owner, attr, timed)

    wrap(botocore.session.Session, "create_client", "aws_client_creation", "aws_clients")
    wrap(botocore.client.BaseClient, "_make_api_call", "aws_calls", "aws_call_count")
    wrap(requests.sessions.Session, "send", "provider_http", "provider_calls")
    if os.environ.get("BENCH_LAYER_IMAGES", "1") == "1":
        try:
            import idv.images
        except ImportError:
            pass
        else:
            wrap(idv.images, "prepare_image", "image_prep")
    return timers, counts


def main():
    path, event_path = sys.argv[1], sys.argv[2]
    with open(event_path, encoding="utf-8") as fh:
        event = json.load(fh)
    before_import = frozenset(sys.modules)
    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("app", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    t1 = time.perf_counter()
    after_import = frozenset(sys.modules)
    breakdown = instrument() if os.environ.get("BENCH_BREAKDOWN") == "1" else None
    t_invoke = time.perf_counter()
    print("BENCH-FIRST-INVOCATION", file=sys.stderr, flush=True)  # splits -X importtime's output
    answer = module.lambda_handler(event, Context())
    t2 = time.perf_counter()
    after_invoke = frozenset(sys.modules)
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    body = answer.get("body") if isinstance(answer, dict) else None
    out = {
        "breakdown": (
            {**{k: round(v * 1000, 1) for k, v in breakdown[0].items()}, **breakdown[1]} if breakdown else None
        ),
        "import_s": t1 - t0,
        "invoke_s": t2 - t_invoke,
        "status": status,
        "batch_failures": len(failures) if isinstance(failures, list) else None,
        "body_head": body[:300] if isinstance(body, str) and status and status >= 400 else None,
        "modules_at_import": len(after_import - before_import),
        "modules_at_invoke": len(after_invoke - after_import),
        "roots_at_import": roots(after_import - before_import),
        "roots_at_invoke": roots(after_invoke - after_import),
    }
    sys.stdout.flush()
    print("\nCOLDSTART " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
