"""Erasure (DESIGN §9): a record and every copy that could replay it — its Idempotency-Key's answer, its
sealed data (on the record), its uploaded object and its dedupe item (money controls: the copy an
identical request without a key would get) — one record at a time (`erase_verification`,
`DELETE /v1/verifications/{id}`) or every record of one person (`erase_subject`,
`POST /v1/subjects/erase`), through the same code path.

Order matters for money: the key becomes a tombstone first (a replay answers 410 and pays nothing),
then the record is deleted, then its object. A check still running when its record is erased cannot
bring it back: its finish is conditional on the record existing and still holding the claim (so is
a result handed off to the upload queue, `uploads.finish_handed_off`).

An erasure by person reads the person's records from the `subject-id-hash` index (by the ID-number
HMAC) and reads it again until it finds none: a check whose record was written while the erasure ran
is erased too. It ends with one `Subject Erased` event on the bus for the audit trail: the count,
an erasure id and the time — no personal data, no HMAC, no verification id.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from idv import aws, claims, clock, controls
from idv.config import get_settings
from idv.observability import logger
from idv.uploads import object_key

SOURCE = "idv.gateway"
DETAIL_TYPE = "Subject Erased"
# Index reads per erasure: the first, plus re-reads that catch records written meanwhile.
MAX_ROUNDS = 5


def erase_verification(verification_id: str) -> bool:
    """Erase one verification and its copies; False when there was no such record."""
    repository = claims.repository()
    item = repository.get(verification_id)
    if item is None:
        return False
    if item.get("idempotency_id"):
        repository.apply(claims.store().erase_write(item["idempotency_id"]))
    if item.get("dedupe_id"):  # the money controls' copy that would hand this answer to an identical request
        store = controls.counters()
        store.run([store.dedupe_delete(str(item["dedupe_id"]))])
    deleted = repository.delete(verification_id) is not None  # False: a concurrent erasure got there first
    settings = get_settings()
    if settings.upload_bucket:
        aws.client("s3").delete_object(Bucket=settings.upload_bucket, Key=object_key(verification_id))
    return deleted


def erase_subject(id_hash: str) -> int:
    """Erase every record of the person with this ID-number HMAC (and their copies); how many.

    Idempotent: a second call finds nothing and erases 0. The `Subject Erased` event is published
    for every call (a request answered with 0 is part of the audit trail too).
    """
    repository = claims.repository()
    erased = 0
    for _ in range(MAX_ROUNDS):
        found = list(repository.subject_ids(id_hash))
        if not found:
            break
        erased += sum(1 for verification_id in found if erase_verification(verification_id))
    publish_subject_erased(erased)
    return erased


def subject_erased_detail(erased: int, now: float) -> dict[str, Any]:
    erasure_id = f"erasure-{uuid.uuid4().hex}"
    return {"erased": erased, "erasure_id": erasure_id, "event_id": erasure_id, "erased_at": clock.iso(now)}


def publish_subject_erased(erased: int) -> None:
    """Put the audit event straight on the bus (no record is left to carry it through the outbox).

    The erasure has happened whatever the bus answers, so a failed publish does not fail the request:
    it is logged as an error with the same detail (the log is the audit trail's fallback).
    """
    detail = subject_erased_detail(erased, clock.now())
    from idv.config import require

    try:
        answer = aws.client("events").put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                    "EventBusName": require(get_settings().event_bus_name, "EVENT_BUS_NAME"),
                    "Resources": [],
                }
            ]
        )
    except Exception:
        logger.exception("subject erased event not published", extra=detail)
        return
    if answer.get("FailedEntryCount"):
        logger.error("subject erased event not published", extra=detail)
    else:
        logger.info("subject erased", extra=detail)
