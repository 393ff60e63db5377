"""Benchmark 4: upload throughput, presigned POST → S3 → SQS → upload_worker, on the local stack.

`count` uploads, each: POST /v1/uploads through the local API (API key, validation, KMS-sealed
pending record, presigned POST), then the selfie POSTed to the presigned URL (moto S3), whose
ObjectCreated notification goes to the upload queue; the stack's poller drives upload_worker like
Lambda's SQS event source (batches of up to 10, `worker_concurrency` concurrent invocations, the
template's default UploadMaxConcurrency of 5). Clients upload from 8 threads. Done when every record
is final (read back with BatchGetItem). Money: the sandbox's ledger must show exactly `count` charged
verifyface calls for the gateway's key, and every record `charged: true`, once.

Baseline: the same number of provider calls made directly (requests.post with the same image, 5
threads, matching the worker concurrency): the rate the provider alone would allow here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench import fixtures, timing

CLIENT_THREADS = 8


def _upload(api_url: str, api_key: str, body: dict[str, Any], image: bytes) -> str:
    with requests.Session() as http:
        ticket = http.post(f"{api_url}/v1/uploads", json=body, headers={"x-api-key": api_key}, timeout=60)
        if ticket.status_code != 201:
            raise RuntimeError(f"POST /v1/uploads answered {ticket.status_code}: {ticket.text[:200]}")
        got = ticket.json()
        form = got["upload"]
        sent = http.post(
            form["url"], data=form["fields"], files={"file": ("selfie.jpg", image, "image/jpeg")}, timeout=60
        )
        if sent.status_code not in (200, 201, 204):
            raise RuntimeError(f"S3 POST answered {sent.status_code}: {sent.text[:200]}")
        return str(got["verification_id"])


def _statuses(stack: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    ddb = stack.client("dynamodb")
    table = stack.resource_name("VerificationsTable")
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 100):
        keys = [{"verification_id": {"S": v}} for v in ids[i : i + 100]]
        request: dict[str, Any] = {
            table: {
                "Keys": keys,
                "ProjectionExpression": "verification_id, #s, charged",
                "ExpressionAttributeNames": {"#s": "status"},
            }
        }
        while request:
            answer = ddb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                found[item["verification_id"]["S"]] = {
                    "status": item.get("status", {}).get("S"),
                    "charged": item.get("charged", {}).get("BOOL"),
                    "raw_charged": item.get("charged"),
                }
            request = answer.get("UnprocessedKeys") or {}
    return found


def run(stack: Any, count: int = 500, timeout_s: float = 900, log: Callable[[str], None] = print) -> dict[str, Any]:
    sandbox = stack.sandbox
    key = stack.provider_config.juhe_verifyface_key
    body = {**fixtures.check_body("compare"), "check": "compare", "content_type": "image/jpeg"}
    del body["image"]
    image = fixtures.selfie()

    # Time the worker's batches (per poller thread): wall, AWS round trips, provider call, image prep.
    timing.install()
    worker = next(f for f in stack.functions.values() if f.code_dir.endswith("upload_worker"))
    batches: list[dict[str, float]] = []
    original_invoke = worker.invoke

    def timed_invoke(event: dict[str, Any]) -> Any:
        timing.take()
        t0 = time.perf_counter()
        try:
            return original_invoke(event)
        finally:
            got = timing.take()
            got["wall"] = time.perf_counter() - t0
            got["records"] = len(event.get("Records", []))
            batches.append(got)

    worker.invoke = timed_invoke
    charged_before = sandbox.charged("verifyface", key)
    calls_before = sandbox.calls("verifyface", key)
    with timing.quiet_stdout():
        t0 = time.perf_counter()
        failures: list[str] = []

        def one(_: int) -> str | None:
            try:
                return _upload(stack.api_url, stack.api_key, body, image)
            except Exception as exc:  # counted and reported; the others go on
                failures.append(str(exc)[:300])
                return None

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            ids = [v for v in pool.map(one, range(count)) if v is not None]
        t_uploaded = time.perf_counter()
        final: dict[str, dict[str, Any]] = {}
        pending = list(ids)
        while pending and time.perf_counter() - t0 < timeout_s:
            time.sleep(0.5)
            got = _statuses(stack, pending)
            for vid, state in got.items():
                if state["status"] != "pending":
                    final[vid] = state
            pending = [v for v in pending if v not in final]
        t_done = time.perf_counter()
        # Read every record once more now that all are final: the emulator applies an UpdateItem's
        # SET actions one by one, so a poll can catch a record with `status` already written and
        # `charged` not yet (seen once in a 500-upload run).
        final.update(_statuses(stack, list(final)))
    worker.invoke = original_invoke
    charged = sandbox.charged("verifyface", key) - charged_before
    calls = sandbox.calls("verifyface", key) - calls_before
    completed = sum(1 for s in final.values() if s["status"] == "completed")
    seconds = t_done - t0
    log(f"  uploads: {completed}/{count} completed in {seconds:.1f} s")

    # Baseline: the same provider calls, made directly.
    url = f"{sandbox.url}/verifyface/verify"
    person = fixtures.person("match")
    form = {"key": key, "idcard": person.id_number, "realname": person.name, "image": fixtures.selfie_b64()}
    b0 = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda _: requests.post(url, data=form, timeout=60).json(), range(count)))
    baseline_s = time.perf_counter() - b0

    result = {
        "count": count,
        "client_threads": CLIENT_THREADS,
        "worker_concurrency": stack.options.worker_concurrency,
        "completed": completed,
        "upload_failures": len(failures),
        "upload_failure_samples": failures[:5],
        "final_other": {
            s: sum(1 for v in final.values() if v["status"] == s)
            for s in {v["status"] for v in final.values()}
            if s != "completed"
        },
        "still_pending": len(pending),
        "records_charged": sum(1 for s in final.values() if s["charged"]),
        "records_not_charged": [
            {"verification_id": v, "status": s["status"], "charged": s["raw_charged"]}
            for v, s in final.items()
            if not s["charged"]
        ][:20],
        "upload_phase_s": round(t_uploaded - t0, 2),
        "seconds": round(seconds, 2),
        "rate_per_s": round(count / seconds, 1),
        "ledger_calls": calls,
        "ledger_charges": charged,
        "double_charges": max(0, charged - sum(1 for s in final.values() if s["charged"])),
        "baseline_direct_calls_s": round(baseline_s, 2),
        "baseline_rate_per_s": round(count / baseline_s, 1),
    }
    records = sum(b["records"] for b in batches) or 1
    result["worker"] = {
        "batches": len(batches),
        "records": sum(b["records"] for b in batches),
        "per_record_ms": {
            "total": round(sum(b["wall"] for b in batches) / records * 1000, 1),
            "aws_round_trips": round(sum(b["aws"] for b in batches) / records * 1000, 1),
            "aws_calls": round(sum(b["aws_calls"] for b in batches) / records, 1),
            "provider_call": round(sum(b["provider"] for b in batches) / records * 1000, 1),
            "image_prep": round(sum(b["image"] for b in batches) / records * 1000, 1),
        },
    }
    result["met"] = completed == count == charged == calls == result["records_charged"]
    return result
