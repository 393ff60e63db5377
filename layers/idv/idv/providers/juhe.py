"""Juhe client: verifyface (plain and AES), four-factor (verifyface_mobile), H5 FaceID query/search.

Money: Juhe bills a call when `error_code` is 0 and only then, so `CheckResult.charged` is
`error_code == 0`. Non-zero codes are classified by `idv.codes.juhe_code`: errors are raised (retried
first by `idv.http.post_json` when the table says `auto_retry`), while the few outcome codes
(226402 no record, 280105 identity and mobile unverified, 279305 liveness error) and the FaceID
pending codes (279306, 279307) come back as bodies and are turned into results here.

The parsers (`parse_verifyface`, `parse_four_factor`, `parse_faceid_start`, `parse_faceid_payload`)
are pure functions of the decoded JSON body, so the sandbox and the tests can use them directly.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import quote, quote_plus

import requests

from idv import aes, codes, errors, http, results
from idv.results import CheckResult, Face, Liveness, Mobile, check_threshold

PROVIDER: Final = "juhe"
DEFAULT_BASE_URL = "https://apis.juhe.cn"

DEFAULT_READ_TIMEOUTS: dict[str, float] = {
    "verifyface": 10.0,
    "four_factor": 10.0,
    "faceid_query": 5.0,
    "faceid_search": 5.0,
}

PATH_VERIFY = "/verifyface/verify"
PATH_VERIFY_ENCRYPTED = "/verifyface/verifyEncry"
PATH_FOUR_FACTOR = "/verifyface_mobile/query"
PATH_FACEID_QUERY = "/faceid/query"
PATH_FACEID_SEARCH = "/faceid/search"

FACEID_MODELS = range(1, 6)
FACEID_DEVICE_TYPES = frozenset({"H5", "WEB"})
_ORDER_ID = re.compile(r"[A-Za-z0-9]{8,32}")
_HEX32 = re.compile(r"[0-9a-f]{32}")

# Non-zero codes each API answers with that are results (or "not finished"), not errors.
_BODY_CODES: dict[str, frozenset[str]] = {
    api: frozenset(code for code, info in table.items() if info.kind in ("outcome", "pending"))
    for api, table in codes.JUHE_SERVICE_TABLES.items()
}


@dataclass(frozen=True, slots=True)
class FaceIdSession:
    """A started H5 FaceID session: Juhe's order number and the page to send the browser to."""

    jh_order_id: str
    verify_url: str


# --------------------------------------------------------------------------------------------------
# Errors and body helpers


def _malformed(
    what: str, detail: str, *, charged: bool | None, order_id: str | None = None
) -> errors.ProviderAnswerMalformed:
    return errors.ProviderAnswerMalformed(
        f"juhe {what} answered a malformed body: {detail}",
        provider=PROVIDER,
        charged=charged,
        provider_order_id=order_id,
    )


def _error_code(body: Any, what: str) -> int:
    """The body's `error_code` as an int (Juhe sends an int; a decimal string is tolerated)."""
    if not isinstance(body, Mapping):
        raise _malformed(what, "the body is not a JSON object", charged=None)
    raw = body.get("error_code")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and _DECIMAL_INT.fullmatch(raw.strip()):
        return int(raw.strip())
    # Without error_code nobody can say whether the call was billed.
    raise _malformed(what, "error_code is missing or not an integer", charged=None)


def _error_for(info: codes.CodeInfo, api: str) -> errors.IdvError:
    """The exception a classified non-zero code means (never charged: error_code != 0)."""
    cls = info.error or errors.ProviderUnavailable
    detail = f"juhe {api} answered error_code {info.code} ({info.meaning})"
    hint = codes.credential_hint(PROVIDER, api, info.code)
    if hint:
        detail += f"; {hint}"
    if issubclass(cls, errors.ProviderError):
        return cls(detail, provider=PROVIDER, provider_code=info.code, charged=False, auto_retry=info.auto_retry)
    return cls(detail, provider=PROVIDER, provider_code=info.code)


