"""Request-field validation done before any provider call (a refused input is never paid for).

Stdlib only and cheap to import. Every validator returns the normalized value to send on, and raises
the typed error of its field (never TypeError / ValueError, whatever the input type). Error details
name the field and the rule, never the value: they end up in problem documents and logs.

- `validate_id_number`: GB 11643-1999 citizen identity number: 17 digits + MOD 11-2 check character
  (a lowercase x is accepted and returned as "X"); the birth date (characters 7-14) must be a real
  date between 1900-01-01 and today in China (UTC+8). The region code is not checked: codes are
  retired and re-issued, and the provider answers `not_found` for numbers that do not exist.
- `validate_mobile`: mainland mobile; spaces, dashes and a leading +86 / 0086 / 86 are removed.
- `validate_name`: Chinese characters (CJK Unified Ideographs, Extensions A to H, compatibility
  ideographs folded by NFC, and U+3007 〇) with middle dots between parts of minority names
  ("阿依古丽·买买提"). Lookalike separators (•, ・, ．, ･, ‧, ⋅, ∙, and the ASCII full stop) are
  normalized to U+00B7; a dot may not start or end the name or be doubled. 2-30 characters.
- `validate_consent`, `validate_threshold` (never below the deployment's), `validate_client_reference`.

The request models (`idv.schemas`) run these as field validators; the upload worker runs them too.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from idv import errors

ID_NUMBER_LENGTH = 18
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2**(17 - i) % 11
_ID_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum) % 11
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_EARLIEST_BIRTH = date(1900, 1, 1)
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_MOBILE_STRIP = str.maketrans("", "", " \t\r\n\u00a0\u3000-")

NAME_MIN_LENGTH = 2
NAME_MAX_LENGTH = 30
MIDDLE_DOT = "\u00b7"
# Separators people type for the middle dot of minority names, all normalized to U+00B7.
_DOT_LOOKALIKES = {
    "\u2022": MIDDLE_DOT,  # • bullet
    "\u30fb": MIDDLE_DOT,  # ・ katakana middle dot (Chinese IMEs)
    "\uff0e": MIDDLE_DOT,  # ． fullwidth full stop
    "\uff65": MIDDLE_DOT,  # ･ halfwidth katakana middle dot
    "\u2027": MIDDLE_DOT,  # ‧ hyphenation point (Traditional Chinese IMEs)
    "\u22c5": MIDDLE_DOT,  # ⋅ dot operator
    "\u2219": MIDDLE_DOT,  # ∙ bullet operator
    ".": MIDDLE_DOT,
}
_DOT_TRANSLATION = str.maketrans(_DOT_LOOKALIKES)
# CJK ideograph blocks allowed in names (rare characters of real names live in Extensions B+).
_IDEOGRAPH_RANGES = (
    (0x3007, 0x3007),  # 〇
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # URO
    (0xF900, 0xFAFF),  # compatibility ideographs (those without an NFC mapping)
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2EE5F),  # Extensions C, D, E, F, I
    (0x2F800, 0x2FA1F),  # compatibility supplement
    (0x30000, 0x323AF),  # Extensions G, H
)

CONSENT_TEXT_VERSION_MAX = 64
CLIENT_REFERENCE_MAX = 128
THRESHOLD_MIN = 0.0
THRESHOLD_MAX = 100.0


def id_check_char(body17: str) -> str:
    """The GB 11643-1999 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(body17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def _today_in_china() -> date:
    return datetime.now(UTC).astimezone(CHINA_TZ).date()


def validate_id_number(value: Any) -> str:
    """A GB 11643 citizen identity number, stripped and with an uppercase X; else InvalidIdNumber."""
    if not isinstance(value, str):
        raise errors.InvalidIdNumber("id_number must be a string")
    number = value.strip().upper()
    if len(number) != ID_NUMBER_LENGTH:
        raise errors.InvalidIdNumber("id_number must be 18 characters")
    if not _ID_SHAPE.fullmatch(number):
        raise errors.InvalidIdNumber("id_number must be 17 digits followed by a digit or X")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise errors.InvalidIdNumber("id_number birth date is not a valid date") from None
    if birth < _EARLIEST_BIRTH:
        raise errors.InvalidIdNumber("id_number birth date is before 1900")
    if birth > _today_in_china():
        raise errors.InvalidIdNumber("id_number birth date is in the future")
    if id_check_char(number[:17]) != number[17]:
        raise errors.InvalidIdNumber("id_number check digit does not match")
    return number


def validate_mobile(value: Any) -> str:
    """A mainland China mobile number as 11 digits (1[3-9]xxxxxxxxx); else InvalidMobile."""
    if not isinstance(value, str):
        raise errors.InvalidMobile("mobile must be a string")
    number = value.translate(_MOBILE_STRIP)
    if number.startswith("+86"):
        number = number[3:]
    elif number.startswith("0086"):
        number = number[4:]
    elif number.startswith("86") and len(number) == 13:
        number = number[2:]
    if not _MOBILE.fullmatch(number):
        raise errors.InvalidMobile("mobile must be a mainland China mobile number (11 digits starting 13-19)")
    return number


def _is_ideograph(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _IDEOGRAPH_RANGES)


def validate_name(value: Any) -> str:
    """A Chinese name (ideographs, optional middle dots), NFC-normalized, dots as U+00B7; else InvalidName."""
    if not isinstance(value, str):
        raise errors.InvalidName("name must be a string")
    name = unicodedata.normalize("NFC", value.strip()).translate(_DOT_TRANSLATION)
    if not NAME_MIN_LENGTH <= len(name) <= NAME_MAX_LENGTH:
        raise errors.InvalidName(f"name must be {NAME_MIN_LENGTH} to {NAME_MAX_LENGTH} characters")
    if name[0] == MIDDLE_DOT or name[-1] == MIDDLE_DOT:
        raise errors.InvalidName("name may not start or end with a middle dot")
    if MIDDLE_DOT * 2 in name:
        raise errors.InvalidName("name may not contain consecutive middle dots")
    if not all(char == MIDDLE_DOT or _is_ideograph(char) for char in name):
        raise errors.InvalidName("name must be Chinese characters, with middle dots between parts")
    return name


def validate_consent(value: Any) -> dict[str, Any]:
    """`{"granted": true, "text_version": "..."}` exactly as required for face checks; else ConsentRequired."""
    if not isinstance(value, dict):
        raise errors.ConsentRequired("consent must be an object with granted and text_version")
    if value.get("granted") is not True:
        raise errors.ConsentRequired("consent.granted must be true")
    version = value.get("text_version")
    if not isinstance(version, str) or not version.strip():
        raise errors.ConsentRequired("consent.text_version must be a non-empty string")
    version = version.strip()
    if len(version) > CONSENT_TEXT_VERSION_MAX or not version.isprintable():
        raise errors.ConsentRequired(
            f"consent.text_version must be at most {CONSENT_TEXT_VERSION_MAX} printable characters"
        )
    return {"granted": True, "text_version": version}


def validate_threshold(value: Any, deployment: float) -> float:
    """A request's face score threshold: from the deployment's FACE_SCORE_THRESHOLD up to 100 (a request
    may be stricter than the deployment, never laxer); None means the deployment's. -0.0 becomes 0.0."""
    if value is None:
        return float(deployment) + 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.InvalidRequest("threshold must be a number", field="threshold")
    try:
        threshold = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
    except OverflowError:  # an int too large for a float
        raise errors.InvalidRequest("threshold must be a number from 0 to 100", field="threshold") from None
    if not THRESHOLD_MIN <= threshold <= THRESHOLD_MAX:  # also refuses NaN
        raise errors.InvalidRequest("threshold must be a number from 0 to 100", field="threshold")
    if threshold < deployment:
        raise errors.ThresholdTooLow(
            f"threshold may not be below the deployment's FACE_SCORE_THRESHOLD ({deployment:g}): a request may"
            " make the decision stricter, never laxer"
        )
    return threshold


def validate_client_reference(value: Any) -> str | None:
    """An optional caller reference: None (or "") or up to 128 printable characters; else InvalidRequest."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.InvalidRequest("client_reference must be a string")
    if len(value) > CLIENT_REFERENCE_MAX or not value.isprintable():
        raise errors.InvalidRequest(f"client_reference must be at most {CLIENT_REFERENCE_MAX} printable characters")
    return value
