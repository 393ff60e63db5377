"""`make bench`: every benchmark side by side with its baseline; writes bench/results.json, prints a table.

    PYTHONPATH=layers/idv:. .venv/bin/python -m bench.run [--only coldstart,warm,images,uploads,connections,controls]
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
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("images", "coldstart", "warm", "connections", "uploads", "controls")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def revision() -> dict[str, Any]:
    """The code measured: the git commit of this checkout (and whether layers/functions differ from
    it), or BENCH_REVISION when run from an exported snapshot."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--", "layers", "functions", "sandbox", "bench").strip())
        return {"commit": commit, "uncommitted_changes": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": os.environ.get("BENCH_REVISION", "unknown"), "uncommitted_changes": None}


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
    # The money controls off (the warm rounds send one body many times); `controls` measures them on vs off.
    off = {"SubjectDailyLimit": "0", "DedupeWindowSeconds": "0", "DailySpendLimit": ""}
    options = StackOptions(worker_concurrency=worker_concurrency, parameters=off)
    return LocalStack(options).start()


def _section(name: str) -> Any:
    import importlib

    return importlib.import_module(f"bench.{name}")


def _guarded(run: Any, stack: Any) -> dict[str, Any]:
    """A section's results, or its error (the other sections still run and the file is written)."""
    try:
        return run(stack)
    except Exception as exc:
        log(f"  failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}


def _images(quick: bool) -> dict[str, Any]:
    from bench import image_pipeline

    return image_pipeline.run(repeats=5 if quick else 21, memory_runs=1 if quick else 3)


def _coldstart(stack: Any, args: argparse.Namespace, quick: bool) -> dict[str, Any]:
    from bench import coldstart

    chosen = [f.strip() for f in args.functions.split(",") if f.strip()] or None
    repeats = args.repeats or (2 if quick else 7)
    other = Path(args.other_root) if args.other_root else None
    return coldstart.run(stack, repeats=repeats, only=chosen, log=log, other_root=other)


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
        "revision": revision(),
        "quick": quick,
    }
    t0 = time.perf_counter()
    section_args = {
        "images": lambda _stack: _images(quick),
        "coldstart": lambda stack: _coldstart(stack, args, quick),
        "warm": lambda stack: _section("warm").run(stack, requests_count=40 if quick else 300, log=log),
        "connections": lambda stack: _section("connections").run(stack, calls=10 if quick else 50),
        "uploads": lambda stack: _section("uploads").run(stack, count=50 if quick else 500, log=log),
        "controls": lambda stack: _section("money_controls").run(stack, rounds=30 if quick else 150, log=log),
    }
    if "images" in only:
        log("image pipeline ...")
        results["images"] = _guarded(section_args["images"], None)
    stack = None
    if [s for s in only if s != "images"]:
        log("starting the local stack ...")
        stack = start_stack(worker_concurrency=5)

    try:
        for name in ("coldstart", "warm", "connections", "uploads", "controls"):
            if name in only:
                log(f"{name} ...")
                results[name] = _guarded(section_args[name], stack)
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
    failed = [name for name in SECTIONS if isinstance(results.get(name), dict) and "error" in results[name]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
