"""Verification records: the public shape (DESIGN §4), its stored form, and the DynamoDB repository.

The stored item is the public record (masked subject only) plus bookkeeping attributes: `id_hash`
(HMAC of the ID number), `expires_at` (TTL), and, while a check is pending, `pending_faceid` /
`session_expires_at` / `jh_order_id` / `redirect_url` (FaceID) or `pending_data` (KMS ciphertext of
the person's data for an upload). Every state change is a conditional write, so a record moves from
pending to a terminal state exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from idv import aws, clock
from idv.results import CheckResult

PUBLIC_FIELDS = (
    "verification_id",
    "check",
    "provider",
    "status",
    "decision",
    "reasons",
    "identity",
    "face",
    "mobile",
    "liveness",
    "charged",
    "provider_order_id",
    "subject",
    "client_reference",
    "consent",
    "error",
    "created_at",
    "completed_at",
)
PENDING_ATTRIBUTES = ("pending_faceid", "pending_data", "claimed_until")
PENDING_FACEID_INDEX = "pending-faceid"


def new_record(
    *,
    verification_id: str,
    check: str,
    provider: str,
    subject: dict[str, Any],
    created: float,
    client_reference: str | None = None,
    consent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pending record with every public field present (null where it does not apply yet)."""
    record: dict[str, Any] = dict.fromkeys(PUBLIC_FIELDS)
    record.update(
        verification_id=verification_id,
        check=check,
        provider=provider,
        status="pending",
        reasons=[],
        identity="unverified",
        charged=False,
        subject=subject,
        client_reference=client_reference,
        consent=consent,
        created_at=clock.iso(created),
    )
    return record


def apply_result(record: dict[str, Any], result: CheckResult, completed: float) -> dict[str, Any]:
    """The record completed with a provider result."""
    done = dict(record)
    done.update({k: v for k, v in result.to_dict().items() if k in PUBLIC_FIELDS})
    done.update(status="completed", error=None, completed_at=clock.iso(completed))
    return done


def apply_error(
    record: dict[str, Any], code: str, detail: str, charged: bool | None, completed: float
) -> dict[str, Any]:
    """The record ended in error (provider failure after the request left, or a refused upload)."""
    done = dict(record)
    done.update(
        status="error",
        decision=None,
        error={"code": code, "detail": detail},
        charged=charged,
        completed_at=clock.iso(completed),
    )
    return done


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """The public record of a stored item (bookkeeping attributes dropped)."""
    return {name: item.get(name) for name in PUBLIC_FIELDS}


def _to_dynamo(value: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    plain = _decimals(value)
    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in plain.items() if v is not None or k in PUBLIC_FIELDS}


def _decimals(value: Any) -> Any:
    """Floats as Decimal (DynamoDB numbers); bytes stay binary."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decimals(v) for v in value]
    return value


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: _plain(deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if hasattr(value, "value") and isinstance(value.value, (bytes, bytearray)):  # boto3 Binary
        return bytes(value.value)
    return value


class Repository:
    """DynamoDB access to verification records; the client is injectable (default: shared, lazy)."""

    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        from idv.config import require

        # Fails before any provider call is paid for, not after (the result could not be stored).
        self.table = require(table_name, "VERIFICATIONS_TABLE")
        self._client = dynamodb

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def create(self, item: dict[str, Any]) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=_to_dynamo(item),
            ConditionExpression="attribute_not_exists(verification_id)",
        )

    def get(self, verification_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(
            TableName=self.table, Key={"verification_id": {"S": verification_id}}, ConsistentRead=True
        ).get("Item")
        return _from_dynamo(found) if found else None

    def finish(self, record: dict[str, Any], *, from_status: str = "pending") -> bool:
        """Write the terminal record if the stored one is still `from_status`; True when this call did it.

        Pending bookkeeping (encrypted data, FaceID index attribute, claim) is removed in the same write.
        """
        names: dict[str, str] = {"#status": "status"}
        values: dict[str, Any] = {":from": {"S": from_status}}
        sets: list[str] = []
        serialized = _to_dynamo({k: record.get(k) for k in PUBLIC_FIELDS if k != "verification_id"})
        for i, (name, value) in enumerate(serialized.items()):
            names[f"#f{i}"] = name
            values[f":v{i}"] = value
            sets.append(f"#f{i} = :v{i}")
        removes = []
        for j, name in enumerate(PENDING_ATTRIBUTES):
            names[f"#r{j}"] = name
            removes.append(f"#r{j}")
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"verification_id": {"S": record["verification_id"]}},
                UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                ConditionExpression="attribute_exists(verification_id) AND #status = :from",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def claim(self, verification_id: str, lease_seconds: int, now: float) -> bool:
        """Take a pending record that no worker has claimed before; False when one has.

        A claim is released when an attempt fails cleanly, so a claim that is still there belongs to a
        running worker or to one that was stopped mid-check (its charge unknown): never claimed twice.
        """
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"verification_id": {"S": verification_id}},
                UpdateExpression="SET claimed_until = :until",
                ConditionExpression="#status = :pending AND attribute_not_exists(claimed_until)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":until": {"N": str(int(now + lease_seconds))},
                    ":pending": {"S": "pending"},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, verification_id: str) -> None:
        """Give up a claim so a redelivered message can run the check again."""
        self.client.update_item(
            TableName=self.table,
            Key={"verification_id": {"S": verification_id}},
            UpdateExpression="REMOVE claimed_until",
            ConditionExpression="attribute_exists(verification_id)",
        )

    def delete(self, verification_id: str) -> dict[str, Any] | None:
        old = self.client.delete_item(
            TableName=self.table, Key={"verification_id": {"S": verification_id}}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return _from_dynamo(old) if old else None

    def pending_faceid_ids(self, expired_before: float) -> Iterator[tuple[str, float]]:
        """(verification_id, session_expires_at) of pending FaceID sessions that expired before the time."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": PENDING_FACEID_INDEX,
            "KeyConditionExpression": "pending_faceid = :p AND session_expires_at < :t",
            "ExpressionAttributeValues": {":p": {"S": "1"}, ":t": {"N": str(int(expired_before))}},
        }
        while True:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                yield item["verification_id"]["S"], float(item["session_expires_at"]["N"])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
