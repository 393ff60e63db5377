"""Apetime api/identity/portrait_verification: md5 sign, timestamp window, app_key, form and multipart."""

from __future__ import annotations

import base64
import time

import pytest

from sandbox.providers import ProviderSandbox, SandboxConfig, identity, no_face_jpeg, scenario_selfie_jpeg, selfie_jpeg
from tests.sandbox.helpers import APP_KEY, apetime_form, b64, md5, provider_ready

PATH = "/api/identity/portrait_verification"


def post(sb, http, form, files=None):
    r = http.post(sb.url + PATH, data=form, files=files, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["trace_id"].startswith("TID") and len(body["trace_id"]) == 35
    return body


def scenario_form(scenario, **kw):
    ident = identity(scenario)
    return apetime_form(ident, provider_ready(scenario_selfie_jpeg(ident)), **kw)


# scenario -> expected data (score checked separately), charge
SCENARIOS = {
    "match": ({"result": 1, "id_name": 1, "photo": 1}, 1),
    "face_mismatch": ({"result": 1, "id_name": 1, "photo": 1}, 1),
    "face_review": ({"result": 1, "id_name": 1, "photo": 1}, 1),
    "name_mismatch": ({"result": 1, "id_name": 2}, 1),
    "not_found": ({"result": 1, "id_name": 2}, 1),
    "no_face_selfie": ({"result": 1, "id_name": 1, "photo": 3}, 1),
    "no_face_reference": ({"result": 1, "id_name": 1, "photo": 2}, 1),
    "no_reference_photo": ({"result": 1, "id_name": 1, "photo": 2}, 1),
    "low_quality_selfie": ({"result": 2}, 2),
}
SCORES = {"match": (80, 100), "face_mismatch": (0, 40), "face_review": (40, 60)}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenarios(sb, http, scenario):
    data, charge = SCENARIOS[scenario]
    body = post(sb, http, scenario_form(scenario))
    assert list(body) == ["trace_id", "code", "msg", "data", "charge"]
    assert (body["code"], body["msg"], body["charge"]) == ("0000", "调用成功", charge)
    got = dict(body["data"])
    score = got.pop("score", None)
    assert got == data
    if data.get("photo") == 1:
        lo, hi = SCORES[scenario]
        assert isinstance(score, (int, float)) and lo <= score < hi
    else:
        assert score is None
    assert sb.charged("apetime", APP_KEY) == (1 if charge == 1 else 0)


def test_identity_source_failure_is_2000_not_charged(sb, http):
    body = post(sb, http, scenario_form("four_factor_115"))
    assert (body["code"], body["charge"]) == ("2000", 2) and "data" not in body


def test_multipart_selfie_file(sb, http):
    ident = identity("match")
    form = apetime_form(ident, None)
    files = {"selfie_file": ("selfie.jpg", provider_ready(selfie_jpeg(ident)), "image/jpeg")}
    body = post(sb, http, form, files)
    assert body["data"]["photo"] == 1 and body["data"]["score"] >= 80
    # multipart with the fields as parts too (what a Java client builds)
    parts = {k: (None, v) for k, v in form.items()} | files
    assert post(sb, http, None, parts)["data"]["photo"] == 1


def test_selfie_base64_wins_over_selfie_file(sb, http):
    ident = identity("match")
    form = apetime_form(ident, provider_ready(no_face_jpeg("landscape")))
    files = {"selfie_file": ("selfie.jpg", provider_ready(selfie_jpeg(ident)), "image/jpeg")}
    assert post(sb, http, form, files)["data"] == {"result": 1, "id_name": 1, "photo": 3}


def test_url_safe_base64_like_the_documents_java_sample(sb, http):
    ident = identity("match")
    form = apetime_form(ident, None)
    form["selfie_base64"] = base64.urlsafe_b64encode(provider_ready(selfie_jpeg(ident))).decode()
    assert post(sb, http, form)["data"]["photo"] == 1


def test_url_safe_base64_without_padding_is_accepted(sb, http):
    # Java's Base64.getUrlDecoder() (the decoder matching the sample's encoder) accepts it too
    ident = identity("match")
    form = apetime_form(ident, None)
    form["selfie_base64"] = base64.urlsafe_b64encode(provider_ready(selfie_jpeg(ident))).decode().rstrip("=")
    assert post(sb, http, form)["data"]["photo"] == 1


def _standard_alphabet_form():
    ident = identity("match")
    form = apetime_form(ident, None)
    form["selfie_base64"] = b64(provider_ready(selfie_jpeg(ident)))
    assert "+" in form["selfie_base64"] or "/" in form["selfie_base64"]
    return form


def test_standard_alphabet_is_refused_by_default(sb, http):
    # the document proves only the URL-safe alphabet; a getUrlDecoder() refuses '+' and '/'
    body = post(sb, http, _standard_alphabet_form())
    assert (body["code"], body["charge"]) == ("1002", 2) and "selfie_base64" in body["msg"]
    assert sb.charged() == 0


def test_standard_alphabet_is_accepted_when_configured(http):
    with ProviderSandbox(config=SandboxConfig(apetime_base64="both")) as lenient:
        assert post(lenient, http, _standard_alphabet_form())["data"]["photo"] == 1


@pytest.mark.parametrize("sign", ["签" * 32, "é" * 32, "\u00ff", "ｆ" * 32])
def test_non_ascii_sign_is_1000_not_a_server_error(sb, http, sign):
    form = scenario_form("match")
    form["sign"] = sign
    body = post(sb, http, form)  # HTTP 200 with the documented answer, not a 500
    assert (body["code"], body["msg"], body["charge"]) == ("1000", "验签失败", 2)


def test_raw_utf8_body_like_the_documents_java_sample(sb, http):
    ident = identity("minority_name")
    form = apetime_form(ident, None)
    form["selfie_base64"] = base64.urlsafe_b64encode(provider_ready(selfie_jpeg(ident))).decode()
    raw = "&".join(f"{k}={v}" for k, v in form.items()).encode("utf-8")  # not URL-encoded at all
    r = http.post(sb.url + PATH, data=raw, timeout=30)
    assert r.json()["data"]["photo"] == 1


def test_wrong_sign_is_1000(sb, http):
    form = scenario_form("match", secret="not-the-secret")
    body = post(sb, http, form)
    assert (body["code"], body["msg"], body["charge"]) == ("1000", "验签失败", 2) and "data" not in body
    tampered = scenario_form("match")
    tampered["name"] = identity("minority_name").name  # signed fields changed after signing
    assert post(sb, http, tampered)["code"] == "1000"
    assert sb.charged() == 0


def test_sign_excludes_the_selfie_fields_and_optional_fields(sb, http):
    form = scenario_form("match")
    form["extra_optional"] = "ignored"
    assert post(sb, http, form)["code"] == "0000"


@pytest.mark.parametrize("offset_s", [-330, 330, -3600])
def test_timestamp_outside_five_minutes_is_1010(sb, http, offset_s):
    stamp = int((time.time() + offset_s) * 1000)
    assert post(sb, http, scenario_form("match", timestamp_ms=stamp))["code"] == "1010"


@pytest.mark.parametrize("offset_s", [-270, 270])
def test_timestamp_inside_the_window_is_accepted(sb, http, offset_s):
    stamp = int((time.time() + offset_s) * 1000)
    assert post(sb, http, scenario_form("match", timestamp_ms=stamp))["code"] == "0000"


def test_unknown_app_key_is_1009(sb, http):
    body = post(sb, http, scenario_form("match", app_key="someone-else"))
    assert (body["code"], body["charge"]) == ("1009", 2)


@pytest.mark.parametrize("missing", ["app_key", "request_id", "id_number", "name", "timestamp", "sign"])
def test_missing_parameters_are_1002(sb, http, missing):
    form = scenario_form("match")
    del form[missing]
    assert post(sb, http, form)["code"] == "1002"


def test_other_parameter_errors_are_1002(sb, http):
    ident = identity("match")
    assert post(sb, http, apetime_form(ident, None))["code"] == "1002"  # no selfie at all
    form = scenario_form("match")
    form["selfie_base64"] = "!!!"
    assert post(sb, http, form)["code"] == "1002"
    ts = str(int(time.time() * 1000))
    bad_id = ident.id_number[:-1] + ("0" if ident.id_number[-1] != "0" else "1")
    signed = md5(APP_KEY + bad_id + ident.name + "r1" + ts + "sandbox-apetime-app-secret")
    body = post(
        sb,
        http,
        {
            **form,
            "id_number": bad_id,
            "request_id": "r1",
            "timestamp": ts,
            "sign": signed,
            "selfie_base64": form["selfie_base64"],
        },
    )
    assert body["code"] == "1002"


def test_body_not_utf8_is_1001(sb, http):
    form = scenario_form("match")
    raw = "&".join(f"{k}={v}" for k, v in form.items() if k != "name") + "&name=" + "张测一"
    r = http.post(
        sb.url + PATH, data=raw.encode("gbk"), timeout=30, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.json()["code"] == "1001"


def test_image_quality_precheck_is_result_2_not_charged(sb, http):
    ident = identity("match")
    for bad in (b"not an image at all", b"\xff\xd8\xff" + b"\x00" * 100):
        body = post(sb, http, apetime_form(ident, bad))
        assert body["data"] == {"result": 2} and body["charge"] == 2
    assert sb.charged() == 0
