"""Upload money path: deferrals, storage failure after the billed call, a crash after the call, KMS errors.

The stack's upload poller drives upload_worker from the queue (sandbox/stack/local.py, a failed
message is visible again after 1 s; five receives move it to UploadDLQ). Each test spies on the
worker's invocations (message ids, receive counts) and counts provider calls in the sandbox ledger.

Landed code before the money-path rewrite (cd85138): a record started with too little time left
raised `NotEnoughTime`, a batch item failure that burnt one of the message's five receives (four
deferrals and a fifth receive put a paid-for-nothing message in the DLQ); a storage failure after
the billed call kept the claim and raised, so the redelivery found the claim stale and ended the
record `check_interrupted` with `charged: null` although the provider had answered (and billed).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from idv import uploads
from tests.reliability import faults, figures
from tests.reliability.conftest import stored_item
from tests.reliability.faults import Crash, aws_fault
from tests.reliability.test_provider_faults import dlq_messages, object_removed
from tests.stack import body

pytestmark = pytest.mark.slow

SUITE = "upload_money"


def upload_worker(stack):
    return next(f for f in stack.functions.values() if f.code_dir.endswith("upload_worker"))


class Spy:
    """Wraps the stack's upload worker: records every delivery of this verification's messages; a
    `Crash` (the environment dying) becomes what the poller sees of a dead invocation (every message
    of the batch comes back after the retry visibility), instead of killing the poller thread."""

    def __init__(self, stack, monkeypatch, verification_id: str) -> None:
        self.worker = upload_worker(stack)
        self.verification_id = verification_id
        self.deliveries: list[dict[str, Any]] = []
        self.crashes = 0
        self._lock = threading.Lock()
        original = self.worker.invoke

        def invoke(event: dict[str, Any], timeout_seconds: float | None = None) -> Any:
            with self._lock:
                for record in event.get("Records", []):
                    if self.verification_id in record["body"]:
                        self.deliveries.append(
                            {
                                "message_id": record["messageId"],
                                "receives": int(record["attributes"].get("ApproximateReceiveCount", 0)),
                                "finish": uploads.FINISH_MESSAGE in record["body"],
                                "body": record["body"],
                                "timeout": timeout_seconds or self.worker.timeout_seconds,
                            }
                        )
            try:
                return original(event, timeout_seconds=timeout_seconds)
            except Crash as exc:
                with self._lock:
                    self.crashes += 1
                raise RuntimeError("the execution environment died") from exc

        monkeypatch.setattr(self.worker, "invoke", invoke)

    def count(self, **match: Any) -> int:
        with self._lock:
            return sum(1 for d in self.deliveries if all(d.get(k) == v for k, v in match.items()))

    def wait(self, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; deliveries: {self.summary()}")
            time.sleep(0.05)

    def summary(self) -> list[tuple[str, int, bool]]:
        with self._lock:
            return [(d["message_id"][:8], d["receives"], d["finish"]) for d in self.deliveries]


def ticket(api, people, check: str = "compare") -> tuple[dict[str, Any], Any]:
    person = people.identity("match")
    answer = api.post("/v1/uploads", body(person, check=check))
    assert answer.status_code == 201, answer.text
    return answer.json(), person


def post_object(people, person, data: dict[str, Any]) -> None:
    posted = requests.post(
        data["upload"]["url"],
        data=data["upload"]["fields"],
        files={"file": ("selfie.jpg", people.selfie_jpeg(person), "image/jpeg")},
        timeout=30,
    )
    assert posted.status_code < 300, posted.text


def _vid_of(params: dict[str, Any]) -> str | None:
    return (params.get("Key") or {}).get("verification_id", {}).get("S")


def assert_no_dlq(stack, verification_id: str) -> None:
    assert dlq_messages(stack, verification_id, timeout=0) == [], "a message reached UploadDLQ"


# ------------------------------------------------------------------------------------------- (a) deferral


DEFERRALS = 10


def test_deferral_does_not_burn_a_receive(api, stack, people, ledger, monkeypatch):
    """Every invocation has 5 s left (< MIN_REMAINING_MS): the record is put back as a NEW message,
    ten times in a row, each delivered with receive count 1, nothing called; then with time enough
    the check runs once. Old code: receive counts 1..5, then UploadDLQ, never checked."""
    data, person = ticket(api, people)
    vid = data["verification_id"]
    spy = Spy(stack, monkeypatch, vid)
    monkeypatch.setattr(spy.worker, "timeout_seconds", uploads.MIN_REMAINING_MS / 1000 / 4)
    delta = ledger()
    post_object(people, person, data)
    spy.wait(lambda: spy.count() >= DEFERRALS + 1)
    assert delta.calls() == 0  # nothing was attempted while deferred
    assert stored_item(stack, vid)["status"]["S"] == "pending"
    assert "claimed_until" not in stored_item(stack, vid)  # not even claimed
    monkeypatch.setattr(spy.worker, "timeout_seconds", 29.0)  # time enough now
    record = api.wait_for(vid)
    assert record["status"] == "completed" and record["decision"] == "pass", record
    deliveries = list(spy.deliveries)
    deferred = [d for d in deliveries if d["timeout"] < uploads.MIN_REMAINING_MS / 1000]
    assert len(deferred) >= DEFERRALS
    assert {d["receives"] for d in deliveries} == {1}, spy.summary()  # every deferral is a new message
    assert len({d["message_id"] for d in deliveries}) == len(deliveries)
    assert delta.calls() == 1 and delta.charged() == 1
    assert object_removed(stack, vid)
    assert_no_dlq(stack, vid)
    figures.record(
        SUITE,
        deferrals=len(deferred),
        deferral_receive_counts=sorted({d["receives"] for d in deliveries}),
        deferral_provider_calls=delta.calls(),
        deferral_charges=delta.charged(),
    )


# --------------------------------------------------------------- (b) storage failure after the billed call


OUTAGE_SECONDS = 3.0


def test_storage_outage_after_the_call_is_stored_later_not_interrupted(api, stack, people, ledger, monkeypatch):
    """The finish write fails (every attempt) for a while after the billed call: the worker hands the
    computed record to the queue; the hand-off message fails while storage is out (redelivered),
    then stores the real result: `completed`, the decision, `charged: true`; one provider call; the
    object deleted. Old code: the claim was kept and the redelivery ended `check_interrupted`,
    `charged: null` — a paid answer thrown away."""
    data, person = ticket(api, people)
    vid = data["verification_id"]
    spy = Spy(stack, monkeypatch, vid)
    delta = ledger()
    with aws_fault("dynamodb", "UpdateItem", when=lambda p: faults.finishing(p) and _vid_of(p) == vid) as fault:
        post_object(people, person, data)
        spy.wait(lambda: spy.count(finish=True) >= 1)
        assert delta.calls() == 1  # the billed call happened, its write failed
        time.sleep(OUTAGE_SECONDS)  # the outage goes on: the hand-off is redelivered meanwhile
        failed_finishes = spy.count(finish=True)
    record = api.wait_for(vid)
    assert record["status"] == "completed" and record["decision"] == "pass", record
    assert record["charged"] is True and record["error"] is None, record
    assert delta.calls() == 1 and delta.charged() == 1
    assert object_removed(stack, vid)
    item = stored_item(stack, vid)
    assert "pending_data" not in item and "claim_token" not in item and "claimed_until" not in item, item
    hand_offs = [d for d in spy.deliveries if d["finish"]]
    assert max(d["receives"] for d in hand_offs) < 5  # never near the DLQ
    assert len({d["message_id"] for d in hand_offs}) == 1  # one hand-off message, redelivered
    for text in (person.name, person.id_number):  # the hand-off message carries no personal data
        assert text not in hand_offs[0]["body"]
    assert_no_dlq(stack, vid)
    time.sleep(1.5)
    assert delta.calls() == 1  # and nothing ran it again
    figures.record(
        SUITE,
        outage_finish_writes_failed=fault.fired,
        outage_hand_off_receives=len(hand_offs),
        outage_hand_off_receives_during_outage=failed_finishes,
        outage_provider_calls=delta.calls(),
    )


# ------------------------------------------------------------------------------- (c) crash after the call


def test_crash_after_the_call_ends_interrupted_never_called_again(api, stack, people, ledger, monkeypatch):
    """The environment dies at the finish write right after the call: the message comes back after
    the claim's lease (as in AWS: visibility 360 s > lease 120 s; here the lease is made to have run
    out already), the record ends `check_interrupted`, `charged: null`; no second provider call."""
    monkeypatch.setattr(uploads, "CLAIM_SECONDS", -5)  # the lease has run out when the message is back
    data, person = ticket(api, people)
    vid = data["verification_id"]
    spy = Spy(stack, monkeypatch, vid)
    delta = ledger()
    with aws_fault(
        "dynamodb", "UpdateItem", "crash", when=lambda p: faults.finishing(p) and _vid_of(p) == vid, times=1
    ) as fault:
        post_object(people, person, data)
        record = api.wait_for(vid)
    assert fault.fired == 1 and spy.crashes == 1
    assert record["status"] == "error" and record["error"]["code"] == "check_interrupted", record
    assert record["charged"] is None, record
    assert object_removed(stack, vid)
    time.sleep(2.0)  # longer than the redelivery delay
    assert delta.calls() == 1, f"{delta.calls()} provider calls"
    assert "pending_data" not in stored_item(stack, vid)
    assert_no_dlq(stack, vid)
    figures.record(SUITE, crash_provider_calls=delta.calls(), crash_receives=spy.count())


# ------------------------------------------------------------------------------------------- (d) KMS error


def test_kms_decrypt_error_calls_nothing_and_is_redelivered(api, stack, people, ledger, monkeypatch):
    """KMS Decrypt fails twice: nothing is sent to the provider, the claim is released, the message is
    redelivered; the third receive completes the check once."""
    data, person = ticket(api, people)
    vid = data["verification_id"]
    spy = Spy(stack, monkeypatch, vid)
    delta = ledger()

    def ours(params: dict[str, Any]) -> bool:
        return (params.get("EncryptionContext") or {}).get("verification_id") == vid

    with aws_fault("kms", "Decrypt", when=ours, times=2) as fault:
        post_object(people, person, data)
        spy.wait(lambda: fault.fired >= 2)
        assert delta.calls() == 0
        record = api.wait_for(vid)
    assert record["status"] == "completed" and record["decision"] == "pass", record
    assert delta.calls() == 1 and delta.charged() == 1
    assert [d["receives"] for d in spy.deliveries] == [1, 2, 3], spy.summary()
    assert object_removed(stack, vid)
    assert_no_dlq(stack, vid)
    figures.record(SUITE, kms_failures=fault.fired, kms_receives=spy.count(), kms_provider_calls=delta.calls())
