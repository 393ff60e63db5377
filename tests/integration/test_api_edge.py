"""The API's edge, tried as a careless client would (each of these answered wrongly before):

- media types: `Application/JSON; charset=UTF-8` is JSON; text/plain, XML, multipart and curl's default
  form are 415 `unsupported_media_type` (before: 500 with a traceback, or "missing fields");
- unknown fields are refused, naming them (before: `"treshold": 99` passed silently at 60);
- `threshold` may make the decision stricter than the deployment, never laxer (before: `threshold: 0`
  turned another person's face into a pass); four-factor refuses it (before: accepted and ignored).
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.stack import body

ROUTES = ("/v1/compare", "/v1/four-factor", "/v1/portrait", "/v1/faceid/sessions", "/v1/uploads")


def payload_for(route: str) -> dict:
    from sandbox.providers import identities

    person = identities.identity("match")
    image = identities.scenario_selfie_jpeg(person) if route in ROUTES[:3] else None
    extra = {"mobile": person.mobile} if route == "/v1/four-factor" else {}
    return body(person, image, **extra)


def post_raw(stack, route: str, data: bytes, content_type: str | None) -> requests.Response:
    headers = {"x-api-key": stack.api_key}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return requests.post(stack.api_url + route, data=data, headers=headers, timeout=60)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type", ["Application/JSON", "application/json; charset=UTF-8", "APPLICATION/JSON;charset=utf-8"]
)
def test_json_in_any_spelling_is_json(stack, route, content_type):
    answer = post_raw(stack, route, json.dumps(payload_for(route)).encode(), content_type)
    assert answer.status_code in (200, 201), answer.text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"],
)
def test_anything_else_is_415(stack, route, content_type):
    calls = stack.sandbox.calls()
    answer = post_raw(stack, route, json.dumps(payload_for(route)).encode(), content_type)
    assert answer.status_code == 415, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "unsupported_media_type" and "application/json" in problem["detail"]
    assert "Traceback" not in answer.text
    assert stack.sandbox.calls() == calls


def test_curls_default_form_is_told_to_send_json(stack):
    answer = post_raw(
        stack, "/v1/compare", json.dumps(payload_for("/v1/compare")).encode(), "application/x-www-form-urlencoded"
    )
    assert answer.status_code == 415 and "curl" in answer.json()["detail"]


@pytest.mark.parametrize("route", ROUTES)
def test_unknown_fields_are_refused_by_name(api, stack, route):
    calls = stack.sandbox.calls()
    answer = api.post(route, {**payload_for(route), "treshold": 99})
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["code"] == "invalid_request" and "treshold" in problem["detail"]
    assert stack.sandbox.calls() == calls


@pytest.mark.parametrize("route", ["/v1/compare", "/v1/portrait", "/v1/faceid/sessions", "/v1/uploads"])
@pytest.mark.parametrize("threshold", [0, 59.9, -0.0])
def test_a_threshold_below_the_deployments_is_refused(api, stack, route, threshold):
    calls = stack.sandbox.calls()
    answer = api.post(route, {**payload_for(route), "threshold": threshold})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "threshold_too_low"
    assert "-0.0" not in answer.text
    assert stack.sandbox.calls() == calls


def test_a_stricter_threshold_is_applied(api):
    answer = api.post("/v1/compare", {**payload_for("/v1/compare"), "threshold": 99.5})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["face"]["threshold"] == 99.5 and record["decision"] == "fail"


def test_another_persons_face_never_passes_by_threshold(api, stack):
    from sandbox.providers import identities

    person, other = identities.identity("match"), identities.identity("face_mismatch")
    answer = api.post("/v1/compare", {**body(person, identities.scenario_selfie_jpeg(other)), "threshold": 0})
    assert answer.status_code == 422 and answer.json()["code"] == "threshold_too_low"


def test_four_factor_refuses_a_threshold(api, stack):
    answer = api.post("/v1/four-factor", {**payload_for("/v1/four-factor"), "threshold": 80})
    assert answer.status_code == 400 and "threshold" in answer.json()["detail"]
