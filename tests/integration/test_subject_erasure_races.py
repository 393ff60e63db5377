"""Erasure by person racing the money path, and pending data that outlives its purpose (DESIGN §9).

- A check still running when its person is erased (between its claim and its finish), an upload whose
  check the worker is running, and a result handed off to the upload queue after a storage failure:
  once both sides end, nothing of the person survives (every table, the bucket, the queues), the late
  write does not resurrect the record, and replays answer 410 without a provider call.
- An upload ticket nobody uploaded to loses its sealed data within the hour: the sweep (reconciler,
  every 5 minutes) expires it once its URL has been expired for `ABANDONED_GRACE_SECONDS`, never
  earlier, never a ticket the worker holds; the clock is moved in the test.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from tests.integration.test_subject_rights import id_hash, masked_forms, subject_erased_events, traces, upload_selfie
from tests.reliability import figures
from tests.reliability.conftest import stored_item
from tests.reliability.faults import aws_fault, finishing
from tests.stack import body

RACER = "four_factor_106"
ABANDONER = "four_factor_110"


@pytest.fixture(scope="module")
def people():
    from sandbox.providers import identities

    return identities


def erase(stack: Any, person: Any) -> dict[str, Any]:
    """POST /v1/subjects/erase on its own connection (it may run while another request is in flight)."""
    answer = requests.post(
        f"{stack.api_url}/v1/subjects/erase",
        json={"id_number": person.id_number},
        headers={"x-api-key": stack.api_key},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def finish_of(verification_id: str):
    def match(params: dict[str, Any]) -> bool:
        return finishing(params) and params["Key"]["verification_id"]["S"] == verification_id

    return match


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def object_exists(stack: Any, verification_id: str) -> bool:
    listed = stack.client("s3").list_objects_v2(
        Bucket=stack.resource_name("UploadBucket"), Prefix=f"uploads/{verification_id}"
    )
    return bool(listed.get("Contents"))


def queue_holds(stack: Any, verification_id: str) -> bool:
    sqs = stack.client("sqs")
    for queue in ("UploadQueue", "UploadDLQ"):
        answer = sqs.receive_message(QueueUrl=stack.resource_name(queue), MaxNumberOfMessages=10, VisibilityTimeout=0)
        if any(verification_id in m["Body"] for m in answer.get("Messages", [])):
            return True
    return False


def no_trace_of(stack: Any, person: Any, ids: list[str]) -> dict[str, Any]:
    left = traces(stack, [id_hash(person), *masked_forms(person), *ids], [])
    assert left["found"] == {}, left["found"]
    return left


def test_erasure_while_a_check_runs_leaves_nothing_and_the_late_finish_changes_nothing(api, stack, people):
    person = people.identity(RACER)
    erase(stack, person)
    headers = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    payload = body(person, people.selfie_jpeg(person))
    seen: list[str] = []

    def erase_during_the_call(params: dict[str, Any]) -> bool:
        if finishing(params) and not seen:  # the provider has answered; the finish write is next
            seen.append(params["Key"]["verification_id"]["S"])
            assert erase(stack, person) == {"erased": 1}
        return False

    calls = stack.sandbox.calls()
    with aws_fault("dynamodb", "UpdateItem", when=erase_during_the_call):
        answer = api.post("/v1/compare", payload, headers=headers)
    assert seen, "the finish write was not seen"
    assert answer.status_code == 410 and answer.json()["code"] == "verification_erased", answer.text
    assert stack.sandbox.calls() == calls + 1  # the one call that was already running
    assert stored_item(stack, seen[0]) is None
    replay = api.post("/v1/compare", payload, headers=headers)
    assert replay.status_code == 410, replay.text
    assert stack.sandbox.calls() == calls + 1  # nothing paid again
    assert api.post("/v1/subjects/search", {"id_number": person.id_number}).json()["items"] == []
    no_trace_of(stack, person, seen)
    figures.add("subject_rights_races", "check_in_flight")


def test_erasure_while_the_worker_runs_an_upload_leaves_nothing(api, stack, people):
    person = people.identity(RACER)
    erase(stack, person)
    headers = {"Idempotency-Key": f"race-upload-{uuid.uuid4()}"}
    ticket = api.post("/v1/uploads", body(person, check="compare"), headers=headers)
    assert ticket.status_code == 201, ticket.text
    verification_id = ticket.json()["verification_id"]
    erased: list[dict[str, Any]] = []

    def erase_during_the_check(params: dict[str, Any]) -> bool:
        if finish_of(verification_id)(params) and not erased:
            erased.append(erase(stack, person))
        return False

    with aws_fault("dynamodb", "UpdateItem", when=erase_during_the_check):
        upload_selfie(ticket.json(), people.selfie_jpeg(person))
        assert wait_until(lambda: bool(erased)), "the worker's finish write was not seen"
        assert wait_until(lambda: not object_exists(stack, verification_id)), "the uploaded selfie was left behind"
    assert erased == [{"erased": 1}]
    assert wait_until(lambda: not queue_holds(stack, verification_id))
    time.sleep(0.5)  # the worker's last step (deleting the object) has run; nothing comes back
    assert stored_item(stack, verification_id) is None
    replay = api.post("/v1/uploads", body(person, check="compare"), headers=headers)
    assert replay.status_code == 410, replay.text
    no_trace_of(stack, person, [verification_id])
    figures.add("subject_rights_races", "upload_in_flight")


def test_a_result_handed_off_before_the_erasure_is_not_stored_after_it(api, stack, people):
    """The worker's finish failed (storage) and it handed the computed record to the queue; the person is
    erased before the finish message runs: `uploads.finish_handed_off` writes nothing (its finish is
    conditional on the record), directly and through the worker."""
    from idv import claims, records, uploads

    person = people.identity(RACER)
    erase(stack, person)
    ids = []
    for route in ("direct", "queue"):
        ticket = api.post("/v1/uploads", body(person, check="compare"))
        assert ticket.status_code == 201, ticket.text
        verification_id = ticket.json()["verification_id"]
        ids.append(verification_id)
        item = claims.repository().get(verification_id)
        claim = claims.take(item, lease=uploads.CLAIM_SECONDS)
        assert claim is not None
        done = {**item, "status": "completed", "decision": "pass", "charged": True, "completed_at": item["created_at"]}
        message = {"claim_token": claim.token, "record": records.public_view(done)}
        assert erase(stack, person) == {"erased": 1}
        if route == "direct":
            assert uploads.finish_handed_off(message) == "already_finished"
        else:
            uploads.hand_off(claim, done)
            assert wait_until(lambda vid=verification_id: not queue_holds(stack, vid))
            time.sleep(0.5)
        assert stored_item(stack, verification_id) is None, route
    no_trace_of(stack, person, ids)
    subject_erased_events(stack)  # keep the capture queue to Verification Completed for the session's scan
    figures.add("subject_rights_races", "handed_off", 2)


# ---------------------------------------------------------------- abandoned upload tickets


def ticket_for(api: Any, stack: Any, person: Any) -> tuple[str, float, dict[str, Any]]:
    answer = api.post("/v1/uploads", body(person, check="compare"), headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 201, answer.text
    verification_id = answer.json()["verification_id"]
    item = stored_item(stack, verification_id)
    assert "pending_data" in item and item["pending_upload"] == {"S": "1"}
    issued = float(item["upload_expires_at"]["N"]) - 15 * 60
    return verification_id, issued, answer.json()


def test_an_abandoned_ticket_loses_its_sealed_data_within_the_hour(api, stack, people):
    from idv import uploads

    person = people.identity(ABANDONER)
    worst = uploads.UPLOAD_URL_SECONDS + uploads.ABANDONED_GRACE_SECONDS + 5 * 60  # + one schedule period
    assert worst < 3600
    verification_id, issued, ticket = ticket_for(api, stack, person)

    # The URL has expired, but an upload made in its last second may still be on its way: kept.
    uploads.expire_abandoned(now=issued + uploads.UPLOAD_URL_SECONDS + 60)
    uploads.expire_abandoned(now=issued + uploads.UPLOAD_URL_SECONDS + uploads.ABANDONED_GRACE_SECONDS - 60)
    assert "pending_data" in stored_item(stack, verification_id)

    stats = uploads.expire_abandoned(now=issued + uploads.UPLOAD_URL_SECONDS + uploads.ABANDONED_GRACE_SECONDS + 1)
    assert stats["expired"] >= 1 and stats["failed"] == 0
    item = stored_item(stack, verification_id)
    assert item["status"] == {"S": "expired"}
    assert not {"pending_data", "pending_upload", "upload_expires_at"} & set(item)
    record = api.get(f"/v1/verifications/{verification_id}").json()
    assert record["error"]["code"] == "upload_expired" and record["charged"] is False and record["decision"] is None
    uploads.expire_abandoned(now=issued + 2 * 3600)  # out of the index: a later run does not touch it
    assert stored_item(stack, verification_id) == item

    # A selfie arriving after all that (S3 refuses an expired POST policy; the emulator does not) finds no
    # pending check: the worker removes it and nothing is paid.
    calls = stack.sandbox.calls()
    upload_selfie(ticket, people.selfie_jpeg(person))
    assert wait_until(lambda: not object_exists(stack, verification_id)), "the late selfie was left behind"
    assert stored_item(stack, verification_id) == item
    assert stack.sandbox.calls() == calls
    figures.record(
        "abandoned_uploads",
        sealed_data_gone_after_minutes=(uploads.UPLOAD_URL_SECONDS + uploads.ABANDONED_GRACE_SECONDS) // 60,
        worst_case_minutes=worst // 60,
    )


def test_the_sweep_leaves_tickets_the_worker_holds_and_settles_stale_claims(api, stack, people):
    from idv import claims, uploads

    person = people.identity(ABANDONER)
    held, issued, _ = ticket_for(api, stack, person)
    stale, _, _ = ticket_for(api, stack, person)
    late = issued + uploads.UPLOAD_URL_SECONDS + uploads.ABANDONED_GRACE_SECONDS + 120
    running = claims.take(claims.repository().get(held), lease=late - time.time() + 3600)  # a worker still runs it
    assert running is not None
    assert claims.take(claims.repository().get(stale), lease=uploads.CLAIM_SECONDS) is not None  # its worker died

    stats = uploads.expire_abandoned(now=late)
    assert stats["busy"] >= 1 and stats["interrupted"] >= 1
    assert "pending_data" in stored_item(stack, held)  # the worker's to finish
    interrupted = stored_item(stack, stale)
    assert interrupted["status"] == {"S": "error"} and "pending_data" not in interrupted
    assert api.get(f"/v1/verifications/{stale}").json()["error"]["code"] == "check_interrupted"
    claims.repository().release(held, running.token)
    uploads.expire_abandoned(now=late)
    assert stored_item(stack, held)["status"] == {"S": "expired"}


def test_the_reconciler_runs_the_sweep(api, stack, people):
    person = people.identity(ABANDONER)
    verification_id, _, _ = ticket_for(api, stack, person)
    stack.client("dynamodb").update_item(
        TableName=stack.resource_name("VerificationsTable"),
        Key={"verification_id": {"S": verification_id}},
        UpdateExpression="SET upload_expires_at = :t",
        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 31 * 60)}},
    )
    stats = stack.run_reconciler()
    assert stats["abandoned_uploads"]["expired"] >= 1, stats
    assert "seen" in stats  # the FaceID run's figures are still there
    item = stored_item(stack, verification_id)
    assert item["status"] == {"S": "expired"} and "pending_data" not in item
