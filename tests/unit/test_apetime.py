"""Apetime: the md5 sign, every document example, the score bands, codes and billing, the client's
request building (fake session; real HTTP is in tests/integration)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from idv import codes, errors, http
from idv.providers import apetime
from idv.providers.apetime import ApetimeClient, apetime_sign, parse_portrait
from idv.results import CheckResult, Face

# --------------------------------------------------------------------------------------------------
# sign


def test_sign_hand_computed_vector_with_chinese_name() -> None:
    # app_key + id_number + name + request_id + timestamp + app_secret, UTF-8, md5 lowercase hex
    concatenated = "ak_test" + "11010519491231002X" + "张三丰" + "v01ABCDEFGH" + "1700000000000" + "s3cr3t"
    assert concatenated == "ak_test11010519491231002X张三丰v01ABCDEFGH1700000000000s3cr3t"
    expected = hashlib.md5(concatenated.encode("utf-8")).hexdigest()
    assert expected == "4b27c7dde0ecc819ef6eade067015c59"
    sign = apetime_sign("ak_test", "11010519491231002X", "张三丰", "v01ABCDEFGH", 1700000000000, "s3cr3t")
    assert sign == expected
    assert apetime_sign("ak_test", "11010519491231002X", "张三丰", "v01ABCDEFGH", "1700000000000", "s3cr3t") == expected


def test_sign_depends_on_every_field() -> None:
    base = ["ak", "110", "张三", "req1", 1, "sec"]
    signs = {apetime_sign(*base)}  # type: ignore[arg-type]
    for i in range(len(base)):
        changed = list(base)
        changed[i] = str(changed[i]) + "x"
        signs.add(apetime_sign(*changed))  # type: ignore[arg-type]
    assert len(signs) == 7


# --------------------------------------------------------------------------------------------------
# Every JSON example of apetime-portrait.md.
# Fixes for obvious document typos only: `01` leading zeros -> 1, trailing commas inside "data"
# removed, and the missing comma between the "data" object and "charge" added.

EXAMPLE_FULL = """{
  "trace_id": "TID2af751b4bff24be781d60af10bf84101",
  "code": "0000",
  "msg": "调用成功",
  "data": {
    "result":1,
    "id_name":1,
    "photo":1,
    "score":50
  },
  "charge": 1
}"""
EXAMPLE_NO_PHOTO = """{
  "trace_id": "TID2af751b4bff24be781d60af10bf84101",
  "code": "0000",
  "msg": "调用成功",
  "data": {
    "result":1,
    "id_name":1,
    "photo":2
  },
  "charge": 1
}"""
EXAMPLE_ID_NAME_MISMATCH = """{
  "trace_id": "TID2af751b4bff24be781d60af10bf84101",
  "code": "0000",
  "msg": "调用成功",
  "data": {
    "result":1,
    "id_name":2
  },
  "charge": 1
}"""
EXAMPLE_IMAGE_REJECTED = """{
  "trace_id": "TID2af751b4bff24be781d60af10bf84101",
  "code": "0000",
  "msg": "调用成功",
  "data": {
    "result":2
  },
  "charge": 2
}"""
EXAMPLE_SIGN_FAILED = """{
  "trace_id": "TID2af751b4bff24be781d60af10bf84101",
  "code": "1000",
  "msg": "验签失败",
  "charge": 2
}"""
TRACE = "TID2af751b4bff24be781d60af10bf84101"


def test_example_full_score_50_is_review() -> None:
    result = parse_portrait(json.loads(EXAMPLE_FULL), 60)
    assert result == CheckResult(
        check="portrait",
        provider="apetime",
        decision="review",
        identity="match",
        reasons=("face_uncertain",),
        face=Face("unverified", score=50.0, provider_score="50", threshold=60.0),
        charged=True,
        provider_order_id=TRACE,
        extra={"result": 1, "id_name": 1, "photo": 1},
    )


def test_example_full_with_threshold_50_is_pass() -> None:
    result = parse_portrait(json.loads(EXAMPLE_FULL), 50)
    assert (result.decision, result.face.result, result.reasons) == ("pass", "match", ())


def test_example_no_reference_photo() -> None:
    result = parse_portrait(json.loads(EXAMPLE_NO_PHOTO), 60)
    assert (result.decision, result.identity) == ("fail", "match")
    assert result.face == Face("no_reference_photo", threshold=60.0)
    assert result.reasons == ("no_reference_photo",)
    assert (result.charged, result.provider_order_id) == (True, TRACE)


def test_example_id_name_mismatch() -> None:
    result = parse_portrait(json.loads(EXAMPLE_ID_NAME_MISMATCH), 60)
    assert (result.decision, result.identity, result.face.result) == ("fail", "mismatch", "unverified")
    assert result.reasons == ("identity_mismatch", "face_unverified")
    assert result.charged is True


def test_example_image_quality_rejected_not_charged() -> None:
    result = parse_portrait(json.loads(EXAMPLE_IMAGE_REJECTED), 60)
    assert result == CheckResult(
        check="portrait",
        provider="apetime",
        decision="fail",
        identity="unverified",
        reasons=("identity_unverified", "face_unverified", "image_quality_rejected"),
        face=Face("unverified", threshold=60.0),
        charged=False,
        provider_order_id=TRACE,
        extra={"result": 2},
    )


def test_example_sign_failed_raises_rejected() -> None:
    with pytest.raises(errors.ProviderRejected) as info:
        parse_portrait(json.loads(EXAMPLE_SIGN_FAILED), 60)
    exc = info.value
    assert (exc.provider, exc.provider_code, exc.charged, exc.auto_retry) == ("apetime", "1000", False, False)
    assert exc.provider_order_id == TRACE


# --------------------------------------------------------------------------------------------------
# Bands and photo codes


def _body(score: Any = None, photo: int = 1, charge: Any = 1, **data: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"result": 1, "id_name": 1, "photo": photo, **data}
    if score is not None:
        d["score"] = score
    return {"trace_id": "TID1", "code": "0000", "msg": "调用成功", "data": d, "charge": charge}


@pytest.mark.parametrize(
    ("score", "threshold", "decision", "face"),
    [
        (100, 60, "pass", "match"),
        (60, 60, "pass", "match"),
        (60.0, 60, "pass", "match"),
        ("60", 60, "pass", "match"),
        (59.99, 60, "review", "unverified"),
        (40, 60, "review", "unverified"),
        (39.99, 60, "fail", "mismatch"),
        (0, 60, "fail", "mismatch"),
        (65, 70, "review", "unverified"),
        (70, 70, "pass", "match"),
        (35, 30, "pass", "match"),  # a threshold under 40 leaves no review band below it
        (29.9, 30, "fail", "mismatch"),
        (40, 40, "pass", "match"),
        (39, 40, "fail", "mismatch"),
    ],
)
def test_score_bands(score: Any, threshold: float, decision: str, face: str) -> None:
    result = parse_portrait(_body(score), threshold)
    assert (result.decision, result.face.result) == (decision, face)
    assert result.face.score == float(score)
    assert result.face.threshold == float(threshold)
    expected_reasons = {"pass": (), "review": ("face_uncertain",), "fail": ("face_mismatch",)}[decision]
    assert result.reasons == expected_reasons


@pytest.mark.parametrize(("photo", "face"), [(p, f) for p, f in codes.APETIME_PHOTO.items() if p != 1])
def test_photo_codes(photo: int, face: str) -> None:
    result = parse_portrait(_body(photo=photo), 60)
    assert (result.decision, result.identity, result.face.result, result.reasons) == ("fail", "match", face, (face,))


def test_photo_3_is_no_face_selfie() -> None:
    assert parse_portrait(_body(photo=3), 60).face.result == "no_face_selfie"


@pytest.mark.parametrize(
    ("charge", "charged"), [(1, True), ("1", True), (2, False), ("2", False), (None, None), (True, None), (3, None)]
)
def test_charged_comes_from_the_body(charge: Any, charged: bool | None) -> None:
    assert parse_portrait(_body(90, charge=charge), 60).charged is charged


def test_charge_missing_on_0000_is_unknown_not_free() -> None:
    # 收费标准: "以返回字段中的 charge 为准" -- without `charge` nobody can say whether it was billed
    for body in (json.loads(EXAMPLE_FULL), json.loads(EXAMPLE_IMAGE_REJECTED), json.loads(EXAMPLE_NO_PHOTO)):
        del body["charge"]
        assert parse_portrait(body, 60).charged is None


@pytest.mark.parametrize(
    ("score", "threshold", "decision", "face", "shown"),
    [
        (59.996, 60, "review", "unverified", 59.99),
        ("59.996", 60, "review", "unverified", 59.99),
        ("59.9999999999999999999", 60, "review", "unverified", 59.99),
        (39.999, 60, "fail", "mismatch", 39.99),
        ("39.995", 60, "fail", "mismatch", 39.99),
        (69.999, 70, "review", "unverified", 69.99),
        (60, 60, "pass", "match", 60.0),
        (40, 60, "review", "unverified", 40.0),
    ],
)
def test_band_edges_use_the_exact_score(score: Any, threshold: float, decision: str, face: str, shown: float) -> None:
    result = parse_portrait(_body(score), threshold)
    assert (result.decision, result.face.result, result.face.score) == (decision, face, shown)
    assert result.face.provider_score == str(score)


UNSTORABLE_SCORES = {
    "overflow_text": "1e999",
    "underflow_text": "1e-200",
    "underflow_float": 1e-200,
    "huge_int": 10**400,
    "huge_int_text": "1" + "0" * 400,
    "big_float": 1e300,
    "nan_text": "NaN",
    "too_many_digits": "59.123456789012345678901234567890123456789",
}


@pytest.mark.parametrize("score", UNSTORABLE_SCORES.values(), ids=UNSTORABLE_SCORES.keys())
@pytest.mark.parametrize(("charge", "charged"), [(1, True), (2, False), (None, None)])
def test_unstorable_score_is_a_malformed_answer(score: Any, charge: Any, charged: bool | None) -> None:
    with pytest.raises(errors.ProviderAnswerMalformed, match="malformed") as info:
        parse_portrait(_body(score, charge=charge), 60)
    assert isinstance(info.value, errors.ProviderUnavailable)  # what the callers already handle
    assert (info.value.provider, info.value.charged, info.value.provider_order_id) == ("apetime", charged, "TID1")


# --------------------------------------------------------------------------------------------------
# Error codes: class from the table, charged from the body


ERROR_CODES = [code for code, info in codes.APETIME.items() if info.kind == "error"]


@pytest.mark.parametrize("code", ERROR_CODES)
@pytest.mark.parametrize(("charge", "charged"), [(1, True), (2, False), (None, None)])
def test_error_codes(code: str, charge: Any, charged: bool | None) -> None:
    body = {"trace_id": "TID9", "code": code, "msg": "x", "charge": charge}
    info = codes.apetime_code(code)
    with pytest.raises(info.error) as raised:  # type: ignore[arg-type]
        parse_portrait(body, 60)
    exc = raised.value
    assert type(exc) is info.error
    assert (exc.provider, exc.provider_code, exc.charged) == ("apetime", code, charged)
    # retried only when the table allows it and the body says nothing was billed
    assert exc.auto_retry is (info.auto_retry and charged is False)
    assert (apetime.classify(body) is not None) and type(apetime.classify(body)) is info.error


def test_1006_is_rate_limited_and_retryable() -> None:
    problem = apetime.classify({"code": "1006", "charge": 2})
    assert isinstance(problem, errors.ProviderRateLimited) and problem.auto_retry is True


def test_undocumented_code_is_unavailable() -> None:
    with pytest.raises(errors.ProviderUnavailable) as info:
        parse_portrait({"code": "4242", "charge": 2}, 60)
    assert info.value.provider_code == "4242"


def test_numeric_success_code_is_tolerated() -> None:
    body = _body(90)
    body["code"] = 0
    assert parse_portrait(body, 60).decision == "pass"
    assert apetime.classify(body) is None


MALFORMED = {
    "not_object": [1, 2],
    "no_code": {"charge": 1, "data": {}},
    "no_data": {"code": "0000", "charge": 1},
    "data_list": {"code": "0000", "charge": 1, "data": []},
    "result_missing": {"code": "0000", "charge": 1, "data": {"id_name": 1}},
    "result_3": {"code": "0000", "charge": 1, "data": {"result": 3}},
    "id_name_missing": {"code": "0000", "charge": 1, "data": {"result": 1}},
    "id_name_3": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 3}},
    "photo_missing": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 1}},
    "photo_4": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 1, "photo": 4}},
    "score_missing": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 1, "photo": 1}},
    "score_text": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 1, "photo": 1, "score": "high"}},
    "score_bool": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 1, "photo": 1, "score": True}},
    "score_inf": {"code": "0000", "charge": 1, "data": {"result": 1, "id_name": 1, "photo": 1, "score": "inf"}},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_are_unavailable(body: Any) -> None:
    with pytest.raises(errors.ProviderUnavailable, match="malformed") as info:
        parse_portrait(body, 60)
    assert info.value.provider == "apetime"
    assert info.value.charged is (True if isinstance(body, dict) else None)


# --------------------------------------------------------------------------------------------------
# Client (fake session)


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
        return FakeResponse(200, json.dumps(self.bodies.pop(0)).encode())


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
JPEG_B64 = base64.b64encode(JPEG).decode()


def make(*bodies: Any, **kwargs: Any) -> tuple[ApetimeClient, FakeSession]:
    session = FakeSession(list(bodies))
    kwargs.setdefault("clock", lambda: 1700000000123)
    c = ApetimeClient(base_url="http://ape.test", session=session, retry=http.NO_RETRY, **kwargs)  # type: ignore[arg-type]
    return c, session


PERSON = {"app_key": "ak", "app_secret": "sec", "request_id": "v01ABCDEFGH", "name": "张三", "id_number": "110"}


URLSAFE_B64 = base64.urlsafe_b64encode(JPEG).decode()
assert ("+" in JPEG_B64 or "/" in JPEG_B64) and URLSAFE_B64 != JPEG_B64


def test_portrait_sends_url_safe_base64_like_the_documents_sample() -> None:
    # The document's only working example: Base64.getUrlEncoder().encodeToString(portrait) (URL-safe
    # alphabet, '=' padding kept), posted without URL-encoding.
    c, session = make(_body(90))
    c.portrait(**PERSON, image_b64=JPEG_B64, threshold=60)
    sent = session.calls[0]["data"]["selfie_base64"]
    assert sent == URLSAFE_B64
    assert set(sent) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert base64.urlsafe_b64decode(sent) == JPEG
    assert len(sent) % 4 == 0  # padding as Java's getUrlEncoder() writes it


def test_portrait_url_safe_input_is_sent_unchanged() -> None:
    c, session = make(_body(90))
    c.portrait(**PERSON, image_b64=URLSAFE_B64, threshold=60)
    assert session.calls[0]["data"]["selfie_base64"] == URLSAFE_B64


def test_portrait_bad_base64_is_refused_before_the_call() -> None:
    c, session = make()
    with pytest.raises(errors.ImageError):
        c.portrait(**PERSON, image_b64="not base64!", threshold=60)
    assert session.calls == []


def test_portrait_base64_request() -> None:
    c, session = make(_body(90), read_timeout=7)
    result = c.portrait(**PERSON, image_b64=JPEG_B64, threshold=60)
    assert result.decision == "pass" and result.provider_order_id == "TID1"
    call = session.calls[0]
    assert call["url"] == "http://ape.test/api/identity/portrait_verification"
    assert call["files"] is None
    assert call["timeout"] == (http.CONNECT_TIMEOUT, 7)
    assert call["data"] == {
        "app_key": "ak",
        "request_id": "v01ABCDEFGH",
        "id_number": "110",
        "name": "张三",
        "timestamp": "1700000000123",
        "selfie_base64": URLSAFE_B64,
        "sign": hashlib.md5("ak110张三v01ABCDEFGH1700000000123sec".encode()).hexdigest(),
    }


def test_portrait_multipart_request() -> None:
    c, session = make(_body(90))
    c.portrait(**PERSON, image_b64=JPEG_B64, threshold=60, multipart=True)
    call = session.calls[0]
    assert "selfie_base64" not in call["data"]
    assert call["files"] == {"selfie_file": ("selfie.jpg", JPEG, "image/jpeg")}
    assert call["data"]["sign"] == apetime_sign("ak", "110", "张三", "v01ABCDEFGH", 1700000000123, "sec")


def test_portrait_multipart_bad_base64() -> None:
    c, session = make()
    with pytest.raises(errors.ImageError):
        c.portrait(**PERSON, image_b64="not base64!", threshold=60, multipart=True)
    assert session.calls == []


def test_default_clock_is_milliseconds() -> None:
    import time

    c = ApetimeClient(session=FakeSession())  # type: ignore[arg-type]
    assert abs(c.clock() - time.time() * 1000) < 5_000


def test_base_url_from_env_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APETIME_BASE_URL", "http://sandbox:9/")
    c = ApetimeClient(session=FakeSession())  # type: ignore[arg-type]
    monkeypatch.delenv("APETIME_BASE_URL")
    assert c.base_url == "http://sandbox:9"
    assert ApetimeClient(session=FakeSession()).base_url == "https://api.apetime.cn"  # type: ignore[arg-type]
    assert ApetimeClient(session=FakeSession()).read_timeout == 10.0  # type: ignore[arg-type]


def test_missing_credentials_is_configuration_error() -> None:
    c, session = make()
    with pytest.raises(errors.ConfigurationError):
        c.portrait(**{**PERSON, "app_secret": ""}, image_b64=JPEG_B64, threshold=60)
    assert session.calls == []


@pytest.mark.parametrize("threshold", [-0.1, 101, "60", None])
def test_threshold_validated(threshold: Any) -> None:
    c, session = make()
    with pytest.raises(errors.InvalidRequest):
        c.portrait(**PERSON, image_b64=JPEG_B64, threshold=threshold)
    assert session.calls == []


def test_error_carries_no_personal_data() -> None:
    c, _ = make({"trace_id": "T", "code": "1002", "msg": "参数错误 110 张三", "charge": 2})
    with pytest.raises(errors.ProviderRejected) as info:
        c.portrait(**PERSON, image_b64=JPEG_B64, threshold=60)
    text = json.dumps(info.value.to_problem(), ensure_ascii=False) + str(info.value)
    assert "张三" not in text