def classifier(api: str, *, bodies: bool = True) -> Callable[[dict[str, Any]], errors.IdvError | None]:
    """The `classify` for `idv.http.post_json`: None for a body to parse, else the error it means.

    With `bodies` the API's outcome and pending codes are returned as bodies; without it (FaceID
    start) every non-zero code is an error.
    """
    accepted = _BODY_CODES[api] if bodies else frozenset()

    def classify(body: dict[str, Any]) -> errors.IdvError | None:
        try:
            code = _error_code(body, api)
        except errors.ProviderUnavailable as exc:
            return exc
        if code == 0 or str(code) in accepted:
            return None
        return _error_for(codes.juhe_code(api, code), api)

    return classify


_DECIMAL_INT = re.compile(r"[0-9]{1,18}")  # ASCII digits, short enough that int() never refuses them


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DECIMAL_INT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _as_str(value: Any) -> str | None:
    """A code-like field as text (Juhe mixes "200" and 200); None when absent or not scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)):
        text = str(value).strip()
        return text or None
    return None


def _score(raw: Any, *, scale: float, what: str, field: str, order_id: str | None, required: bool) -> Decimal | None:
    """A billed body's score, exactly, on 0-100 (`results.exact_score`); decisions compare this value and
    `results.display_score` gives the one shown. A present score that is not a number DynamoDB can hold
    (NaN, 1e999, 1e-200, 10**400, text) is a malformed answer."""
    if raw is None or raw == "":
        if required:
            raise _malformed(what, f"{field} is missing", charged=True, order_id=order_id)
        return None
    value = results.exact_score(raw, scale)
    if value is None:
        raise _malformed(what, f"{field} is not a usable number", charged=True, order_id=order_id)
    return value


def _result_object(body: Mapping[str, Any], what: str) -> tuple[Mapping[str, Any], str | None]:
    result = body.get("result")
    if not isinstance(result, Mapping):
        raise _malformed(what, "result is missing or not an object", charged=True)
    return result, _as_str(result.get("orderid"))


# --------------------------------------------------------------------------------------------------
# Parsers (pure)


def parse_verifyface(body: Mapping[str, Any], threshold: float) -> CheckResult:
    """A verifyface / verifyEncry body as a `compare` result (DESIGN §4 policy)."""
    what = "verifyface"
    threshold = check_threshold(threshold)
    code = _error_code(body, what)
    if code != 0:
        info = codes.juhe_code("verifyface", code)
        if info.code == "226402" and info.kind == "outcome":
            result = body.get("result")
            order_id = _as_str(result.get("orderid")) if isinstance(result, Mapping) else None
            face = Face("unverified", threshold=threshold)
            return CheckResult(
                check="compare",
                provider=PROVIDER,
                decision="fail",
                identity="not_found",
                reasons=results.reasons_for("not_found", face),
                face=face,
                charged=False,
                provider_order_id=order_id,
                extra={"error_code": info.code},
            )
        raise _error_for(info, "verifyface")

    result, order_id = _result_object(body, what)
    res = _as_int(result.get("res"))
    extra: dict[str, Any] = {"res": res}
    identity: results.IdentityResult
    if res == 1:
        raw = result.get("score")
        exact = _score(raw, scale=100, what=what, field="score", order_id=order_id, required=True)
        face = results.face_by_score(exact, raw, threshold)
        identity = "match"
    elif res == 2:
        sub = _as_str(result.get("code"))
        extra["code"] = sub
        face_result = codes.VERIFYFACE_FACE_CODES.get(sub or "", "unverified")
        face = Face(face_result, threshold=threshold)  # type: ignore[arg-type]
        identity = "match"
    elif res == 3:
        face = Face("unverified", threshold=threshold)
        identity = "mismatch"
    else:
        raise _malformed(what, "result.res is missing or not 1, 2 or 3", charged=True, order_id=order_id)
    passed = identity == "match" and face.result == "match"
    return CheckResult(
        check="compare",
        provider=PROVIDER,
        decision="pass" if passed else "fail",
        identity=identity,
        reasons=results.reasons_for(identity, face),
        face=face,
        charged=True,
        provider_order_id=order_id,
        extra=extra,
    )


FOUR_FACTOR_REVIEW = frozenset({108, 109})


def parse_four_factor(body: Mapping[str, Any]) -> CheckResult:
    """A verifyface_mobile/query body as a `four_factor` result: the decision follows `res` only."""
    what = "four_factor"
    code = _error_code(body, what)
    if code != 0:
        info = codes.juhe_code("four_factor", code)
        if info.code == "280105" and info.kind == "outcome":
            result = body.get("result")
            order_id = _as_str(result.get("orderid")) if isinstance(result, Mapping) else None
            face, mobile = Face("unverified"), Mobile("unverified")
            return CheckResult(
                check="four_factor",
                provider=PROVIDER,
                decision="fail",
                identity="unverified",
                reasons=results.reasons_for("unverified", face, mobile),
                face=face,
                mobile=mobile,
                charged=False,
                provider_order_id=order_id,
                extra={"error_code": info.code},
            )
        raise _error_for(info, "four_factor")

    result, order_id = _result_object(body, what)
    res = _as_int(result.get("res"))
    triple = codes.FOUR_FACTOR_RES.get(res) if res is not None else None
    if triple is None:
        raise _malformed(what, "result.res is missing or not one of 100-116", charged=True, order_id=order_id)
    identity, face_result, mobile_result = triple
    raw = result.get("score")
    exact = _score(raw, scale=1000, what=what, field="score", order_id=order_id, required=False)
    compared = face_result in ("match", "mismatch")
    face = Face(
        face_result,  # type: ignore[arg-type]
        score=results.display_score(exact) if compared and exact is not None else None,
        provider_score=None if raw is None else str(raw),
        threshold=None,
    )
    carrier = result.get("type")
    carrier = carrier.strip() if isinstance(carrier, str) and carrier.strip() else None
    mobile = Mobile(mobile_result, carrier=carrier)  # type: ignore[arg-type]
    decision: results.Decision = "pass" if res == 100 else "review" if res in FOUR_FACTOR_REVIEW else "fail"
    return CheckResult(
        check="four_factor",
        provider=PROVIDER,
        decision=decision,
        identity=identity,  # type: ignore[arg-type]
        reasons=results.reasons_for(identity, face, mobile),
        face=face,
        mobile=mobile,
        charged=True,
        provider_order_id=order_id,
        extra={"res": res},
    )


def parse_faceid_start(body: Mapping[str, Any]) -> FaceIdSession:
    """A faceid/query body as the session to send the browser to; any non-zero code is an error."""
    what = "faceid/query"
    code = _error_code(body, what)
    if code != 0:
        raise _error_for(codes.juhe_code("faceid", code), "faceid")
    result = body.get("result")
    if not isinstance(result, Mapping):
        raise _malformed(what, "result is missing or not an object", charged=True)
    jh_order_id, verify_url = _as_str(result.get("jh_order_id")), result.get("verify_url")
    if not jh_order_id:
        raise _malformed(what, "result.jh_order_id is missing", charged=True)
    if not isinstance(verify_url, str) or not verify_url.startswith(("https://", "http://")):
        raise _malformed(what, "result.verify_url is missing or not a URL", charged=True, order_id=jh_order_id)
    return FaceIdSession(jh_order_id=jh_order_id, verify_url=verify_url)


def _liveness_reasons(liveness: Liveness) -> tuple[str, ...]:
    if liveness.passed:
        return ()
    specific = codes.FACEID_LIVENESS_REASONS.get(liveness.code or "")
    return ("liveness_failed", specific) if specific else ("liveness_failed",)


def _tf(detail: Mapping[str, Any], key: str, what: str, order_id: str | None) -> str:
    value = detail.get(key)
    if value not in ("T", "F"):
        raise _malformed(what, f"{key} is missing or not T/F", charged=True, order_id=order_id)
    return str(value)


def parse_faceid_payload(payload: Mapping[str, Any], threshold: float) -> CheckResult | None:
    """A faceid/search body, or the browser return's decoded `response` JSON (same shape), as a result.

    None while the session is not finished (279306, 279307). The result's `img` URL is never read.
    Pass only when `passed`, `live_passed` and `certify_passed` are all "T" and identity and face
    both match (a face whose score is under `threshold` is a mismatch even if Juhe passed it).
    """
    what = "faceid"
    threshold = check_threshold(threshold)
    code = _error_code(payload, what)
    result = payload.get("result")
    order_id = _as_str(result.get("jh_order_id")) if isinstance(result, Mapping) else None
    if code != 0:
        info = codes.juhe_code("faceid", code)
        if info.kind == "pending":
            return None
        if info.code == "279305" and info.kind == "outcome":
            detail = result.get("detail") if isinstance(result, Mapping) else None
            live_code = _as_str(detail.get("live_code")) if isinstance(detail, Mapping) else None
            liveness = Liveness(passed=False, code=live_code, score=None)
            face = Face("unverified", threshold=threshold)
            return CheckResult(
                check="faceid",
                provider=PROVIDER,
                decision="fail",
                identity="unverified",
                reasons=results.reasons_for("unverified", face) + _liveness_reasons(liveness),
                face=face,
                liveness=liveness,
                charged=False,
                provider_order_id=order_id,
                extra={"error_code": info.code},
            )
        raise _error_for(info, "faceid")

    if not isinstance(result, Mapping):
        raise _malformed(what, "result is missing or not an object", charged=True)
    detail = result.get("detail")
    if not isinstance(detail, Mapping):
        raise _malformed(what, "result.detail is missing or not an object", charged=True, order_id=order_id)
    passed = _tf(result, "passed", what, order_id)
    live_passed = _tf(detail, "live_passed", what, order_id)
    certify_passed = _tf(detail, "certify_passed", what, order_id)
    certify_code = _as_str(detail.get("certify_code"))
    mapped = codes.FACEID_CERTIFY.get(certify_code or "")
    if mapped is None:
        raise _malformed(what, "certify_code is missing or undocumented", charged=True, order_id=order_id)
    identity, face_result = mapped

    raw_score = detail.get("certify_score")
    exact = _score(raw_score, scale=100, what=what, field="certify_score", order_id=order_id, required=False)
    if face_result == "match" and exact is not None and not results.score_at_least(exact, threshold):
        face_result = "mismatch"  # compared exactly: 59.996 is under 60
    compared = face_result in ("match", "mismatch")
    face = Face(
        face_result,  # type: ignore[arg-type]
        score=results.display_score(exact) if compared and exact is not None else None,
        provider_score=None if raw_score is None else str(raw_score),
        threshold=threshold,
    )
    live_score_raw = detail.get("live_score")
    live_number = results.provider_number(live_score_raw)
    if live_number is None and live_score_raw not in (None, ""):
        raise _malformed(what, "live_score is not a usable number", charged=True, order_id=order_id)
    live_score = None if live_number is None else float(live_number)
    if live_score is not None and results.provider_number(live_score) is None:  # e.g. 9.99...E+125 -> 1e126
        raise _malformed(what, "live_score is not a usable number", charged=True, order_id=order_id)
    liveness = Liveness(passed=live_passed == "T", code=_as_str(detail.get("live_code")), score=live_score)

    all_passed = passed == live_passed == certify_passed == "T"
    ok = all_passed and identity == "match" and face.result == "match" and liveness.passed
    reasons = results.reasons_for(identity, face) + _liveness_reasons(liveness)
    if not ok and not reasons:
        reasons = ("faceid_not_passed",)
    return CheckResult(
        check="faceid",
        provider=PROVIDER,
        decision="pass" if ok else "fail",
        identity=identity,  # type: ignore[arg-type]
        reasons=reasons,
        face=face,
        liveness=liveness,
        charged=True,
        provider_order_id=order_id,
        extra={"passed": passed, "certify_code": certify_code, "live_code": liveness.code},
    )


SignatureForm = Literal["decoded", "encoded"]


def return_signature_form(response: str, sign: str, key: str, *, encoded: str | None = None) -> SignatureForm | None:
    """Which reading of the document's `sign=md5(response值+key)` the browser return's `sign` matches.

    `"decoded"`: md5 over `response` as the handler has it, URL-decoded (what API Gateway hands over).
    `"encoded"`: md5 over the value as it travelled URL-encoded. The handler only has the decoded value,
    so the encoded text is recomputed both ways a provider's URL encoder writes it: `quote(response,
    safe="")` (spaces as %20, JavaScript's encodeURIComponent apart from !'()*) and `quote_plus(response)`
    (spaces as '+', an HTML form / Java URLEncoder). `encoded`, when given, is the value exactly as it
    arrived (a notify body or a raw query string) and is tried as well. None when no reading matches.

    Every reading needs the key; every candidate is compared (hmac.compare_digest, no early exit), so
    the time taken does not depend on which one matched. Hex case is ignored; anything that is not a
    string, an empty key, or a sign that is not 32 hex digits is None.
    """
    if not (isinstance(response, str) and isinstance(sign, str) and isinstance(key, str)) or not key:
        return None
    candidate = sign.lower()
    if not _HEX32.fullmatch(candidate):
        return None
    readings: list[tuple[SignatureForm, str]] = [
        ("decoded", response),
        ("encoded", quote(response, safe="")),
        ("encoded", quote_plus(response, safe="")),
    ]
    if isinstance(encoded, str) and encoded:
        readings.append(("encoded", encoded))
    found: SignatureForm | None = None
    for form, text in readings:
        expected = hashlib.md5((text + key).encode("utf-8")).hexdigest()
        if hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii")) and found is None:
            found = form
    return found


def verify_return_signature(response: str, sign: str, key: str) -> bool:
    """Whether `sign` is md5(response + key) (Juhe's browser-return signature) in either reading of
    `return_signature_form`, in constant time. `response` is the URL-decoded `response` query value
    exactly as received. Hex case is ignored; anything that is not a string, an empty key, or a sign
    that is not 32 hex digits is False. Use `return_signature_form` to learn (and count) which reading.
    """
    return return_signature_form(response, sign, key) is not None


# --------------------------------------------------------------------------------------------------
# Client


class JuheClient:
    """Calls the Juhe APIs through one keep-alive session; every method returns a normalized value."""

    def __init__(
        self,
        base_url: str | None = None,
        session: requests.Session | None = None,
        retry: http.RetryPolicy = http.RetryPolicy(),
        read_timeouts: dict[str, float] | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("JUHE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.session = session if session is not None else http.new_session()
        self.retry = retry
        unknown = set(read_timeouts or {}) - set(DEFAULT_READ_TIMEOUTS)
        if unknown:
            raise ValueError(f"unknown read timeout names: {sorted(unknown)}")
        self.read_timeouts = {**DEFAULT_READ_TIMEOUTS, **(read_timeouts or {})}

    def _post(self, path: str, data: dict[str, Any], *, timeout: str, api: str, bodies: bool = True) -> dict[str, Any]:
        return http.post_json(
            self.session,
            self.base_url + path,
            provider=PROVIDER,
            data=data,
            read_timeout=self.read_timeouts[timeout],
            classify=classifier(api, bodies=bodies),
            retry=self.retry,
        )

    def verifyface(
        self,
        *,
        key: str,
        name: str,
        id_number: str,
        image_b64: str,
        threshold: float,
        encrypted: bool = False,
        openid: str | None = None,
    ) -> CheckResult:
        """Compare a selfie with the ID photo (plain `verify`, or `verifyEncry` with AES fields)."""
        threshold = check_threshold(threshold)
        if encrypted:
            if not openid:
                raise errors.ConfigurationError("juhe_openid is required for JUHE_COMPARE_MODE=aes")
            path = PATH_VERIFY_ENCRYPTED
            data = {
                "key": key,
                "idcard": aes.encrypt_field(id_number, openid),
                "realname": aes.encrypt_field(name, openid),
                "image": aes.encrypt_field(image_b64, openid),
            }
        else:
            path = PATH_VERIFY
            data = {"key": key, "idcard": id_number, "realname": name, "image": image_b64}
        try:
            body = self._post(path, data, timeout="verifyface", api="verifyface")
        except errors.ProviderRejected as exc:
            if encrypted and exc.provider_code == "226403":  # fields Juhe could not decrypt
                exc.detail += (
                    "; in AES mode the fields are encrypted with juhe_openid: check juhe_openid in the provider"
                    " secret (PROVIDER_SECRET_ID)"
                )
                exc.args = (exc.detail,)
            raise
        return parse_verifyface(body, threshold)

    def four_factor(self, *, key: str, name: str, id_number: str, mobile: str, image_b64: str) -> CheckResult:
        """Identity + selfie + mobile number (verifyface_mobile/query)."""
        data = {"key": key, "realname": name, "idcard": id_number, "mobile": mobile, "image": image_b64}
        body = self._post(PATH_FOUR_FACTOR, data, timeout="four_factor", api="four_factor")
        return parse_four_factor(body)

    def faceid_start(
        self,
        *,
        key: str,
        name: str,
        id_number: str,
        order_id: str,
        return_url: str,
        notify_url: str | None = None,
        model: int = 1,
        device_type: str = "H5",
    ) -> FaceIdSession:
        """Start an H5 FaceID session (faceid/query); the verify_url is valid 30 minutes, once."""
        model_number = _as_int(model)
        if model_number not in FACEID_MODELS:
            raise errors.InvalidRequest("model must be 1-5", field="model")
        if device_type not in FACEID_DEVICE_TYPES:
            raise errors.InvalidRequest("device_type must be H5 or WEB", field="device_type")
        if not isinstance(order_id, str) or not _ORDER_ID.fullmatch(order_id):
            raise errors.InvalidRequest("order_id must be 8-32 letters and digits", field="order_id")
        if not isinstance(return_url, str) or not return_url:
            raise errors.InvalidRequest("return_url is required", field="return_url")
        data = {
            "key": key,
            "certName": name,
            "certNo": id_number,
            "orderId": order_id,
            "model": str(model_number),
            "returnUrl": return_url,
            "deviceType": device_type,
        }
        if notify_url:
            data["notifyUrl"] = notify_url
        body = self._post(PATH_FACEID_QUERY, data, timeout="faceid_query", api="faceid", bodies=False)
        return parse_faceid_start(body)

    def faceid_result(self, *, key: str, jh_order_id: str, threshold: float) -> CheckResult | None:
        """The server-side result of a FaceID session (faceid/search); None while it is not finished."""
        threshold = check_threshold(threshold)
        body = self._post(
            PATH_FACEID_SEARCH, {"key": key, "jhOrderId": jh_order_id}, timeout="faceid_search", api="faceid"
        )
        result = body.get("result")
        detail = result.get("detail") if isinstance(result, dict) else None
        if isinstance(detail, dict):
            detail.pop("img", None)  # provider image URLs are never kept (DESIGN §6)
        parsed = parse_faceid_payload(body, threshold)
        if parsed is None:
            return None
        if parsed.provider_order_id is None:
            return replace(parsed, provider_order_id=jh_order_id)
        if parsed.provider_order_id != jh_order_id:
            raise _malformed(
                "faceid/search",
                "the result is for another jh_order_id",
                charged=parsed.charged,
                order_id=jh_order_id,
            )
        return parsed
