"""Erasure leaves no servable copy: after `DELETE /v1/verifications/{id}`, replaying the original request
with its Idempotency-Key answers `410 verification_erased` without the data and without a provider
call (before: 200 with the erased record, for 24 h). A check still running when its record is erased
cannot bring the record back."""

from __future__ import annotations

import uuid

import pytest

from tests.reliability.conftest import client, stored_item
from tests.stack import body


@pytest.mark.parametrize("route", ["/v1/compare", "/v1/faceid/sessions", "/v1/uploads"])
def test_replay_after_erasure_returns_nothing_and_pays_nothing(api, stack, route):
    from sandbox.providers import identities

    person = identities.identity("match")
    image = identities.scenario_selfie_jpeg(person) if route == "/v1/compare" else None
    payload = body(person, image)
    key = {"Idempotency-Key": f"erase-{uuid.uuid4()}"}
    first = api.post(route, payload, headers=key)
    assert first.status_code in (200, 201), first.text
    verification_id = first.json()["verification_id"]
    assert api.post(route, payload, headers=key).json() == first.json()  # a replay before the erasure

    assert api.delete(f"/v1/verifications/{verification_id}").status_code == 204
    calls = stack.sandbox.calls()
    replay = api.post(route, payload, headers=key)
    assert replay.status_code == 410, replay.text
    problem = replay.json()
    assert problem["code"] == "verification_erased"
    assert person.name[0] not in replay.text and verification_id not in replay.text
    assert stack.sandbox.calls() == calls  # nothing paid again
    assert api.get(f"/v1/verifications/{verification_id}").status_code == 404
    # the key's item is a tombstone: no fingerprint, no record id, no answer
    items = client(stack, "dynamodb").scan(TableName=stack.resource_name("IdempotencyTable"))["Items"]
    assert not any(i.get("verification_id", {}).get("S") == verification_id for i in items)


def test_a_late_finish_does_not_resurrect_an_erased_record(api, stack):
    """The record is erased while its check runs (between the claim and the finish): the finish's
    conditional write fails, the record stays gone, and no event is published for it."""
    from idv import records
    from sandbox.providers import identities
    from tests.reliability.faults import aws_fault, finishing

    person = identities.identity("match")
    erased: list[str] = []

    def erase_first(params):
        if finishing(params) and not erased:
            verification_id = params["Key"]["verification_id"]["S"]
            erased.append(verification_id)
            client(stack, "dynamodb").delete_item(
                TableName=stack.resource_name("VerificationsTable"), Key=records.record_key(verification_id)
            )
        return False  # never fails the write itself

    with aws_fault("dynamodb", "UpdateItem", when=erase_first):
        answer = api.post("/v1/compare", body(person, identities.scenario_selfie_jpeg(person)))
    assert erased, "the finish write was not seen"
    assert answer.status_code == 410 and answer.json()["code"] == "verification_erased", answer.text
    assert stored_item(stack, erased[0]) is None
