"""Contract tests: every client of the layer against the provider sandbox over real HTTP, for every
registry scenario and every injectable fault. The expectation for each scenario comes from the
sandbox's own `expected()` table (what the provider answers), mapped here to our normalized result."""

from __future__ import annotations

import re

import pytest
import requests

from idv import errors, images
from idv.http import RetryPolicy
from idv.providers.apetime import ApetimeClient
from idv.providers.juhe import JuheClient
from sandbox.providers import DEFAULT_CREDENTIALS as KEYS
from sandbox.providers import ProviderSandbox, SandboxConfig, identities
from sandbox.stack import h5

NO_SLEEP = RetryPolicy(attempts=3, sleep=lambda _s: None)
NORMAL = [i for i in identities.IDENTITIES if not i.fault]
FAULTY = [i for i in identities.IDENTITIES if i.fault]


@pytest.fixture(scope="module")
def sandbox():
    # Fault identities stall 1 s (not 30) before dropping the connection, to keep the suite quick.
    with ProviderSandbox(config=SandboxConfig(read_timeout_fault_s=1.0)).start() as running:
        yield running


@pytest.fixture(scope="module")
def juhe(sandbox):
    return JuheClient(base_url=sandbox.url, retry=NO_SLEEP)


@pytest.fixture(scope="module")
def apetime(sandbox):
    return ApetimeClient(base_url=sandbox.url, retry=NO_SLEEP)


def selfie(person, target=images.JUHE) -> str:
    return images.prepare_image(identities.scenario_selfie_jpeg(person), target).base64()


def check_verifyface(expected: str, result) -> None:
    if expected.startswith("res 1, score >= 80"):
        assert (result.identity, result.face.result, result.decision) == ("match", "match", "pass")
    elif expected.startswith("res 1"):
        assert (result.identity, result.face.result, result.decision) == ("match", "mismatch", "fail")
    elif expected.startswith("res 2"):
        code = re.search(r"code (\d+)", expected).group(1)
        face = {"3003": "no_face_reference", "3004": "no_face_selfie", "3005": "unverified"}[code]
        assert (result.identity, result.face.result, result.decision) == ("match", face, "fail")
    elif expected == "res 3":
        assert (result.identity, result.decision) == ("mismatch", "fail")
    elif "226402" in expected:
        assert (result.identity, result.decision, result.charged) == ("not_found", "fail", False)
    else:
        raise AssertionError(f"unmapped expectation {expected!r}")
    assert result.charged is ("226402" not in expected)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "aes"])
@pytest.mark.parametrize("person", NORMAL, ids=lambda p: p.scenario)
def test_verifyface_matches_the_provider_table(juhe, sandbox, person, encrypted):
    expected = identities.expected(person)["verifyface"]
    call = lambda: juhe.verifyface(  # noqa: E731
        key=KEYS["juhe_verifyface_key"],
        name=person.name,
        id_number=person.id_number,
        image_b64=selfie(person),
        threshold=60,
        encrypted=encrypted,
        openid=KEYS["juhe_openid"],
    )
    if "226401" in expected:
        with pytest.raises(errors.ProviderUnavailable) as caught:
            call()
        assert caught.value.charged is False
        return
    check_verifyface(expected, call())


@pytest.mark.parametrize("person", NORMAL, ids=lambda p: p.scenario)
def test_four_factor_matches_the_provider_table(juhe, person):
    from idv.codes import FOUR_FACTOR_RES

    expected = identities.expected(person)["four_factor"]
    result = juhe.four_factor(
        key=KEYS["juhe_four_factor_key"],
        name=person.name,
        id_number=person.id_number,
        mobile=person.mobile,
        image_b64=selfie(person),
    )
    if "280105" in expected:
        assert (result.identity, result.mobile.result, result.decision, result.charged) == (
            "unverified",
            "unverified",
            "fail",
            False,
        )
        return
    res = int(expected.split()[1])
    assert (result.identity, result.face.result, result.mobile.result) == FOUR_FACTOR_RES[res]
    assert result.decision == ("pass" if res == 100 else "review" if res in (108, 109) else "fail")
    assert result.charged is True and result.mobile.carrier == person.carrier


@pytest.mark.parametrize("multipart", [False, True], ids=["form", "multipart"])
@pytest.mark.parametrize("person", NORMAL, ids=lambda p: p.scenario)
def test_apetime_matches_the_provider_table(apetime, person, multipart):
    expected = identities.expected(person)["apetime"]
    call = lambda: apetime.portrait(  # noqa: E731
        app_key=KEYS["apetime_app_key"],
        app_secret=KEYS["apetime_app_secret"],
        request_id="v01CONTRACT0001",
        name=person.name,
        id_number=person.id_number,
        image_b64=selfie(person, images.APETIME),
        threshold=60,
        multipart=multipart,
    )
    if "2000" in expected:
        with pytest.raises(errors.ProviderUnavailable):
            call()
        return
    result = call()
    outcomes = {
        "photo 1, score >= 80": ("match", "match", "pass", True),
        "photo 1, score < 40": ("match", "mismatch", "fail", True),
        "photo 1, score in [40, 60) (review)": ("match", "unverified", "review", True),
        "photo 3": ("match", "no_face_selfie", "fail", True),
        "photo 2": ("match", "no_reference_photo", "fail", True),
        "result 2, charge 2": ("unverified", "unverified", "fail", False),
    }
    if expected == "id_name 2":
        assert (result.identity, result.decision, result.charged) == ("mismatch", "fail", True)
        return
    assert (result.identity, result.face.result, result.decision, result.charged) == outcomes[expected]


