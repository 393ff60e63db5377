"""Idempotency-Key: the key's item in IDEMPOTENCY_TABLE, the first write of the claim it makes.

    id               "key#" + HMAC(pii_hmac_key, route scope + key): the key itself is never stored
    fingerprint      HMAC of the canonical request body (a different body with the key is a 409)
    verification_id  the record the key's claim creates (the record then holds the answer)
    claimed_until    until when the claim may still be writing its record
    state            claimed | erased (the record was erased: 410, nothing replayed)
    expiration       TTL: a key is remembered for 24 hours

The answer a replay returns lives on the record (`idv.claims`), so a check costs one write here and
two on the record. A key whose first attempt cost nothing (the provider refused before charging) is
deleted after its record ends, so the client may retry with it; every other answer is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from idv import errors, records

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Answer:
    """What a route answered: HTTP status and JSON body (a problem document when `problem`)."""

    status: int
    body: dict[str, Any]
    problem: bool = False

    def to_json(self) -> str:
        return json.dumps({"status": self.status, "body": self.body, "problem": self.problem}, ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> Answer:
        data = json.loads(text)
        return Answer(int(data["status"]), data["body"], bool(data.get("problem")))

    @staticmethod
    def of_error(exc: errors.IdvError) -> Answer:
        return Answer(exc.status, exc.to_problem(), True)


@dataclass(frozen=True, slots=True)
class Key:
    """An Idempotency-Key as stored: its hashed id and the body's fingerprint (both HMACs)."""

    item_id: str
    fingerprint: str = field(repr=False)


def fingerprint(payload: Any, hmac_key: str) -> str:
    """HMAC of the canonical request body: compares bodies without storing a hash of raw personal data."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(hmac_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def key_for(scope: str, header_value: str | None, payload: Any, hmac_key: str) -> Key | None:
    """The stored form of a request's Idempotency-Key header (None without one)."""
    if header_value is None:
        return None
    if not 1 <= len(header_value) <= MAX_KEY_LENGTH:
        raise errors.InvalidRequest(f"the Idempotency-Key header must be 1–{MAX_KEY_LENGTH} characters")
    digest = hmac.new(hmac_key.encode(), f"{scope}:{header_value}".encode(), hashlib.sha256).hexdigest()
    return Key(item_id=f"key#{digest}", fingerprint=fingerprint(payload, hmac_key))


def _item_key(item_id: str) -> dict[str, Any]:
    return {"id": {"S": item_id}}


class Store(records.Table):
    """The idempotency items of IDEMPOTENCY_TABLE."""

    setting = "IDEMPOTENCY_TABLE"

    def get(self, key: Key) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=_item_key(key.item_id), ConsistentRead=True).get("Item")
        if not found:
            return None
        return {name: next(iter(value.values())) for name, value in found.items()}

    def claim_write(self, key: Key, verification_id: str, now: float, lease: float) -> records.Write:
        item = {
            "id": key.item_id,
            "fingerprint": key.fingerprint,
            "verification_id": verification_id,
            "state": "claimed",
            "claimed_until": int(now + lease) + 1,
            "expiration": int(now) + IDEMPOTENCY_TTL_SECONDS,
        }
        return records.put(self.table, item, condition="attribute_not_exists(id)")

    def release_write(self, item_id: str, verification_id: str) -> records.Write:
        """Forget the key (its attempt cost nothing, or never wrote its record): a retry claims it anew."""
        return records.Write(
            "Delete",
            {
                "TableName": self.table,
                "Key": _item_key(item_id),
                "ConditionExpression": "verification_id = :vid AND #state = :claimed",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":vid": {"S": verification_id}, ":claimed": {"S": "claimed"}},
            },
        )

    def erase_write(self, item_id: str) -> records.Write:
        """Keep the key as a tombstone without the body's fingerprint or the record's id: a replay is
        answered 410 `verification_erased` and pays nothing."""
        return records.update(
            self.table,
            _item_key(item_id),
            sets={"state": "erased"},
            removes=("fingerprint", "verification_id", "claimed_until"),
            condition="attribute_exists(id)",
        )
