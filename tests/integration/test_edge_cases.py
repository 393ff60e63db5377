"""Edge cases found in review: interrupted upload checks, unreadable JSON, malformed redirect URLs,
answers that break off mid-read."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from idv import errors
from idv.http import new_session, post_json
from tests.stack import body


def test_an_interrupted_upload_check_is_not_paid_twice(api, stack):
    from sandbox.providers import identities

    person = identities.identity("match")
    ticket = api.post("/v1/uploads", body(person, check="compare")).json()
    verification_id = ticket["verification_id"]
    # An earlier worker claimed the record and was stopped mid-check (its lease ran out).
    stack.client("dynamodb").update_item(
        TableName=stack.resource_name("VerificationsTable"),
        Key={"verification_id": {"S": verification_id}},
        UpdateExpression="SET claimed_until = :t",
        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 5)}},
    )
    calls = stack.sandbox.calls()
    upload = ticket["upload"]
    posted = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("s.jpg", identities.selfie_jpeg(person), "image/jpeg")},
        timeout=30,
    )
    assert posted.status_code < 300
    record = api.wait_for(verification_id)
    assert record["status"] == "error" and record["error"]["code"] == "check_interrupted"
    assert record["charged"] is None
    assert stack.sandbox.calls() == calls


@pytest.mark.parametrize("payload", ["[" * 50_000, "1" * 5000, "{", "\udcff"])
def test_unreadable_json_is_a_400(stack, payload):
    answer = requests.post(
        f"{stack.api_url}/v1/compare",
        data=payload.encode("utf-8", "surrogatepass"),
        headers={"x-api-key": stack.api_key, "content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_request"


def test_a_malformed_redirect_url_is_a_400(api):
    from sandbox.providers import identities

    answer = api.post("/v1/faceid/sessions", body(identities.identity("match"), redirect_url="https://[bad/x"))
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_request"


def test_an_answer_broken_off_mid_read_may_have_been_charged():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    seen = []

    def serve() -> None:
        conn, _ = server.accept()
        seen.append(conn.recv(65536))
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"error_')
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(errors.ProviderTimeout) as caught:
        post_json(new_session(), f"http://127.0.0.1:{port}/verifyface/verify", provider="juhe", data={"key": "k"})
    assert caught.value.charged is None and len(seen) == 1
    server.close()
