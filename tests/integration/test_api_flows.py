"""Every handler over real HTTP through the local stack: moto resources built from template.yaml,
the provider sandbox as the provider, the local API routing like the template."""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.stack import h5
from tests.stack import body

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def people():
    from sandbox.providers import identities as people

    return people


def charged_calls(stack) -> int:
    return stack.sandbox.charged()


def test_compare_pass_is_charged_once_and_masked(api, stack, people):
    person = people.identity("match")
    before = charged_calls(stack)
    answer = api.post("/v1/compare", body(person, people.selfie_jpeg(person)))
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["decision"] == "pass" and record["identity"] == "match"
    assert record["face"]["result"] == "match" and record["face"]["score"] >= 60
    assert record["charged"] is True
    assert charged_calls(stack) == before + 1
    assert person.name not in answer.text and person.id_number not in answer.text
    assert record["subject"]["id_number"].startswith(person.id_number[:3])
    stored = api.get(f"/v1/verifications/{record['verification_id']}").json()
    assert stored == record


def test_compare_other_person_fails(api, people):
    person = people.identity("match")
    record = api.post("/v1/compare", body(person, people.other_person_jpeg(3))).json()
    assert record["decision"] == "fail"
    assert "face_mismatch" in record["reasons"]


def test_compare_aes_mode_passes(api, people, monkeypatch):
    from idv.config import get_settings

    monkeypatch.setenv("JUHE_COMPARE_MODE", "aes")
    get_settings.cache_clear()
    try:
        person = people.identity("match")
        record = api.post("/v1/compare", body(person, people.selfie_jpeg(person))).json()
        assert record["decision"] == "pass", record
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_four_factor_pass(api, people):
    person = people.identity("match")
    record = api.post("/v1/four-factor", body(person, people.selfie_jpeg(person), mobile=person.mobile)).json()
    assert record["check"] == "four_factor"
    assert record["decision"] == "pass", record
    assert record["mobile"]["result"] == "match"


def test_portrait_pass(api, people):
    person = people.identity("match")
    record = api.post("/v1/portrait", body(person, people.selfie_jpeg(person))).json()
    assert record["provider"] == "apetime" and record["decision"] == "pass", record


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"id_number": "110105199003071230"}, 422, "invalid_id_number"),
        ({"name": "Zhang San"}, 422, "invalid_name"),
        ({"consent": {"granted": False, "text_version": "v1"}}, 422, "consent_required"),
        ({"consent": None}, 422, "consent_required"),
        ({"image": "not an image"}, 422, "image_unreadable"),
        ({"image": None}, 400, "invalid_request"),
        ({"threshold": 120}, 400, "invalid_request"),
    ],
)
def test_bad_input_is_a_problem_and_costs_nothing(api, stack, people, change, status, code):
    person = people.identity("match")
    request = body(person, people.selfie_jpeg(person))
    request.update(change)
    request = {k: v for k, v in request.items() if v is not None}
    before = charged_calls(stack)
    answer = api.post("/v1/compare", request)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["code"] == code
    assert charged_calls(stack) == before


def test_tiny_image_is_refused(api, people):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), "white").save(buffer, "JPEG")
    person = people.identity("match")
    answer = api.post("/v1/compare", body(person, buffer.getvalue()))
    assert answer.status_code == 422 and answer.json()["code"] == "image_too_small"


def test_api_key_is_required(stack):
    """Without the key the request never reaches the function; the answer is the template's
    INVALID_API_KEY gateway response (read from template.yaml, not written into the emulator)."""
    from sandbox.stack import template as tpl

    function = next(f for f in stack.functions.values() if f.code_dir.endswith("/compare"))
    invocations = function.invocations
    answer = requests.post(f"{stack.api_url}/v1/compare", json={}, timeout=10)
    responses = tpl.load_template()["Resources"]["Api"]["Properties"]["GatewayResponses"]
    assert answer.status_code == int(responses["INVALID_API_KEY"]["StatusCode"])
    assert answer.json()["code"] == "invalid_api_key"
    assert function.invocations == invocations


