"""Apetime client: 身份人像比对 `api/identity/portrait_verification` (md5 `sign`).

Money: Apetime bills when the body's `charge` is 1, whatever the `code` (2 = not billed): "以返回字段中的
charge 为准". So `CheckResult.charged` and every raised `ProviderError.charged` come from the body, and a
body without a readable `charge` is "unknown" (`None`) on results and errors alike, never "not billed".

Image: `selfie_base64` is sent in the URL-safe alphabet with its `=` padding, as the document's only
working example writes it (`Base64.getUrlEncoder().encodeToString(portrait)`); the standard alphabet is
not proven to work. `multipart=True` sends the JPEG bytes as `selfie_file` instead.

Scores are compared exactly (`results.exact_score`): 59.996 is under 60 and 39.999 under 40; the stored
`face.score` is the display value (`results.display_score`, cut to 2 decimals). A score that is not a
number DynamoDB can hold is a malformed answer (`errors.ProviderAnswerMalformed`).

Decision (DESIGN §4): identity match and photo compared and score >= threshold is `pass`; a score in
[40, threshold) is `review` (face `unverified`, reason `face_uncertain`); below 40 (or below the
threshold when the threshold is under 40) is `fail` with face `mismatch`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests

from idv import codes, errors, http, results
from idv.results import APETIME_REVIEW_FLOOR, CheckResult, Face, check_threshold

PROVIDER: Final = "apetime"
DEFAULT_BASE_URL = "https://api.apetime.cn"
PATH_PORTRAIT = "/api/identity/portrait_verification"
DEFAULT_READ_TIMEOUT = 10.0
SELFIE_FILENAME = "selfie.jpg"


def apetime_sign(
    app_key: str, id_number: str, name: str, request_id: str, timestamp: int | str, app_secret: str
) -> str:
    """md5 (lowercase hex) of app_key + id_number + name + request_id + timestamp + app_secret, UTF-8.

    The document's rule: the signed fields' values in alphabetical order of field name, then the
    secret; `selfie_file` / `selfie_base64` are not signed.
    """
    text = f"{app_key}{id_number}{name}{request_id}{timestamp}{app_secret}"
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------------------------------
# Body helpers


def _charge(body: Mapping[str, Any]) -> bool | None:
    """`charge`: 1 billed, 2 not billed; None when missing or unreadable."""
    raw = body.get("charge")
    if isinstance(raw, bool):
        return None
    if raw in (1, "1"):
        return True
    if raw in (2, "2"):
        return False
    return None


def _trace_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("trace_id")
    return value if isinstance(value, str) and value else None


def _malformed(body: Mapping[str, Any] | None, detail: str) -> errors.ProviderAnswerMalformed:
    return errors.ProviderAnswerMalformed(
        f"apetime portrait_verification answered a malformed body: {detail}",
        provider=PROVIDER,
        charged=_charge(body) if body is not None else None,
        provider_order_id=_trace_id(body) if body is not None else None,
    )


def _code(body: Any) -> str:
    if not isinstance(body, Mapping):
        raise _malformed(None, "the body is not a JSON object")
    raw = body.get("code")
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return f"{raw:04d}"  # tolerate a numeric code ("0000" sent as 0)
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    raise _malformed(body, "code is missing")


def _error_for(info: codes.CodeInfo, body: Mapping[str, Any]) -> errors.IdvError:
    cls = info.error or errors.ProviderUnavailable
    detail = f"apetime portrait_verification answered code {info.code} ({info.meaning})"
    hint = codes.credential_hint(PROVIDER, "portrait", info.code)
    if hint:
        detail += f"; {hint}"
    charged = _charge(body)
    if issubclass(cls, errors.ProviderError):
        return cls(
            detail,
            provider=PROVIDER,
            provider_code=info.code,
            charged=charged,
            # never retry something the body says was (or may have been) billed
            auto_retry=info.auto_retry and charged is False,
            provider_order_id=_trace_id(body),
        )
    return cls(detail, provider=PROVIDER, provider_code=info.code)


def classify(body: dict[str, Any]) -> errors.IdvError | None:
    """The `classify` for `idv.http.post_json`: None for "0000", else the error the code means."""
    try:
        code = _code(body)
    except errors.ProviderUnavailable as exc:
        return exc
    info = codes.apetime_code(code)
    return None if info.kind == "outcome" else _error_for(info, body)


_DECIMAL_INT = re.compile(r"[0-9]{1,18}")  # ASCII digits, short enough that int() never refuses them


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DECIMAL_INT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def selfie_base64(image_b64: str) -> str:
    """The image as `selfie_base64`: URL-safe alphabet, `=` padding kept (Java's getUrlEncoder()).

    Accepts the standard or the URL-safe alphabet (a `data:` prefix must already be stripped); anything
    that is not base64 is an `ImageError` before any call.
    """
    return base64.urlsafe_b64encode(_decode_image(image_b64)).decode("ascii")


def _decode_image(image_b64: str) -> bytes:
    try:
        text = image_b64.strip().translate(_URLSAFE_TO_STANDARD)
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (AttributeError, binascii.Error, ValueError):
        raise errors.ImageError("image is not valid base64", field="image") from None


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


# --------------------------------------------------------------------------------------------------
# Parser (pure)


def parse_portrait(body: Mapping[str, Any], threshold: float) -> CheckResult:
    """A portrait_verification body as a `portrait` result (raises the classified error otherwise)."""
    threshold = check_threshold(threshold)
    code = _code(body)
    info = codes.apetime_code(code)
    if info.kind != "outcome":
        raise _error_for(info, body)
    charged = _charge(body)  # None when the body does not say: billing follows `charge` only
    order_id = _trace_id(body)
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise _malformed(body, "data is missing or not an object")

    result, id_name, photo = _as_int(data.get("result")), _as_int(data.get("id_name")), None
    extra: dict[str, Any] = {"result": result}
    extra_reasons: tuple[str, ...] = ()
    identity = "match"
    if result == 2:
        identity, face = "unverified", Face("unverified", threshold=threshold)
        extra_reasons = ("image_quality_rejected",)
    elif result != 1:
        raise _malformed(body, "data.result is missing or not 1 or 2")
    elif id_name == 2:
        identity, face = "mismatch", Face("unverified", threshold=threshold)
        extra["id_name"] = id_name
    elif id_name != 1:
        raise _malformed(body, "data.id_name is missing or not 1 or 2")
    else:
        photo = _as_int(data.get("photo"))
        extra.update(id_name=id_name, photo=photo)
        photo_result = codes.APETIME_PHOTO.get(photo) if photo is not None else None
        if photo_result is None:
            raise _malformed(body, "data.photo is missing or not 1, 2 or 3")
        if photo != 1:
            face = Face(photo_result, threshold=threshold)  # type: ignore[arg-type]
        else:
            face = _scored_face(body, data.get("score"), threshold)

    reasons = results.reasons_for(identity, face)
    if face.result == "unverified" and face.score is not None:
        # the [40, threshold) band: the provider is unsure; a person should look
        reasons = (*(r for r in reasons if r != "face_unverified"), "face_uncertain")
    reasons += extra_reasons
    decision: results.Decision
    if identity == "match" and face.result == "match":
        decision = "pass"
    elif reasons == ("face_uncertain",):
        decision = "review"
    else:
        decision = "fail"
    return CheckResult(
        check="portrait",
        provider=PROVIDER,
        decision=decision,
        identity=identity,  # type: ignore[arg-type]
        reasons=reasons,
        face=face,
        charged=charged,
        provider_order_id=order_id,
        extra=extra,
    )


def _scored_face(body: Mapping[str, Any], raw: Any, threshold: float) -> Face:
    exact = results.exact_score(raw, 100) if raw is not None and raw != "" else None
    if exact is None:
        raise _malformed(body, "data.score is missing or not a usable number")
    score = results.display_score(exact)
    provider_score = str(raw)
    # The bands are compared with the exact score: 59.996 is review (not pass), 39.999 fail (not review).
    if results.score_at_least(exact, threshold):
        return Face("match", score=score, provider_score=provider_score, threshold=threshold)
    if results.score_at_least(exact, APETIME_REVIEW_FLOOR):
        return Face("unverified", score=score, provider_score=provider_score, threshold=threshold)
    return Face("mismatch", score=score, provider_score=provider_score, threshold=threshold)


# --------------------------------------------------------------------------------------------------
# Client


class ApetimeClient:
    """Calls Apetime's portrait verification through one keep-alive session."""

    def __init__(
        self,
        base_url: str | None = None,
        session: requests.Session | None = None,
        retry: http.RetryPolicy = http.RetryPolicy(),
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("APETIME_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.session = session if session is not None else http.new_session()
        self.retry = retry
        self.read_timeout = read_timeout
        self.clock = clock or _now_ms

    def portrait(
        self,
        *,
        app_key: str,
        app_secret: str,
        request_id: str,
        name: str,
        id_number: str,
        image_b64: str,
        threshold: float,
        multipart: bool = False,
    ) -> CheckResult:
        """Identity + selfie against the police photo; `multipart` uploads the JPEG as `selfie_file`."""
        threshold = check_threshold(threshold)
        if not app_key or not app_secret:
            raise errors.ConfigurationError("apetime_app_key and apetime_app_secret are required")
        timestamp = int(self.clock())
        data: dict[str, str] = {
            "app_key": app_key,
            "request_id": request_id,
            "id_number": id_number,
            "name": name,
            "timestamp": str(timestamp),
            "sign": apetime_sign(app_key, id_number, name, request_id, timestamp, app_secret),
        }
        files = None
        if multipart:
            files = {"selfie_file": (SELFIE_FILENAME, _decode_image(image_b64), "image/jpeg")}
        else:
            data["selfie_base64"] = selfie_base64(image_b64)
        body = http.post_json(
            self.session,
            self.base_url + PATH_PORTRAIT,
            provider=PROVIDER,
            data=data,
            files=files,
            read_timeout=self.read_timeout,
            classify=classify,
            retry=self.retry,
        )
        return parse_portrait(body, threshold)