@pytest.mark.parametrize("person", NORMAL, ids=lambda p: p.scenario)
def test_faceid_start_page_and_search_match_the_provider_table(juhe, sandbox, person):
    expected = identities.expected(person)["faceid"]
    order = f"v01CONTRACT{abs(hash(person.scenario)) % 10**8:08d}"
    session = juhe.faceid_start(
        key=KEYS["juhe_faceid_key"],
        name=person.name,
        id_number=person.id_number,
        order_id=order,
        return_url="https://customer.example/return",
    )
    assert session.jh_order_id.startswith("JH")
    assert juhe.faceid_result(key=KEYS["juhe_faceid_key"], jh_order_id=session.jh_order_id, threshold=60) is None
    live = re.search(r"live_code (\d+)", expected)
    outcome = "fail" if live else "pass"
    landing = h5.complete(
        requests.Session(), session.verify_url, outcome=outcome, live_code=live.group(1) if live else "201"
    )
    assert landing.startswith("https://customer.example/return?response=")
    result = juhe.faceid_result(key=KEYS["juhe_faceid_key"], jh_order_id=session.jh_order_id, threshold=60)
    assert result is not None and result.provider_order_id == session.jh_order_id
    assert result.decision == ("pass" if expected == "passed T" else "fail")
    if live:
        assert result.liveness.passed is False and result.liveness.code == live.group(1)
    assert "img" not in repr(result)


FAULT_ERRORS = {
    "read_timeout": errors.ProviderTimeout,
    "reset": errors.ProviderTimeout,
    "http_500": errors.ProviderUnavailable,
    "http_502": errors.ProviderUnavailable,
    "non_json": errors.ProviderUnavailable,
    "rate_limit": errors.ProviderRateLimited,
    "maintenance": errors.ProviderUnavailable,
}


@pytest.mark.parametrize("client_api", ["verifyface", "four_factor", "apetime"])
@pytest.mark.parametrize("fault", sorted(FAULT_ERRORS))
def test_faults_raise_typed_errors_and_billable_timeouts_are_sent_once(juhe, apetime, sandbox, fault, client_api):
    person = identities.identity("match")
    sandbox.reset()
    # read_timeout: the sandbox stalls 1 s and drops the connection, after the request was read.
    sandbox.set_fault(fault, api=client_api, count=None, seconds=1 if fault == "read_timeout" else None)
    try:
        with pytest.raises(FAULT_ERRORS[fault]) as caught:
            if client_api == "apetime":
                apetime.portrait(
                    app_key=KEYS["apetime_app_key"],
                    app_secret=KEYS["apetime_app_secret"],
                    request_id="v01CONTRACTFAULT",
                    name=person.name,
                    id_number=person.id_number,
                    image_b64=selfie(person, images.APETIME),
                    threshold=60,
                )
            elif client_api == "four_factor":
                juhe.four_factor(
                    key=KEYS["juhe_four_factor_key"],
                    name=person.name,
                    id_number=person.id_number,
                    mobile=person.mobile,
                    image_b64=selfie(person),
                )
            else:
                juhe.verifyface(
                    key=KEYS["juhe_verifyface_key"],
                    name=person.name,
                    id_number=person.id_number,
                    image_b64=selfie(person),
                    threshold=60,
                )
    finally:
        sandbox.clear_faults()
    error = caught.value
    calls = sandbox.calls(client_api)
    if fault in ("read_timeout", "reset"):
        assert error.charged is None and calls == 1  # may have been billed: never retried
    elif fault in ("rate_limit",) or (fault == "maintenance" and client_api != "apetime"):
        assert error.charged is False and calls == NO_SLEEP.attempts  # explicit codes: retried, then raised
    else:
        assert calls == 1
    assert sandbox.charged(client_api) == 0


@pytest.mark.parametrize("person", FAULTY, ids=lambda p: p.scenario)
def test_fault_identities_fail_cleanly_or_pass_with_latency(juhe, sandbox, person):
    sandbox.reset()
    call = lambda: juhe.verifyface(  # noqa: E731
        key=KEYS["juhe_verifyface_key"],
        name=person.name,
        id_number=person.id_number,
        image_b64=selfie(identities.identity("match")),
        threshold=60,
    )
    if person.fault == "latency":
        assert call().charged is True
        return
    with pytest.raises(errors.ProviderError):
        call()
    assert sandbox.charged("verifyface") == 0


def test_one_warm_client_reuses_one_connection(juhe, sandbox):
    person = identities.identity("match")
    image = selfie(person)
    juhe.verifyface(
        key=KEYS["juhe_verifyface_key"], name=person.name, id_number=person.id_number, image_b64=image, threshold=60
    )
    before = sandbox.connections
    for _ in range(5):
        juhe.verifyface(
            key=KEYS["juhe_verifyface_key"], name=person.name, id_number=person.id_number, image_b64=image, threshold=60
        )
    assert sandbox.connections == before
