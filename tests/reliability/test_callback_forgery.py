"""Callback forgery: the FaceID callback trusts nothing from the browser.

Bad or missing signatures, a tampered response, another session's (validly signed) response, a replay
after completion, a callback for an expired session and a redirect to a host that is not allowed are
all rejected or ignored: the stored item is byte-for-byte the same before and after, and no
faceid/search (a billable call) is made for any of them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.reliability import figures
from tests.reliability.conftest import client, stored_item
from tests.stack import body

pytestmark = pytest.mark.slow

REDIRECT = "http://127.0.0.1/done"


def start(api, people, scenario: str = "match", **extra: Any) -> dict[str, Any]:
    person = people.identity(scenario)
    answer = api.post("/v1/faceid/sessions", body(person, redirect_url=REDIRECT, **extra))
    assert answer.status_code == 201, answer.text
    return answer.json()


def submit(verify_url: str, outcome: str = "pass") -> tuple[str, dict[str, str]]:
    """Submit the H5 page like a browser, but stop at the signed return: (callback URL, its query)."""
    browser = requests.Session()
    page = browser.get(verify_url, timeout=30)
    page.raise_for_status()
    camera = re.search(r'<option value="([^"]+)" selected>', page.text)
    form = {"action": (None, outcome), "live_code": (None, "201")}
    if camera:
        form["camera"] = (None, camera.group(1))
    answer = browser.post(verify_url, files=form, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    return f"{location.scheme}://{location.netloc}{location.path}", dict(parse_qsl(location.query))


def wait_notified(stack, jh_order_id: str, timeout: float = 10.0) -> None:
    """Until the sandbox's notify POST for the session got an answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(n["jh_order_id"] == jh_order_id and "status" in n for n in stack.sandbox.notifications()):
            return
        time.sleep(0.05)
    raise AssertionError("the sandbox's notify never got an answer")


def callback(stack, verification_id: str, params: dict[str, Any], method: str = "GET") -> requests.Response:
    url = f"{stack.api_url}/v1/faceid/callback/{verification_id}"
    if method == "GET":
        return requests.get(url, params=params, allow_redirects=False, timeout=30)
    return requests.post(url, data=params, allow_redirects=False, timeout=30)


def searches(stack) -> int:
    return stack.sandbox.calls("faceid_search")


def assert_rejected(
    stack, verification_id: str, params: dict[str, Any], status: int = 400, code: str = "invalid_callback"
) -> None:
    """Rejected by GET and by POST, with the item unchanged and no faceid/search."""
    before, calls = stored_item(stack, verification_id), searches(stack)
    for method in ("GET", "POST"):
        answer = callback(stack, verification_id, params, method)
        assert answer.status_code == status, (method, params, answer.text)
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert answer.json()["code"] == code
        assert "Location" not in answer.headers
        figures.add("callback_forgery", "attempts")
        figures.add("callback_forgery", "rejected")
    assert stored_item(stack, verification_id) == before
    assert searches(stack) == calls


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_bad_signatures_are_rejected(api, stack, people):
    session = start(api, people)
    vid = session["verification_id"]
    jh = stored_item(stack, vid)["jh_order_id"]["S"]
    claim = json.dumps({"passed": "T", "jh_order_id": jh, "detail": {"live_passed": "T", "certify_passed": "T"}})
    result = json.dumps({"result": json.loads(claim)})
    for params in (
        {"response": result, "sign": "0" * 32},  # wrong sign
        {"response": result},  # no sign
        {"sign": md5(result)},  # no response
        {"response": result, "sign": ""},
        {"response": result, "sign": md5(result)},  # md5 without the key
        {"response": result, "sign": md5(result + "sandbox-juhe-verifyface-key")},  # another API's key
        {"response": result, "sign": md5(result)[:31]},  # not 32 hex digits
        {"response": result, "sign": "z" * 32},
        {"response": result, "sign": md5(result) + "00"},
    ):
        assert_rejected(stack, vid, params)
    assert stored_item(stack, vid)["status"]["S"] == "pending"
    figures.add("callback_forgery", "cases")


