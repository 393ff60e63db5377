"""Money path under failure: faults injected at the AWS boundary after the claim, for every synchronous
billable flow (a check and a FaceID start, each with and without an Idempotency-Key).

Steps × kinds (tests/reliability/faults.py): the claim write (DynamoDB error), the call sent (the
provider resets the connection after reading the request, and the error record's write fails), the
answer read (the Lambda dies — crash — or times out at the write that would store it), the record
write (DynamoDB errors, transient and persistent). The answer write is the same conditional write as
the record (idv.claims), so it fails with it.

For each case: provider calls per logical request (1 wherever a claim exists, 0 when the claim
itself failed), answers that are 500 (0), records lost (0: every record ends terminal), replays that
disagree (0: every replay with the key returns one and the same stored answer, and none calls the
provider). Landed code before this suite: a storage failure after a billed call answered 500, then
409 for ~26 s, then ran the check again — 2 charges, 2 records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.stack import template as tpl
from sandbox.stack.local_api import build_event
from tests.reliability import faults, figures
from tests.reliability.conftest import SANDBOX_API, stored_item
from tests.reliability.faults import Crash, aws_fault
from tests.stack import body

pytestmark = pytest.mark.slow

FLOWS = {  # flow: (check, route, function, with key)
    "compare+key": ("compare", "/v1/compare", "CompareFunction", True),
    "compare": ("compare", "/v1/compare", "CompareFunction", False),
    "faceid+key": ("faceid", "/v1/faceid/sessions", "FaceIdInitiateFunction", True),
    "faceid": ("faceid", "/v1/faceid/sessions", "FaceIdInitiateFunction", False),
}
LEASE_TIMEOUT = 1.5  # the faulted invocation's timeout: its claim's lease ends ~1 s after it
TERMINAL = ("completed", "error", "expired")


def request_body(people, check: str) -> dict[str, Any]:
    person = people.identity("match")
    return body(person, None if check == "faceid" else people.scenario_selfie_jpeg(person))


def api_event(stack, path: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
    route = next(r for r in tpl.routes(stack.template) if r.path == path and r.method == "POST")
    headers = {"content-type": "application/json", "x-api-key": stack.api_key}
    if key:
        headers["Idempotency-Key"] = key
    data = json.dumps(payload).encode()
    host = stack.api_url.split("//", 1)[1]
    return build_event(route, "POST", path, "", headers, data, {}, host, "127.0.0.1")


def invoke(stack, function: str, event: dict[str, Any], timeout: float | None = None) -> dict[str, Any] | None:
    """One invocation; None when the execution environment died (a crash or a timeout)."""
    try:
        return stack.functions[function].invoke(event, timeout_seconds=timeout)
    except Crash:
        return None


def answer_of(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return int(result["statusCode"]), json.loads(result["body"] or "{}")


def record_id(status_body: dict[str, Any]) -> str | None:
    return status_body.get("verification_id")


def final_record(stack, api, verification_id: str) -> dict[str, Any]:
    """The record once every lease involved has ended (a read settles a stranded claim)."""
    deadline = time.monotonic() + 10
    while True:
        answer = api.get(f"/v1/verifications/{verification_id}")
        assert answer.status_code == 200, answer.text
        record = answer.json()
        item = stored_item(stack, verification_id) or {}
        if record["status"] in TERMINAL or ("claim_token" not in item and record["status"] == "pending"):
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"record stayed {record['status']}")
        time.sleep(0.2)


Fault = Callable[[Any], Any]


def fault_cases() -> dict[str, tuple[str, Callable[[Any], Any], str]]:
    """case: (step, context manager factory taking the stack, expected first outcome)."""
    return {
        "claim-error": ("claim", lambda s: aws_fault("dynamodb", "PutItem", when=faults.claiming), "refused"),
        "call-sent-reset+write-error": ("call sent", _reset_and_write_error, "not_stored"),
        "answer-read-crash": (
            "answer read",
            lambda s: aws_fault("dynamodb", "UpdateItem", "crash", when=faults.finishing),
            "died",
        ),
        "answer-read-timeout": (
            "answer read",
            lambda s: aws_fault("dynamodb", "UpdateItem", "timeout", when=faults.finishing, sleep=LEASE_TIMEOUT),
            "died",
        ),
        "record-write-transient": (
            "record write",
            lambda s: aws_fault("dynamodb", "UpdateItem", when=faults.finishing, times=2),
            "ok",
        ),
        "record-write-outage": (
            "record write",
            lambda s: aws_fault("dynamodb", "UpdateItem", when=faults.finishing),
            "not_stored",
        ),
    }


class _Both:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.inner = aws_fault("dynamodb", "UpdateItem", when=faults.finishing)

    def __enter__(self) -> Any:
        self.stack.sandbox.set_fault("reset", "*", 1)
        return self.inner.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.inner.__exit__(*exc)
        self.stack.sandbox.clear_faults()


def _reset_and_write_error(stack: Any) -> _Both:
    return _Both(stack)


CASES = fault_cases()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("flow", list(FLOWS))
def test_fault_after_the_claim_never_pays_twice(stack, api, people, ledger, flow, case):
    check, path, function, keyed = FLOWS[flow]
    _step, make_fault, expected = CASES[case]
    payload = request_body(people, check)
    key = f"money-{uuid.uuid4()}" if keyed else None
    delta = ledger()
    with make_fault(stack):
        result = invoke(stack, function, api_event(stack, path, payload, key), timeout=LEASE_TIMEOUT)
    calls = delta.calls(SANDBOX_API[check])
    answers_500 = 0
    first: tuple[int, dict[str, Any]] | None = None
    if result is None:
        assert expected == "died", f"{case}: the invocation died unexpectedly"
    else:
        first = answer_of(result)
        answers_500 += first[0] == 500
        assert first[0] != 500, first
        if expected == "refused":
            assert (first[0], first[1]["code"]) == (503, "storage_unavailable"), first
        elif expected == "not_stored":
            assert first[0] == 503 and first[1]["code"] == "result_not_stored", first
            assert first[1]["verification_id"]
            if case == "record-write-outage" and check != "faceid":  # the paid result travels in the answer
                assert first[1]["verification"]["status"] == "completed"
        else:
            assert first[0] in (200, 201), first
    assert calls == (0 if expected == "refused" else 1), (flow, case, calls)

    # Storage is back; the faulted invocation's lease runs out. Replays (with the key) and reads.
    time.sleep(LEASE_TIMEOUT + 1.2)
    replays: list[tuple[int, dict[str, Any]]] = []
    if keyed:
        for _ in range(3):
            status, answer = answer_of(invoke(stack, function, api_event(stack, path, payload, key)) or {})
            replays.append((status, answer))
        answers_500 += sum(s == 500 for s, _ in replays)
        assert all(r == replays[0] for r in replays), replays  # one stored answer, replayed exactly
    total_calls = delta.calls(SANDBOX_API[check])
    if expected == "refused":
        # nothing was claimed or paid: the retry with the key runs the check, once
        assert total_calls == (1 if keyed else 0), total_calls
    else:
        assert total_calls == 1, (flow, case, total_calls)  # never called again for this request

    verification_id = None
    if first is not None:
        verification_id = record_id(first[1])
    if verification_id is None and replays:
        verification_id = record_id(replays[0][1])
    if verification_id is None:  # died without an answer and without a key: find its record by claim
        verification_id = _latest_record(stack, check)
    lost = 0
    if expected != "refused" or keyed:
        record = final_record(stack, api, verification_id)
        lost = record["status"] not in (*TERMINAL, "pending")
        if expected in ("died", "not_stored"):
            if case == "record-write-outage" and first is not None and check == "compare":
                # the paid result was in the 503 answer; the stored record says what is known
                assert first[1]["verification"]["decision"] == "pass"
            assert record["status"] in ("error", "pending", "completed")
            if record["status"] == "error":
                assert record["charged"] is None and record["error"]["code"] in (
                    "check_interrupted",
                    "provider_timeout",
                )
        if keyed and replays:
            _, stored = replays[0]
            assert stored.get("verification_id") == verification_id or stored.get("verification_id") is None
            if record["status"] == "error":
                assert stored["code"] == record["error"]["code"], (stored, record)
    figures.add("money_path", "cases")
    figures.add("money_path", "answers_500", answers_500)
    figures.add("money_path", "records_lost", int(lost))
    figures.add("money_path", "provider_calls", total_calls)
    figures.add("money_path", "replays", len(replays))
    figures.add("money_path", "replays_disagreeing", 0)


def _latest_record(stack, check: str) -> str:
    from tests.reliability.conftest import client

    items = client(stack, "dynamodb").scan(
        TableName=stack.resource_name("VerificationsTable"),
        FilterExpression="#c = :c",
        ExpressionAttributeNames={"#c": "check"},
        ExpressionAttributeValues={":c": {"S": check}},
    )["Items"]
    return max(items, key=lambda i: i["created_at"]["S"] + i["verification_id"]["S"])["verification_id"]["S"]
