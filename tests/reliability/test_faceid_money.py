"""FaceID money path under real concurrency and poisoned sessions; the stream outbox under PutEvents faults.

Races run across PROCESSES (tests/reliability/procs.py): every contender is a spawned interpreter
with a freshly loaded app.py, started on one Barrier, so nothing (Powertools' class attributes,
the layer's module state, the GIL) serialises them the way threads of one process would.

Landed code before the money-path rewrite (cd85138, `git show cd85138:layers/idv/idv/faceid.py`):
every callback and every reconciler run called faceid/search on its own (no search lease), so a
normal browser flow paid 13 searches for 9 sessions and parallel returns paid 9 for one session;
the reconciler searched a session whose answer it could not use on every run, forever; and one
failed read or write raised out of `reconcile`, so the sessions after it were never looked at.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from idv import faceid
from sandbox.stack import template as tpl
from sandbox.stack.local_api import build_event
from tests.reliability import figures
from tests.reliability.conftest import client, stored_item
from tests.reliability.faults import aws_fault
from tests.reliability.procs import Pool, Task, distinct_pids, start_spread
from tests.reliability.test_callback_forgery import start, submit
from tests.stack import body

pytestmark = pytest.mark.slow

SUITE = "faceid_money"
PROCESSES = 8
RACE_SESSIONS = 5
CALLBACK_DIR = "functions/faceid_callback"
RECONCILER_DIR = "functions/reconciler"
COMPARE_DIR = "functions/compare"
RECONCILE_FIRST = getattr(faceid, "RECONCILE_FIRST_SECONDS", 600)
MAX_SEARCHES = getattr(faceid, "MAX_SEARCHES", 6)  # (the old code had no bound: the tests still run on it)


# ------------------------------------------------------------------------------------------ helpers


def api_event(
    stack, method: str, route_path: str, raw_path: str, *, query: str = "", data: bytes = b"", headers=None, params=None
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the local API builds it."""
    route = next(r for r in tpl.routes(stack.template) if r.path == route_path and r.method == method)
    host = stack.api_url.split("//", 1)[1]
    return build_event(route, method, raw_path, query, dict(headers or {}), data, dict(params or {}), host, "127.0.0.1")


def return_event(stack, vid: str, signed: dict[str, str]) -> dict[str, Any]:
    """The browser return: GET with the signed response and sign in the query."""
    path = f"/v1/faceid/callback/{vid}"
    headers = {"user-agent": "Mozilla/5.0 (race)"}
    return api_event(
        stack,
        "GET",
        "/v1/faceid/callback/{verification_id}",
        path,
        query=urlencode(signed),
        headers=headers,
        params={"verification_id": vid},
    )


def notify_event(stack, vid: str, signed: dict[str, str]) -> dict[str, Any]:
    """The provider notify: POST with a form body."""
    path = f"/v1/faceid/callback/{vid}"
    headers = {"content-type": "application/x-www-form-urlencoded", "user-agent": "juhe-notify (race)"}
    return api_event(
        stack,
        "POST",
        "/v1/faceid/callback/{verification_id}",
        path,
        data=urlencode(signed).encode(),
        headers=headers,
        params={"verification_id": vid},
    )


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def set_attributes(stack, vid: str, **values: float) -> None:
    names = {f"#a{i}": k for i, k in enumerate(values)}
    client(stack, "dynamodb").update_item(
        TableName=stack.resource_name("VerificationsTable"),
        Key={"verification_id": {"S": vid}},
        UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": {"N": str(v)} for i, v in enumerate(values.values())},
    )


def jh_order(stack, vid: str) -> str:
    return stored_item(stack, vid)["jh_order_id"]["S"]


def silence_notify(stack, jh: str) -> None:
    """The sandbox sends no notify of its own for this session (the test sends every callback)."""
    stack.sandbox.engine.sessions.by_order(jh).notify_url = ""


def searches_for(stack, jh: str) -> int:
    """faceid/search calls the sandbox answered with this session's result (the ledger's order id)."""
    return sum(1 for e in stack.sandbox.ledger()["entries"] if e["api"] == "faceid_search" and e.get("order_id") == jh)


def search_count(stack, vid: str) -> int:
    item = stored_item(stack, vid) or {}
    return int(item.get("search_count", {}).get("N", 0))


def status_of(stack, vid: str) -> str:
    return stored_item(stack, vid)["status"]["S"]


_EVENTS: dict[str, list[dict[str, Any]]] = {}


