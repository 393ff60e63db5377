"""Benchmark 1: cold start per function against a baseline handler, in fresh interpreters.

Each sample is one new `python3.13` process (`bench/coldstart_child.py`) that loads a handler's
`app.py` by path (the layer on PYTHONPATH, as /opt/python is in Lambda), with the environment the
local stack gives its functions (table names, secret id, provider URLs, AWS_ENDPOINT_URL and fake
credentials for the moto server, POWERTOOLS_TRACE_DISABLED=true), and runs one realistic event
against the running local stack. The figure is import + first invocation, timed inside the child;
the whole process (interpreter start-up included) is timed by the parent too.

The baseline is `bench/baseline/app.py` (boto3 + the Powertools Logger, returns a dict), run right
before every function sample so both see the same machine state. Ratio = median(function) /
median(baseline). A second baseline, `bench/baseline/same_work.py`, does the work a user would write
by hand for a check (parse the body, read the secret, `requests.post` to the provider, `put_item`,
`put_events`): `same_work_ratio` = median(function) / median(same work) measures our own start-up.
One more, untimed, run per function with `-X importtime` lists what it imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench import events, fixtures
from bench.stats import median

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "coldstart_child.py"
BASELINE = Path(__file__).resolve().parent / "baseline" / "app.py"
SAME_WORK = Path(__file__).resolve().parent / "baseline" / "same_work.py"
TARGET_RATIO = 1.3
OK_STATUS = {200, 201, 204, 302}


class Scenarios:
    """One realistic first event per function, each with its own fresh data on the local stack."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.http.headers["x-api-key"] = stack.api_key
        self._verification_id: str | None = None

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        answer = self.http.request(method, f"{self.stack.api_url}{path}", timeout=30, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer

    def compare(self) -> dict[str, Any]:
        return events.check_event("compare", fixtures.check_body("compare"), f"cold-{uuid.uuid4().hex}")

    def four_factor(self) -> dict[str, Any]:
        return events.check_event("four_factor", fixtures.check_body("four_factor"), f"cold-{uuid.uuid4().hex}")

    def apetime_verify(self) -> dict[str, Any]:
        return events.check_event("portrait", fixtures.check_body("portrait"), f"cold-{uuid.uuid4().hex}")

    def faceid_initiate(self) -> dict[str, Any]:
        return events.api_event("faceid_session", body=self.faceid_body(), idempotency_key=f"cold-{uuid.uuid4().hex}")

    def faceid_body(self) -> dict[str, Any]:
        who = fixtures.person("match")
        return {
            "name": who.name,
            "id_number": who.id_number,
            "consent": {"granted": True, "text_version": "bench-2026-01"},
            "redirect_url": "http://127.0.0.1/done",
            "client_reference": "bench",
        }

    def faceid_callback(self) -> dict[str, Any]:
        from bench import faceid_flow

        verification_id, response, sign = faceid_flow.completed_session(self)
        return events.api_event(
            "faceid_callback_get",
            path_parameters={"verification_id": verification_id},
            query={"response": response, "sign": sign},
        )

    def usage(self) -> dict[str, Any]:
        return events.api_event("usage")

    def verifications(self) -> dict[str, Any]:
        if self._verification_id is None:
            record = self.api("POST", "/v1/compare", json=fixtures.check_body("compare")).json()
            self._verification_id = record["verification_id"]
        return events.api_event("get_verification", path_parameters={"verification_id": self._verification_id})

    def upload_worker(self) -> dict[str, Any]:
        body = {**fixtures.check_body("compare"), "check": "compare", "content_type": "image/jpeg"}
        del body["image"]
        ticket = self.api("POST", "/v1/uploads", json=body).json()
        key = ticket["upload"]["fields"]["key"]
        bucket = self.stack.resource_name("UploadBucket")
        data = fixtures.selfie()
        # Put the object while the bucket's notification is off (see `quiet_bucket`), so the stack's
        # own queue poller does not process it first; the event is then handed to the cold worker.
        self.stack.client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
        return events.sqs_s3_event(bucket, key, len(data))

    def reconciler(self) -> dict[str, Any]:
        return events.schedule_event()

    def event_publisher(self) -> dict[str, Any]:
        """The sample stream record (a pending → completed transition), as the event source delivers it."""
        import json

        return json.loads((ROOT / "events" / "event_publisher.json").read_text(encoding="utf-8"))


class quiet_bucket:
    """Switch the upload bucket's S3 → SQS notification off for a while, then restore it."""

    def __init__(self, stack: Any) -> None:
        self.s3 = stack.client("s3")
        self.bucket = stack.resource_name("UploadBucket")
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> None:
        saved = self.s3.get_bucket_notification_configuration(Bucket=self.bucket)
        saved.pop("ResponseMetadata", None)
        self.saved = saved
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={})

    def __exit__(self, *exc: object) -> None:
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration=self.saved)


