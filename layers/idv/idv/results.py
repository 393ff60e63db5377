"""The normalized check result (DESIGN §4) every provider client returns, and the decision policy."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

Check = Literal["compare", "four_factor", "portrait", "faceid"]
Provider = Literal["juhe", "apetime"]
Decision = Literal["pass", "fail", "review"]
IdentityResult = Literal["match", "mismatch", "not_found", "unverified"]
FaceOutcome = Literal[
    "match", "mismatch", "no_face_selfie", "no_face_reference", "no_reference_photo", "unverified"
]
MobileOutcome = Literal["match", "mismatch", "no_record", "unverified"]

DEFAULT_THRESHOLD = 60.0
APETIME_REVIEW_FLOOR = 40.0


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
    charged: bool = False
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


def normalize_score(raw: Any, scale: float | None = None) -> float | None:
    """A provider score as 0-100. Four-factor scores come on a 0-1000 scale (e.g. 982.7): divided by 10.

    With `scale` (the top of the provider's range, e.g. 1000 for four-factor, 100 elsewhere) the
    score is converted from that scale; without it a value above 100 is taken to be on 0-1000,
    which misreads a genuine 0-1000 score below 100 (a clear mismatch), so callers that know the
    scale pass it.
    """
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    if scale is not None:
        value = value * 100.0 / scale
    elif value > 100:
        value /= 10
    return round(min(max(value, 0.0), 100.0), 2)


def face_by_score(score: float | None, provider_score: Any, threshold: float) -> Face:
    """A compared face: match when the score reaches the threshold."""
    matched = score is not None and score >= threshold
    return Face(
        result="match" if matched else "mismatch",
        score=score,
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
