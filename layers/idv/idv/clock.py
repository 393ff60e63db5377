"""The one clock and the one id generator: UTC timestamps and sortable verification ids."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    """RFC 3339 UTC with second precision, e.g. 2026-11-22T10:00:00Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_verification_id(ts: float | None = None) -> str:
    """'v' + a 26-character ULID (48-bit ms time + 80 random bits): 27 letters and digits.

    Fits Juhe's `orderId` and Apetime's `request_id` (8–32 alphanumerics) and sorts by creation time.
    """
    ms = int((now() if ts is None else ts) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "v" + "".join(reversed(chars))