def child_env(stack: Any, layer: Path | None = None) -> dict[str, str]:
    """The functions' environment: what the stack set (its env + AWS endpoint and credentials)."""
    env = dict(os.environ)
    env.update(stack.env)
    env["PYTHONPATH"] = str(layer or ROOT / "layers" / "idv")  # the layer, as /opt/python in Lambda
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    env.pop("PYTHONSTARTUP", None)
    return env


def run_child(
    app: Path, event: dict[str, Any], env: dict[str, str], *, importtime: bool = False, breakdown: bool = False
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(event, fh, ensure_ascii=False)
        event_path = fh.name
    args = [sys.executable, *(["-X", "importtime"] if importtime else []), str(CHILD), str(app), event_path]
    try:
        t0 = time.perf_counter()
        run_env = {**env, "BENCH_BREAKDOWN": "1"} if breakdown else env
        proc = subprocess.run(args, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=120)
        wall = time.perf_counter() - t0
    finally:
        os.unlink(event_path)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("COLDSTART ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"cold start of {app} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    out = json.loads(line[len("COLDSTART ") :])
    out["process_s"] = wall
    if importtime:
        out["importtime"] = parse_importtime(proc.stderr)
    return out


def parse_importtime(stderr: str) -> dict[str, Any]:
    """What the handler imports at start-up and what its first invocation imports on top."""
    at_import, _, at_invoke = stderr.partition("BENCH-FIRST-INVOCATION")
    return {"start_up": _importtime(at_import), "first_invocation": _importtime(at_invoke)}


def _importtime(stderr: str) -> dict[str, Any]:
    """Top imports by cumulative time (top-level entries) and by package (self time summed)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, label = line[len("import time:") :].split("|", 2)
        name = label.strip()
        depth = (len(label) - len(label.lstrip()) - 1) // 2
        rows.append((int(self_us), int(cum_us), name, depth))
    top_level = sorted((r for r in rows if r[3] == 0), key=lambda r: -r[1])
    by_package: dict[str, int] = defaultdict(int)
    for self_us, _, name, _ in rows:
        by_package[name.split(".")[0]] += self_us
    return {
        "total_ms": round(sum(r[0] for r in rows) / 1000, 1),
        "modules": len(rows),
        "top_cumulative_ms": [[name, round(cum / 1000, 1)] for _, cum, name, _ in top_level[:10]],
        "top_packages_ms": [
            [name, round(us / 1000, 1)] for name, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]
        ],
    }


def functions(stack: Any) -> dict[str, str]:
    """function dir name -> code dir, from the template (as the stack loaded them)."""
    return {Path(f.code_dir).name: f.code_dir for f in stack.functions.values()}


def run(
    stack: Any,
    repeats: int = 7,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
    other_root: Path | None = None,
) -> dict[str, Any]:
    """`other_root`: a checkout of another revision (e.g. `git worktree add /tmp/before <rev>`); its
    layer and handlers are measured in the same rounds, for before/after figures side by side."""
    scenarios = Scenarios(stack)
    env = child_env(stack)
    other_env = child_env(stack, other_root / "layers" / "idv") if other_root else None
    other: dict[str, list[dict[str, Any]]] = {}
    dirs = functions(stack)
    names = [n for n in dirs if not only or n in only]
    makers: dict[str, Callable[[], dict[str, Any]]] = {n: getattr(scenarios, n) for n in names}
    samples: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    base: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    same: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    errors: dict[str, str] = {}
    importtime: dict[str, Any] = {}
    baseline_event = events.schedule_event()
    with quiet_bucket(stack):
        # Warm the OS page cache and the bytecode caches so the first sample is not an outlier.
        run_child(BASELINE, baseline_event, env)
        importtime["baseline"] = run_child(BASELINE, baseline_event, env, importtime=True)["importtime"]
        for name in names:
            try:
                first = run_child(ROOT / dirs[name] / "app.py", makers[name](), env, importtime=True)
                importtime[name] = {
                    **first["importtime"],
                    "roots_at_import": first["roots_at_import"],
                    "roots_at_invoke": first["roots_at_invoke"],
                }
                diagnostic = run_child(ROOT / dirs[name] / "app.py", makers[name](), env, breakdown=True)
                importtime[name]["first_invocation_breakdown_ms"] = {
                    **diagnostic["breakdown"],
                    "invocation": round(diagnostic["invoke_s"] * 1000, 1),
                }
            except Exception as exc:  # reported, the other functions still run
                errors[name] = str(exc)[-800:]
        for rep in range(repeats):
            for name in names:
                if name in errors:
                    continue
                event = makers[name]()
                base[name].append(run_child(BASELINE, baseline_event, env))
                same[name].append(run_child(SAME_WORK, scenarios.compare(), env))
                sample = run_child(ROOT / dirs[name] / "app.py", event, env)
                status_ok = sample["status"] in OK_STATUS or (
                    sample["status"] is None and not sample.get("batch_failures")
                )
                if not status_ok:
                    errors[name] = f"answer {sample['status']}: {sample.get('body_head')}"
                samples[name].append(sample)
                if other_root is not None and other_env is not None and (other_root / dirs[name] / "app.py").exists():
                    other.setdefault(name, []).append(
                        run_child(other_root / dirs[name] / "app.py", makers[name](), other_env)
                    )
            log(f"  cold start: round {rep + 1}/{repeats} done")
    results: dict[str, Any] = {"repeats": repeats, "target_ratio": TARGET_RATIO, "functions": {}, "errors": errors}
    for name in names:
        got, ref = samples[name], base[name]
        if not got:
            continue
        cold = median([s["import_s"] + s["invoke_s"] for s in got])
        ref_cold = median([s["import_s"] + s["invoke_s"] for s in ref])
        results["functions"][name] = {
            "import_ms": round(median([s["import_s"] for s in got]) * 1000, 1),
            "first_invoke_ms": round(median([s["invoke_s"] for s in got]) * 1000, 1),
            "cold_ms": round(cold * 1000, 1),
            "process_ms": round(median([s["process_s"] for s in got]) * 1000, 1),
            "baseline_cold_ms": round(ref_cold * 1000, 1),
            "baseline_import_ms": round(median([s["import_s"] for s in ref]) * 1000, 1),
            "baseline_process_ms": round(median([s["process_s"] for s in ref]) * 1000, 1),
            "ratio": round(cold / ref_cold, 2),
            "import_ratio": round(median([s["import_s"] for s in got]) / median([s["import_s"] for s in ref]), 2),
            "process_ratio": round(median([s["process_s"] for s in got]) / median([s["process_s"] for s in ref]), 2),
            "status": sorted({str(s["status"]) for s in got}),
            "met": cold / ref_cold <= TARGET_RATIO,
        }
        if same[name]:
            same_cold = median([s["import_s"] + s["invoke_s"] for s in same[name]])
            results["functions"][name].update(
                same_work_cold_ms=round(same_cold * 1000, 1),
                same_work_ratio=round(cold / same_cold, 2),
                same_work_met=cold / same_cold <= TARGET_RATIO,
            )
        if other.get(name):
            alt = other[name]
            alt_cold = median([s["import_s"] + s["invoke_s"] for s in alt])
            results["functions"][name]["other_revision"] = {
                "root": str(other_root),
                "import_ms": round(median([s["import_s"] for s in alt]) * 1000, 1),
                "first_invoke_ms": round(median([s["invoke_s"] for s in alt]) * 1000, 1),
                "cold_ms": round(alt_cold * 1000, 1),
                "ratio": round(alt_cold / ref_cold, 2),
                "status": sorted({str(s["status"]) for s in alt}),
            }
    for name, figures in results["functions"].items():
        parts = importtime.get(name, {}).get("first_invocation_breakdown_ms")
        if not parts:
            continue
        inherent = parts["aws_client_creation"] + parts["aws_calls"] + parts["provider_http"] + parts["image_prep"]
        # What no implementation doing the same work could avoid on top of the baseline: creating its
        # boto3 clients, the AWS round trips (moto here), the provider call and preparing the image.
        figures["inherent_first_call_ms"] = round(inherent, 1)
        figures["floor_ratio"] = round((figures["baseline_cold_ms"] + inherent) / figures["baseline_cold_ms"], 2)
        figures["own_ms"] = round(figures["cold_ms"] - figures["baseline_cold_ms"] - inherent, 1)
    results["importtime"] = importtime
    return results
