"""Juhe: AES fields, the pure parsers (every document example), the return signature, the client's
request building and validation (with a fake session; real HTTP is in tests/integration)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from idv import aes, codes, errors, http, results
from idv.providers import juhe
from idv.providers.juhe import FaceIdSession, JuheClient, parse_faceid_payload, verify_return_signature
from idv.results import CheckResult, Face, Liveness, Mobile

ROOT = Path(__file__).resolve().parents[2]
OPENID = "JHa1b2c3d4e5f60718293a4b5c6d7e8f90"

# --------------------------------------------------------------------------------------------------
# AES (checked against the `cryptography` package, computed independently here)


def reference_encrypt(plaintext: str, openid: str) -> str:
    key = hashlib.md5(openid.encode()).hexdigest().lower()[:16].encode()
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - the provider's protocol
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def reference_decrypt(ciphertext: str, openid: str) -> str:
    key = hashlib.md5(openid.encode()).hexdigest()[:16].encode()
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    padded = dec.update(base64.b64decode(ciphertext, validate=True)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")


LONG_B64 = base64.b64encode(random.Random(7).randbytes(30_000)).decode()
AES_INPUTS = {
    "ascii_id": "11010519491231002X",
    "chinese_name": "张三丰",
    "mixed": "欧阳·娜娜 abc",
    "exact_block": "0123456789abcdef",  # 16 bytes: PKCS7 adds a whole block
    "empty": "",
    "long_base64": LONG_B64,
}


@pytest.mark.parametrize("plaintext", AES_INPUTS.values(), ids=AES_INPUTS.keys())
def test_aes_matches_independent_implementation(plaintext: str) -> None:
    ciphertext = aes.encrypt_field(plaintext, OPENID)
    assert ciphertext == reference_encrypt(plaintext, OPENID)
    assert reference_decrypt(ciphertext, OPENID) == plaintext
    assert len(base64.b64decode(ciphertext)) % 16 == 0


def test_aes_key_is_first_16_lowercase_hex_of_md5() -> None:
    assert aes.juhe_aes_key(OPENID) == hashlib.md5(OPENID.encode()).hexdigest()[:16].encode("ascii")
    assert aes.juhe_aes_key("abc") == b"900150983cd24fb0"  # md5("abc") = 900150983cd24fb0d6963f7d28e17f72


def test_aes_output_is_standard_base64_not_lowercased() -> None:
    texts = [aes.encrypt_field(f"张三{i}", OPENID) for i in range(50)]
    assert any(c.isupper() for t in texts for c in t)
    assert any(("+" in t or "/" in t) for t in texts)  # standard alphabet, not URL-safe
    assert not any(("-" in t or "_" in t) for t in texts)


def test_aes_key_derivation_is_cached() -> None:
    aes.juhe_aes_key.cache_clear()
    aes.encrypt_field("a", OPENID)
    aes.encrypt_field("b", OPENID)
    info = aes.juhe_aes_key.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_aes_rejects_empty_openid() -> None:
    with pytest.raises(ValueError):
        aes.juhe_aes_key("")


def test_importing_aes_and_clients_does_not_import_pycryptodome() -> None:
    code = (
        "import sys, idv.aes, idv.providers.juhe, idv.providers.apetime; "
        "sys.exit(1 if any(m == 'Crypto' or m.startswith('Crypto.') for m in sys.modules) else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "idv")}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


# --------------------------------------------------------------------------------------------------
# Every JSON example of the Juhe documents, parsed.
# Literal copies; fixes are only for obvious document typos and say so.

# juhe-verifyface.md 返回示例1 (plain and AES sections identical). Fix: the /*...*/ comment after "score"
# is removed (not JSON).
VERIFYFACE_EXAMPLE_1 = """{
  "reason": "成功",
  "result": {
    "res": 1,
    "score": "96",
    "message": "身份证号与姓名匹配，且比对成功",
    "orderid": "JH264117091113513280159458"
  },
  "error_code": 0
}"""
# 返回示例2. Fix: in the plain section the document's code fence splits the object after "}," and the
# `"error_code": 0` line lands in the next block; it is joined back here (the AES section has it whole).
VERIFYFACE_EXAMPLE_2 = """{
  "reason": "成功",
  "result": {
    "res": 2,
    "code": "3004",
    "message": "身份证核查成功，但人脸比对失败",
    "desc": "用户上传的照片检测不到人脸",
    "orderid": "JH264117091113492036501983"
  },
  "error_code": 0
}"""
# 返回示例3 (AES section split over two code fences; joined).
VERIFYFACE_EXAMPLE_3 = """{
  "reason": "成功",
  "result": {
    "res": 3,
    "message": "身份证号与姓名不匹配",
    "orderid": "JH264117091113492036501983"
  },
  "error_code": 0
}"""

FOUR_FACTOR_EXAMPLE_100 = """{
  "reason": "成功",
  "result": {
    "orderid": "JH801240913170041JZU80",
    "res": 100,
    "resmsg": "身份、人像核验通过，手机号核验通过",
    "score": 982.7,
    "type": "联通"
  },
  "error_code": 0
}"""
FOUR_FACTOR_EXAMPLE_101 = """{
  "reason": "成功",
  "result": {
    "orderid": "JH801240913174904FOzde",
    "res": 101,
    "resmsg": "身份、人像核验通过，手机号核验不通过",
    "score": 982.7,
    "type": "联通"
  },
  "error_code": 0
}"""
# Fix: trailing comma after "orderid" removed.
FOUR_FACTOR_EXAMPLE_280105 = """{
  "reason": "身份核验失败、手机号核验失败",
  "result": {
    "orderid": "JH801240913170041JZU80"
  },
  "error_code": 280105
}"""

FACEID_QUERY_EXAMPLE = """{
  "reason":"SUCCESS",
  "result":{
    "jh_order_id":"JH79320240513145425BLEnR",
    "verify_url":"http://m.alyms.cn/F4.bTPyEV"
  },
  "error_code":0
}"""
# The browser return's `response` value (document: response={...}); the page footer that the PDF
# export put in the middle of it ("https://www.juhe.cn/docs/api/id/793?apiid=1903") is removed.
FACEID_RETURN_RESPONSE_EXAMPLE = """{
"error_code":0,
"reason":"SUCCESS",
"result":{
"passed":"T",
"message":"身份证号与姓名匹配，且比对成功",
"jh_order_id":"JH79320240517095231mUzn9",
"detail":{
"live_passed":"T",
"live_code":"200",
"live_message":"活体检测通过",
"live_score":"91.11730",
"certify_passed":"T",
"certify_code":"200",
"certify_message":"身份证号与姓名匹配，且比对成功",
"certify_res":"1",
"certify_score":"87"
}
}
}"""
# faceid/search example. Fix: the `img` URL is broken over two lines by the document's layout; joined.
FACEID_SEARCH_EXAMPLE = """{
  "reason": "SUCCESS",
  "result": {
    "passed": "T",
    "message": "身份证号与姓名匹配，且比对成功",
    "jh_order_id": "JH79320240517095231mUzn9",
    "detail": {
      "live_passed": "T",
      "live_code": "200",
      "live_message": "活体检测通过",
      "live_score": "91.11730",
      "certify_passed": "T",
      "certify_code": "200",
      "certify_message": "身份证号与姓名匹配，且比对成功",
      "certify_res": "1",
      "certify_score": "87",
      "img":
"https://cn-shanghai-aliyun-cloudauth-1811331075658188.oss-cn-shanghai.aliyuncs.com/verify/1811331075658188/sha4062a2a53d9fe9daa83b918d1ace1_0.jpeg?......."
    }
  },
  "error_code": 0
}"""


def test_verifyface_example_1_pass() -> None:
    result = juhe.parse_verifyface(json.loads(VERIFYFACE_EXAMPLE_1), 60)
    assert result == CheckResult(
        check="compare",
        provider="juhe",
        decision="pass",
        identity="match",
        reasons=(),
        face=Face("match", score=96.0, provider_score="96", threshold=60.0),
        charged=True,
        provider_order_id="JH264117091113513280159458",
        extra={"res": 1},
    )


def test_verifyface_example_1_below_a_stricter_threshold_fails() -> None:
    result = juhe.parse_verifyface(json.loads(VERIFYFACE_EXAMPLE_1), 97)
    assert (result.decision, result.identity, result.face) == (
        "fail",
        "match",
        Face("mismatch", score=96.0, provider_score="96", threshold=97.0),
    )
    assert result.reasons == ("face_mismatch",)
    assert result.charged is True


def test_verifyface_example_2_no_face_in_selfie() -> None:
    result = juhe.parse_verifyface(json.loads(VERIFYFACE_EXAMPLE_2), 60)
    assert (result.decision, result.identity) == ("fail", "match")
    assert result.face == Face("no_face_selfie", threshold=60.0)
    assert result.reasons == ("no_face_selfie",)
    assert (result.charged, result.provider_order_id) == (True, "JH264117091113492036501983")
    assert result.extra == {"res": 2, "code": "3004"}


def test_verifyface_example_3_identity_mismatch() -> None:
    result = juhe.parse_verifyface(json.loads(VERIFYFACE_EXAMPLE_3), 60)
    assert (result.decision, result.identity, result.face.result) == ("fail", "mismatch", "unverified")
    assert result.reasons == ("identity_mismatch", "face_unverified")
    assert result.charged is True


@pytest.mark.parametrize(
    ("sub", "face"), [*codes.VERIFYFACE_FACE_CODES.items(), ("3999", "unverified"), (None, "unverified")]
)
def test_verifyface_res2_subcodes(sub: str | None, face: str) -> None:
    body = {"error_code": 0, "result": {"res": 2, "code": sub, "orderid": "JH1"}}
    result = juhe.parse_verifyface(body, 60)
    assert (result.decision, result.identity, result.face.result) == ("fail", "match", face)


@pytest.mark.parametrize(
    ("score", "decision"), [("60", "pass"), ("59.99", "fail"), (60, "pass"), ("100", "pass"), ("0", "fail")]
)
def test_verifyface_threshold_boundary(score: object, decision: str) -> None:
    result = juhe.parse_verifyface({"error_code": 0, "result": {"res": 1, "score": score}}, 60)
    assert result.decision == decision
    assert result.face.score == float(score)  # type: ignore[arg-type]


def test_verifyface_226402_is_identity_not_found_not_charged() -> None:
    result = juhe.parse_verifyface({"reason": "查无记录", "result": None, "error_code": 226402}, 60)
    assert (result.decision, result.identity, result.charged) == ("fail", "not_found", False)
    assert result.reasons == ("identity_not_found", "face_unverified")


@pytest.mark.parametrize(
    ("code", "cls", "retry"),
    [
        (226401, errors.ProviderUnavailable, False),
        (226403, errors.ProviderRejected, False),
        (226404, errors.ProviderUnavailable, False),
        (10001, errors.ProviderRejected, False),
        (10011, errors.ProviderRateLimited, True),
        (10020, errors.ProviderUnavailable, True),
        (123456, errors.ProviderUnavailable, False),
    ],
)
def test_verifyface_error_codes_raise(code: int, cls: type[errors.ProviderError], retry: bool) -> None:
    with pytest.raises(cls) as info:
        juhe.parse_verifyface({"reason": "x", "result": None, "error_code": code}, 60)
    exc = info.value
    assert type(exc) is cls
    assert (exc.provider, exc.provider_code, exc.charged, exc.auto_retry) == ("juhe", str(code), False, retry)


MALFORMED_VERIFYFACE = {
    "not_an_object": ["error_code", 0],
    "no_error_code": {"result": {"res": 1, "score": "90"}},
    "error_code_text": {"error_code": "zero", "result": {}},
    "error_code_bool": {"error_code": False, "result": {"res": 1, "score": "90"}},
    "no_result": {"error_code": 0},
    "result_is_list": {"error_code": 0, "result": [1]},
    "res_missing": {"error_code": 0, "result": {"score": "90"}},
    "res_unknown": {"error_code": 0, "result": {"res": 4}},
    "res_bool": {"error_code": 0, "result": {"res": True, "score": "90"}},
    "score_missing": {"error_code": 0, "result": {"res": 1}},
    "score_text": {"error_code": 0, "result": {"res": 1, "score": "abc"}},
    "score_nan": {"error_code": 0, "result": {"res": 1, "score": "NaN"}},
    "score_object": {"error_code": 0, "result": {"res": 1, "score": {"v": 1}}},
}


@pytest.mark.parametrize("body", MALFORMED_VERIFYFACE.values(), ids=MALFORMED_VERIFYFACE.keys())
def test_verifyface_malformed_is_unavailable(body: Any) -> None:
    with pytest.raises(errors.ProviderUnavailable) as info:
        juhe.parse_verifyface(body, 60)
    assert "malformed" in info.value.detail
    assert info.value.provider == "juhe"
    # billed exactly when the body says error_code 0; unknown when it does not say
    expected = (
        True if isinstance(body, dict) and body.get("error_code") == 0 and body.get("error_code") is not False else None
    )
    assert info.value.charged is expected


# --- four-factor -----------------------------------------------------------------------------------


def test_four_factor_example_100() -> None:
    result = juhe.parse_four_factor(json.loads(FOUR_FACTOR_EXAMPLE_100))
    assert result == CheckResult(
        check="four_factor",
        provider="juhe",
        decision="pass",
        identity="match",
        reasons=(),
        face=Face("match", score=98.27, provider_score="982.7", threshold=None),
        mobile=Mobile("match", carrier="联通"),
        charged=True,
        provider_order_id="JH801240913170041JZU80",
        extra={"res": 100},
    )


def test_four_factor_example_101() -> None:
    result = juhe.parse_four_factor(json.loads(FOUR_FACTOR_EXAMPLE_101))
    assert (result.decision, result.identity, result.face.result, result.mobile) == (
        "fail",
        "match",
        "match",
        Mobile("mismatch", carrier="联通"),
    )
    assert result.reasons == ("mobile_mismatch",)
    assert result.provider_order_id == "JH801240913174904FOzde"


def test_four_factor_example_280105_unverified_not_charged() -> None:
    result = juhe.parse_four_factor(json.loads(FOUR_FACTOR_EXAMPLE_280105))
    assert result == CheckResult(
        check="four_factor",
        provider="juhe",
        decision="fail",
        identity="unverified",
        reasons=("identity_unverified", "face_unverified", "mobile_unverified"),
        face=Face("unverified"),
        mobile=Mobile("unverified"),
        charged=False,
        provider_order_id="JH801240913170041JZU80",
        extra={"error_code": "280105"},
    )


# Independent of idv.codes: written from the document's `res` sentences (see test_codes for the wording).
FOUR_FACTOR_EXPECTED = {
    100: ("match", "match", "match", "pass"),
    101: ("match", "match", "mismatch", "fail"),
    102: ("match", "mismatch", "match", "fail"),
    103: ("match", "mismatch", "mismatch", "fail"),
    104: ("match", "unverified", "match", "fail"),
    105: ("mismatch", "unverified", "match", "fail"),
    106: ("match", "unverified", "mismatch", "fail"),
    107: ("mismatch", "unverified", "mismatch", "fail"),
    108: ("match", "match", "unverified", "review"),
    109: ("match", "match", "no_record", "review"),
    110: ("match", "mismatch", "unverified", "fail"),
    111: ("match", "mismatch", "no_record", "fail"),
    112: ("match", "unverified", "unverified", "fail"),
    113: ("match", "unverified", "no_record", "fail"),
    114: ("mismatch", "unverified", "unverified", "fail"),
    115: ("unverified", "unverified", "match", "fail"),
    116: ("unverified", "unverified", "mismatch", "fail"),
}


@pytest.mark.parametrize(("res", "expected"), sorted(FOUR_FACTOR_EXPECTED.items()))
def test_four_factor_every_res(res: int, expected: tuple[str, str, str, str]) -> None:
    body = {"error_code": 0, "result": {"orderid": "JH9", "res": res, "score": 512.0, "type": "移动"}}
    result = juhe.parse_four_factor(body)
    assert (result.identity, result.face.result, result.mobile.result, result.decision) == expected
    assert result.charged is True and result.mobile.carrier == "移动"
    assert result.face.threshold is None
    assert result.face.score == (51.2 if result.face.result in ("match", "mismatch") else None)
    assert (result.decision == "pass") == (result.reasons == ())


@pytest.mark.parametrize(("raw", "score"), [(982.7, 98.27), ("982.7", 98.27), (85.0, 8.5), (1000, 100.0), (0, 0.0)])
def test_four_factor_score_is_on_a_1000_scale(raw: object, score: float) -> None:
    result = juhe.parse_four_factor({"error_code": 0, "result": {"res": 100, "score": raw}})
    assert result.face.score == score
    assert result.face.provider_score == str(raw)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (280101, errors.ProviderRejected),
        (280102, errors.InvalidIdNumber),
        (280103, errors.InvalidMobile),
        (280104, errors.InvalidName),
        (10012, errors.ProviderRateLimited),
    ],
)
def test_four_factor_error_codes(code: int, cls: type[errors.IdvError]) -> None:
    with pytest.raises(cls) as info:
        juhe.parse_four_factor({"error_code": code, "reason": "x", "result": None})
    assert type(info.value) is cls
    problem = info.value.to_problem()
    assert problem["provider_code"] == str(code) and problem["provider"] == "juhe"


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": 0},
        {"error_code": 0, "result": {"res": 117, "score": 1}},
        {"error_code": 0, "result": {"res": 99}},
        {"error_code": 0, "result": {"res": "abc"}},
        {"error_code": 0, "result": {"res": 100, "score": "high"}},
        {"error_code": 0, "result": {"res": 100, "score": [1]}},
    ],
)
def test_four_factor_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(errors.ProviderUnavailable, match="malformed") as info:
        juhe.parse_four_factor(body)
    assert info.value.charged is True


def test_four_factor_missing_carrier_and_score() -> None:
    result = juhe.parse_four_factor({"error_code": 0, "result": {"res": 100}})
    assert result.mobile == Mobile("match", carrier=None)
    assert result.face == Face("match", score=None, provider_score=None, threshold=None)


# --- faceid ----------------------------------------------------------------------------------------


def test_faceid_query_example() -> None:
    assert juhe.parse_faceid_start(json.loads(FACEID_QUERY_EXAMPLE)) == FaceIdSession(
        jh_order_id="JH79320240513145425BLEnR", verify_url="http://m.alyms.cn/F4.bTPyEV"
    )


EXPECTED_FACEID_PASS = CheckResult(
    check="faceid",
    provider="juhe",
    decision="pass",
    identity="match",
    reasons=(),
    face=Face("match", score=87.0, provider_score="87", threshold=60.0),
    liveness=Liveness(passed=True, code="200", score=91.1173),
    charged=True,
    provider_order_id="JH79320240517095231mUzn9",
    extra={"passed": "T", "certify_code": "200", "live_code": "200"},
)


def test_faceid_return_response_example() -> None:
    assert parse_faceid_payload(json.loads(FACEID_RETURN_RESPONSE_EXAMPLE), 60) == EXPECTED_FACEID_PASS


def test_faceid_search_example_and_img_is_not_kept() -> None:
    result = parse_faceid_payload(json.loads(FACEID_SEARCH_EXAMPLE), 60)
    assert result == EXPECTED_FACEID_PASS
    assert "aliyuncs" not in repr(result) and "img" not in json.dumps(result.to_dict(), ensure_ascii=False)
    assert "aliyuncs" not in repr(result.extra)


def _faceid(passed="T", live_passed="T", live_code="200", certify_passed="T", certify_code="200", score="87", **more):
    detail = {
        "live_passed": live_passed,
        "live_code": live_code,
        "live_score": "91.1",
        "certify_passed": certify_passed,
        "certify_code": certify_code,
        "certify_score": score,
        **more,
    }
    return {"error_code": 0, "reason": "SUCCESS", "result": {"passed": passed, "jh_order_id": "JH1", "detail": detail}}


@pytest.mark.parametrize(
    ("live_code", "reason"),
    [(code, reason) for code, reason in codes.FACEID_LIVENESS_REASONS.items() if reason] + [("299", None)],
)
def test_faceid_liveness_failure_reasons(live_code: str, reason: str | None) -> None:
    result = parse_faceid_payload(_faceid(passed="F", live_passed="F", live_code=live_code), 60)
    assert result is not None
    assert result.decision == "fail"
    assert result.liveness == Liveness(passed=False, code=live_code, score=91.1)
    assert result.reasons == (("liveness_failed", reason) if reason else ("liveness_failed",))
    assert result.identity == "match" and result.face.result == "match"


@pytest.mark.parametrize(("certify_code", "identity", "face"), [(k, *v) for k, v in codes.FACEID_CERTIFY.items()])
def test_faceid_certify_codes(certify_code: str, identity: str, face: str) -> None:
    passed = "T" if certify_code == "200" else "F"
    result = parse_faceid_payload(_faceid(passed=passed, certify_passed=passed, certify_code=certify_code), 60)
    assert result is not None
    assert (result.identity, result.face.result) == (identity, face)
    assert result.decision == ("pass" if certify_code == "200" else "fail")


def test_faceid_score_below_requested_threshold_is_a_mismatch_even_if_juhe_passed() -> None:
    result = parse_faceid_payload(_faceid(score="65"), 70)
    assert result is not None
    assert (result.decision, result.face.result, result.reasons) == ("fail", "mismatch", ("face_mismatch",))


def test_faceid_requires_all_three_t() -> None:
    for flags in ({"passed": "F"}, {"live_passed": "F"}, {"certify_passed": "F"}):
        result = parse_faceid_payload(_faceid(**flags), 60)
        assert result is not None and result.decision == "fail" and result.reasons


def test_faceid_passed_f_alone_gets_a_reason() -> None:
    result = parse_faceid_payload(_faceid(passed="F"), 60)
    assert result is not None and result.reasons == ("faceid_not_passed",)


@pytest.mark.parametrize("code", [279306, 279307])
def test_faceid_pending_is_none(code: int) -> None:
    assert parse_faceid_payload({"error_code": code, "reason": "未完成", "result": None}, 60) is None


def test_faceid_279305_is_liveness_failed_outcome() -> None:
    result = parse_faceid_payload({"error_code": 279305, "reason": "活体检测异常", "result": None}, 60)
    assert result is not None
    assert (result.decision, result.identity, result.charged) == ("fail", "unverified", False)
    assert result.liveness == Liveness(passed=False, code=None, score=None)
    assert "liveness_failed" in result.reasons


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (279301, errors.ProviderRejected),
        (279302, errors.NotFound),
        (279303, errors.ProviderUnavailable),
        (279304, errors.ProviderUnavailable),
    ],
)
def test_faceid_error_codes(code: int, cls: type[errors.IdvError]) -> None:
    with pytest.raises(cls):
        parse_faceid_payload({"error_code": code, "reason": "x"}, 60)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("result"),
        lambda b: b["result"].pop("detail"),
        lambda b: b["result"].pop("passed"),
        lambda b: b["result"]["detail"].update(live_passed="Y"),
        lambda b: b["result"]["detail"].update(certify_code="299"),
        lambda b: b["result"]["detail"].update(certify_score="eighty"),
        lambda b: b["result"]["detail"].update(live_score="high"),
    ],
)
def test_faceid_malformed(mutate: Any) -> None:
    body = _faceid()
    mutate(body)
    with pytest.raises(errors.ProviderUnavailable, match="malformed"):
        parse_faceid_payload(body, 60)


ODD_FACEID_ANSWERS = {
    "passed_lowercase": lambda b: b["result"].update(passed="t"),
    "passed_bool": lambda b: b["result"].update(passed=True),
    "passed_padded": lambda b: b["result"].update(passed=" T"),
    "passed_list": lambda b: b["result"].update(passed=["T"]),
    "passed_missing": lambda b: b["result"].pop("passed"),
    "live_passed_missing": lambda b: b["result"]["detail"].pop("live_passed"),
    "certify_passed_missing": lambda b: b["result"]["detail"].pop("certify_passed"),
    "certify_passed_null": lambda b: b["result"]["detail"].update(certify_passed=None),
    "certify_code_missing": lambda b: b["result"]["detail"].pop("certify_code"),
    "certify_code_float": lambda b: b["result"]["detail"].update(certify_code=200.0),
    "certify_code_object": lambda b: b["result"]["detail"].update(certify_code={"v": "200"}),
    "detail_list": lambda b: b["result"].update(detail=[]),
    "result_text": lambda b: b.update(result="T"),
    "certify_score_huge_int": lambda b: b["result"]["detail"].update(certify_score=10**400),
    "certify_score_underflow": lambda b: b["result"]["detail"].update(certify_score="1e-200"),
    "certify_score_overflow": lambda b: b["result"]["detail"].update(certify_score="1e999"),
    "certify_score_nan": lambda b: b["result"]["detail"].update(certify_score=float("nan")),
    "live_score_huge_int": lambda b: b["result"]["detail"].update(live_score=10**400),
    "live_score_underflow_text": lambda b: b["result"]["detail"].update(live_score="1e-200"),
    "live_score_underflow_float": lambda b: b["result"]["detail"].update(live_score=1e-200),
    "live_score_big_float": lambda b: b["result"]["detail"].update(live_score=1e308),
    "live_score_too_many_digits": lambda b: b["result"]["detail"].update(live_score="91." + "1" * 40),
}


@pytest.mark.parametrize("mutate", ODD_FACEID_ANSWERS.values(), ids=ODD_FACEID_ANSWERS.keys())
def test_faceid_odd_answers_are_typed_malformed_errors(mutate: Any) -> None:
    """An answer the reconciler cannot use is ProviderAnswerMalformed (a ProviderUnavailable), never a
    KeyError / ValueError / OverflowError, and never a result that fails later at storage."""
    body = _faceid()
    mutate(body)
    with pytest.raises(errors.ProviderAnswerMalformed, match="malformed") as info:
        parse_faceid_payload(body, 60)
    assert isinstance(info.value, errors.ProviderUnavailable)
    assert (info.value.provider, info.value.charged) == ("juhe", True)


def test_faceid_result_client_raises_typed_error_for_an_odd_search_answer() -> None:
    body = _faceid()
    body["result"]["detail"]["live_score"] = 10**400
    c, _ = client(body)
    with pytest.raises(errors.ProviderAnswerMalformed) as info:
        c.faceid_result(key="k", jh_order_id="JH1", threshold=60)
    assert info.value.provider_order_id == "JH1"


def _numbers(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.mark.parametrize("live_score", ["1E-130", "91.11730", 0, "9.99999999999999E+125"])
def test_faceid_numbers_in_a_result_are_numbers_dynamodb_can_hold(live_score: Any) -> None:
    from boto3.dynamodb.types import TypeSerializer

    body = _faceid(score="59.996")
    body["result"]["detail"]["live_score"] = live_score
    result = parse_faceid_payload(body, 60)
    assert result is not None
    for number in _numbers(result.to_dict()):  # stored as Decimal(repr(float)), as the records do
        stored = Decimal(repr(number))
        TypeSerializer().serialize(stored)
        assert stored == 0 or results.DYNAMO_MIN <= abs(stored) <= results.DYNAMO_MAX


def test_faceid_live_score_that_rounds_past_the_dynamodb_maximum_is_malformed() -> None:
    body = _faceid()
    body["result"]["detail"]["live_score"] = "9.9999999999999999999999999999999999999E+125"  # float: 1e126
    with pytest.raises(errors.ProviderAnswerMalformed):
        parse_faceid_payload(body, 60)


def test_faceid_certify_score_just_under_the_threshold_is_a_mismatch() -> None:
    result = parse_faceid_payload(_faceid(score="59.996"), 60)
    assert result is not None
    assert (result.decision, result.face.result, result.face.score) == ("fail", "mismatch", 59.99)
    assert result.face.provider_score == "59.996"


@pytest.mark.parametrize(
    ("score", "result_face"), [("59.996", "mismatch"), ("59.9999999999", "mismatch"), ("60", "match")]
)
def test_verifyface_compares_the_exact_score(score: str, result_face: str) -> None:
    result = juhe.parse_verifyface({"error_code": 0, "result": {"res": 1, "score": score, "orderid": "JH1"}}, 60)
    assert result.face.result == result_face
    assert (result.face.score >= 60) is (result_face == "match")


@pytest.mark.parametrize("score", [10**400, "1e-200", 1e-200, "1e999", 1e300])
def test_verifyface_unstorable_score_is_malformed(score: Any) -> None:
    with pytest.raises(errors.ProviderAnswerMalformed) as info:
        juhe.parse_verifyface({"error_code": 0, "result": {"res": 1, "score": score, "orderid": "JH1"}}, 60)
    assert (info.value.charged, info.value.provider_order_id) == (True, "JH1")


@pytest.mark.parametrize("score", [10**400, "1e-200", 1e-200, "1e999", 1e300])
def test_four_factor_unstorable_score_is_malformed(score: Any) -> None:
    body = {"error_code": 0, "result": {"res": 100, "score": score, "type": "联通", "orderid": "JH1"}}
    with pytest.raises(errors.ProviderAnswerMalformed) as info:
        juhe.parse_four_factor(body)
    assert (info.value.charged, info.value.provider_order_id) == (True, "JH1")


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": 0},
        {"error_code": 0, "result": {"verify_url": "https://x"}},
        {"error_code": 0, "result": {"jh_order_id": "JH1"}},
        {"error_code": 0, "result": {"jh_order_id": "JH1", "verify_url": "javascript:alert(1)"}},
    ],
)
def test_faceid_start_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(errors.ProviderUnavailable, match="malformed"):
        juhe.parse_faceid_start(body)


def test_faceid_start_treats_every_nonzero_code_as_error() -> None:
    with pytest.raises(errors.ProviderUnavailable):
        juhe.parse_faceid_start({"error_code": 279306})
    assert juhe.classifier("faceid", bodies=False)({"error_code": 279306}) is not None


# --- classifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "code", "expect"),
    [
        ("verifyface", 0, None),
        ("verifyface", 226402, None),
        ("four_factor", 280105, None),
        ("faceid", 279305, None),
        ("faceid", 279306, None),
        ("faceid", 279307, None),
        ("verifyface", 10011, errors.ProviderRateLimited),
        ("four_factor", 280102, errors.InvalidIdNumber),
        ("faceid", 279302, errors.NotFound),
        ("verifyface", 280105, errors.ProviderUnavailable),  # another API's outcome is not an outcome here
    ],
)
def test_classifier(api: str, code: int, expect: type | None) -> None:
    problem = juhe.classifier(api)({"error_code": code})
    assert (problem is None) if expect is None else type(problem) is expect


def test_classifier_malformed_body_is_an_error_not_an_exception() -> None:
    problem = juhe.classifier("verifyface")({"reason": "no code"})
    assert isinstance(problem, errors.ProviderUnavailable) and problem.charged is None


# --------------------------------------------------------------------------------------------------
# Browser return signature

RESPONSE = FACEID_RETURN_RESPONSE_EXAMPLE
KEY = "3c9a6f1d2b8e4a7c9d0e1f2a3b4c5d6e"
GOOD_SIGN = hashlib.md5((RESPONSE + KEY).encode("utf-8")).hexdigest()


def test_signature_good() -> None:
    assert verify_return_signature(RESPONSE, GOOD_SIGN, KEY) is True


def test_signature_uppercase_hex() -> None:
    assert verify_return_signature(RESPONSE, GOOD_SIGN.upper(), KEY) is True


def test_signature_tampered_response() -> None:
    tampered = RESPONSE.replace('"passed":"T"', '"passed":"F"', 1)
    assert tampered != RESPONSE
    assert verify_return_signature(tampered, GOOD_SIGN, KEY) is False


def test_signature_wrong_key() -> None:
    assert verify_return_signature(RESPONSE, GOOD_SIGN, KEY + "x") is False
    assert verify_return_signature(RESPONSE, GOOD_SIGN, "") is False


@pytest.mark.parametrize(
    ("response", "sign", "key"),
    [
        (None, GOOD_SIGN, KEY),
        (RESPONSE.encode(), GOOD_SIGN, KEY),
        (RESPONSE, None, KEY),
        (RESPONSE, GOOD_SIGN.encode(), KEY),
        (RESPONSE, ["x"], KEY),
        (RESPONSE, GOOD_SIGN, None),
        (RESPONSE, GOOD_SIGN, 123),
        ({"a": 1}, GOOD_SIGN, KEY),
    ],
)
def test_signature_non_strings(response: Any, sign: Any, key: Any) -> None:
    assert verify_return_signature(response, sign, key) is False


@pytest.mark.parametrize("sign", ["", GOOD_SIGN[:-1], GOOD_SIGN + "0", " " + GOOD_SIGN, "张" * 32, "g" * 32])
def test_signature_malformed_sign(sign: str) -> None:
    assert verify_return_signature(RESPONSE, sign, KEY) is False


# A response whose encodings differ: quote(safe='') writes a space as %20, quote_plus as '+'.
SPACED = (
    '{"error_code": 0, "reason": "SUCCESS", "result": {"passed": "T", "jh_order_id": "JH1", "message": "比对 成功/ok"}}'
)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    ("signed_over", "form"),
    [
        (SPACED, "decoded"),
        (quote(SPACED, safe=""), "encoded"),
        (quote_plus(SPACED), "encoded"),
    ],
    ids=["decoded", "quote", "quote_plus"],
)
def test_return_signature_form(signed_over: str, form: str) -> None:
    assert quote(SPACED, safe="") != quote_plus(SPACED)
    sign = _md5(signed_over + KEY)
    assert juhe.return_signature_form(SPACED, sign, KEY) == form
    assert juhe.return_signature_form(SPACED, sign.upper(), KEY) == form
    assert verify_return_signature(SPACED, sign, KEY) is True  # existing call sites accept both forms
    assert juhe.return_signature_form(SPACED, sign, KEY + "x") is None  # every form needs the key
    assert juhe.return_signature_form(SPACED, sign, "") is None
    tampered = SPACED.replace('"T"', '"F"')
    assert juhe.return_signature_form(tampered, sign, KEY) is None


def test_return_signature_form_with_the_raw_encoded_value() -> None:
    # a notify body or rawQueryString carries the value as it arrived; any percent-encoding then works
    raw = quote(SPACED, safe="{}:,").replace("%E6", "%e6")
    sign = _md5(raw + KEY)
    assert juhe.return_signature_form(SPACED, sign, KEY) is None
    assert juhe.return_signature_form(SPACED, sign, KEY, encoded=raw) == "encoded"
    assert juhe.return_signature_form(SPACED, _md5(SPACED + KEY), KEY, encoded=raw) == "decoded"
    assert juhe.return_signature_form(SPACED, sign, KEY, encoded=123) is None  # type: ignore[arg-type]


def test_return_signature_form_refuses_what_verify_refuses() -> None:
    assert juhe.return_signature_form(RESPONSE, GOOD_SIGN, KEY) == "decoded"
    for response, sign, key in [(None, GOOD_SIGN, KEY), (RESPONSE, "张" * 32, KEY), (RESPONSE, GOOD_SIGN[:-1], KEY)]:
        assert juhe.return_signature_form(response, sign, key) is None  # type: ignore[arg-type]


def test_count_signature_form_metric() -> None:
    from idv import observability

    emitted: list[tuple[str, dict[str, str]]] = []
    remove = observability.add_metric_listener(lambda name, dims: emitted.append((name, dims)))
    try:
        observability.count_signature_form("decoded")
        observability.count_signature_form("encoded")
    finally:
        remove()
    assert emitted == [("CallbackSignatures", {"form": "decoded"}), ("CallbackSignatures", {"form": "encoded"})]
    with pytest.raises(ValueError):
        observability.count_signature_form("forged")


# --------------------------------------------------------------------------------------------------
# Client (fake session: request building, validation, configuration)


@dataclass
class FakeResponse:
    status_code: int
    content: bytes


@dataclass
class FakeSession:
    bodies: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def post(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append({"url": url, **kwargs})
        body = self.bodies.pop(0)
        return FakeResponse(200, json.dumps(body, ensure_ascii=False).encode())


def client(*bodies: Any, **kwargs: Any) -> tuple[JuheClient, FakeSession]:
    session = FakeSession(list(bodies))
    return JuheClient(base_url="http://juhe.test/", session=session, retry=http.NO_RETRY, **kwargs), session  # type: ignore[arg-type]


def test_base_url_from_env_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUHE_BASE_URL", "http://sandbox:8080/")
    c = JuheClient(session=FakeSession())  # type: ignore[arg-type]
    monkeypatch.setenv("JUHE_BASE_URL", "http://elsewhere")
    assert c.base_url == "http://sandbox:8080"
    monkeypatch.delenv("JUHE_BASE_URL")
    assert JuheClient(session=FakeSession()).base_url == "https://apis.juhe.cn"  # type: ignore[arg-type]


def test_default_session_is_the_shared_factory() -> None:
    c = JuheClient()
    assert c.session.adapters["https://"].max_retries.total == 0
    assert c.session.headers["User-Agent"] == http.USER_AGENT


def test_read_timeouts_per_api_and_configurable() -> None:
    c, session = client(
        json.loads(VERIFYFACE_EXAMPLE_1), json.loads(FACEID_QUERY_EXAMPLE), read_timeouts={"verifyface": 3}
    )
    assert c.read_timeouts == {"verifyface": 3, "four_factor": 10.0, "faceid_query": 5.0, "faceid_search": 5.0}
    c.verifyface(key="k", name="张三", id_number="1", image_b64="QQ==", threshold=60)
    c.faceid_start(key="k", name="张三", id_number="1", order_id="v01ABCDEFGH", return_url="https://r")
    assert [call["timeout"] for call in session.calls] == [(http.CONNECT_TIMEOUT, 3), (http.CONNECT_TIMEOUT, 5.0)]
    with pytest.raises(ValueError):
        JuheClient(session=FakeSession(), read_timeouts={"verify": 1})  # type: ignore[arg-type]


def test_verifyface_plain_request() -> None:
    c, session = client(json.loads(VERIFYFACE_EXAMPLE_1))
    c.verifyface(key="k1", name="张三", id_number="11010519491231002X", image_b64="/9j/4A==", threshold=60)
    assert session.calls[0]["url"] == "http://juhe.test/verifyface/verify"
    assert session.calls[0]["data"] == {
        "key": "k1",
        "idcard": "11010519491231002X",
        "realname": "张三",
        "image": "/9j/4A==",
    }


def test_verifyface_encrypted_request() -> None:
    c, session = client(json.loads(VERIFYFACE_EXAMPLE_1))
    c.verifyface(
        key="k1",
        name="张三",
        id_number="11010519491231002X",
        image_b64="/9j/4A==",
        threshold=60,
        encrypted=True,
        openid=OPENID,
    )
    call = session.calls[0]
    assert call["url"] == "http://juhe.test/verifyface/verifyEncry"
    assert call["data"]["key"] == "k1"
    assert {k: reference_decrypt(v, OPENID) for k, v in call["data"].items() if k != "key"} == {
        "idcard": "11010519491231002X",
        "realname": "张三",
        "image": "/9j/4A==",
    }


def test_verifyface_encrypted_needs_openid() -> None:
    c, session = client()
    with pytest.raises(errors.ConfigurationError):
        c.verifyface(key="k", name="n", id_number="i", image_b64="QQ==", threshold=60, encrypted=True)
    assert session.calls == []


@pytest.mark.parametrize("threshold", [-1, 100.5, "60", None, True, float("nan")])
def test_threshold_validated(threshold: Any) -> None:
    c, session = client()
    with pytest.raises(errors.InvalidRequest):
        c.verifyface(key="k", name="n", id_number="i", image_b64="QQ==", threshold=threshold)
    assert session.calls == []


def test_four_factor_request() -> None:
    c, session = client(json.loads(FOUR_FACTOR_EXAMPLE_100))
    result = c.four_factor(key="k2", name="李四", id_number="110", mobile="13800000000", image_b64="QQ==")
    assert result.decision == "pass"
    assert session.calls[0]["url"] == "http://juhe.test/verifyface_mobile/query"
    assert session.calls[0]["data"] == {
        "key": "k2",
        "realname": "李四",
        "idcard": "110",
        "mobile": "13800000000",
        "image": "QQ==",
    }


def test_faceid_start_request() -> None:
    c, session = client(json.loads(FACEID_QUERY_EXAMPLE), json.loads(FACEID_QUERY_EXAMPLE))
    c.faceid_start(
        key="k3",
        name="王五",
        id_number="110",
        order_id="v01ABCDEFGH",
        return_url="https://a/cb",
        notify_url="https://a/n",
        model=3,
        device_type="WEB",
    )
    assert session.calls[0]["data"] == {
        "key": "k3",
        "certName": "王五",
        "certNo": "110",
        "orderId": "v01ABCDEFGH",
        "model": "3",
        "returnUrl": "https://a/cb",
        "notifyUrl": "https://a/n",
        "deviceType": "WEB",
    }
    c.faceid_start(key="k3", name="王五", id_number="110", order_id="v01ABCDEFGH", return_url="https://a/cb")
    assert "notifyUrl" not in session.calls[1]["data"]
    assert (session.calls[1]["data"]["model"], session.calls[1]["data"]["deviceType"]) == ("1", "H5")


@pytest.mark.parametrize(
    "bad",
    [
        {"model": 0},
        {"model": 6},
        {"model": True},
        {"model": "x"},
        {"device_type": "APP"},
        {"device_type": "h5"},
        {"order_id": "short7x"},
        {"order_id": "a" * 33},
        {"order_id": "v01-ABCDEFGH"},
        {"order_id": "v01ABCDEF张"},
        {"return_url": ""},
    ],
)
def test_faceid_start_validation(bad: dict[str, Any]) -> None:
    c, session = client()
    kwargs = {"key": "k", "name": "n", "id_number": "i", "order_id": "v01ABCDEFGH", "return_url": "https://r", **bad}
    with pytest.raises(errors.InvalidRequest):
        c.faceid_start(**kwargs)
    assert session.calls == []


def test_faceid_result_request_and_order_id() -> None:
    c, session = client(json.loads(FACEID_SEARCH_EXAMPLE))
    result = c.faceid_result(key="k3", jh_order_id="JH79320240517095231mUzn9", threshold=60)
    assert result == EXPECTED_FACEID_PASS
    assert session.calls[0]["url"] == "http://juhe.test/faceid/search"
    assert session.calls[0]["data"] == {"key": "k3", "jhOrderId": "JH79320240517095231mUzn9"}


def test_faceid_result_fills_missing_order_id_and_pending_is_none() -> None:
    body = _faceid()
    del body["result"]["jh_order_id"]
    c, _ = client(body, {"error_code": 279307, "reason": "未完成"})
    result = c.faceid_result(key="k", jh_order_id="JH42", threshold=60)
    assert result is not None and result.provider_order_id == "JH42"
    assert c.faceid_result(key="k", jh_order_id="JH42", threshold=60) is None


def test_faceid_result_for_another_order_is_refused() -> None:
    c, _ = client(_faceid())  # jh_order_id JH1
    with pytest.raises(errors.ProviderUnavailable, match="another jh_order_id"):
        c.faceid_result(key="k", jh_order_id="JH2", threshold=60)


def test_errors_carry_no_personal_data() -> None:
    c, _ = client({"error_code": 226403, "reason": "参数错误: 11010519491231002X 张三"})
    with pytest.raises(errors.ProviderRejected) as info:
        c.verifyface(key="k", name="张三", id_number="11010519491231002X", image_b64="QQ==", threshold=60)
    text = json.dumps(info.value.to_problem(), ensure_ascii=False) + str(info.value)
    assert "11010519491231002X" not in text and "张三" not in text