def test_tampered_and_foreign_responses_are_rejected(api, stack, people):
    """Session A is pending; B's signed result (a fail) is captured and replayed against A, as is and
    edited; B's own result edited to a pass is refused too."""
    a = start(api, people)
    b = start(api, people)
    jh_a = stored_item(stack, a["verification_id"])["jh_order_id"]["S"]
    _, signed_b = submit(b["verify_url"], outcome="fail")
    jh_b = json.loads(signed_b["response"])["result"]["jh_order_id"]
    wait_notified(stack, jh_b)
    assert api.wait_for(b["verification_id"])["decision"] == "fail"

    # another session's response, validly signed: the order does not match A's
    assert_rejected(stack, a["verification_id"], signed_b)
    # B's response rewritten for A (keeps B's sign): the signature no longer verifies
    retargeted = {**signed_b, "response": signed_b["response"].replace(jh_b, jh_a)}
    assert retargeted["response"] != signed_b["response"]
    assert_rejected(stack, a["verification_id"], retargeted)
    # B's fail turned into a pass: the signature no longer verifies, B stays failed
    passed = re.sub(r'"(passed|live_passed|certify_passed)":\s*"F"', r'"\1":"T"', signed_b["response"])
    assert passed != signed_b["response"]
    assert_rejected(stack, b["verification_id"], {**signed_b, "response": passed})
    # the signed response with a whitespace change
    assert_rejected(stack, b["verification_id"], {**signed_b, "response": signed_b["response"] + " "})
    assert api.get(f"/v1/verifications/{a['verification_id']}").json()["status"] == "pending"
    assert api.get(f"/v1/verifications/{b['verification_id']}").json()["decision"] == "fail"
    figures.add("callback_forgery", "cases")


def test_replay_after_completion_changes_nothing(api, stack, people):
    session = start(api, people)
    vid = session["verification_id"]
    searched = searches(stack)
    url, signed = submit(session["verify_url"], outcome="pass")
    first = requests.get(url, params=signed, allow_redirects=False, timeout=30)  # the real browser return
    assert first.status_code == 302 and "status=completed" in first.headers["Location"]
    wait_notified(stack, json.loads(signed["response"])["result"]["jh_order_id"])
    # the browser return and the notify race: each may confirm with faceid/search while still pending
    figures.record("callback_forgery", searches_for_one_completion=searches(stack) - searched)
    assert 1 <= searches(stack) - searched <= 2
    record = api.get(f"/v1/verifications/{vid}").json()
    assert record["status"] == "completed" and record["decision"] == "pass", record
    before, calls = stored_item(stack, vid), searches(stack)
    for _ in range(3):
        replay = callback(stack, vid, signed, "GET")
        assert replay.status_code == 302 and replay.headers["Location"] == first.headers["Location"]
        notify = callback(stack, vid, signed, "POST")
        assert notify.status_code == 200 and notify.json() == {"verification_id": vid, "status": "completed"}
        figures.add("callback_forgery", "attempts", 2)
        figures.add("callback_forgery", "replays_ignored", 2)
    assert stored_item(stack, vid) == before
    assert searches(stack) == calls  # a replay is answered from the record, never searched again
    figures.add("callback_forgery", "cases")


