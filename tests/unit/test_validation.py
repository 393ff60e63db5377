"""idv.validation: every rule, checked against an independent GB 11643 implementation."""

from __future__ import annotations

import math
import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idv import errors, validation
from idv.validation import (
    validate_client_reference,
    validate_consent,
    validate_id_number,
    validate_mobile,
    validate_name,
    validate_threshold,
)

# --- an independent GB 11643-1999 MOD 11-2 implementation (weights from 2^(i-1) mod 11) ---------


def reference_check_char(body17: str) -> str:
    total = sum(int(body17[k]) * pow(2, 17 - k, 11) for k in range(17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def make_id(region: str = "110105", birth: date = date(1990, 3, 7), seq: str = "123") -> str:
    body = f"{region}{birth:%Y%m%d}{seq}"
    return body + reference_check_char(body)


NON_STRINGS = [None, 110105194912310021, 1.5, b"11010519491231002X", ["x"], {"a": 1}, True]


class TestIdNumber:
    def test_standard_example_from_gb11643(self) -> None:
        assert reference_check_char("11010519491231002") == "X"
        assert validate_id_number("11010519491231002X") == "11010519491231002X"

    @pytest.mark.parametrize(
        "number",
        [
            make_id("110105", date(1990, 3, 7), "123"),
            make_id("440304", date(2000, 2, 29), "001"),
            make_id("310101", date(1900, 1, 1), "999"),
            make_id("650102", date(1985, 12, 31), "456"),
        ],
    )
    def test_known_valid_numbers(self, number: str) -> None:
        assert validate_id_number(number) == number

    def test_lowercase_x_is_returned_uppercase(self) -> None:
        assert validate_id_number("11010519491231002x") == "11010519491231002X"

    def test_surrounding_whitespace_is_stripped(self) -> None:
        number = make_id()
        assert validate_id_number(f"  {number}\n") == number

    def test_wrong_check_digit(self) -> None:
        number = make_id()
        wrong = number[:17] + ("0" if number[17] != "0" else "1")
        with pytest.raises(errors.InvalidIdNumber) as info:
            validate_id_number(wrong)
        assert info.value.detail == "id_number check digit does not match"
        assert wrong not in info.value.detail

    @pytest.mark.parametrize("number", ["", "1101051949123100", "11010519491231002XX", "1" * 15, "1" * 19])
    def test_wrong_length(self, number: str) -> None:
        with pytest.raises(errors.InvalidIdNumber, match="18 characters"):
            validate_id_number(number)

    @pytest.mark.parametrize(
        "number",
        [
            "1101051949123100AX",
            "X1010519491231002X",
            "11010519491231002Y",
            "110105 94912310021",
            "１１０１０５１９４９１２３１００２Ｘ",
        ],
    )
    def test_letters_and_non_ascii_digits(self, number: str) -> None:
        with pytest.raises(errors.InvalidIdNumber):
            validate_id_number(number)

    def test_unicode_digits_are_not_digits(self) -> None:
        # Arabic-Indic digits pass str.isdigit(); they must not pass here.
        number = "\u0661" + make_id()[1:]
        with pytest.raises(errors.InvalidIdNumber, match="17 digits"):
            validate_id_number(number)

    def test_future_birth_date(self) -> None:
        future = date.today() + timedelta(days=400)
        with pytest.raises(errors.InvalidIdNumber, match="future"):
            validate_id_number(make_id(birth=future))

    def test_birth_date_today_in_china_is_accepted_a_day_later_is_not(self) -> None:
        today = validation._today_in_china()
        assert validate_id_number(make_id(birth=today))
        with pytest.raises(errors.InvalidIdNumber, match="future"):
            validate_id_number(make_id(birth=today + timedelta(days=1)))

    @pytest.mark.parametrize("birth", ["19900230", "19900001", "19901301", "20010229", "19900431", "00000000"])
    def test_impossible_dates(self, birth: str) -> None:
        body = f"110105{birth}123"
        with pytest.raises(errors.InvalidIdNumber, match="not a valid date"):
            validate_id_number(body + reference_check_char(body))

    def test_before_1900(self) -> None:
        # 440524188001010014 is the classic example number of the standard (born 1880): valid checksum.
        assert reference_check_char("44052418800101001") == "4"
        with pytest.raises(errors.InvalidIdNumber, match="before 1900"):
            validate_id_number("440524188001010014")

    @pytest.mark.parametrize("value", NON_STRINGS)
    def test_non_strings(self, value: object) -> None:
        with pytest.raises(errors.InvalidIdNumber):
            validate_id_number(value)

    @pytest.mark.parametrize(
        "number", [make_id()[:17] + "0", "11010519900230123X", "11010529990101123X", "1101051990030712"]
    )
    def test_detail_never_contains_the_value(self, number: str) -> None:
        with pytest.raises(errors.InvalidIdNumber) as info:
            validate_id_number(number)
        problem = info.value.to_problem()
        assert problem["code"] == "invalid_id_number"
        assert problem["status"] == 422
        assert number not in str(problem)
        assert number[:10] not in str(problem)

    @settings(max_examples=300, deadline=None)
    @given(
        region=st.text("0123456789", min_size=6, max_size=6),
        birth=st.dates(min_value=date(1900, 1, 1), max_value=date.today() - timedelta(days=1)),
        seq=st.text("0123456789", min_size=3, max_size=3),
        lower=st.booleans(),
    )
    def test_property_only_the_computed_check_char_validates(
        self, region: str, birth: date, seq: str, lower: bool
    ) -> None:
        body = f"{region}{birth:%Y%m%d}{seq}"
        good = reference_check_char(body)
        sent = body + (good.lower() if lower else good)
        assert validate_id_number(sent) == body + good
        for other in "0123456789X":
            if other != good:
                with pytest.raises(errors.InvalidIdNumber, match="check digit"):
                    validate_id_number(body + other)

    def test_module_check_char_agrees_with_reference(self) -> None:
        for n in range(0, 10**17, 10**17 // 997):
            body = f"{n:017d}"
            assert validation.id_check_char(body) == reference_check_char(body)


class TestMobile:
    @pytest.mark.parametrize(
        "value",
        [
            "13800000000",
            "+86 138-0000-0000",
            "+8613800000000",
            "0086 138 0000 0000",
            "8613800000000",
            " 138 0000 0000 ",
            "138-0000-0000",
            "+86-138-0000-0000",
            "\u3000138\u00a00000 0000",
        ],
    )
    def test_accepted_forms(self, value: str) -> None:
        assert validate_mobile(value) == "13800000000"

    @pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
    def test_all_mobile_ranges(self, prefix: str) -> None:
        number = prefix + "912345678"
        assert validate_mobile(number) == number

    @pytest.mark.parametrize(
        "value",
        [
            "138000000001",  # 12 digits
            "1380000000",  # 10 digits
            "12800000000",  # 12x is not a mobile range
            "10800000000",
            "23800000000",
            "1380000000a",
            "abcdefghijk",
            "",
            "   ",
            "+8612800000000",
            "86138000000",  # 11 digits starting 86: not stripped, not a mobile
            "+1 13800000000",
            "(138)00000000",
            "１３８００００００００",  # fullwidth digits
            "+86+8613800000000",
        ],
    )
    def test_rejected(self, value: str) -> None:
        with pytest.raises(errors.InvalidMobile) as info:
            validate_mobile(value)
        assert info.value.code == "invalid_mobile"
        if value.strip():
            assert value.strip() not in info.value.detail

    @pytest.mark.parametrize("value", NON_STRINGS)
    def test_non_strings(self, value: object) -> None:
        with pytest.raises(errors.InvalidMobile):
            validate_mobile(value)


class TestName:
    @pytest.mark.parametrize("value", ["张三", "欧阳娜娜", "阿依古丽·买买提", "爱新觉罗·溥仪", "李〇", "王㐀", "陈𠀀"])
    def test_accepted(self, value: str) -> None:
        assert validate_name(value) == value

    def test_stripped(self) -> None:
        assert validate_name("  张三\u3000\n") == "张三"

    @pytest.mark.parametrize("dot", ["\u2022", "\u30fb", "\uff0e", "\uff65", "\u2027", "\u0387", "."])
    def test_dot_lookalikes_become_middle_dot(self, dot: str) -> None:
        assert validate_name(f"阿依古丽{dot}买买提") == "阿依古丽\u00b7买买提"

    def test_compatibility_ideographs_are_folded(self) -> None:
        assert validate_name("\uf900三") == unicodedata.normalize("NFC", "\uf900") + "三"
        assert validate_name("\uf900三") == "\u8c48三"

    def test_lengths(self) -> None:
        assert validate_name("张" * 30) == "张" * 30
        for bad in ("张", "张" * 31, ""):
            with pytest.raises(errors.InvalidName, match="2 to 30"):
                validate_name(bad)

    @pytest.mark.parametrize("value", ["·张三", "张三·", "张··三", "•张三", "张三・", "张．．三", "··"])
    def test_dot_placement(self, value: str) -> None:
        with pytest.raises(errors.InvalidName, match="middle dot"):
            validate_name(value)

    @pytest.mark.parametrize(
        "value",
        ["Zhang San", "ZhangSan", "张San", "张 三", "张三1", "张三😀", "김철수", "やまだ", "张-三", "张\u200b三"],
    )
    def test_non_chinese_rejected(self, value: str) -> None:
        with pytest.raises(errors.InvalidName, match="Chinese characters"):
            validate_name(value)

    @pytest.mark.parametrize("value", NON_STRINGS)
    def test_non_strings(self, value: object) -> None:
        with pytest.raises(errors.InvalidName):
            validate_name(value)

    def test_detail_never_contains_the_value(self) -> None:
        with pytest.raises(errors.InvalidName) as info:
            validate_name("张San")
        assert "张" not in str(info.value.to_problem())


class TestConsent:
    def test_valid(self) -> None:
        assert validate_consent({"granted": True, "text_version": "2025-06"}) == {
            "granted": True,
            "text_version": "2025-06",
        }

    def test_extra_keys_dropped_and_version_stripped(self) -> None:
        result = validate_consent({"granted": True, "text_version": " v1 ", "ip": "1.2.3.4"})
        assert result == {"granted": True, "text_version": "v1"}

    def test_64_chars_ok_65_not(self) -> None:
        assert validate_consent({"granted": True, "text_version": "v" * 64})["text_version"] == "v" * 64
        with pytest.raises(errors.ConsentRequired):
            validate_consent({"granted": True, "text_version": "v" * 65})

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            "granted",
            ["granted"],
            {},
            {"granted": False, "text_version": "v1"},
            {"granted": "true", "text_version": "v1"},
            {"granted": 1, "text_version": "v1"},
            {"granted": True},
            {"granted": True, "text_version": ""},
            {"granted": True, "text_version": "   "},
            {"granted": True, "text_version": 1},
            {"granted": True, "text_version": None},
            {"granted": True, "text_version": "v\n1"},
            {"granted": True, "text_version": "v\x001"},
            {"text_version": "v1"},
        ],
    )
    def test_refused(self, value: object) -> None:
        with pytest.raises(errors.ConsentRequired) as info:
            validate_consent(value)
        assert info.value.code == "consent_required"
        assert info.value.status == 422


class TestThreshold:
    @pytest.mark.parametrize(("value", "expected"), [(100, 100.0), (60, 60.0), (75.5, 75.5), (60.0, 60.0)])
    def test_accepted(self, value: float, expected: float) -> None:
        result = validate_threshold(value, 60.0)
        assert result == expected
        assert type(result) is float

    def test_none_is_the_deployments(self) -> None:
        assert validate_threshold(None, 70) == 70.0
        assert type(validate_threshold(None, 70)) is float

    @pytest.mark.parametrize("value", [0, 0.0, 59.99, 7, -0.0])
    def test_below_the_deployment_is_refused_with_its_own_code(self, value: float) -> None:
        """A request may be stricter than the deployment, never laxer (before: `threshold: 0` turned
        another person's face, score 7, into a pass)."""
        with pytest.raises(errors.ThresholdTooLow) as info:
            validate_threshold(value, 60.0)
        assert (info.value.status, info.value.code) == (422, "threshold_too_low")

    def test_negative_zero_is_never_echoed(self) -> None:
        result = validate_threshold(-0.0, 0.0)
        assert result == 0.0 and str(result) == "0.0"

    @pytest.mark.parametrize(
        "value", [-1, -0.001, 100.001, 101, True, False, "60", [60], {"v": 60}, math.nan, math.inf, -math.inf, 10**400]
    )
    def test_refused(self, value: object) -> None:
        with pytest.raises(errors.InvalidRequest, match="threshold"):
            validate_threshold(value, 0.0)


class TestClientReference:
    @pytest.mark.parametrize("value", ["order-1", "x" * 128, "订单 42", "a b/c:d"])
    def test_accepted(self, value: str) -> None:
        assert validate_client_reference(value) == value

    @pytest.mark.parametrize("value", [None, ""])
    def test_absent(self, value: object) -> None:
        assert validate_client_reference(value) is None

    @pytest.mark.parametrize("value", ["x" * 129, "line\nbreak", "tab\there", "nul\x00", 42, ["x"], True, 1.0])
    def test_refused(self, value: object) -> None:
        with pytest.raises(errors.InvalidRequest, match="client_reference"):
            validate_client_reference(value)


def test_importing_validation_stays_stdlib_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys, idv.validation\n"
        "bad = [m for m in ('PIL', 'requests', 'pydantic', 'boto3', 'Crypto') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.strip() == "[]"


def _env() -> dict[str, str]:
    import os
    from pathlib import Path

    layer = Path(__file__).resolve().parents[2] / "layers" / "idv"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(layer) + os.pathsep + env.get("PYTHONPATH", "")
    return env
