"""The local API answers like API Gateway: the template's GatewayResponses and the size limits.

API Gateway REST answers before any function runs with the `GatewayResponses` of template.yaml
(problem+json, `$context.*` filled in); it caps request bodies at 10 MB, and Lambda refuses a
synchronous event over 6 MB. The local API must do the same, so local tests see what AWS callers see.
"""

from __future__ import annotations

import json
import socket

import pytest
import requests

from sandbox.stack import template as tpl

PROBLEM = "application/problem+json"
BODY_LIMIT = 10 * 1024 * 1024  # API Gateway REST request payload quota
EVENT_LIMIT = 6 * 1024 * 1024  # Lambda synchronous invocation request payload


@pytest.fixture(scope="module")
def responses() -> dict[str, tpl.GatewayResponse]:
    return tpl.gateway_responses(tpl.load_template())


def problem(answer: requests.Response, status: int, code: str, response_type: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == PROBLEM
    data = answer.json()
    assert data["code"] == code and data["gateway_response"] == response_type
    # $context.requestId is filled in, and is the request id API Gateway also sends as a header.
    assert data["request_id"] and data["request_id"] == answer.headers["x-amzn-RequestId"]
    assert "$context" not in answer.text
    return data


def test_template_gateway_responses_are_read(responses):
    assert {"INVALID_API_KEY", "MISSING_AUTHENTICATION_TOKEN", "REQUEST_TOO_LARGE", "DEFAULT_5XX"} <= set(responses)
    assert responses["REQUEST_TOO_LARGE"].status == 413
    assert responses["DEFAULT_5XX"].status is None  # keeps the status of the error it answers
    assert responses["INVALID_API_KEY"].headers["Content-Type"] == "'application/problem+json'"


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_api_key_is_the_templates_invalid_api_key(stack, responses, key):
    headers = {"x-api-key": key} if key else {}
    answer = requests.post(f"{stack.api_url}/v1/compare", json={}, headers=headers, timeout=10)
    data = problem(answer, responses["INVALID_API_KEY"].status, "invalid_api_key", "INVALID_API_KEY")
    assert data["status"] == 403 and data["title"] == "Forbidden"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing-here"), ("POST", "/"), ("PUT", "/v1/compare"), ("GET", "/v1/compare")],
)
def test_unknown_route_or_method_is_missing_authentication_token(stack, responses, method, path):
    # REST APIs answer MISSING_AUTHENTICATION_TOKEN for an unknown resource and for an unknown method
    # of a known one, before looking at the key (the template turns it into a 404 not_found problem).
    expected = responses["MISSING_AUTHENTICATION_TOKEN"].status
    for headers in ({}, {"x-api-key": stack.api_key}):
        answer = requests.request(method, stack.api_url + path, headers=headers, timeout=10)
        problem(answer, expected, "not_found", "MISSING_AUTHENTICATION_TOKEN")


def test_a_crashing_handler_is_the_templates_default_5xx_as_502(stack, monkeypatch):
    function = stack.functions["VerificationsFunction"]

    def crash(event):
        raise RuntimeError("boom")

    monkeypatch.setattr(function, "invoke", crash)
    answer = requests.get(
        f"{stack.api_url}/v1/verifications/v01JD3K4T9Q2V8X6Z0ABCDEFGH", headers={"x-api-key": stack.api_key}, timeout=10
    )
    data = problem(answer, 502, "internal_error", "DEFAULT_5XX")
    assert data["detail"] == "Internal server error"  # $context.error.messageString, JSON-quoted
    assert "boom" not in answer.text


