"""Masking and keyed hashing of personal data: the only forms of it that are stored or logged (DESIGN §6).

- name: the first character, then one `*` per remaining character; middle dots are masked too, so
  the mask does not reveal how a minority name is split: "张三" -> "张*", "欧阳娜娜" -> "欧***",
  "阿依古丽·买买提" -> "阿*******". A one-character value becomes "*".
- ID number: first 3 and last 4 characters kept: "110101199003071234" -> "110***********1234".
- mobile: first 3 and last 4 digits kept: "13800000000" -> "138****0000".
  (Generally: the middle `len - 7` characters are starred; values of 7 characters or fewer are all stars,
  so a malformed value is never shown whole.)
- `hmac_id_number`: hex HMAC-SHA256 of the normalized ID number (stripped, uppercase X) keyed with the
  deployment's `pii_hmac_key`, to find records of one person without storing the number.

Stdlib only. Callers pass validated values; these functions do not validate, but never echo input.
"""

from __future__ import annotations

import hashlib
import hmac

from idv import errors

MASK = "*"


def _mask_middle(value: str, keep_start: int = 3, keep_end: int = 4) -> str:
    value = value.strip()
    if len(value) <= keep_start + keep_end:
        return MASK * len(value)
    return value[:keep_start] + MASK * (len(value) - keep_start - keep_end) + value[-keep_end:]


def mask_name(name: str) -> str:
    """First character kept, every other character (middle dots included) replaced by `*`."""
    name = name.strip()
    if len(name) <= 1:
        return MASK * len(name)
    return name[0] + MASK * (len(name) - 1)


def mask_id_number(id_number: str) -> str:
    """ "110101199003071234" -> "110***********1234" (an x check character shows as X)."""
    return _mask_middle(id_number.upper())


def mask_mobile(mobile: str) -> str:
    """ "13800000000" -> "138****0000"."""
    return _mask_middle(mobile)


def normalize_id_number(id_number: str) -> str:
    """The form the HMAC is computed over: surrounding whitespace removed, check character uppercase."""
    return id_number.strip().upper()


def hmac_id_number(key: str, id_number: str) -> str:
    """Hex HMAC-SHA256 of the normalized ID number, keyed with `key` (UTF-8)."""
    if not isinstance(key, str) or not key:
        raise errors.ConfigurationError("pii_hmac_key is missing or empty in the provider secret")
    message = normalize_id_number(id_number).encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def mask_subject(
    name: str | None = None, id_number: str | None = None, mobile: str | None = None
) -> dict[str, str | None]:
    """The record's `subject`: each given field masked, the others None."""
    return {
        "name": None if name is None else mask_name(name),
        "id_number": None if id_number is None else mask_id_number(id_number),
        "mobile": None if mobile is None else mask_mobile(mobile),
    }
