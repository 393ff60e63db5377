"""Format rules the providers enforce on their inputs: GB 11643 ID numbers, mainland mobiles, Chinese names.

Independent of the gateway's own validation on purpose: the sandbox is the second opinion.
"""

from __future__ import annotations

import datetime as dt
import re

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"
# Province-level codes (first two digits) in use on resident identity cards.
PROVINCES = frozenset(
    [
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    ]
)

# Mainland number ranges per carrier (first three digits).
CARRIER_PREFIXES = {
    "移动": "134 135 136 137 138 139 147 150 151 152 157 158 159 172 178 182 183 184 187 188 195 197 198",
    "联通": "130 131 132 145 155 156 166 167 171 175 176 185 186 196",
    "电信": "133 149 153 173 174 177 180 181 189 190 191 193 199",
}
_CARRIER_BY_PREFIX = {p: carrier for carrier, prefixes in CARRIER_PREFIXES.items() for p in prefixes.split()}

MOBILE_RE = re.compile(r"1[3-9]\d{9}")
# Han characters (BMP and extension planes), optionally joined by a middle dot (minority and foreign names).
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
NAME_RE = re.compile(rf"{_HAN}+(?:[·•・]{_HAN}+)*")


def id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    return ID_CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def normalize_id_number(value: str) -> str:
    return value.strip().upper()


def id_number_problem(value: str, today: dt.date | None = None) -> str | None:
    """Why `value` is not a valid 18-character resident ID number, or None when it is."""
    v = normalize_id_number(value)
    if len(v) != 18 or not v[:17].isdigit() or not (v[17].isdigit() or v[17] == "X"):
        return "身份证号格式错误"
    if v[:2] not in PROVINCES:
        return "身份证号地区码错误"
    try:
        born = dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return "身份证号出生日期错误"
    if born.year < 1900 or born > (today or dt.date.today()):
        return "身份证号出生日期错误"
    if id_check_char(v[:17]) != v[17]:
        return "身份证号校验位错误"
    return None


def mobile_ok(value: str) -> bool:
    return MOBILE_RE.fullmatch(value.strip()) is not None


def carrier_of(mobile: str) -> str:
    """运营商 of a mainland mobile number by its prefix ("" when the range is unknown)."""
    return _CARRIER_BY_PREFIX.get(mobile.strip()[:3], "")


def name_ok(value: str) -> bool:
    return 2 <= len(value) <= 32 and NAME_RE.fullmatch(value) is not None


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def mask_id_number(value: str) -> str:
    return value[:3] + "*" * 11 + value[-4:] if len(value) == 18 else "*" * len(value)


def valid_order_id(value: str) -> bool:
    """Juhe FaceID orderId: 8-32 letters and digits."""
    return re.fullmatch(r"[A-Za-z0-9]{8,32}", value) is not None
