"""Verification records: the public shape (DESIGN §4), its stored form, and the DynamoDB repository.

The stored item is the public record (masked subject only) plus bookkeeping attributes: `id_hash`
(HMAC of the ID number), `expires_at` (TTL), `idempotency_id` (the hashed Idempotency-Key whose
claim made it), while a provider call is in flight `claimed_until` / `claim_token` (the lease of
the claim → call → finish path, `idv.claims`), and while a check waits `pending_faceid` /
`session_expires_at` / `jh_order_id` / `redirect_url` / `search_count` (FaceID) or `pending_data`
(KMS ciphertext of the person's data for an upload, with `pending_upload` / `upload_expires_at`
while its ticket waits for a selfie). `reference_key` (the client_reference, only when there is one)
and `id_hash` key the data-subject indexes (`client-reference`, `subject-id-hash`). Every state
change is a conditional `Write` (alone, or in one transaction with the idempotency item), so a
record moves from pending to a terminal state exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
# Bookkeeping removed when a record reaches a terminal state (sealed data, FaceID index key, leases).
PENDING_ATTRIBUTES = (
    "pending_faceid",
    "pending_data",
    "claimed_until",
    "claim_token",
    "search_until",
    "search_token",
    "verify_url",
    "pending_upload",
    "upload_expires_at",
)
PENDING_FACEID_INDEX = "pending-faceid"
# Sparse: only upload tickets still waiting for their selfie carry `pending_upload` (the sweep's index).
PENDING_UPLOAD_INDEX = "pending-uploads"
# Data-subject rights (DESIGN §9): a person's records by ID-number HMAC, a customer's by client_reference;
# both sorted by verification id (a ULID: creation time), projecting the public fields only.
SUBJECT_INDEX = "subject-id-hash"
REFERENCE_INDEX = "client-reference"
PAGE_LIMIT_MAX = 100


def is_verification_id(value: object) -> bool:
    """A string that can be a record's key: 8–32 ASCII letters and digits (`clock.new_verification_id`)."""
    return isinstance(value, str) and 8 <= len(value) <= 32 and value.isascii() and value.isalnum()


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
    if client_reference is not None:
        record["reference_key"] = client_reference  # the index key (a NULL cannot key an index)
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


@dataclass(frozen=True, slots=True)
class Write:
    """One conditional DynamoDB write, usable alone or as one action of a TransactWriteItems call."""

    action: str  # "Put" | "Update" | "Delete"
    params: dict[str, Any]

    def transact_item(self) -> dict[str, Any]:
        return {self.action: self.params}


def put(table: str, item: dict[str, Any], *, condition: str, names: dict[str, str] | None = None) -> Write:
    params: dict[str, Any] = {"TableName": table, "Item": _to_dynamo(item), "ConditionExpression": condition}
    if names:
        params["ExpressionAttributeNames"] = names
    return Write("Put", params)


def update(
    table: str,
    key: dict[str, Any],
    *,
    sets: dict[str, Any] | None = None,
    removes: tuple[str, ...] = (),
    adds: dict[str, int] | None = None,
    condition: str,
    names: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Write:
    """An UpdateItem: SET `sets` (None is stored as NULL), REMOVE `removes`, ADD `adds`, if `condition`.

    The condition refers to attribute names as `#name` and values as `:name` (given in `names` /
    `values`, plain Python values); the update's own placeholders cannot collide with them.
    """
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    all_names = dict(names or {})
    all_values = {k: serializer.serialize(_decimals(v)) for k, v in (values or {}).items()}
    clauses = []
    parts = []
    for i, (name, value) in enumerate((sets or {}).items()):
        all_names[f"#s{i}"] = name
        all_values[f":s{i}"] = serializer.serialize(_decimals(value))
        parts.append(f"#s{i} = :s{i}")
    if parts:
        clauses.append("SET " + ", ".join(parts))
    parts = []
    for i, name in enumerate(removes):
        all_names[f"#r{i}"] = name
        parts.append(f"#r{i}")
    if parts:
        clauses.append("REMOVE " + ", ".join(parts))
    parts = []
    for i, (name, amount) in enumerate((adds or {}).items()):
        all_names[f"#a{i}"] = name
        all_values[f":a{i}"] = {"N": str(amount)}
        parts.append(f"#a{i} :a{i}")
    if parts:
        clauses.append("ADD " + ", ".join(parts))
    params: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": " ".join(clauses),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": all_names,
    }
    if all_values:
        params["ExpressionAttributeValues"] = all_values
    return Write("Update", params)