def test_expired_session_is_left_to_the_reconciler(api, stack, people, ledger):
    """The record's 30 minutes are over (record manipulation): a valid, signed callback changes nothing;
    only the reconciler settles the session (one final faceid/search)."""
    session = start(api, people)
    vid = session["verification_id"]
    table = stack.resource_name("VerificationsTable")
    client(stack, "dynamodb").update_item(
        TableName=table,
        Key={"verification_id": {"S": vid}},
        UpdateExpression="SET session_expires_at = :t",
        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 5)}},
    )
    before, calls = stored_item(stack, vid), searches(stack)
    url, signed = submit(session["verify_url"], outcome="pass")
    browser = requests.get(url, params=signed, allow_redirects=False, timeout=30)
    assert browser.status_code == 302 and "status=pending" in browser.headers["Location"]
    wait_notified(stack, json.loads(signed["response"])["result"]["jh_order_id"])
    assert stored_item(stack, vid) == before
    assert searches(stack) == calls
    figures.add("callback_forgery", "attempts", 2)
    figures.add("callback_forgery", "expired_ignored", 2)

    delta = ledger()
    stats = stack.run_reconciler()
    assert stats["completed"] >= 1
    record = api.get(f"/v1/verifications/{vid}").json()
    assert record["status"] == "completed" and record["decision"] == "pass", record
    assert delta.calls("faceid_search") == stats["seen"] - stats["unchanged"]
    figures.add("callback_forgery", "cases")


def test_session_expired_at_the_provider_is_expired_by_the_reconciler(api, stack, people):
    """The sandbox clock moves 31 minutes: the H5 link is dead, no callback ever comes; the reconciler
    finds the provider has nothing and marks the record expired."""
    session = start(api, people)
    vid = session["verification_id"]
    engine = stack.sandbox.engine
    saved = engine.clock_offset
    try:
        stack.sandbox.advance_clock(31 * 60)
        page = requests.get(session["verify_url"], timeout=30)
        assert page.status_code == 410
        client(stack, "dynamodb").update_item(
            TableName=stack.resource_name("VerificationsTable"),
            Key={"verification_id": {"S": vid}},
            UpdateExpression="SET session_expires_at = :t",
            ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 5)}},
        )
        stack.run_reconciler()
    finally:
        engine.clock_offset = saved
    record = api.get(f"/v1/verifications/{vid}").json()
    assert record["status"] == "expired" and record["decision"] is None, record
    assert record["error"]["code"] == "session_expired"
    assert "pending_faceid" not in stored_item(stack, vid)
    figures.add("callback_forgery", "cases")


@pytest.mark.parametrize(
    "redirect_url",
    [
        "https://evil.example.net/return",
        "https://127.0.0.1.evil.example.net/x",
        "https://evil.example.net/?next=http://127.0.0.1/",
        "http://evil.example.net/return",
        "https://user:pw@127.0.0.1/return",
        "javascript:alert(1)",
        "//evil.example.net/return",
        "ftp://127.0.0.1/return",
        "data:text/html,hi",
        "https:///nohost",
    ],
)
def test_redirect_to_a_host_not_allowed_is_refused(api, stack, people, ledger, redirect_url):
    person = people.identity("match")
    marker = f"redirect-{uuid.uuid4().hex[:12]}"
    delta = ledger()
    answer = api.post("/v1/faceid/sessions", body(person, redirect_url=redirect_url, client_reference=marker))
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["code"] == "invalid_request" and "redirect_url" in problem["detail"]
    assert redirect_url not in answer.text and person.name not in answer.text
    assert delta.calls() == 0  # refused before faceid/query: nothing paid
    items = client(stack, "dynamodb").scan(
        TableName=stack.resource_name("VerificationsTable"),
        FilterExpression="client_reference = :m",
        ExpressionAttributeValues={":m": {"S": marker}},
    )["Items"]
    assert items == []
    figures.add("callback_forgery", "attempts")
    figures.add("callback_forgery", "rejected")
    figures.add("callback_forgery", "redirects_refused")
    figures.add("callback_forgery", "cases")


def test_callbacks_for_unknown_or_other_records_are_not_found(api, stack, people):
    person = people.identity("match")
    compare = api.post("/v1/compare", body(person, people.selfie_jpeg(person))).json()
    for vid in ("v" + "0" * 26, "short", "x" * 40, compare["verification_id"]):
        assert_rejected(stack, vid, {"response": "{}", "sign": "0" * 32}, status=404, code="not_found")
    figures.add("callback_forgery", "cases")
