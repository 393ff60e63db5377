"""Juhe verifyface/verify and verifyface/verifyEncry over real HTTP, as the document defines them."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from PIL import Image

from sandbox.providers import identity, no_face_jpeg, scenario_selfie_jpeg, selfie_jpeg
from tests.sandbox.helpers import (
    APP_KEY,
    FACEID_KEY,
    FOUR_FACTOR_KEY,
    OPENID,
    VERIFYFACE_KEY,
    b64,
    provider_ready,
    verifyface_form,
)

PLAIN = "/verifyface/verify"
AES = "/verifyface/verifyEncry"


def post(sb, http, path, form):
    r = http.post(sb.url + path, data=form, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return r.json()


def scenario_form(scenario, **kw):
    ident = identity(scenario)
    return verifyface_form(ident, provider_ready(scenario_selfie_jpeg(ident)), **kw)


# scenario -> (res, code) with the score range for res 1
SCENARIOS = {
    "match": (1, None, (80, 100)),
    "minority_name": (1, None, (80, 100)),
    "face_mismatch": (1, None, (0, 39)),
    "face_review": (1, None, (40, 59)),
    "name_mismatch": (3, None, None),
    "no_face_selfie": (2, "3004", None),
    "no_face_reference": (2, "3003", None),
    "no_reference_photo": (2, "3003", None),
    "low_quality_selfie": (2, "3005", None),
    "four_factor_105": (3, None, None),
    "liveness_risk": (1, None, (80, 100)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenarios_answer_as_documented(sb, http, scenario):
    res, code, score_range = SCENARIOS[scenario]
    body = post(sb, http, PLAIN, scenario_form(scenario))
    assert list(body) == ["reason", "result", "error_code"]
    assert body["error_code"] == 0 and body["reason"] == "成功"
    result = body["result"]
    assert result["res"] == res and result["orderid"].startswith("JH2641") and len(result["orderid"]) == 26
    if res == 1:
        assert set(result) == {"res", "score", "message", "orderid"}
        assert isinstance(result["score"], str) and result["score"].isdigit()
        assert score_range[0] <= int(result["score"]) <= score_range[1]
        assert result["message"] == "身份证号与姓名匹配，且比对成功"
    elif res == 2:
        assert set(result) == {"res", "code", "message", "desc", "orderid"}
        assert result["code"] == code and result["message"] == "身份证核查成功，但人脸比对失败"
        assert (
            result["desc"]
            == {"3003": "人脸库中的照片检测不到人脸", "3004": "用户上传的照片检测不到人脸", "3005": "人脸比对失败"}[
                code
            ]
        )
    else:
        assert set(result) == {"res", "message", "orderid"} and result["message"] == "身份证号与姓名不匹配"
    assert sb.charged("verifyface", VERIFYFACE_KEY) == 1


def test_any_other_name_for_a_registered_id_is_a_mismatch(sb, http):
    body = post(sb, http, PLAIN, scenario_form("match", name="李四测"))
    assert body["result"]["res"] == 3
    real = identity("name_mismatch").real_name
    assert post(sb, http, PLAIN, scenario_form("name_mismatch", name=real))["result"]["res"] == 1


def test_unknown_identity_is_no_record_and_not_charged(sb, http):
    body = post(sb, http, PLAIN, scenario_form("not_found"))
    assert body == {"reason": "查无记录", "result": None, "error_code": 226402}
    assert post(sb, http, PLAIN, scenario_form("four_factor_115"))["error_code"] == 226401
    assert sb.charged() == 0 and sb.calls("verifyface") == 2


@pytest.mark.parametrize(
    ("key", "code"),
    [("", 10001), ("wrong-key", 10001), (FOUR_FACTOR_KEY, 10002), (FACEID_KEY, 10002), (APP_KEY, 10001)],
)
def test_wrong_or_foreign_keys_are_refused(sb, http, key, code):
    body = post(sb, http, PLAIN, scenario_form("match", key=key))
    assert body["error_code"] == code and body["result"] is None
    assert body["reason"] == {10001: "错误的请求KEY", 10002: "该KEY无请求权限"}[code]
    assert sb.charged() == 0


def test_parameter_errors_are_226403(sb, http):
    good = scenario_form("match")
    bad_id = good["idcard"][:17] + ("0" if good["idcard"][17] != "0" else "1")
    big = io.BytesIO()
    Image.effect_noise((700, 700), 120).convert("RGB").save(big, "JPEG", quality=95)
    cases = [
        {**good, "idcard": ""},
        {k: v for k, v in good.items() if k != "realname"},
        {**good, "image": ""},
        {**good, "idcard": bad_id},
        {**good, "realname": "Bob1"},
        {**good, "image": "data:image/jpeg;base64," + good["image"]},
        {**good, "image": "@@not base64@@"},
        {**good, "image": b64(b"definitely not an image")},
        {**good, "image": b64(big.getvalue())},  # over the documented 100 K
    ]
    for form in cases:
        body = post(sb, http, PLAIN, form)
        assert body["error_code"] == 226403 and body["reason"].startswith("参数错误"), (form.keys(), body)
    assert sb.charged() == 0


def test_get_is_not_allowed(sb, http):
    r = http.get(sb.url + PLAIN, timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_no_face_in_a_real_landscape(sb, http):
    ident = identity("match")
    body = post(sb, http, PLAIN, verifyface_form(ident, provider_ready(no_face_jpeg("text"))))
    assert (body["result"]["res"], body["result"]["code"]) == (2, "3004")


# ---------------------------------------------------------------- AES (ciphertext computed with `cryptography`)


def encrypt(value: str, openid: str = OPENID) -> str:
    key = hashlib.md5(openid.encode()).hexdigest()[:16].encode()
    padder = padding.PKCS7(128).padder()
    data = padder.update(value.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - the provider's documented mode
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def aes_form(scenario, *, openid=OPENID, image=None, name=None):
    ident = identity(scenario)
    img = b64(image or provider_ready(scenario_selfie_jpeg(ident)))
    return {
        "key": VERIFYFACE_KEY,
        "idcard": encrypt(ident.id_number, openid),
        "realname": encrypt(name or ident.name, openid),
        "image": encrypt(img, openid),
    }


def test_aes_mode_decrypts_fields_with_the_openid_key(sb, http):
    body = post(sb, http, AES, aes_form("minority_name"))
    assert body["error_code"] == 0 and body["result"]["res"] == 1 and int(body["result"]["score"]) >= 80
    assert post(sb, http, AES, aes_form("face_mismatch"))["result"]["res"] == 1
    assert post(sb, http, AES, aes_form("name_mismatch"))["result"]["res"] == 3
    assert post(sb, http, AES, aes_form("no_face_selfie"))["result"]["code"] == "3004"
    assert post(sb, http, AES, aes_form("not_found"))["error_code"] == 226402
    assert sb.ledger()["charged"] == {"verifyface_aes": {VERIFYFACE_KEY: 4}}


def test_aes_garbage_or_another_openid_is_226403(sb, http):
    good = aes_form("match")
    cases = [
        {**good, "idcard": "not-encrypted"},
        {**good, "realname": identity("match").name},  # plaintext sent to the encrypted API
        {**good, "image": b64(selfie_jpeg("match"))},  # base64 image, not encrypted
        {**good, "idcard": base64.b64encode(b"0123456789abcdef0").decode()},  # not whole blocks
        aes_form("match", openid="another-openid"),
    ]
    for form in cases:
        body = post(sb, http, AES, form)
        assert body["error_code"] == 226403, body
    assert sb.charged() == 0


def test_aes_plus_signs_must_be_url_encoded(sb, http):
    form = aes_form("match")
    raw = "&".join(f"{k}={v}" for k, v in form.items())  # '+' and '/' sent raw: '+' arrives as a space
    r = http.post(
        sb.url + AES, data=raw.encode(), timeout=30, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    if "+" in form["image"] or "+" in form["idcard"]:
        assert r.json()["error_code"] == 226403