def record_key(verification_id: str) -> dict[str, Any]:
    return {"verification_id": {"S": verification_id}}


def terminal_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The public fields a terminal write sets (everything but the key)."""
    return {k: record.get(k) for k in PUBLIC_FIELDS if k != "verification_id"}


class Table:
    """One DynamoDB table named by a setting (`setting`); the client is injectable (default: shared,
    lazy). An unset setting fails when the object is made: before any provider call is paid for."""

    setting = ""

    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        from idv.config import require

        self.table = require(table_name, self.setting)
        self._client = dynamodb

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client


class Repository(Table):
    """DynamoDB access to verification records."""

    setting = "VERIFICATIONS_TABLE"

    def apply(self, *writes: Write) -> bool:
        """Run one write (or several in one transaction); False when a condition did not hold."""
        from botocore.exceptions import ClientError

        try:
            if len(writes) == 1:
                method = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}[writes[0].action]
                getattr(self.client, method)(**writes[0].params)
            else:
                self.client.transact_write_items(TransactItems=[w.transact_item() for w in writes])
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def create(self, item: dict[str, Any]) -> None:
        if not self.apply(self.create_write(item)):
            _raise_exists(item["verification_id"])

    def create_write(self, item: dict[str, Any]) -> Write:
        return put(self.table, item, condition="attribute_not_exists(verification_id)")

    def get(self, verification_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=record_key(verification_id), ConsistentRead=True).get(
            "Item"
        )
        return _from_dynamo(found) if found else None

    def finish_write(
        self,
        record: dict[str, Any],
        *,
        from_status: str = "pending",
        claim_token: str | None = None,
        token_attribute: str = "claim_token",  # noqa: S107 (an attribute name)
        extra: dict[str, Any] | None = None,
        remove: tuple[str, ...] = PENDING_ATTRIBUTES,
    ) -> Write:
        """The write that stores `record`'s public fields (plus `extra`) if the stored record is still
        `from_status` and still holds the lease `claim_token` (in `token_attribute`), or, without a
        token, holds no search lease; `remove` goes in the same write."""
        condition = "attribute_exists(verification_id) AND #status = :from"
        names = {"#status": "status", "#token": token_attribute}
        values: dict[str, Any] = {":from": from_status}
        if claim_token is not None:
            condition += " AND #token = :token"
            values[":token"] = claim_token
        else:
            condition += " AND attribute_not_exists(#token)"
            names["#token"] = "search_token"
        return update(
            self.table,
            record_key(record["verification_id"]),
            sets={**terminal_fields(record), **(extra or {})},
            removes=remove,
            condition=condition,
            names=names,
            values=values,
        )

    def finish(self, record: dict[str, Any], *, from_status: str = "pending", claim_token: str | None = None) -> bool:
        """Write the terminal record if the stored one is still `from_status`; True when this call did it.

        Pending bookkeeping (encrypted data, FaceID index attribute, claim) is removed in the same write.
        """
        return self.apply(self.finish_write(record, from_status=from_status, claim_token=claim_token))

    def claim(self, verification_id: str, lease_seconds: float, now: float, token: str) -> bool:
        """Take a pending record that no worker has claimed before; False when one has.

        A claim is released when an attempt fails cleanly, so a claim that is still there belongs to a
        running worker or to one that was stopped mid-check (its charge unknown): never claimed twice.
        """
        return self.apply(
            update(
                self.table,
                record_key(verification_id),
                sets={"claimed_until": int(now + lease_seconds) + 1, "claim_token": token},
                condition="#status = :pending AND attribute_not_exists(claimed_until)",
                names={"#status": "status"},
                values={":pending": "pending"},
            )
        )

    def release(self, verification_id: str, token: str) -> bool:
        """Give up a claim whose call cost nothing, so a redelivered message can run the check again."""
        return self.apply(
            update(
                self.table,
                record_key(verification_id),
                removes=("claimed_until", "claim_token"),
                condition="#token = :token",
                names={"#token": "claim_token"},
                values={":token": token},
            )
        )

    def delete(self, verification_id: str) -> dict[str, Any] | None:
        old = self.client.delete_item(
            TableName=self.table, Key=record_key(verification_id), ReturnValues="ALL_OLD"
        ).get("Attributes")
        return _from_dynamo(old) if old else None

    def page(
        self, index: str, value: str, *, limit: int, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of public records from a data-subject index (`SUBJECT_INDEX` by `id_hash`,
        `REFERENCE_INDEX` by `reference_key`), newest first; the second value is the verification id
        to continue after (None on the last page)."""
        attribute = {SUBJECT_INDEX: "id_hash", REFERENCE_INDEX: "reference_key"}[index]
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": attribute},
            "ExpressionAttributeValues": {":v": {"S": value}},
            "ScanIndexForward": False,
            "Limit": max(1, min(limit, PAGE_LIMIT_MAX)),
        }
        if after is not None:
            params["ExclusiveStartKey"] = {attribute: {"S": value}, **record_key(after)}
        answer = self.client.query(**params)
        last = answer.get("LastEvaluatedKey")
        return [public_view(_from_dynamo(i)) for i in answer.get("Items", [])], (
            last["verification_id"]["S"] if last else None
        )

    def subject_ids(self, id_hash: str) -> Iterator[str]:
        """Every verification id of one person (the `subject-id-hash` index, all pages)."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            IndexName=SUBJECT_INDEX,
            KeyConditionExpression="id_hash = :h",
            ExpressionAttributeValues={":h": {"S": id_hash}},
            ProjectionExpression="verification_id",
        )
        for page in pages:
            for item in page.get("Items", []):
                yield item["verification_id"]["S"]

    def pending_upload_ids(self, expired_before: float) -> Iterator[str]:
        """Verification ids of upload tickets still waiting for a selfie whose upload URL expired
        before the time, oldest first (the sparse `pending-uploads` index)."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            IndexName=PENDING_UPLOAD_INDEX,
            KeyConditionExpression="pending_upload = :p AND upload_expires_at < :t",
            ExpressionAttributeValues={":p": {"S": "1"}, ":t": {"N": str(int(expired_before))}},
        )
        for page in pages:
            for item in page.get("Items", []):
                yield item["verification_id"]["S"]

    def pending_faceid_ids(self, expired_before: float) -> Iterator[tuple[str, float]]:
        """(verification_id, session_expires_at) of pending FaceID sessions that expire before the time,
        oldest first (the sparse `pending-faceid` index)."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            IndexName=PENDING_FACEID_INDEX,
            KeyConditionExpression="pending_faceid = :p AND session_expires_at < :t",
            ExpressionAttributeValues={":p": {"S": "1"}, ":t": {"N": str(int(expired_before))}},
        )
        for page in pages:
            for item in page.get("Items", []):
                yield item["verification_id"]["S"], float(item["session_expires_at"]["N"])


def condition_failed(exc: Exception) -> bool:
    """Whether a DynamoDB error means "a condition did not hold" (alone or inside a transaction)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
        codes = {r.get("Code") for r in reasons}
        return "ConditionalCheckFailed" in codes
    return False


def _raise_exists(verification_id: str) -> None:
    from idv.errors import IdvError

    raise IdvError(f"verification {verification_id} exists already")


def from_stream_image(image: dict[str, Any]) -> dict[str, Any]:
    """A stored item from a DynamoDB Streams image (typed attribute values, as on the wire)."""
    return _from_dynamo(image)
