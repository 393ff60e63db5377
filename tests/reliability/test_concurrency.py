"""Concurrency through the local API (ThreadingHTTPServer → Lambda containers, up to
StackOptions.function_concurrency per function, as Lambda's reserved concurrency would cap them).

- 50 concurrent identical requests with one Idempotency-Key: one provider call, one charge, 50 equal answers.
- 200 mixed concurrent requests (every route, outcomes of every kind, idempotent pairs, invalid input,
  reads): every answer right, every record stored exactly once, none lost, charges equal to the ledger.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.reliability import figures
from tests.reliability.conftest import ROUTES, SANDBOX_API, client, stored_item
from tests.stack import body

pytestmark = pytest.mark.slow


def post(stack, path: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[requests.Response, float]:
    began = time.monotonic()
    answer = requests.post(
        stack.api_url + path, json=payload, headers={"x-api-key": stack.api_key, **(headers or {})}, timeout=120
    )
    return answer, time.monotonic() - began


def get(stack, path: str) -> tuple[requests.Response, float]:
    began = time.monotonic()
    answer = requests.get(stack.api_url + path, headers={"x-api-key": stack.api_key}, timeout=120)
    return answer, time.monotonic() - began


def person_body(people, check: str, scenario: str, **extra: Any) -> dict[str, Any]:
    person = people.identity(scenario)
    if check == "four_factor":
        extra.setdefault("mobile", person.mobile)
    image = None if check == "faceid" else people.scenario_selfie_jpeg(person)
    return body(person, image, **extra)


@pytest.mark.parametrize("check", ["compare", "four_factor", "portrait", "faceid"])
def test_50_identical_requests_with_one_key_call_the_provider_once(stack, people, metrics, ledger, check):
    payload = person_body(people, check, "match")
    key = {"Idempotency-Key": f"rel-50-{uuid.uuid4()}"}
    delta = ledger()
    began = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: post(stack, ROUTES[check], payload, key), range(50)))
    wall = time.monotonic() - began
    answers = [a for a, _ in results]
    assert {a.status_code for a in answers} == {201 if check == "faceid" else 200}, {a.text for a in answers}
    first = answers[0].json()
    assert all(a.json() == first for a in answers)  # the same answer, replayed (key order may differ)
    assert delta.calls(SANDBOX_API[check]) == 1 and delta.calls() == 1
    assert delta.charged() == 1
    assert metrics.count("ChargedCalls") == 1 and metrics.count("ProviderCalls") == 1
    vid = first["verification_id"]
    items = client(stack, "dynamodb").scan(
        TableName=stack.resource_name("VerificationsTable"),
        FilterExpression="verification_id = :v",
        ExpressionAttributeValues={":v": {"S": vid}},
    )["Items"]
    assert len(items) == 1
    latencies = sorted(t for _, t in results)
    figures.record(
        f"concurrency_idempotent_{check}",
        requests=50,
        provider_calls=delta.calls(),
        charged=delta.charged(),
        wall_s=round(wall, 2),
        p50_s=round(statistics.median(latencies), 2),
        max_s=round(latencies[-1], 2),
    )


@dataclass
class Job:
    kind: str
    path: str
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    status: int = 200
    decision: str | None = None
    code: str | None = None
    reference: str | None = None  # client_reference of the record it creates (None: creates none)
    calls: int = 0  # provider calls it makes
    charged: int = 0


def mixed_jobs(people, run: str, existing: list[dict[str, Any]]) -> list[Job]:
    jobs: list[Job] = []

    def check_job(check: str, scenario: str, decision: str, charged: int = 1, **extra: Any) -> Job:
        ref = f"{run}-{len(jobs)}"
        return Job(
            check,
            ROUTES[check],
            person_body(people, check, scenario, client_reference=ref, **extra),
            decision=decision,
            reference=ref,
            calls=1,
            charged=charged,
        )

    compare = [
        ("match", "pass", 1),
        ("face_mismatch", "fail", 1),
        ("not_found", "fail", 0),
        ("name_mismatch", "fail", 1),
        ("minority_name", "pass", 1),
    ]
    for i in range(50):
        scenario, decision, charged = compare[i % len(compare)]
        jobs.append(check_job("compare", scenario, decision, charged))
    four = [("four_factor_100", "pass"), ("four_factor_101", "fail"), ("four_factor_108", "review")]
    for i in range(30):
        scenario, decision = four[i % len(four)]
        jobs.append(check_job("four_factor", scenario, decision))
    portrait = [("match", "pass"), ("face_review", "review"), ("name_mismatch", "fail")]
    for i in range(30):
        scenario, decision = portrait[i % len(portrait)]
        jobs.append(check_job("portrait", scenario, decision))
    for _ in range(20):
        job = check_job("faceid", "match", None, redirect_url="http://127.0.0.1/done")
        job.status, job.decision = 201, None
        jobs.append(job)
    for _ in range(10):  # upload tickets: a pending record each, no provider call yet
        ref = f"{run}-{len(jobs)}"
        person = people.identity("match")
        jobs.append(
            Job("upload", "/v1/uploads", body(person, check="compare", client_reference=ref), status=201, reference=ref)
        )
    for i in range(10):  # idempotent pairs: two identical requests, one record, one call
        ref = f"{run}-{len(jobs)}"
        person = people.identity("match")
        payload = body(person, people.selfie_jpeg(person), client_reference=ref)
        key = {"Idempotency-Key": f"{run}-pair-{i}"}
        jobs.append(Job("idempotent", "/v1/compare", payload, key, decision="pass", reference=ref, calls=1, charged=1))
        jobs.append(Job("idempotent", "/v1/compare", payload, key, decision="pass"))
    bad = [({"id_number": "110105199003071230"}, "invalid_id_number"), ({"consent": None}, "consent_required")]
    for i in range(20):  # refused before anything is paid for: no record
        change, code = bad[i % len(bad)]
        payload = person_body(people, "compare", "match", client_reference=f"{run}-bad-{i}")
        payload.update(change)
        jobs.append(
            Job("invalid", "/v1/compare", {k: v for k, v in payload.items() if v is not None}, status=422, code=code)
        )
    for i in range(20):  # reads of records made before the burst
        record = existing[i % len(existing)]
        jobs.append(
            Job("read", f"/v1/verifications/{record['verification_id']}", method="GET", decision=record["decision"])
        )
    assert len(jobs) == 200
    return jobs


def run_job(stack, job: Job) -> tuple[requests.Response, float]:
    if job.method == "GET":
        return get(stack, job.path)
    return post(stack, job.path, job.payload, job.headers)


def test_200_mixed_concurrent_requests(stack, people, metrics, ledger):
    run = f"mix-{uuid.uuid4().hex[:10]}"
    person = people.identity("match")
    existing = [post(stack, "/v1/compare", body(person, people.selfie_jpeg(person)))[0].json() for _ in range(4)]
    jobs = mixed_jobs(people, run, existing)
    # interleave the kinds so every route is busy at once
    order = sorted(range(len(jobs)), key=lambda i: (i * 7919) % len(jobs))
    delta, metered = ledger(), metrics.count("ChargedCalls")
    began = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        results = dict(zip(order, pool.map(lambda i: run_job(stack, jobs[i]), order), strict=True))
    wall = time.monotonic() - began

    wrong = []
    for i, job in enumerate(jobs):
        answer, _ = results[i]
        data = answer.json()
        ok = answer.status_code == job.status
        if ok and job.code:
            ok = data.get("code") == job.code
        if ok and job.kind in ("compare", "four_factor", "portrait", "idempotent", "read"):
            ok = data.get("status") == "completed" and data.get("decision") == job.decision
        if ok and job.reference and job.kind in ("compare", "four_factor", "portrait", "idempotent"):
            ok = data.get("client_reference") == job.reference  # this request's record, nobody else's
        if ok and job.reference and job.kind != "read":
            ok = data.get("verification_id") is not None
        if not ok:
            wrong.append((job.kind, answer.status_code, answer.text[:200]))
    assert wrong == []

    # idempotent pairs: both answers are the same record
    by_key: dict[str, set[str]] = {}
    for i, job in enumerate(jobs):
        if job.kind == "idempotent":
            by_key.setdefault(job.headers["Idempotency-Key"], set()).add(results[i][0].json()["verification_id"])
    assert len(by_key) == 10 and all(len(ids) == 1 for ids in by_key.values())

    # every record stored exactly once, none lost, none extra
    made = {job.reference: results[i][0].json()["verification_id"] for i, job in enumerate(jobs) if job.reference}
    items = []
    scan: dict[str, Any] = {
        "TableName": stack.resource_name("VerificationsTable"),
        "FilterExpression": "begins_with(client_reference, :r)",
        "ExpressionAttributeValues": {":r": {"S": f"{run}-"}},
    }
    while True:
        page = client(stack, "dynamodb").scan(**scan)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    stored = Counter(item["client_reference"]["S"] for item in items)
    if set(stored) != set(made):  # tell a lost record from a scan that missed it
        absent = {ref: made.get(ref) for ref in set(made) ^ set(stored)}
        found = {ref: stored_item(stack, vid) is not None if vid else "not answered" for ref, vid in absent.items()}
        raise AssertionError(f"records lost or made for refused requests: {found}")
    assert max(stored.values()) == 1, "a record was stored twice"
    assert {item["client_reference"]["S"]: item["verification_id"]["S"] for item in items} == made
    assert len(set(made.values())) == len(made)

    calls = sum(job.calls for job in jobs)
    charged = sum(job.charged for job in jobs)
    assert delta.calls() == calls
    assert delta.charged() == charged
    assert metrics.count("ChargedCalls") - metered == charged

    latencies = sorted(t for _, t in results.values())
    kinds = Counter(job.kind for job in jobs)
    figures.record(
        "concurrency_mixed",
        requests=len(jobs),
        answered_right=len(jobs) - len(wrong),
        records=len(made),
        records_stored=len(items),
        provider_calls=delta.calls(),
        charged=delta.charged(),
        wall_s=round(wall, 2),
        p50_s=round(statistics.median(latencies), 2),
        p95_s=round(latencies[int(len(latencies) * 0.95) - 1], 2),
        max_s=round(latencies[-1], 2),
        kinds=" ".join(f"{k}:{n}" for k, n in sorted(kinds.items())),
    )