def test_idempotent_replay_is_not_charged_twice(api, stack, people):
    person = people.identity("match")
    request = body(person, people.selfie_jpeg(person))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = charged_calls(stack)
    first = api.post("/v1/compare", request, headers=key)
    again = api.post("/v1/compare", request, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert charged_calls(stack) == before + 1
    other = dict(request, client_reference="another body")
    reused = api.post("/v1/compare", other, headers=key)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"


def test_concurrent_identical_requests_charge_once(api, stack, people):
    person = people.identity("match")
    request = body(person, people.selfie_jpeg(person))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = charged_calls(stack)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: api.post("/v1/compare", request, headers=key), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["verification_id"] for a in answers}) == 1
    assert charged_calls(stack) == before + 1


def test_delete_erases_the_record(api, people):
    person = people.identity("match")
    record = api.post("/v1/compare", body(person, people.selfie_jpeg(person))).json()
    path = f"/v1/verifications/{record['verification_id']}"
    assert api.delete(path).status_code == 204
    missing = api.get(path)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_upload_flow_completes_and_cleans_up(api, stack, people):
    person = people.identity("match")
    ticket = api.post("/v1/uploads", body(person, check="compare"))
    assert ticket.status_code == 201, ticket.text
    data = ticket.json()
    upload = data["upload"]
    posted = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("s.jpg", people.selfie_jpeg(person), "image/jpeg")},
        timeout=30,
    )
    assert posted.status_code < 300, posted.text
    record = api.wait_for(data["verification_id"])
    assert record["status"] == "completed" and record["decision"] == "pass", record
    item = stack.client("dynamodb").get_item(
        TableName=stack.resource_name("VerificationsTable"),
        Key={"verification_id": {"S": data["verification_id"]}},
    )["Item"]
    assert "pending_data" not in item
    key = f"uploads/{data['verification_id']}"
    deadline = time.monotonic() + 10  # the worker deletes the object right after finishing the record
    while True:
        listed = stack.client("s3").list_objects_v2(Bucket=stack.resource_name("UploadBucket"), Prefix=key)
        if not listed.get("Contents") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not listed.get("Contents"), "the uploaded selfie was not deleted"


def test_faceid_flow_with_forgeries(api, stack, people):
    person = people.identity("match")
    redirect = "http://127.0.0.1/done"
    session = api.post("/v1/faceid/sessions", body(person, redirect_url=redirect))
    assert session.status_code == 201, session.text
    data = session.json()
    callback = f"{stack.api_url}/v1/faceid/callback/{data['verification_id']}"
    forged = requests.get(callback, params={"response": '{"result":{}}', "sign": "0" * 32}, timeout=10)
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_callback"
    assert api.get(f"/v1/verifications/{data['verification_id']}").json()["status"] == "pending"
    landing = h5.complete(requests.Session(), data["verify_url"], outcome="pass")
    assert landing.startswith(redirect) and "verification_id=" in landing
    record = api.get(f"/v1/verifications/{data['verification_id']}").json()
    assert record["status"] == "completed" and record["decision"] == "pass", record


def test_faceid_redirect_host_must_be_allowed(api, people):
    person = people.identity("match")
    answer = api.post("/v1/faceid/sessions", body(person, redirect_url="https://evil.example.net/x"))
    assert answer.status_code == 400 and "redirect_url" in answer.json()["detail"]


def test_no_personal_data_in_stored_items(api, stack, people):
    person = people.identity("match")
    api.post("/v1/compare", body(person, people.selfie_jpeg(person)))
    items = stack.client("dynamodb").scan(TableName=stack.resource_name("VerificationsTable"))["Items"]
    dumped = json.dumps(items, default=str, ensure_ascii=False)
    assert person.id_number not in dumped and person.name not in dumped
    idem = stack.client("dynamodb").scan(TableName=stack.resource_name("IdempotencyTable"))["Items"]
    assert person.id_number not in json.dumps(idem, default=str, ensure_ascii=False)


