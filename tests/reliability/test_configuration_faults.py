"""Configuration faults: a missing or malformed provider secret, a wrong provider credential, a redirect
host that is not allowed, and broken settings. Each answer says what to fix (the secret field, the
environment variable or template parameter), carries no personal data and no secret value, is logged
with the same detail for the operator, and costs nothing where the fault is ours.

The stack is shared by the whole session: every change (secret value, environment) is undone and the
layer's caches are reset (sandbox.stack.local.reset_layer_caches) before the test ends.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import CAPTURED_LOGS
from tests.reliability import figures
from tests.reliability.conftest import ROUTES, client
from tests.stack import body

pytestmark = pytest.mark.slow

FIELDS = (
    "juhe_verifyface_key",
    "juhe_four_factor_key",
    "juhe_faceid_key",
    "juhe_openid",
    "apetime_app_key",
    "apetime_app_secret",
    "pii_hmac_key",
)


@contextmanager
def configured(stack, *, env: dict[str, str | None] | None = None, secret: Any = None) -> Iterator[None]:
    """Apply environment changes (None unsets) and/or a new secret value; undo both afterwards."""
    from sandbox.stack.local import reset_layer_caches

    manager = client(stack, "secretsmanager")
    secret_id = stack.env["PROVIDER_SECRET_ID"]
    original = manager.get_secret_value(SecretId=secret_id)["SecretString"]
    saved = {name: os.environ.get(name) for name in env or {}}
    try:
        for name, value in (env or {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if secret is not None:
            manager.put_secret_value(SecretId=secret_id, SecretString=secret)
        reset_layer_caches()
        yield
    finally:
        if secret is not None:
            manager.put_secret_value(SecretId=secret_id, SecretString=original)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_layer_caches()


def current_secret(stack) -> dict[str, str]:
    return json.loads(
        client(stack, "secretsmanager").get_secret_value(SecretId=stack.env["PROVIDER_SECRET_ID"])["SecretString"]
    )


def request_for(people, check: str, marker: str, **extra: Any) -> dict[str, Any]:
    person = people.identity("match")
    if check == "four_factor":
        extra.setdefault("mobile", person.mobile)
    if check == "faceid":
        extra.setdefault("redirect_url", "http://127.0.0.1/done")
        return body(person, client_reference=marker, **extra)
    if check == "upload":
        return body(person, check="compare", client_reference=marker, **extra)
    return body(person, people.selfie_jpeg(person), client_reference=marker, **extra)


def records_with(stack, marker: str) -> list[dict[str, Any]]:
    return client(stack, "dynamodb").scan(
        TableName=stack.resource_name("VerificationsTable"),
        FilterExpression="client_reference = :m",
        ExpressionAttributeValues={":m": {"S": marker}},
    )["Items"]


def assert_says_what_to_fix(
    answer, status: int, code: str, fix: str, people, secrets: dict[str, str], logs_from: int
) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == code, problem
    assert fix in problem["detail"], problem["detail"]
    person = people.identity("match")
    for value in (person.name, person.id_number, person.mobile, *[v for v in secrets.values() if len(v) >= 6]):
        assert value not in answer.text, "personal data or a secret value in the answer"
    assert "Traceback" not in answer.text
    if status >= 500:  # the operator finds the same detail in the logs
        assert any(fix in line for line in CAPTURED_LOGS[logs_from:]), "the fix is not in the logs"
    figures.add("configuration_faults", "cases")
    return problem


ROUTE_OF = {**ROUTES, "upload": "/v1/uploads"}


@pytest.mark.parametrize(
    ("name", "env", "secret", "fix"),
    [
        ("secret id unset", {"PROVIDER_SECRET_ID": None}, None, "PROVIDER_SECRET_ID is not set"),
        (
            "secret missing",
            {"PROVIDER_SECRET_ID": "idv-local/no-such-secret"},
            None,
            "could not be read (ResourceNotFoundException); check PROVIDER_SECRET_ID",
        ),
        ("not JSON", None, "juhe_verifyface_key=abc", "is not valid JSON; expected the fields juhe_verifyface_key"),
        ("JSON array", None, '["a", "b"]', "must be a JSON object with the fields juhe_verifyface_key"),
        (
            "fields missing",
            None,
            '{"juhe_verifyface_key": "k"}',
            "lacks non-empty string fields: juhe_four_factor_key, juhe_faceid_key",
        ),
        ("field not a string", "pii", None, "lacks non-empty string fields: pii_hmac_key"),
        (
            "placeholders",
            "placeholder",
            None,
            "still has placeholder values for: juhe_faceid_key, apetime_app_secret; put the provider credentials",
        ),
    ],
)
@pytest.mark.parametrize("check", ["compare", "faceid", "upload"])
def test_missing_or_malformed_secret(stack, people, ledger, name, env, secret, fix, check):
    secrets = current_secret(stack)
    if env == "pii":
        env, secret = None, json.dumps({**secrets, "pii_hmac_key": 12345})
    elif env == "placeholder":
        env, secret = None, json.dumps({**secrets, "juhe_faceid_key": "REPLACE_ME", "apetime_app_secret": "changeme"})
    marker = f"cfg-{uuid.uuid4().hex[:12]}"
    delta, logs_from = ledger(), len(CAPTURED_LOGS)
    with configured(stack, env=env, secret=secret):
        answer = stack_post(stack, ROUTE_OF[check], request_for(people, check, marker))
    assert_says_what_to_fix(answer, 500, "configuration_error", fix, people, secrets, logs_from)
    assert delta.calls() == 0  # refused before any provider call
    assert records_with(stack, marker) == []


@pytest.mark.parametrize(
    ("field", "value", "check", "mode", "fix"),
    [
        ("juhe_verifyface_key", "wrong-verifyface-key", "compare", "plain", "check juhe_verifyface_key"),
        ("juhe_four_factor_key", "wrong-four-factor-key", "four_factor", "plain", "check juhe_four_factor_key"),
        ("juhe_faceid_key", "wrong-faceid-key", "faceid", "plain", "check juhe_faceid_key"),
        ("apetime_app_key", "wrong-apetime-app-key", "portrait", "plain", "check apetime_app_key"),
        ("apetime_app_secret", "wrong-apetime-secret", "portrait", "plain", "check apetime_app_secret"),
        (
            "juhe_verifyface_key",
            "four_factor_key",
            "compare",
            "plain",
            "check that juhe_verifyface_key in the provider secret (PROVIDER_SECRET_ID) is the key of Juhe's",
        ),
        ("juhe_openid", "wrong-openid-value", "compare", "aes", "check juhe_openid"),
    ],
)
def test_wrong_provider_credential(stack, people, ledger, field, value, check, mode, fix):
    secrets = current_secret(stack)
    if value == "four_factor_key":
        value = secrets["juhe_four_factor_key"]
    marker = f"cfg-{uuid.uuid4().hex[:12]}"
    delta, logs_from = ledger(), len(CAPTURED_LOGS)
    with configured(stack, env={"JUHE_COMPARE_MODE": mode}, secret=json.dumps({**secrets, field: value})):
        answer = stack_post(stack, ROUTE_OF[check], request_for(people, check, marker))
    shown = {k: v for k, v in {**secrets, field: value}.items() if v != secrets.get("juhe_four_factor_key")}
    problem = assert_says_what_to_fix(answer, 502, "provider_rejected", fix, people, shown, logs_from)
    assert delta.calls() == 1 and delta.charged() == 0  # rejected, not billed, not retried
    stored = records_with(stack, marker)
    assert len(stored) == 1 and stored[0]["status"]["S"] == "error"
    assert stored[0]["verification_id"]["S"] == problem["verification_id"]


def test_redirect_host_not_allowed_names_the_setting(stack, people, ledger):
    secrets = current_secret(stack)
    url = "https://shop.example.com/done"
    for hosts in ("127.0.0.1,localhost", ""):
        logs_from = len(CAPTURED_LOGS)
        delta = ledger()
        with configured(stack, env={"ALLOWED_REDIRECT_HOSTS": hosts}):
            answer = stack_post(stack, ROUTES["faceid"], request_for(people, "faceid", "cfg", redirect_url=url))
        assert_says_what_to_fix(
            answer,
            400,
            "invalid_request",
            "add it to the AllowedRedirectHosts parameter (ALLOWED_REDIRECT_HOSTS)",
            people,
            secrets,
            logs_from,
        )
        assert url not in answer.text and delta.calls() == 0
    with configured(stack, env={"ALLOWED_REDIRECT_HOSTS": "127.0.0.1,.example.com"}):  # the fix works
        answer = stack_post(stack, ROUTES["faceid"], request_for(people, "faceid", "cfg", redirect_url=url))
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    ("env", "check", "fix"),
    [
        ({"JUHE_COMPARE_MODE": "rsa"}, "compare", "JUHE_COMPARE_MODE must be 'plain' or 'aes'"),
        ({"FACE_SCORE_THRESHOLD": "sixty"}, "compare", "FACE_SCORE_THRESHOLD must be a number"),
        ({"FACE_SCORE_THRESHOLD": "160"}, "portrait", "FACE_SCORE_THRESHOLD must be between 0 and 100"),
        ({"RETENTION_DAYS": "0"}, "faceid", "RETENTION_DAYS must be between 1 and 3650"),
        ({"PROVIDER_READ_TIMEOUT_SECONDS": "0"}, "four_factor", "PROVIDER_READ_TIMEOUT_SECONDS must be between"),
        ({"VERIFICATIONS_TABLE": None}, "compare", "VERIFICATIONS_TABLE is not set"),
        ({"VERIFICATIONS_TABLE": "idv-local-no-such-table"}, "upload", "check VERIFICATIONS_TABLE"),
        ({"IDEMPOTENCY_TABLE": None}, "compare", "IDEMPOTENCY_TABLE is not set"),
        ({"UPLOAD_BUCKET": None}, "upload", "UPLOAD_BUCKET is not set"),
        ({"DATA_KEY_ID": None}, "upload", "DATA_KEY_ID is not set"),
        ({"DATA_KEY_ID": "alias/idv-local-no-such-key"}, "upload", "check DATA_KEY_ID"),
    ],
)
def test_broken_setting(stack, people, ledger, env, check, fix):
    secrets = current_secret(stack)
    marker = f"cfg-{uuid.uuid4().hex[:12]}"
    delta, logs_from = ledger(), len(CAPTURED_LOGS)
    headers = {"Idempotency-Key": marker} if "IDEMPOTENCY_TABLE" in env else None
    with configured(stack, env=env):
        answer = stack_post(stack, ROUTE_OF[check], request_for(people, check, marker), headers)
    assert_says_what_to_fix(answer, 500, "configuration_error", fix, people, secrets, logs_from)
    assert delta.calls() == 0
    assert records_with(stack, marker) == []


def test_everything_restored(api, stack, people):
    """After the faults above, the shared stack works as before."""
    person = people.identity("match")
    answer = api.post("/v1/compare", body(person, people.selfie_jpeg(person)))
    assert answer.status_code == 200 and answer.json()["decision"] == "pass", answer.text
    assert set(current_secret(stack)) == set(FIELDS)


def stack_post(stack, path: str, payload: Any, headers: dict[str, str] | None = None):
    import requests

    return requests.post(
        stack.api_url + path, json=payload, headers={"x-api-key": stack.api_key, **(headers or {})}, timeout=60
    )