def test_body_over_10_mb_is_request_too_large_and_never_reaches_a_handler(stack):
    function = stack.functions["CompareFunction"]
    before = function.invocations
    with requests.Session() as session:
        answer = session.post(
            f"{stack.api_url}/v1/compare",
            data=b"x" * (BODY_LIMIT + 1),
            headers={"x-api-key": stack.api_key, "content-type": "application/json"},
            timeout=60,
        )
        data = problem(answer, 413, "request_too_large", "REQUEST_TOO_LARGE")
        assert data["status"] == 413
        # The body was drained, so the same connection still serves the next request.
        again = session.post(f"{stack.api_url}/v1/compare", json={}, timeout=10)
        problem(again, 403, "invalid_api_key", "INVALID_API_KEY")
    assert function.invocations == before


def test_body_over_10_mb_is_refused_even_without_the_key_or_a_route(stack):
    answer = requests.post(f"{stack.api_url}/v1/nothing-here", data=b"x" * (BODY_LIMIT + 1), timeout=60)
    problem(answer, 413, "request_too_large", "REQUEST_TOO_LARGE")


def test_event_over_6_mb_is_request_too_large_as_lambda_refuses_it(stack):
    """A body under API Gateway's 10 MB whose event JSON exceeds Lambda's 6 MB: the handler never runs."""
    function = stack.functions["CompareFunction"]
    before = function.invocations
    image = "A" * (EVENT_LIMIT + 1024)  # base64 text of a ~4.7 MB image: under 10 MB, over 6 MB as an event
    answer = requests.post(
        f"{stack.api_url}/v1/compare", json={"image": image}, headers={"x-api-key": stack.api_key}, timeout=60
    )
    problem(answer, 413, "request_too_large", "REQUEST_TOO_LARGE")
    assert function.invocations == before


def test_event_just_under_6_mb_reaches_the_handler(stack):
    function = stack.functions["CompareFunction"]
    before = function.invocations
    image = "A" * (EVENT_LIMIT - 64 * 1024)
    answer = requests.post(
        f"{stack.api_url}/v1/compare", json={"image": image}, headers={"x-api-key": stack.api_key}, timeout=60
    )
    assert answer.headers["Content-Type"] == PROBLEM
    assert answer.json().get("gateway_response") is None  # the handler's own answer (missing fields)
    assert function.invocations == before + 1


def test_chunked_body_is_read_and_limited(stack):
    def chunks(total: int, size: int = 1024 * 1024):
        sent = 0
        while sent < total:
            part = min(size, total - sent)
            sent += part
            yield b" " * part

    headers = {"x-api-key": stack.api_key, "content-type": "application/json"}
    small = requests.post(
        f"{stack.api_url}/v1/compare", data=iter([b'{"name": ', b'"x"}']), headers=headers, timeout=30
    )
    assert small.status_code in (400, 422) and small.json().get("gateway_response") is None
    big = requests.post(f"{stack.api_url}/v1/compare", data=chunks(BODY_LIMIT + 1), headers=headers, timeout=60)
    problem(big, 413, "request_too_large", "REQUEST_TOO_LARGE")


def test_huge_declared_body_is_answered_without_being_read(stack):
    """Content-Length of 1 GB: answered at once and the connection closed, nothing buffered or drained."""
    host, port = stack.api.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/compare HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1073741824\r\n\r\n{"image": "'
        )
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in head.lower()
    assert json.loads(payload)["code"] == "request_too_large"


@pytest.mark.parametrize("length", [b"abc", b"-5"])
def test_malformed_content_length_is_a_400_problem(stack, length):
    host, port = stack.api.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(b"POST /v1/compare HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    data = json.loads(payload)
    assert data["code"] == "request_rejected" and data["gateway_response"] == "DEFAULT_4XX"


def test_every_template_response_renders_to_json(responses):
    from sandbox.stack.local_api import render_gateway_response

    for kind in responses:
        status, headers, data = render_gateway_response(
            responses,
            kind,
            status=500 if kind.endswith("5XX") else 400,
            message='Some "quoted" message',
            request_id="req-1",
        )
        parsed = json.loads(data)
        assert parsed["gateway_response"] == kind and parsed["request_id"] == "req-1", kind
        assert headers["Content-Type"] == PROBLEM, kind
        if "status" in parsed:
            assert parsed["status"] == status, kind
