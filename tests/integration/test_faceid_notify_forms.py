"""The FaceID notify, read defensively (the document defines no method, media type or fields for it):
a validly signed `response`/`sign` pair is taken from a form body, a JSON body or the query string, and
a signed response without a result (null, or no `jh_order_id`) means "no result yet": `faceid/search`,
the only trusted source, decides (before: 400 for all but the form, and for the null result)."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from tests.reliability.test_callback_forgery import REDIRECT, submit
from tests.stack import body


def signed(stack, response: dict | None) -> tuple[str, str]:
    text = json.dumps(response, ensure_ascii=False)
    key = stack.provider_config.juhe_faceid_key
    return text, hashlib.md5((text + key).encode("utf-8")).hexdigest()


def started_and_passed(api, people) -> dict:
    """A session whose person passed liveness at the provider (the notify itself is ours to send)."""
    person = people.identity("match")
    session = api.post("/v1/faceid/sessions", body(person, redirect_url=REDIRECT)).json()
    submit(session["verify_url"], outcome="pass")
    return session


@pytest.fixture
def people():
    from sandbox.providers import identities

    return identities


@pytest.mark.parametrize("form", ["json", "query", "form"])
@pytest.mark.parametrize("result", ["null", "no_order_id"])
def test_a_signed_notify_without_a_result_is_confirmed_by_search(api, stack, people, form, result):
    session = started_and_passed(api, people)
    vid = session["verification_id"]
    payload = {"error_code": 0, "reason": "SUCCESS", "result": None if result == "null" else {"passed": "T"}}
    text, sign = signed(stack, payload)
    url = f"{stack.api_url}/v1/faceid/callback/{vid}"
    if form == "json":
        answer = requests.post(url, json={"response": text, "sign": sign}, timeout=30)
    elif form == "query":
        answer = requests.post(url, params={"response": text, "sign": sign}, timeout=30)
    else:
        answer = requests.post(url, data={"response": text, "sign": sign}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"verification_id": vid, "status": "completed"}
    record = api.get(f"/v1/verifications/{vid}").json()
    assert record["status"] == "completed" and record["decision"] == "pass"


@pytest.mark.parametrize("form", ["json", "query"])
def test_a_badly_signed_notify_in_any_form_changes_nothing(api, stack, people, form):
    session = started_and_passed(api, people)
    vid = session["verification_id"]
    text, _sign = signed(stack, {"error_code": 0, "result": None})
    searches = stack.sandbox.calls("faceid_search")
    url = f"{stack.api_url}/v1/faceid/callback/{vid}"
    fields = {"response": text, "sign": "0" * 32}
    answer = (
        requests.post(url, json=fields, timeout=30) if form == "json" else requests.post(url, params=fields, timeout=30)
    )
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_callback"
    assert stack.sandbox.calls("faceid_search") == searches
    assert api.get(f"/v1/verifications/{vid}").json()["status"] == "pending"