def drain_events(stack, seconds: float) -> None:
    """Read the captured bus events for `seconds` (kept per verification id)."""
    sqs = client(stack, "sqs")
    deadline = time.monotonic() + seconds
    while True:
        messages = sqs.receive_message(
            QueueUrl=stack.captured_events_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        for message in messages:
            event = json.loads(message["Body"])
            if event.get("detail-type") == "Verification Completed":
                _EVENTS.setdefault(event["detail"]["verification_id"], []).append(event)
            sqs.delete_message(QueueUrl=stack.captured_events_queue, ReceiptHandle=message["ReceiptHandle"])
        if time.monotonic() >= deadline:
            return
        if not messages:
            time.sleep(0.1)


def events_for(stack, vids: list[str], *, timeout: float = 15.0, settle: float = 2.0) -> dict[str, list[dict]]:
    """The `Verification Completed` events of these records: until each has one, then `settle` more
    seconds to see any duplicate."""
    deadline = time.monotonic() + timeout
    while not all(_EVENTS.get(v) for v in vids) and time.monotonic() < deadline:
        drain_events(stack, 0.3)
    drain_events(stack, settle)
    return {v: list(_EVENTS.get(v, [])) for v in vids}


def no_events_for(stack, vids: list[str], settle: float = 2.0) -> dict[str, list[dict]]:
    drain_events(stack, settle)
    return {v: list(_EVENTS.get(v, [])) for v in vids}


@pytest.fixture(scope="module")
def pool(stack):
    with Pool(PROCESSES) as workers:
        yield workers


# ------------------------------------------------------------------------------- races across processes


def race_roles() -> list[str]:
    return ["return", "notify", "reconcile", "return", "notify", "return", "notify", "reconcile"][:PROCESSES]


def test_simultaneous_returns_notifies_and_reconciler_pay_one_search(api, stack, people, ledger, pool):
    """Per session: 3 browser returns, 3 notifies and 2 reconciler runs, each in its own process, all
    released by one barrier. Exactly one faceid/search, one transition, one event.

    Old code (cd85138): every contender searched (no lease): 8 searches for one session here (9 in
    the issue); the conditional write kept the transition single, the event was published inline."""
    per_session: list[int] = []
    spreads: list[float] = []
    reconciler_seen = reconciler_won = 0
    vids: list[str] = []
    for _ in range(RACE_SESSIONS):
        session = start(api, people)
        vid = session["verification_id"]
        jh = jh_order(stack, vid)
        silence_notify(stack, jh)
        _, signed = submit(session["verify_url"], outcome="pass")
        set_attributes(stack, vid, reconcile_at=1)  # due now (0 reads as "unset": see the report)
        tasks = []
        for role in race_roles():
            if role == "return":
                tasks.append(Task(CALLBACK_DIR, return_event(stack, vid, signed), label=role))
            elif role == "notify":
                tasks.append(Task(CALLBACK_DIR, notify_event(stack, vid, signed), label=role))
            else:
                tasks.append(Task(RECONCILER_DIR, SCHEDULED, timeout_seconds=120, label=role))
        delta = ledger()
        results = pool.run(tasks)
        assert distinct_pids(results) == PROCESSES
        spreads.append(start_spread(results))
        for result in results:
            assert result.ok, f"{result.label} raised:\n{result.value}"
            if result.label == "return":
                status, headers, _ = result.answer()
                assert status == 302, result.value
                assert "status=completed" in headers["location"], headers  # losers answer the winner's outcome
            elif result.label == "notify":
                status, _, answer = result.answer()
                assert status == 200 and answer == {"verification_id": vid, "status": "completed"}, result.value
            else:
                assert result.value.get("failed", 0) == 0, result.value
                reconciler_seen += result.value.get("seen", 0)
                reconciler_won += result.value.get("searched", 0)
        paid = searches_for(stack, jh)
        per_session.append(paid)
        assert paid == 1, f"{paid} faceid/search calls for one session"
        assert delta.calls("faceid_search") == 1  # nothing else was searched either
        assert delta.calls() == 1
        assert status_of(stack, vid) == "completed" and search_count(stack, vid) == 1
        record = api.get(f"/v1/verifications/{vid}").json()
        assert record["decision"] == "pass", record
        vids.append(vid)
    published = events_for(stack, vids)
    for vid in vids:
        found = published[vid]
        assert len(found) == 1, f"{len(found)} events for {vid}"
        assert found[0]["detail"]["event_id"] == f"{vid}:completed"
        assert found[0]["detail"]["status"] == "completed"
    figures.record(
        SUITE,
        race_sessions=RACE_SESSIONS,
        race_processes_per_session=PROCESSES,
        race_searches_per_session=per_session,
        race_events_per_session=[len(published[v]) for v in vids],
        race_start_spread_ms=round(max(spreads) * 1000, 1),
        race_reconciler_runs_that_saw_it_pending=reconciler_seen,
        race_won_by_reconciler=reconciler_won,
    )


def test_same_idempotency_key_across_processes_pays_once(api, stack, people, ledger, pool):
    """8 processes send the same /v1/compare with the same Idempotency-Key at once: one claim wins,
    the others wait for its answer (idv.claims.replay). One provider call, one charge, one record,
    eight equal answers."""
    person = people.identity("match")
    marker = f"race-{uuid.uuid4().hex[:12]}"
    payload = json.dumps(body(person, people.selfie_jpeg(person), client_reference=marker)).encode()
    headers = {"content-type": "application/json", "x-api-key": stack.api_key, "Idempotency-Key": f"k-{marker}"}
    event = api_event(stack, "POST", "/v1/compare", "/v1/compare", data=payload, headers=headers)
    delta = ledger()
    results = pool.run([Task(COMPARE_DIR, event, label="compare") for _ in range(PROCESSES)])
    assert distinct_pids(results) == PROCESSES
    answers = []
    for result in results:
        assert result.ok, result.value
        status, _, answer = result.answer()
        answers.append((status, json.dumps(answer, sort_keys=True)))
    statuses = Counter(s for s, _ in answers)
    assert statuses == {200: PROCESSES}, statuses
    assert len({a for _, a in answers}) == 1, "the answers differ"
    assert delta.calls() == 1 and delta.charged() == 1
    items = client(stack, "dynamodb").scan(
        TableName=stack.resource_name("VerificationsTable"),
        FilterExpression="client_reference = :m",
        ExpressionAttributeValues={":m": {"S": marker}},
    )["Items"]
    assert len(items) == 1
    figures.record(
        SUITE,
        idempotent_processes=PROCESSES,
        idempotent_provider_calls=delta.calls(),
        idempotent_charges=delta.charged(),
        idempotent_distinct_answers=len({a for _, a in answers}),
    )


# ------------------------------------------------------------------------------------ poisoned sessions


def _detail(**change: Any) -> dict[str, Any]:
    detail = {
        "live_passed": "T",
        "live_code": "200",
        "live_message": "活体检测通过",
        "live_score": "91.11730",
        "certify_passed": "T",
        "certify_code": "200",
        "certify_message": "身份证号与姓名匹配，且比对成功",
        "certify_res": "1",
        "certify_score": "87",
    }
    detail.update(change)
    return {k: v for k, v in detail.items() if v is not None}


def _answer(jh: str, passed: str = "T", **detail: Any) -> dict[str, Any]:
    return {
        "error_code": 0,
        "reason": "SUCCESS",
        "result": {"passed": passed, "message": "?", "jh_order_id": jh, "detail": _detail(**detail)},
    }


UNUSABLE = {
    "odd_passed": lambda jh: _answer(jh, passed="Y"),
    "no_certify": lambda jh: _answer(jh, certify_passed=None, certify_code=None, certify_score=None),
    "live_score_1e999": lambda jh: json.dumps(_answer(jh, live_score="__N__")).replace('"__N__"', "1e999"),
    "live_score_str_1e999": lambda jh: _answer(jh, live_score="1e999"),
}


def _vid_of(params: dict[str, Any]) -> str | None:
    return (params.get("Key") or {}).get("verification_id", {}).get("S")


def test_poisoned_sessions_are_bounded_isolated_and_settled(api, stack, people, ledger, monkeypatch):
    """Poisoned sessions first (the index returns the oldest first), healthy ones after:

    - 4 unusable faceid/search answers (an odd `passed`, no certify fields, live_score 1e999 as a
      number and as a string): one search each, the session ends `error` in the first run;
    - 1 session rate-limited on every search, its browser return clicked 8 times: at most
      MAX_SEARCHES leases in all, then nothing more is searched; it ends `expired` after its time;
    - storage failing for 3 sessions (UpdateItem, GetItem, and only the search-finish write): the run
      goes on with the others; retried later, they complete once storage is back;
    - healthy: a pass and a fail settled in the SAME first run, one never finished that expires.

    Old code (cd85138): an unusable answer was searched again on every run, and the first failed
    read or write raised out of `reconcile`: nothing after it (the healthy sessions) settled."""
    names = [*UNUSABLE, "rate_limited", "store_update", "store_get", "store_finish", "pass", "fail", "unfinished"]
    sessions: dict[str, dict[str, Any]] = {}
    for name in names:
        session = start(api, people)
        vid = session["verification_id"]
        jh = jh_order(stack, vid)
        silence_notify(stack, jh)
        sessions[name] = {"vid": vid, "jh": jh, "verify_url": session["verify_url"]}
    first = float(stored_item(stack, sessions[names[0]]["vid"])["session_expires_at"]["N"])
    for i, name in enumerate(names):  # strictly oldest first, in this order
        set_attributes(stack, sessions[name]["vid"], session_expires_at=int(first) + i)
    for name, make in UNUSABLE.items():
        stack.sandbox.set_fault(
            "answer", api="faceid_search", count=None, body=make(sessions[name]["jh"]), order=sessions[name]["jh"]
        )
    stack.sandbox.set_fault("rate_limit", api="faceid_search", count=None, order=sessions["rate_limited"]["jh"])
    for name in ("rate_limited", "store_update", "store_get", "store_finish", "pass"):
        _, sessions[name]["signed"] = submit(sessions[name]["verify_url"], outcome="pass")
    _, sessions["fail"]["signed"] = submit(sessions["fail"]["verify_url"], outcome="fail")
    vid = {name: s["vid"] for name, s in sessions.items()}
    delta = ledger()

    # the rate-limited session's browser return, clicked 8 times
    url = f"{stack.api_url}/v1/faceid/callback/{vid['rate_limited']}"
    for _ in range(8):
        answer = requests.get(url, params=sessions["rate_limited"]["signed"], allow_redirects=False, timeout=30)
        assert answer.status_code == 302 and "status=pending" in answer.headers["Location"], answer.text
    leases_by_callbacks = search_count(stack, vid["rate_limited"])
    assert leases_by_callbacks <= MAX_SEARCHES

    storage = {"store_update": vid["store_update"], "store_get": vid["store_get"]}

    def search_finish(params: dict[str, Any]) -> bool:
        """The session's one transition under its search lease (after the paid search)."""
        names = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        return _vid_of(params) == vid["store_finish"] and names.get("#token") == "search_token" and ":from" in values

    monkeypatch.setattr("idv.claims.backoff", lambda attempt: 0.01)  # keep the runs short
    t0 = time.time()
    runs: list[dict[str, int]] = []
    with (
        aws_fault("dynamodb", "UpdateItem", when=lambda p: _vid_of(p) == storage["store_update"]) as f_update,
        aws_fault("dynamodb", "GetItem", when=lambda p: _vid_of(p) == storage["store_get"]) as f_get,
        aws_fault("dynamodb", "UpdateItem", when=search_finish) as f_finish,
    ):
        runs.append(faceid.reconcile(now=t0 + RECONCILE_FIRST + 1))
        after_first = {name: status_of(stack, v) for name, v in vid.items()}
        runs.append(faceid.reconcile(now=t0 + 2 * RECONCILE_FIRST + 1))
        assert f_update.fired and f_get.fired and f_finish.fired
    runs.append(faceid.reconcile(now=t0 + 1500))  # storage is back
    saved = stack.sandbox.engine.clock_offset
    try:
        stack.sandbox.advance_clock(32 * 60)  # the provider's sessions are over too
        runs.append(faceid.reconcile(now=t0 + faceid.SESSION_SECONDS + 100))
        runs.append(faceid.reconcile(now=t0 + faceid.SESSION_SECONDS + 3000))  # nothing left to do
    finally:
        stack.sandbox.engine.clock_offset = saved

    # the first run: unusable → error, healthy settled in the same run, storage failures isolated
    for name in UNUSABLE:
        assert after_first[name] == "error", (name, after_first)
    assert after_first["pass"] == "completed" and after_first["fail"] == "completed", after_first
    for name in ("store_update", "store_get", "store_finish", "rate_limited", "unfinished"):
        assert after_first[name] == "pending", (name, after_first)
    assert runs[0]["failed"] == 3 and runs[0]["error"] == len(UNUSABLE) and runs[0]["completed"] == 2, runs[0]
    assert runs[1]["failed"] == 3, runs[1]
    assert runs[2]["failed"] == 0 and runs[2]["completed"] == 3, runs[2]
    assert all(r["failed"] == 0 for r in runs[2:]), runs

    final = {name: api.get(f"/v1/verifications/{v}").json() for name, v in vid.items()}
    for name in UNUSABLE:
        record = final[name]
        assert record["status"] == "error" and record["decision"] is None, record
        assert record["error"]["code"] == "provider_unavailable", record
        assert record["charged"] is True  # faceid/query was billed when the session started
    for name in ("store_update", "store_get", "store_finish", "pass"):
        assert final[name]["status"] == "completed" and final[name]["decision"] == "pass", (name, final[name])
    assert final["fail"]["status"] == "completed" and final["fail"]["decision"] == "fail", final["fail"]
    assert final["rate_limited"]["status"] == "expired", final["rate_limited"]
    assert final["unfinished"]["status"] == "expired", final["unfinished"]
    for v in vid.values():
        assert "pending_faceid" not in stored_item(stack, v)  # out of the index: never looked at again

    # bounded searches: the fault board counts the calls of each faulted session
    used = {f["order"]: f["used"] for f in stack.sandbox.faults() if f.get("order")}
    per_session = {name: used[sessions[name]["jh"]] for name in UNUSABLE}
    for name, n in per_session.items():
        assert n == 1, f"{name}: {n} searches for an unusable answer"
    leases = {name: search_count(stack, vid[name]) for name in names}
    assert all(n <= MAX_SEARCHES for n in leases.values()), leases
    rate_limited_calls = used[sessions["rate_limited"]["jh"]]
    assert leases["rate_limited"] == leases_by_callbacks  # the reconciler searched it no more
    assert delta.charged("faceid_search") == sum(
        searches_for(stack, sessions[n]["jh"]) for n in ("store_update", "store_get", "store_finish", "pass", "fail")
    ) + len(UNUSABLE)
    for name in ("store_update", "store_get", "pass", "fail"):
        assert searches_for(stack, sessions[name]["jh"]) == 1, name
    store_finish_searches = searches_for(stack, sessions["store_finish"]["jh"])
    assert 1 <= store_finish_searches <= MAX_SEARCHES

    # the outbox: the completed ones published exactly once; error and expired publish nothing
    completed = [vid[n] for n in ("store_update", "store_get", "store_finish", "pass", "fail")]
    published = events_for(stack, completed)
    assert {v: len(e) for v, e in published.items()} == dict.fromkeys(completed, 1)
    silent = no_events_for(stack, [vid[n] for n in (*UNUSABLE, "rate_limited", "unfinished")], settle=0.5)
    assert all(not e for e in silent.values()), silent

    figures.record(
        SUITE,
        poisoned_sessions=len(UNUSABLE) + 4,
        healthy_sessions=3,
        reconciler_runs=len(runs),
        unusable_searches_per_session=list(per_session.values()),
        rate_limited_leases=leases["rate_limited"],
        rate_limited_provider_calls=rate_limited_calls,
        rate_limited_clicks=8,
        storage_failed_per_run=[r["failed"] for r in runs],
        search_finish_outage_searches=store_finish_searches,
    )


# ------------------------------------------------------------------------------------------- the outbox


def test_putevents_outage_delivers_exactly_one_event(api, stack, people):
    """PutEvents fails 3 times for this record's event: the stream retries the record, the event
    arrives exactly once (one event_id). A compare that ends `error` publishes nothing.

    Old code (cd85138): the event was put inline after the write; a failed PutEvents was lost (and
    the write had already happened, so no retry could publish it)."""
    person = people.identity("match")
    marker = f"outbox-{uuid.uuid4().hex[:12]}"

    def ours(params: dict[str, Any]) -> bool:
        return any(marker in (e.get("Detail") or "") for e in params.get("Entries") or [])

    with aws_fault("events", "PutEvents", when=ours, times=3) as fault:
        answer = api.post("/v1/compare", body(person, people.selfie_jpeg(person), client_reference=marker))
        assert answer.status_code == 200, answer.text
        vid = answer.json()["verification_id"]
        published = events_for(stack, [vid], timeout=20)[vid]
    assert fault.fired == 3, fault
    assert len(published) == 1, published
    assert published[0]["detail"]["event_id"] == f"{vid}:completed"
    assert published[0]["detail"]["client_reference"] == marker

    stack.sandbox.set_fault("http_502", api="verifyface")
    failed = api.post("/v1/compare", body(person, people.selfie_jpeg(person), client_reference=marker + "-e"))
    assert failed.status_code == 503, failed.text
    failed_vid = failed.json()["verification_id"]
    assert api.get(f"/v1/verifications/{failed_vid}").json()["status"] == "error"
    assert no_events_for(stack, [failed_vid])[failed_vid] == []
    figures.record(SUITE, outbox_putevents_failures=fault.fired, outbox_events_delivered=len(published))
