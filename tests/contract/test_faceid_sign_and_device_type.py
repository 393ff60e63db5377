"""Contract tests: the FaceID return signature in both readings of the document, and deviceType, between
our Juhe client and the provider sandbox over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from idv import errors
from idv.http import RetryPolicy
from idv.providers.juhe import JuheClient, return_signature_form, verify_return_signature
from sandbox.providers import DEFAULT_CREDENTIALS as KEYS
from sandbox.providers import ProviderSandbox, SandboxConfig, identities
from sandbox.stack import h5

NO_SLEEP = RetryPolicy(attempts=3, sleep=lambda _s: None)
FACEID_KEY = KEYS["juhe_faceid_key"]
RETURN_URL = "https://customer.example/return"


@pytest.fixture(scope="module")
def sandbox():
    with ProviderSandbox().start() as running:
        yield running


@pytest.mark.parametrize("sign_form", ["decoded", "encoded"])
def test_faceid_return_signature_is_accepted_in_either_form(sign_form):
    """The sandbox signs md5(response + key) over the decoded JSON (default) or over the URL-encoded value
    (`faceid_sign_form="encoded"`); the callback only sees the decoded query value, as API Gateway hands
    it over, and accepts both, saying which one matched."""
    with ProviderSandbox(config=SandboxConfig(faceid_sign_form=sign_form)).start() as running:
        client = JuheClient(base_url=running.url, retry=NO_SLEEP)
        person = identities.identity("match")
        session = client.faceid_start(
            key=FACEID_KEY,
            name=person.name,
            id_number=person.id_number,
            order_id="v01CONTRACTSIGN1",
            return_url=RETURN_URL,
        )
        landing = h5.complete(requests.Session(), session.verify_url, outcome="pass")
    assert landing.startswith(RETURN_URL + "?response=")
    query = parse_qs(urlsplit(landing).query)
    response, sign = query["response"][0], query["sign"][0]
    assert return_signature_form(response, sign, FACEID_KEY) == sign_form
    assert verify_return_signature(response, sign, FACEID_KEY) is True
    assert return_signature_form(response, sign, "another-key") is None
    forged = response.replace('"passed":"T"', '"passed":"F"')
    assert forged != response and return_signature_form(forged, sign, FACEID_KEY) is None


@pytest.mark.parametrize("device_type", ["H5", "WEB"])
def test_faceid_device_types_the_strict_sandbox_accepts(sandbox, device_type):
    person = identities.identity("match")
    client = JuheClient(base_url=sandbox.url, retry=NO_SLEEP)
    session = client.faceid_start(
        key=FACEID_KEY,
        name=person.name,
        id_number=person.id_number,
        order_id="v01CONTRACTDEV01",
        return_url=RETURN_URL,
        device_type=device_type,
    )
    assert session.jh_order_id.startswith("JH")


@pytest.mark.parametrize("device_type", ["h5", "web", "Web"])
def test_faceid_lowercase_device_type_never_leaves_the_client(sandbox, device_type):
    person = identities.identity("match")
    client = JuheClient(base_url=sandbox.url, retry=NO_SLEEP)
    before = sandbox.calls("faceid_query")
    with pytest.raises(errors.InvalidRequest):
        client.faceid_start(
            key=FACEID_KEY,
            name=person.name,
            id_number=person.id_number,
            order_id="v01CONTRACTDEV02",
            return_url=RETURN_URL,
            device_type=device_type,
        )
    assert sandbox.calls("faceid_query") == before