def test_environment_matches_template(stack):
    """Every variable the template gives the functions is set, and names a resource that exists in the
    emulated account with the template's own properties (not just the value the stack wrote itself)."""
    from sandbox.stack import template as tpl

    declared = tpl.load_template()["Globals"]["Function"]["Environment"]["Variables"]
    for name in declared:
        assert name in os.environ, name
    ddb = stack.client("dynamodb")
    resources = tpl.load_template()["Resources"]
    for variable, logical in (("VERIFICATIONS_TABLE", "VerificationsTable"), ("IDEMPOTENCY_TABLE", "IdempotencyTable")):
        table = ddb.describe_table(TableName=os.environ[variable])["Table"]
        assert table["KeySchema"] == resources[logical]["Properties"]["KeySchema"], variable
    assert stack.client("s3").head_bucket(Bucket=os.environ["UPLOAD_BUCKET"])
    assert stack.client("events").describe_event_bus(Name=os.environ["EVENT_BUS_NAME"])["Name"]
    assert stack.client("kms").describe_key(KeyId=os.environ["DATA_KEY_ID"])["KeyMetadata"]["Enabled"]
    assert stack.client("secretsmanager").describe_secret(SecretId=os.environ["PROVIDER_SECRET_ID"])["Name"]
    assert os.environ["JUHE_BASE_URL"] == os.environ["APETIME_BASE_URL"] == stack.sandbox.url
    parameters = tpl.load_template()["Parameters"]
    assert float(os.environ["FACE_SCORE_THRESHOLD"]) == float(parameters["FaceScoreThreshold"]["Default"])


ROUTES = {"compare": "/v1/compare", "four_factor": "/v1/four-factor", "portrait": "/v1/portrait"}


@pytest.mark.parametrize(
    ("check", "scenario", "decision", "identity", "face", "mobile", "charged"),
    [
        ("compare", "minority_name", "pass", "match", "match", None, True),
        ("compare", "face_mismatch", "fail", "match", "mismatch", None, True),
        ("compare", "name_mismatch", "fail", "mismatch", "unverified", None, True),
        ("compare", "not_found", "fail", "not_found", "unverified", None, False),
        ("compare", "no_face_selfie", "fail", "match", "no_face_selfie", None, True),
        ("compare", "no_face_reference", "fail", "match", "no_face_reference", None, True),
        ("four_factor", "four_factor_100", "pass", "match", "match", "match", True),
        ("four_factor", "four_factor_101", "fail", "match", "match", "mismatch", True),
        ("four_factor", "four_factor_108", "review", "match", "match", "unverified", True),
        ("four_factor", "four_factor_109", "review", "match", "match", "no_record", True),
        ("four_factor", "four_factor_105", "fail", "mismatch", "unverified", "match", True),
        ("portrait", "face_review", "review", "match", "unverified", None, True),
        ("portrait", "no_reference_photo", "fail", "match", "no_reference_photo", None, True),
        ("portrait", "name_mismatch", "fail", "mismatch", "unverified", None, True),
        ("portrait", "no_face_selfie", "fail", "match", "no_face_selfie", None, True),
    ],
)
def test_scenarios_map_to_normalized_results(api, people, check, scenario, decision, identity, face, mobile, charged):
    person = people.identity(scenario)
    extra = {"mobile": person.mobile} if check == "four_factor" else {}
    answer = api.post(ROUTES[check], body(person, people.scenario_selfie_jpeg(person), **extra))
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert (record["decision"], record["identity"]) == (decision, identity), record
    assert (record["face"] or {}).get("result") == face, record
    assert (record["mobile"] or {}).get("result") == mobile, record
    assert record["charged"] is charged
