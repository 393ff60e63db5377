"""Selfie uploads: a presigned S3 POST for a validated, KMS-sealed pending check, and the worker step.

`POST /v1/uploads` validates the person's data, seals it with KMS on a pending record and returns a
presigned POST for `uploads/{verification_id}` (size and type limited, short expiry). S3 → SQS →
`process_object` claims the record (`idv.claims.take`), unseals the data, prepares the image, calls
the provider once, and finishes the record (which drops the sealed data) and deletes the object.

- A failure that cost nothing and may pass later (rate limit, outage) releases the claim and is
  raised, so the queue redelivers (then the DLQ).
- A claim found stale (an earlier attempt stopped mid-check) may have been charged: the record ends
  `check_interrupted`, `charged: null`, and the check is not run again.
- When storage keeps failing after the call, the computed record is handed to the queue as a
  finish message (`hand_off`), so a paid result is stored later instead of being lost.
- Pending data lives no longer than its purpose (DESIGN §9): a ticket carries `pending_upload` /
  `upload_expires_at` (the sparse `pending-uploads` index) until its check ends, and the reconciler's
  run (every 5 minutes) expires every ticket whose upload URL expired more than
  `ABANDONED_GRACE_SECONDS` ago without the worker having claimed it (`expire_abandoned`): the sealed
  data goes in the same write, the record ends `expired` (`upload_expired`). A ticket is at most
  15 + 30 + 5 minutes (+ the run) old when its sealed data goes: within the hour.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from idv import aws, checks, claims, clock, errors, records, vault
from idv.config import get_settings, require
from idv.idempotency import Answer, Key
from idv.observability import logger
from idv.provider_secret import get_provider_secrets

PREFIX = "uploads/"
MIN_UPLOAD_BYTES = 1024
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
UPLOAD_URL_SECONDS = 15 * 60
CLAIM_SECONDS = 120
# Worst case of one record: S3 + KMS + image + the provider's read timeout (10 s) + DynamoDB + events.
MIN_REMAINING_MS = 20_000
# After its upload URL expired, a ticket waits this long for the worker (an upload made in the URL's
# last second, a queue backlog, a redelivery) before it counts as abandoned.
ABANDONED_GRACE_SECONDS = 30 * 60
ABANDONED_DETAIL = "no selfie was uploaded before the upload URL expired; the person's data was deleted"


FINISH_MESSAGE = "idv_finish"
# Bookkeeping a handed-off result carries besides its public fields (money controls, usage report).
HANDED_OFF_ATTRIBUTES = ("usage_day", "reserved_fen", "usage_calls", "usage_charged", "usage_unknown")


def object_key(verification_id: str) -> str:
    return f"{PREFIX}{verification_id}"


def create_upload(body: Any, *, key: Key | None = None, lease: float = 30.0) -> Answer:
    """From a validated request (`schemas.UploadRequest`): seal the person's data on a pending record,
    return a presigned POST (once per key)."""
    settings = get_settings()
    check, content_type, threshold = body.check, body.content_type, body.threshold
    person = checks.person_of(body)
    if check != "four_factor":
        person = checks.Person(name=person.name, id_number=person.id_number)  # a mobile only four-factor uses
    consent, reference = checks.consent_of(body), body.client_reference
    bucket = require(settings.upload_bucket, "UPLOAD_BUCKET")
    secret = get_provider_secrets(settings.provider_secret_id)
    created = clock.now()
    verification_id = clock.new_verification_id(created)
    request = checks.CheckRequest(check, person, consent, threshold, reference)
    item = checks.pending_record(request, verification_id, secret, created)
    item["threshold"] = threshold
    item["pending_upload"] = "1"  # the sweep's sparse index, until the check ends
    item["upload_expires_at"] = int(created) + UPLOAD_URL_SECONDS
    item["pending_data"] = vault.seal(
        {"name": person.name, "id_number": person.id_number, "mobile": person.mobile},
        key_id=settings.data_key_id,
        verification_id=verification_id,
    )
    claimed = claims.begin(item, key, lease=lease)
    if isinstance(claimed, Answer):
        return claimed
    post = aws.client("s3").generate_presigned_post(
        Bucket=bucket,
        Key=object_key(verification_id),
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", MIN_UPLOAD_BYTES, MAX_UPLOAD_BYTES]],
        ExpiresIn=UPLOAD_URL_SECONDS,
    )
    ticket = {
        "verification_id": verification_id,
        "status": "pending",
        "upload": {"url": post["url"], "fields": post["fields"]},
        "max_bytes": MAX_UPLOAD_BYTES,
        "expires_at": clock.iso(created + UPLOAD_URL_SECONDS),
    }
    # The ticket is no provider call: the claim only makes the key replayable; it ends here.
    settled = claims.finish(claimed, claims.Finish(item, Answer(201, ticket), remove=claims.CLAIM_ATTRIBUTES))
    logger.info("upload ticket issued", extra={"verification_id": verification_id, "check": check})
    return settled.answer


def s3_objects(record: Any) -> list[tuple[str, str]]:
    """(bucket, decoded key) pairs of an S3 event notification delivered through SQS (an `SQSRecord`).

    Powertools' `decoded_nested_s3_event` reads the notification; the key is URL-encoded there (a
    space arrives as '+'), so it is decoded with `unquote_plus`; S3's `s3:TestEvent` has no records.
    """
    try:
        body = record.json_body
    except ValueError:
        raise errors.InvalidRequest("queue message is not JSON") from None
    if not isinstance(body, dict) or body.get("Event") == "s3:TestEvent" or "Records" not in body:
        return []
    event = record.decoded_nested_s3_event
    return [(r.s3.bucket.name, unquote_plus(r.s3.get_object.key)) for r in event.records]


def process_object(bucket: str, key: str) -> str:
    """Run the check for one uploaded object; returns what happened (for logs and tests)."""
    s3 = aws.client("s3")
    verification_id = key[len(PREFIX) :] if key.startswith(PREFIX) else ""
    if not records.is_verification_id(verification_id):
        logger.warning("upload key outside the uploads/ scheme ignored")
        return "ignored"
    repository = claims.repository()
    item = repository.get(verification_id)
    if item is None or item.get("status") != "pending" or "pending_data" not in item:
        s3.delete_object(Bucket=bucket, Key=key)
        logger.info("upload without a pending check removed", extra={"verification_id": verification_id})
        return "orphan"
    if claims.stranded(item):
        claims.settle_interrupted(item)
        s3.delete_object(Bucket=bucket, Key=key)
        return "interrupted"
    claim = claims.take(item, lease=CLAIM_SECONDS)
    if claim is None:  # another attempt holds it: look again later (it ends the record, or its lease runs out)
        logger.info("upload already being processed", extra={"verification_id": verification_id})
        raise errors.IdempotencyInProgress("another attempt is running this upload check; the queue retries")
    try:
        done = _call(item, bucket, key)
    except Exception:
        repository.release(verification_id, claim.token)  # nothing was sent: a redelivery may run it
        raise
    if checks.worth_redelivery(done.record):
        repository.release(verification_id, claim.token)
        raise errors.ProviderUnavailable(
            "the provider refused for now without charging; the queue retries", provider=item["provider"]
        )
    try:
        settled = claims.finish(claim, done, store_answer=False)
    except errors.ResultNotStored:
        hand_off(claim, {**done.record, **done.extra})
        return "handed_off"
    if settled.here:
        checks.log_outcome(item["check"], done.record)
    s3.delete_object(Bucket=bucket, Key=key)
    return "completed" if done.record["status"] == "completed" else "error"


def _call(item: dict[str, Any], bucket: str, key: str) -> claims.Finish:
    """Unseal, read and prepare the image, call the provider: the claimed record's outcome.

    Raises only before anything is sent to the provider (KMS, S3 or storage failures).
    """
    from idv import images

    verification_id = item["verification_id"]
    settings = get_settings()
    data = vault.unseal(item["pending_data"], verification_id=verification_id)
    person = checks.Person(name=data["name"], id_number=data["id_number"], mobile=data.get("mobile"))
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read(MAX_UPLOAD_BYTES + 1)
    try:
        prepared = images.prepare_image(body, checks.image_target(item["check"]))
    except errors.ImageError as exc:
        logger.info("upload refused", extra={"verification_id": verification_id, "code": exc.code})
        return checks.failed_finish(item, exc, False, called=False)
    request = checks.CheckRequest(
        check=item["check"],
        person=person,
        consent=item.get("consent") or {},
        threshold=float(settings.face_score_threshold if item.get("threshold") is None else item["threshold"]),
        client_reference=item.get("client_reference"),
        image_b64=prepared.base64(),
    )
    secret = get_provider_secrets(settings.provider_secret_id)
    return checks.call_check(request, item, secret, settings)


def hand_off(claim: claims.Claim, record: dict[str, Any]) -> None:
    """Queue the computed (public, masked) record as a finish message: stored once storage is back.

    If the queue fails too, the error is raised: the message is redelivered, finds the claim stale
    after its lease, and ends `check_interrupted` (never paid again).
    """
    import json

    settle = {k: record[k] for k in HANDED_OFF_ATTRIBUTES if record.get(k) is not None}  # reservation, usage
    message = {FINISH_MESSAGE: {"claim_token": claim.token, "record": {**records.public_view(record), **settle}}}
    aws.client("sqs").send_message(
        QueueUrl=require(get_settings().upload_queue_url, "UPLOAD_QUEUE_URL"),
        MessageBody=json.dumps(message, ensure_ascii=False),
    )
    logger.warning(
        "result handed to the queue: storage failed after the call", extra={"verification_id": claim.verification_id}
    )


def finish_handed_off(message: dict[str, Any]) -> str:
    """Store a record handed off by `hand_off` (a storage failure raises: the queue retries, then the DLQ)."""
    record = message["record"]
    repository = claims.repository()
    usage = {k: record[k] for k in ("usage_calls", "usage_charged", "usage_unknown") if k in record}
    if repository.apply(repository.finish_write(record, claim_token=message["claim_token"], extra=usage)):
        checks.log_outcome(record["check"], record)
        claims.settle(record)
        outcome = "finished_late"
    else:
        outcome = "already_finished"
    settings = get_settings()
    aws.client("s3").delete_object(Bucket=settings.upload_bucket, Key=object_key(record["verification_id"]))
    return outcome


def defer(body: str) -> None:
    """Put a message back as a new one (its receive count starts again): it was not attempted."""
    aws.client("sqs").send_message(
        QueueUrl=require(get_settings().upload_queue_url, "UPLOAD_QUEUE_URL"), MessageBody=body
    )


def expire_abandoned(now: float | None = None, limit: int = 500) -> dict[str, int]:
    """End the tickets whose upload URL expired `ABANDONED_GRACE_SECONDS` ago without an upload.

    A ticket the worker holds is left to it; one whose claim ran out (the worker stopped mid-check,
    its charge unknown) settles as `check_interrupted`, as the worker would. Each ticket is isolated:
    a failure is logged and counted, and the run goes on.
    """
    repository = claims.repository()
    now = clock.now() if now is None else now
    stats = {"seen": 0, "expired": 0, "interrupted": 0, "busy": 0, "failed": 0}
    for verification_id in repository.pending_upload_ids(expired_before=now - ABANDONED_GRACE_SECONDS):
        if stats["seen"] >= limit:
            break
        stats["seen"] += 1
        try:
            item = repository.get(verification_id)
            if item is None or item.get("status") != "pending":
                continue
            if claims.stranded(item, now):
                stats["interrupted" if claims.settle_interrupted(item) else "busy"] += 1
            elif item.get("claim_token"):
                stats["busy"] += 1  # the worker is running the check
            elif repository.apply(_expire_write(repository, item, now)):
                stats["expired"] += 1
                claims.settle({**item, "status": "expired", "charged": False})  # its reserved price back
                logger.info("abandoned upload ticket expired", extra={"verification_id": verification_id})
            else:
                stats["busy"] += 1  # the worker claimed it meanwhile
        except Exception as exc:
            stats["failed"] += 1
            logger.exception(
                "abandoned upload ticket not expired",
                extra={"verification_id": verification_id, "error": type(exc).__name__},
            )
    logger.info("swept abandoned upload tickets", extra=stats)
    return stats


def _expire_write(repository: records.Repository, item: dict[str, Any], now: float) -> records.Write:
    """The ticket ends `expired` and loses its sealed data, unless the worker has claimed it."""
    done = dict(item)
    done.update(
        status="expired",
        decision=None,
        charged=False,
        error={"code": "upload_expired", "detail": ABANDONED_DETAIL},
        completed_at=clock.iso(now),
    )
    return records.update(
        repository.table,
        records.record_key(item["verification_id"]),
        sets=records.terminal_fields(done),
        removes=records.PENDING_ATTRIBUTES,
        condition="attribute_exists(verification_id) AND #status = :pending AND attribute_not_exists(#claim)",
        names={"#status": "status", "#claim": "claim_token"},
        values={":pending": "pending"},
    )
