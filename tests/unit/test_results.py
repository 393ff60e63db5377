"""results: provider numbers (what DynamoDB can hold), exact scores vs display scores, band edges."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from idv import results
from idv.results import Face

# --------------------------------------------------------------------------------------------------
# provider_number: a provider's number exactly, only when a DynamoDB number can hold it

USABLE = {
    "int": (87, Decimal(87)),
    "float": (91.1173, Decimal("91.1173")),
    "text": ("91.11730", Decimal("91.11730")),
    "text_padded": (" 87 ", Decimal(87)),
    "exponent": ("8.7e1", Decimal("87")),
    "zero": ("0", Decimal(0)),
    "negative_zero": ("-0", Decimal(0)),
    "smallest": ("1E-130", Decimal("1E-130")),
    "largest": (
        "9.9999999999999999999999999999999999999E+125",
        Decimal("9.9999999999999999999999999999999999999E+125"),
    ),
    "38_digits": ("1.2345678901234567890123456789012345678", Decimal("1.2345678901234567890123456789012345678")),
    "trailing_zeros": ("60." + "0" * 60, Decimal(60)),
}

UNUSABLE = {
    "bool": True,
    "none": None,
    "empty": "",
    "word": "high",
    "nan_text": "NaN",
    "nan_float": float("nan"),
    "inf_text": "Infinity",
    "inf_float": float("inf"),
    "overflow_text": "1e999",
    "underflow_text": "1e-200",
    "underflow_float": 1e-200,
    "below_min": "9E-131",
    "above_max": "1E+126",
    "big_float": 1e308,
    "huge_int": 10**400,
    "huge_int_text": "1" + "0" * 400,
    "39_digits": "1.23456789012345678901234567890123456789",
    "underscore": "1_000",
    "full_width_digits": "８７",
    "hex": "0x10",
    "list": [87],
    "dict": {"v": 87},
}


@pytest.mark.parametrize(("raw", "expected"), USABLE.values(), ids=USABLE.keys())
def test_provider_number_usable(raw: Any, expected: Decimal) -> None:
    number = results.provider_number(raw)
    assert number == expected
    TypeSerializer().serialize(number)  # DynamoDB (boto3's context) takes it as it is


@pytest.mark.parametrize("raw", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_provider_number_unusable(raw: Any) -> None:
    assert results.provider_number(raw) is None


# --------------------------------------------------------------------------------------------------
# exact scores are compared; the display score never crosses an edge the exact score did not


@pytest.mark.parametrize(
    ("raw", "scale", "exact", "display"),
    [
        ("59.996", 100, Decimal("59.996"), 59.99),
        (59.996, 100, Decimal("59.996"), 59.99),
        ("39.999", 100, Decimal("39.999"), 39.99),
        ("59." + "9" * 30, 100, Decimal("59." + "9" * 30), 59.99),
        ("982.7", 1000, Decimal("98.27"), 98.27),
        (599.96, 1000, Decimal("59.996"), 59.99),
        ("87", 100, Decimal(87), 87.0),
        ("29.9", 100, Decimal("29.9"), 29.9),
        ("150", 100, Decimal(150), 100.0),  # out of range: compared as sent, shown clamped
        ("-3", 100, Decimal(-3), 0.0),
    ],
)
def test_exact_and_display_score(raw: Any, scale: int, exact: Decimal, display: float) -> None:
    assert results.exact_score(raw, scale) == exact
    assert results.display_score(exact) == display


@pytest.mark.parametrize(
    ("score", "threshold"), [("59.996", 60), ("59.9999999999", 60), ("69.995", 70), ("60.09", 60.1)]
)
def test_just_under_the_threshold_is_a_mismatch(score: str, threshold: float) -> None:
    face = results.face_by_score(results.exact_score(score, 100), score, threshold)
    assert face.result == "mismatch"
    assert face.score is not None and face.score < threshold  # the shown score agrees with the decision
    assert face.provider_score == score


@pytest.mark.parametrize(("score", "threshold"), [("60", 60), ("60.0", 60), ("60.1", 60.1), ("100", 100)])
def test_at_the_threshold_is_a_match(score: str, threshold: float) -> None:
    face = results.face_by_score(results.exact_score(score, 100), score, threshold)
    assert face == Face("match", score=float(Decimal(score)), provider_score=score, threshold=threshold)


def test_score_at_least_is_exact() -> None:
    assert results.score_at_least(Decimal("59.999999999999999999"), 60) is False
    assert results.score_at_least(Decimal("60"), 60.0) is True
    assert results.score_at_least(Decimal("39.999"), results.APETIME_REVIEW_FLOOR) is False


def test_normalize_score_rounds_down_for_display() -> None:
    assert results.normalize_score("59.996", scale=100) == 59.99
    assert results.normalize_score("982.7", scale=1000) == 98.27
    assert results.normalize_score("1e-200", scale=100) is None
    assert results.normalize_score(None) is None
