"""`make bench`: every benchmark side by side with its baseline; writes bench/results.json, prints a table.

    PYTHONPATH=layers/idv:. .venv/bin/python -m bench.run [--only coldstart,warm,images,uploads,connections]
        [--quick] [--out bench/results.json]

One local stack (moto server + provider sandbox + local API + queue poller) serves every section.
Method and figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("images", "coldstart", "warm", "connections", "uploads")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def start_stack(worker_concurrency: int) -> Any:
    from sandbox.stack.local import LocalStack, StackOptions

    # The template's log level (INFO): the handlers' log lines are part of their work (see timing.quiet_stdout).
    options = StackOptions(worker_concurrency=worker_concurrency)
    return LocalStack(options).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma list of sections")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run, not figures)")
    parser.add_argument("--functions", default="", help="cold start: comma list of function dirs (default all)")
    parser.add_argument("--repeats", type=int, default=0, help="cold start rounds (default 7, --quick 2)")
    parser.add_argument("--other-root", default="", help="cold start: also measure this checkout (before/after)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    quick = args.quick
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    logging.getLogger("botocore").setLevel(logging.WARNING)

    results: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": quick,
    }
    t0 = time.perf_counter()
    if "images" in only:
        from bench import image_pipeline

        log("image pipeline ...")
        results["images"] = image_pipeline.run(repeats=5 if quick else 21, memory_runs=1 if quick else 3)

    stack = None
    needs_stack = [s for s in only if s != "images"]
    if needs_stack:
        log("starting the local stack ...")
        stack = start_stack(worker_concurrency=5)
        from bench import timing

        results["sandbox_nodelay_workaround"] = timing.sandbox_nodelay(stack)
    try:
        if "coldstart" in only:
            from bench import coldstart

            log("cold start ...")
            chosen = [f.strip() for f in args.functions.split(",") if f.strip()] or None
            repeats = args.repeats or (2 if quick else 7)
            other = Path(args.other_root) if args.other_root else None
            results["coldstart"] = coldstart.run(stack, repeats=repeats, only=chosen, log=log, other_root=other)
        if "warm" in only:
            from bench import warm

            log("warm overhead ...")
            results["warm"] = warm.run(stack, requests_count=40 if quick else 300, log=log)
        if "connections" in only:
            from bench import connections

            log("connection reuse ...")
            results["connections"] = connections.run(stack, calls=10 if quick else 50)
        if "uploads" in only:
            from bench import uploads

            log("upload throughput ...")
            results["uploads"] = uploads.run(stack, count=50 if quick else 500, log=log)
    finally:
        if stack is not None:
            stack.stop()
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    from bench import report

    print(report.table(results))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
