"""Adversarial review of the money path, the outbox and erasure (issue review, not a product suite).

Each test is one attack on the gateway. An attack that works today is marked
`xfail(strict=True, reason=<the finding>)`: the suite stays green, and the fix that closes it turns the
xfail into an XPASS (strict: a failure of the suite), so whoever fixes it removes the mark. An attack
the gateway already defends is a plain test: it is the proof that it holds.

Findings (ranked by money impact; reproduction and suggested fix in each test's docstring):
1. a billed Juhe answer (`error_code` 0) whose JSON is cut short is taken as "not charged": the
   Idempotency-Key is freed and the retry with the same key pays the provider again;
2. the FaceID search lease (15 s) is shorter than a search may take (PROVIDER_READ_TIMEOUT_SECONDS goes
   up to 60 s): a second callback takes the lease while the first search is still running, and one
   session pays two faceid/search calls at once;
3. a stale stream record (a retried or late delivery) of a record erased meanwhile still publishes its
   `Verification Completed` event: the erased record reaches the bus after the erasure answered;
4. a TransactionConflict on the reservation (the day's spend item is touched by every request with a
   cap: real DynamoDB cancels concurrent transactions on it) answers 503 instead of trying again
   (fixed: `controls.Counters.run` raises `Retry`, `claims.begin` reserves again after a backoff).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import pytest

from tests.reliability.conftest import client, stored_item
from tests.reliability.test_callback_forgery import callback, start, submit
from tests.reliability.test_faceid_money import searches_for, silence_notify
from tests.reliability.test_money_controls import controls, payload  # noqa: F401 (the fixture)
from tests.stack import body

pytestmark = pytest.mark.slow


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def compare_body(people, marker: str | None = None) -> dict[str, Any]:
    person = people.identity("match")
    return body(person, people.selfie_jpeg(person), client_reference=marker or f"adv-{uuid.uuid4().hex[:12]}")


# ------------------------------------------------------------------------------------- findings


# finding 1 (fixed: http._parse calls JSON cut short an unknown charge, never free)
def test_a_billed_answer_cut_short_is_not_paid_again_with_the_same_key(stack, api, people, ledger):
    """Repro: the provider bills and answers HTTP 200 `{"error_code":0,"reason":"成功","result":{"res":1,...`
    (cut short by a proxy, a full disk, a dying connection that still closed cleanly). `http._parse`
    maps "a body that is not JSON" to ProviderUnavailable(charged=False), so `failed_finish` frees the
    key (`keep_key=False`), the spend reservation is released, and the client's retry with the same key
    runs the check again: 2 provider calls for one logical request. DESIGN §5: retries only where
    nothing was charged (never connected, explicit rate-limit/maintenance codes); an unknown charge
    counts as charged (§8).

    Fix: in `http._parse`, a 2xx body that is not JSON (or not an object) is `charged=None` (unknown),
    as `juhe._error_code` already says for a body without an error_code; only 5xx/refusals stay free.
    """
    payload_ = compare_body(people)
    key = f"adv-cut-{uuid.uuid4()}"
    stack.sandbox.set_fault(
        "answer", "verifyface", 1, body='{"error_code":0,"reason":"成功","result":{"res":1,"orderid":"JH'
    )
    delta = ledger()
    first = api.post("/v1/compare", payload_, headers=keyed(key))
    assert first.status_code == 503, first.text
    assert first.json()["code"] == "provider_unavailable"
    again = api.post("/v1/compare", payload_, headers=keyed(key))
    assert again.status_code != 500, again.text
    record = api.get(f"/v1/verifications/{first.json()['verification_id']}").json()
    assert delta.calls("verifyface") == 1, "one logical request, two provider calls"
    assert record["charged"] is None  # the charge of a cut-short 200 is unknown, not "free"
    assert again.json() == first.json()  # the stored answer is replayed


# finding 2 (fixed: faceid.search_lease_seconds is the search's whole bound: attempts × timeouts + backoff)
def test_one_session_never_has_two_searches_in_flight_with_a_long_read_timeout(stack, api, people):
    """Repro: PROVIDER_READ_TIMEOUT_SECONDS=20 (allowed: 0.1–60). The browser return takes the session's
    search lease (`search_until` = now + 15) and faceid/search answers after 16.5 s (slow but within the
    read timeout). At 16.3 s the provider's notify arrives: `search_until < now`, so it takes the lease
    and searches too. Two billed faceid/search calls for one session at the same time; the first
    holder's finish then fails on the token (its paid answer is thrown away). The reconciler
    (Timeout 120 s) can hold a search just as long.

    Fix: derive the lease from the search's real bound: `SEARCH_LEASE_SECONDS = max(15, read timeout of
    faceid_search × retry attempts + backoff + connect timeout + margin)` (or the invocation's remaining
    time + 1 s, as `claims.lease_seconds` does for the claim), never a constant below the read timeout.
    """
    from sandbox.stack.local import reset_layer_caches

    os.environ["PROVIDER_READ_TIMEOUT_SECONDS"] = "20"
    reset_layer_caches()
    try:
        session = start(api, people)
        vid = session["verification_id"]
        jh = stored_item(stack, vid)["jh_order_id"]["S"]
        silence_notify(stack, jh)
        _url, signed = submit(session["verify_url"], "pass")
        stack.sandbox.set_fault("latency", "faceid_search", 1, ms=16_500, order=jh)
        answers: dict[str, Any] = {}
        browser = threading.Thread(target=lambda: answers.update(ret=callback(stack, vid, signed, "GET")))
        browser.start()
        time.sleep(16.3)
        answers["notify"] = callback(stack, vid, signed, "POST")
        browser.join(60)
        assert answers["ret"].status_code in (200, 302) and answers["notify"].status_code == 200
        assert searches_for(stack, jh) == 1, "two faceid/search calls for one session at the same time"
    finally:
        os.environ.pop("PROVIDER_READ_TIMEOUT_SECONDS", None)
        reset_layer_caches()


# finding 3 (fixed: the outbox's reader reads the record before publishing and skips an erased one)
def test_an_erased_record_is_not_published_by_a_late_stream_delivery(stack, api, people):
    """Repro: a compare completes; its stream record is delivered late (EventBridge failing: the event
    source mapping retries it for up to 24 h; or simply the stream's lag). Meanwhile the person is
    erased (`DELETE /v1/verifications/{id}` or `POST /v1/subjects/erase`, answered 204/200). The late
    delivery then runs `event_publisher.handle_record` on the NewImage: it publishes the erased record
    (masked subject, decision, client_reference) and re-writes its dedupe item and usage row. DESIGN §9:
    "After an erasure nothing replays the erased data".

    Fix: in `event_publisher.handle_record`, read the record (ConsistentRead GetItem) before
    `remember_completed` / `publish_completed` and skip both when it is gone (the usage row may stay:
    it holds no personal data). One read per completed record.
    """
    answer = api.post("/v1/compare", compare_body(people))
    assert answer.status_code == 200, answer.text
    vid = answer.json()["verification_id"]
    image = stored_item(stack, vid)
    time.sleep(2.0)  # let the live stream deliver the completion first (what follows is the retry)
    assert api.delete(f"/v1/verifications/{vid}").status_code == 204
    published: list[str] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        published.extend(e["Detail"] for e in params.get("Entries", []) if vid in e.get("Detail", ""))

    from idv import aws

    events = aws.client("events").meta.events
    events.register("before-parameter-build.events.PutEvents", hook)
    old = {**image, "status": {"S": "pending"}}
    stale = {
        "Records": [
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "eventVersion": "1.1",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {"verification_id": {"S": vid}},
                    "NewImage": image,
                    "OldImage": old,
                    "SequenceNumber": "1",
                    "SizeBytes": 1,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
            }
        ]
    }
    try:
        result = stack.functions["EventPublisherFunction"].invoke(stale)
    finally:
        events.unregister("before-parameter-build.events.PutEvents", hook)
    assert not (result or {}).get("batchItemFailures")
    assert published == [], "the erased record was published after its erasure"


def _conflict_once() -> Any:
    """A TransactWriteItems cancelled by a concurrent write (what real DynamoDB answers under contention)."""
    from botocore.exceptions import ClientError

    fired = {"n": 0}

    def hook(**_: Any) -> None:
        if fired["n"] == 0:
            fired["n"] += 1
            raise ClientError(
                {
                    "Error": {
                        "Code": "TransactionCanceledException",
                        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons"
                        " [None, TransactionConflict]",
                    },
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )

    return hook, fired


def test_a_transaction_conflict_on_the_reservation_is_retried(stack, api, people, ledger, controls):  # noqa: F811
    """Repro: controls on with a spend cap: every request's reservation is a TransactWriteItems touching
    the one `spend/<day>` item. Real DynamoDB cancels concurrent transactions on one item with
    `TransactionCanceledException` whose reasons are `TransactionConflict` (botocore does not retry it).
    `controls.Counters.run` re-raises it (no reason is ConditionalCheckFailed), `_reserve` maps it to
    503 `storage_unavailable`: under load, requests are refused although nothing is wrong. (No money is
    lost: the client retries; moto never conflicts, so the 50-process tests cannot see it.)

    Fix: in `Counters.run`, a cancellation whose reasons hold `TransactionConflict` (and no
    ConditionalCheckFailed) raises `controls.Retry`, which `claims.begin` already loops on (bounded by
    FINISH_ATTEMPTS; add `backoff(attempt)` there).
    """
    controls(limit=5, cap="100.00")
    from idv import aws

    hook, fired = _conflict_once()
    events = aws.client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", hook)
    delta = ledger()
    try:
        answer = api.post("/v1/compare", payload(people, "compare"))
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", hook)
    assert fired["n"] == 1
    assert answer.status_code == 200, answer.text
    assert delta.calls("verifyface") == 1


# ------------------------------------------------------------------------------ defended attacks


def test_the_same_body_in_another_key_order_is_a_replay_not_a_second_call(stack, api, people, ledger):
    """Fingerprint: the canonical JSON (sorted keys) — a retry that serialises the body differently is a
    replay (same verification, one provider call), not a 409 and not a second check."""
    payload_ = compare_body(people)
    key = f"adv-order-{uuid.uuid4()}"
    delta = ledger()
    first = api.post("/v1/compare", payload_, headers=keyed(key))
    assert first.status_code == 200, first.text
    reordered = json.dumps(dict(reversed(list(payload_.items()))), ensure_ascii=True, indent=1)
    again = api.session.post(
        stack.api_url + "/v1/compare",
        data=reordered.encode(),
        headers={"content-type": "Application/JSON; charset=UTF-8", **keyed(key)},
        timeout=60,
    )
    assert again.status_code == 200, again.text
    assert again.json()["verification_id"] == first.json()["verification_id"]
    assert delta.calls("verifyface") == 1


def test_a_key_with_a_different_body_is_refused_without_a_call(stack, api, people, ledger):
    """Same key, one field changed (client_reference): 409, nothing called, nothing stored."""
    payload_ = compare_body(people)
    key = f"adv-reuse-{uuid.uuid4()}"
    delta = ledger()
    assert api.post("/v1/compare", payload_, headers=keyed(key)).status_code == 200
    other = api.post("/v1/compare", {**payload_, "client_reference": "adv-other"}, headers=keyed(key))
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert delta.calls("verifyface") == 1


def test_a_replay_after_erasure_pays_nothing_and_returns_nothing(stack, api, people, ledger):
    """DELETE, then the same key and body: 410 `verification_erased`, no provider call, no record back."""
    payload_ = compare_body(people)
    key = f"adv-erase-{uuid.uuid4()}"
    first = api.post("/v1/compare", payload_, headers=keyed(key))
    vid = first.json()["verification_id"]
    assert api.delete(f"/v1/verifications/{vid}").status_code == 204
    delta = ledger()
    for _ in range(2):
        again = api.post("/v1/compare", payload_, headers=keyed(key))
        assert again.status_code == 410 and again.json()["code"] == "verification_erased", again.text
        assert vid not in again.text
    assert delta.calls() == 0
    assert stored_item(stack, vid) is None


def test_a_signed_faceid_callback_after_erasure_neither_searches_nor_resurrects(stack, api, people, ledger):
    """The person passed liveness, then the session is erased before any callback: the browser return and
    the notify (validly signed) find no record: 404, no faceid/search, nothing written back."""
    session = start(api, people)
    vid = session["verification_id"]
    jh = stored_item(stack, vid)["jh_order_id"]["S"]
    silence_notify(stack, jh)
    _url, signed = submit(session["verify_url"], "pass")
    assert api.delete(f"/v1/verifications/{vid}").status_code == 204
    delta = ledger()
    assert callback(stack, vid, signed, "GET").status_code == 404
    assert callback(stack, vid, signed, "POST").status_code == 404
    assert delta.calls("faceid_search") == 0
    assert stored_item(stack, vid) is None


def test_an_erasure_while_the_check_runs_does_not_resurrect_the_record(stack, api, people, ledger):
    """The record is erased while the provider call is in flight: the finish (conditional on the record
    and its lease) writes nothing back, the client gets 410, the record stays gone."""
    payload_ = compare_body(people)
    key = f"adv-midflight-{uuid.uuid4()}"
    stack.sandbox.set_fault("latency", "verifyface", 1, ms=2500)
    answers: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: answers.update(a=api.post("/v1/compare", payload_, headers=keyed(key))))
    worker.start()
    ddb = client(stack, "dynamodb")
    table = stack.resource_name("VerificationsTable")
    deadline = time.monotonic() + 10
    vid = None
    while vid is None and time.monotonic() < deadline:
        items = ddb.scan(
            TableName=table,
            FilterExpression="client_reference = :r",
            ExpressionAttributeValues={":r": {"S": payload_["client_reference"]}},
        )["Items"]
        vid = items[0]["verification_id"]["S"] if items else None
        time.sleep(0.05)
    assert vid is not None
    assert api.delete(f"/v1/verifications/{vid}").status_code == 204
    worker.join(30)
    answer = answers["a"]
    assert answer.status_code == 410 and answer.json()["code"] == "verification_erased", answer.text
    assert stored_item(stack, vid) is None
    again = api.post("/v1/compare", payload_, headers=keyed(key))
    assert again.status_code == 410


def test_the_same_key_on_another_route_is_another_request(stack, api, people, ledger):
    """Keys are scoped per route (HMAC of route + key): reusing one on /v1/portrait does not replay the
    compare's answer (another check, another provider), and the compare's replay still holds."""
    payload_ = compare_body(people)
    key = f"adv-routes-{uuid.uuid4()}"
    delta = ledger()
    compare = api.post("/v1/compare", payload_, headers=keyed(key))
    portrait = api.post("/v1/portrait", payload_, headers=keyed(key))
    assert compare.status_code == 200 and portrait.status_code == 200, portrait.text
    assert compare.json()["verification_id"] != portrait.json()["verification_id"]
    assert portrait.json()["check"] == "portrait"
    replay = api.post("/v1/compare", payload_, headers=keyed(key))
    assert replay.json()["verification_id"] == compare.json()["verification_id"]
    assert delta.calls("verifyface") == 1 and delta.calls("apetime") == 1


def test_a_billed_but_unusable_answer_keeps_the_key_and_leaks_nothing(stack, api, people, ledger):
    """An answer no parser can use that echoes the person's data back (`error_code` 0, a `res` made of the
    name and ID number): the record is `error`, charged unknown or true, the key is kept (the replay
    does not call again), and neither the answer, the record nor the replay carries the raw data."""
    person = people.identity("match")
    payload_ = compare_body(people)
    key = f"adv-echo-{uuid.uuid4()}"
    echo = {"error_code": 0, "reason": "成功", "result": {"res": f"{person.name}{person.id_number}", "orderid": 7}}
    stack.sandbox.set_fault("answer", "verifyface", 1, body=echo)
    delta = ledger()
    first = api.post("/v1/compare", payload_, headers=keyed(key))
    assert first.status_code >= 500 and first.status_code != 500, first.text
    again = api.post("/v1/compare", payload_, headers=keyed(key))
    assert again.json() == first.json()
    assert delta.calls("verifyface") == 1
    vid = first.json()["verification_id"]
    item = json.dumps(stored_item(stack, vid), ensure_ascii=False)
    for text in (first.text, item, json.dumps(first.json(), ensure_ascii=False)):
        assert person.id_number not in text and person.name not in text
    assert api.get(f"/v1/verifications/{vid}").json()["charged"] in (None, True)


def test_the_event_id_is_the_same_on_every_delivery():
    """Consumers de-duplicate on `event_id`: it depends on the record only (verification id + status)."""
    from idv import events

    item = {"verification_id": "v01TESTEVENTID0000000000000", "status": "completed", "decision": "pass"}
    assert events.detail(item)["event_id"] == events.detail(dict(item))["event_id"]
    assert events.detail(item)["event_id"] == "v01TESTEVENTID0000000000000:completed"
