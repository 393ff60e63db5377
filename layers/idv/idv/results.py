"""The normalized check result (DESIGN §4) every provider client returns, and the decision policy."""

from __future__ import annotations

import decimal
import numbers
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

Check = Literal["compare", "four_factor", "portrait", "faceid"]
Provider = Literal["juhe", "apetime"]
Decision = Literal["pass", "fail", "review"]
IdentityResult = Literal["match", "mismatch", "not_found", "unverified"]
FaceOutcome = Literal["match", "mismatch", "no_face_selfie", "no_face_reference", "no_reference_photo", "unverified"]
MobileOutcome = Literal["match", "mismatch", "no_record", "unverified"]

DEFAULT_THRESHOLD = 60.0
APETIME_REVIEW_FLOOR = 40.0

# What a DynamoDB number can hold: 38 significant digits, 0 or a magnitude in [1E-130, 9.99...E+125].
DYNAMO_DIGITS = 38
DYNAMO_MIN = Decimal("1E-130")
DYNAMO_MAX = Decimal("9.9999999999999999999999999999999999999E+125")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Enough precision that converting a 38-digit number to another scale is exact.
_EXACT = decimal.Context(prec=100, Emin=-999_999, Emax=999_999, traps=[decimal.InvalidOperation])
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Face:
    result: FaceOutcome
    score: float | None = None
    provider_score: str | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Mobile:
    result: MobileOutcome
    carrier: str | None = None


@dataclass(frozen=True, slots=True)
class Liveness:
    passed: bool
    code: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one finished provider check says, before it becomes a stored verification record."""

    check: Check
    provider: Provider
    decision: Decision
    identity: IdentityResult
    reasons: tuple[str, ...] = ()
    face: Face | None = None
    mobile: Mobile | None = None
    liveness: Liveness | None = None
    charged: bool | None = False  # None: the answer does not say whether it was billed
    provider_order_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data.pop("extra")
        return data


def check_threshold(threshold: Any) -> float:
    """The face-score threshold (0-100) as a float; a request's own value was validated upstream."""
    from idv import errors

    if isinstance(threshold, bool) or not isinstance(threshold, (numbers.Real, Decimal)):
        raise errors.InvalidRequest("threshold must be a number between 0 and 100", field="threshold")
    value = float(threshold)
    if not 0.0 <= value <= 100.0:  # also refuses NaN
        raise errors.InvalidRequest("threshold must be a number between 0 and 100", field="threshold")
    return value


def provider_number(raw: Any) -> Decimal | None:
    """A provider's number exactly as sent, or None when it is not one a DynamoDB number can hold.

    Accepted: a JSON int or float, or ASCII decimal text (`"91.11730"`, `"8.7e1"`, surrounding spaces
    ignored). Refused (None): bools, NaN and infinities, anything over 38 significant digits, a non-zero
    magnitude under 1E-130 or over 9.99...E+125 (so `1e999`, `1e-200`, `10**400`), underscores,
    non-ASCII digits and everything else. Parsers turn None for a present value into a malformed answer,
    so such a number is refused where it arrives, never when the record is stored.
    """
    if isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, int):
            number = Decimal(raw)
        elif isinstance(raw, float):
            number = Decimal(repr(raw))  # the shortest text that reads back as this float (what JSON had)
        elif isinstance(raw, str) and _NUMBER_TEXT.fullmatch(raw.strip()):
            number = Decimal(raw.strip())
        else:
            return None
    except (ValueError, ArithmeticError):
        return None
    if not number.is_finite():
        return None
    if number.is_zero():
        return Decimal(0)
    digits = number.as_tuple().digits
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1  # trailing zeros are not significant (60.000 is 6E+1)
    if significant > DYNAMO_DIGITS or not DYNAMO_MIN <= number.copy_abs() <= DYNAMO_MAX:
        return None
    return number.normalize(_EXACT) if significant < len(digits) else number


def exact_score(raw: Any, scale: float) -> Decimal | None:
    """A provider score converted from its 0-`scale` range to 0-100, exactly (not clamped, not rounded).

    This is the value the threshold and the bands are compared with; None when `raw` is not a usable
    `provider_number`.
    """
    number = provider_number(raw)
    if number is None:
        return None
    return _EXACT.divide(_EXACT.multiply(number, Decimal(100)), Decimal(repr(float(scale))))


def display_score(exact: Decimal) -> float:
    """The 0-100 score we show and store: clamped, then cut (not rounded) to 2 decimals.

    Cutting keeps the shown score on the same side of every 2-decimal band edge as the exact score:
    59.996 is shown as 59.99, never as 60.0 next to a `review` decision.
    """
    clamped = min(max(exact, Decimal(0)), Decimal(100))
    return float(clamped.quantize(_CENT, rounding=decimal.ROUND_DOWN, context=_EXACT))


def score_at_least(exact: Decimal, edge: float) -> bool:
    """Whether the exact score reaches `edge` (a threshold or a band floor), compared exactly."""
    return exact >= Decimal(repr(float(edge)))


def normalize_score(raw: Any, scale: float | None = None) -> float | None:
    """A provider score as the 0-100 display score (see `display_score`); None when it is not usable.

    With `scale` (the top of the provider's range, e.g. 1000 for four-factor, 100 elsewhere) the
    score is converted from that scale; without it a value above 100 is taken to be on 0-1000,
    which misreads a genuine 0-1000 score below 100 (a clear mismatch), so callers that know the
    scale pass it. Decisions never use this value: they compare `exact_score`.
    """
    if raw is None or raw == "":
        return None
    number = provider_number(raw)
    if number is None:
        return None
    if scale is None:
        scale = 1000 if number > 100 else 100
    exact = exact_score(raw, scale)
    return None if exact is None else display_score(exact)


def face_by_score(exact: Decimal | None, provider_score: Any, threshold: float) -> Face:
    """A compared face: match when the exact score reaches the threshold; `score` is the display score."""
    matched = exact is not None and score_at_least(exact, threshold)
    return Face(
        result="match" if matched else "mismatch",
        score=None if exact is None else display_score(exact),
        provider_score=None if provider_score is None else str(provider_score),
        threshold=threshold,
    )


def reasons_for(identity: str, face: Face | None, mobile: Mobile | None = None) -> tuple[str, ...]:
    """Machine reasons for every non-matching part, in a fixed order (identity, face, mobile)."""
    reasons: list[str] = []
    if identity != "match":
        reasons.append(f"identity_{identity}")
    if face is not None and face.result != "match":
        reasons.append(face.result if face.result.startswith("no_") else f"face_{face.result}")
    if mobile is not None and mobile.result != "match":
        reasons.append(f"mobile_{mobile.result}")
    return tuple(reasons)
