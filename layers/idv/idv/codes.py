"""Every provider code in the provider documents, classified once: outcome or error, charged, retried.

Juhe bills a call when `error_code` is 0 and only then; Apetime bills when `charge` is 1, whatever the
code. A few non-zero Juhe codes are business outcomes rather than failures (226402 no record, 280105
identity and mobile could not be verified, 279305 liveness error) or mean "not finished yet" (279306,
279307); they are classified here so the result parsers never guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from idv import errors

Kind = Literal["outcome", "error", "pending"]


@dataclass(frozen=True, slots=True)
class CodeInfo:
    code: str
    meaning: str
    kind: Kind
    error: type[errors.IdvError] | None = None
    auto_retry: bool = False

    @property
    def problem_code(self) -> str | None:
        return self.error.code if self.error else None

    @property
    def http_status(self) -> int:
        return self.error.status if self.error else 200


_R = errors.ProviderRejected
_U = errors.ProviderUnavailable
_L = errors.ProviderRateLimited


def _e(code: str, meaning: str, error: type[errors.IdvError], auto_retry: bool = False) -> CodeInfo:
    return CodeInfo(code, meaning, "error", error, auto_retry)


# Juhe system-level codes, shared by every Juhe API (never charged: error_code != 0).
JUHE_SYSTEM: dict[str, CodeInfo] = {
    c.code: c
    for c in (
        _e("10001", "wrong request key", _R),
        _e("10002", "key has no permission for this API", _R),
        _e("10003", "key expired", _R),
        _e("10004", "wrong openid", _R),
        _e("10005", "application not approved", _R),
        _e("10007", "unknown request source", _R),
        _e("10008", "IP banned", _R),
        _e("10009", "key banned", _R),
        _e("10011", "IP request rate over limit", _L, auto_retry=True),
        _e("10012", "request count over limit", _L, auto_retry=True),
        _e("10013", "test key over its request limit", _R),
        _e("10014", "provider internal error", _U),
        _e("10020", "API under maintenance", _U, auto_retry=True),
        _e("10021", "API disabled", _R),
    )
}

# Service-level codes per Juhe API.
JUHE_VERIFYFACE: dict[str, CodeInfo] = {
    c.code: c
    for c in (
        _e("226401", "data source timeout", _U),
        CodeInfo("226402", "no record for this identity", "outcome"),
        _e("226403", "parameter error", _R),
        _e("226404", "comparison error", _U),
    )
}

JUHE_FOUR_FACTOR: dict[str, CodeInfo] = {
    c.code: c
    for c in (
        _e("280101", "a parameter is empty", _R),
        _e("280102", "ID number format error", errors.InvalidIdNumber),
        _e("280103", "mobile format error", errors.InvalidMobile),
        _e("280104", "name format error", errors.InvalidName),
        CodeInfo("280105", "identity and mobile verification failed", "outcome"),
    )
}

JUHE_FACEID: dict[str, CodeInfo] = {
    c.code: c
    for c in (
        _e("279301", "parameter error", _R),
        _e("279302", "no such verification record", errors.NotFound),
        _e("279303", "provider network error", _U),
        _e("279304", "query failed", _U),
        CodeInfo("279305", "liveness detection error", "outcome"),
        CodeInfo("279306", "liveness detection not finished", "pending"),
        CodeInfo("279307", "client has not submitted or finished verification", "pending"),
    )
}

# Apetime response codes (`code`); billing is the separate `charge` field.
APETIME: dict[str, CodeInfo] = {
    c.code: c
    for c in (
        CodeInfo("0000", "success", "outcome"),
        _e("1000", "signature check failed", _R),
        _e("1001", "parameters not UTF-8", _R),
        _e("1002", "request parameter error", _R),
        _e("1003", "merchant frozen", _R),
        _e("1004", "merchant disabled", _R),
        _e("1005", "merchant account expired", _R),
        _e("1006", "call rate too high", _L, auto_retry=True),
        _e("1007", "free calls used up", _R),
        _e("1008", "no permission for this service", _R),
        _e("1009", "app_key check failed", _R),
        _e("1010", "request expired (timestamp outside the window: check the clock)", _R),
        _e("2000", "supplier service error", _U),
        _e("9999", "other error", _U),
    )
}

JUHE_SERVICE_TABLES = {
    "verifyface": JUHE_VERIFYFACE,
    "four_factor": JUHE_FOUR_FACTOR,
    "faceid": JUHE_FACEID,
}


def juhe_code(api: str, error_code: int | str) -> CodeInfo:
    """Classification of a non-zero Juhe `error_code` for `api`; unknown codes are unavailability."""
    code = str(error_code)
    info = JUHE_SERVICE_TABLES[api].get(code) or JUHE_SYSTEM.get(code)
    return info or _e(code, "undocumented error code", _U)


def apetime_code(code: str) -> CodeInfo:
    """Classification of an Apetime `code`; unknown codes are unavailability."""
    return APETIME.get(str(code)) or _e(str(code), "undocumented error code", _U)


# Codes that mean a credential in the provider secret is wrong or unusable: the error detail names the
# secret field to check, so an operator knows what to fix (the secret's values are never shown).
JUHE_KEY_FIELDS: dict[str, str] = {
    "verifyface": "juhe_verifyface_key",
    "four_factor": "juhe_four_factor_key",
    "faceid": "juhe_faceid_key",
}
JUHE_CREDENTIAL_CODES = frozenset({"10001", "10002", "10003", "10004", "10005", "10009", "10013", "10021"})
APETIME_CREDENTIAL_FIELDS: dict[str, str] = {
    "1000": "apetime_app_secret",
    "1003": "apetime_app_key",
    "1004": "apetime_app_key",
    "1005": "apetime_app_key",
    "1007": "apetime_app_key",
    "1008": "apetime_app_key",
    "1009": "apetime_app_key",
}


def credential_hint(provider: str, api: str, code: str) -> str | None:
    """What to check in the provider secret for a credential error code (None for other codes)."""
    code = str(code)
    if provider == "juhe" and code in JUHE_CREDENTIAL_CODES and api in JUHE_KEY_FIELDS:
        field = "juhe_openid" if code == "10004" else JUHE_KEY_FIELDS[api]
        if code == "10002":
            return f"check that {field} in the provider secret (PROVIDER_SECRET_ID) is the key of Juhe's {api} API"
        return f"check {field} in the provider secret (PROVIDER_SECRET_ID) and its Juhe account"
    if provider == "apetime" and code in APETIME_CREDENTIAL_FIELDS:
        field = APETIME_CREDENTIAL_FIELDS[code]
        return f"check {field} in the provider secret (PROVIDER_SECRET_ID) and its Apetime account"
    return None


# Four-factor `res` -> (identity, face, mobile). 不通过 = mismatch, 失败 = unverified, 查询无记录 = no_record.
FOUR_FACTOR_RES: dict[int, tuple[str, str, str]] = {
    100: ("match", "match", "match"),
    101: ("match", "match", "mismatch"),
    102: ("match", "mismatch", "match"),
    103: ("match", "mismatch", "mismatch"),
    104: ("match", "unverified", "match"),
    105: ("mismatch", "unverified", "match"),
    106: ("match", "unverified", "mismatch"),
    107: ("mismatch", "unverified", "mismatch"),
    108: ("match", "match", "unverified"),
    109: ("match", "match", "no_record"),
    110: ("match", "mismatch", "unverified"),
    111: ("match", "mismatch", "no_record"),
    112: ("match", "unverified", "unverified"),
    113: ("match", "unverified", "no_record"),
    114: ("mismatch", "unverified", "unverified"),
    115: ("unverified", "unverified", "match"),
    116: ("unverified", "unverified", "mismatch"),
}

# verifyface res=2 sub-codes -> face result.
VERIFYFACE_FACE_CODES: dict[str, str] = {
    "3003": "no_face_reference",
    "3004": "no_face_selfie",
    "3005": "unverified",
}

# FaceID certify_code -> (identity, face).
FACEID_CERTIFY: dict[str, tuple[str, str]] = {
    "200": ("match", "match"),
    "201": ("match", "no_face_reference"),
    "202": ("match", "no_face_selfie"),
    "203": ("match", "mismatch"),
    "204": ("mismatch", "unverified"),
    "205": ("unverified", "unverified"),
    "206": ("unverified", "unverified"),
}

# FaceID live_code -> reason when liveness did not pass (200 = passed).
FACEID_LIVENESS_REASONS: dict[str, str | None] = {
    "200": None,
    "201": "liveness_risk",
    "202": "liveness_policy_blocked",
    "203": "liveness_low_quality",
    "204": "liveness_source_error",
    "205": "liveness_intent_failed",
}

# Apetime data.photo -> face result (1 = compared, score follows).
APETIME_PHOTO: dict[int, str] = {1: "match", 2: "no_reference_photo", 3: "no_face_selfie"}
