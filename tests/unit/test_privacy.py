"""idv.privacy: the only forms of personal data that are stored or logged."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idv import errors
from idv.privacy import hmac_id_number, mask_id_number, mask_mobile, mask_name, mask_subject

KEY = "test-pii-key-0123456789"


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("阿依古丽·买买提", "阿*******"),  # middle dot masked too: the split is not revealed
        ("爱新觉罗·溥仪", "爱******"),
        (" 张三 ", "张*"),
        ("张", "*"),
        ("", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_mask_name_keeps_length_and_only_the_first_char() -> None:
    name = "阿依古丽·买买提"
    masked = mask_name(name)
    assert len(masked) == len(name)
    assert "·" not in masked
    assert all(char not in masked for char in name[1:])


@pytest.mark.parametrize(
    ("id_number", "masked"),
    [
        ("110101199003071234", "110***********1234"),
        ("11010519491231002X", "110***********002X"),
        ("11010519491231002x", "110***********002X"),
        (" 110101199003071234 ", "110***********1234"),
        ("1234567", "*******"),  # malformed: never shown whole
    ],
)
def test_mask_id_number(id_number: str, masked: str) -> None:
    assert mask_id_number(id_number) == masked


def test_mask_id_number_shape() -> None:
    masked = mask_id_number("440304200002290012")
    assert masked.count("*") == 11
    assert len(masked) == 18
    assert "20000229" not in masked  # the birth date is hidden


@pytest.mark.parametrize(
    ("mobile", "masked"),
    [("13800000000", "138****0000"), ("18912345678", "189****5678"), ("1234", "****")],
)
def test_mask_mobile(mobile: str, masked: str) -> None:
    assert mask_mobile(mobile) == masked


def test_hmac_matches_independent_computation() -> None:
    number = "110101199003071234"
    expected = hmac.new(KEY.encode(), number.encode(), hashlib.sha256).hexdigest()
    assert hmac_id_number(KEY, number) == expected
    assert len(expected) == 64


def test_hmac_uses_utf8_key() -> None:
    key = "密钥-🔑"
    number = "11010519491231002X"
    assert hmac_id_number(key, number) == hmac.new(key.encode("utf-8"), number.encode(), "sha256").hexdigest()


def test_hmac_lowercase_and_uppercase_x_agree() -> None:
    assert hmac_id_number(KEY, "11010519491231002x") == hmac_id_number(KEY, "11010519491231002X")
    assert hmac_id_number(KEY, " 11010519491231002X ") == hmac_id_number(KEY, "11010519491231002X")


def test_hmac_depends_on_key_and_number() -> None:
    base = hmac_id_number(KEY, "110101199003071234")
    assert hmac_id_number(KEY + "x", "110101199003071234") != base
    assert hmac_id_number(KEY, "110101199003071242") != base
    assert "110101199003071234" not in base


@pytest.mark.parametrize("key", ["", None, b"bytes-key"])
def test_hmac_refuses_a_missing_key(key: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="pii_hmac_key"):
        hmac_id_number(key, "110101199003071234")  # type: ignore[arg-type]


def test_mask_subject_all_fields() -> None:
    assert mask_subject(name="张三", id_number="110101199003071234", mobile="13800000000") == {
        "name": "张*",
        "id_number": "110***********1234",
        "mobile": "138****0000",
    }


def test_mask_subject_missing_fields_are_none() -> None:
    assert mask_subject() == {"name": None, "id_number": None, "mobile": None}
    assert mask_subject(name="欧阳娜娜") == {"name": "欧***", "id_number": None, "mobile": None}
    assert mask_subject(mobile="13800000000")["mobile"] == "138****0000"


@given(st.text("0123456789", min_size=18, max_size=18))
def test_mask_id_never_reveals_the_middle(number: str) -> None:
    masked = mask_id_number(number)
    assert masked[:3] == number[:3]
    assert masked[-4:] == number[-4:]
    assert masked[3:14] == "*" * 11


@given(st.text(min_size=2, max_size=30).filter(lambda s: s.strip() == s and len(s) >= 2))
def test_mask_name_reveals_one_character(name: str) -> None:
    masked = mask_name(name)
    assert masked[0] == name[0]
    assert set(masked[1:]) == {"*"}
