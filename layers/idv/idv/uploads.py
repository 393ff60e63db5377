"""Selfie uploads: a presigned S3 POST for a validated, KMS-sealed pending check, and the worker step.

`POST /v1/uploads` validates the person's data, seals it with KMS on a pending record and returns a
presigned POST for `uploads/{verification_id}` (size and type limited, short expiry). S3 → SQS →
`process_object` claims the record, unseals the data, prepares the image, runs the check, and
finishes the record (which drops the sealed data) and deletes the object. A failure that cost
nothing and may pass later (rate limit, outage) is raised so the queue redelivers (then the DLQ).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from idv import aws, checks, clock, errors, records, vault
from idv.config import get_settings, require
from idv.observability import logger
from idv.provider_secret import get_provider_secrets

PREFIX = "uploads/"
MIN_UPLOAD_BYTES = 1024
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
UPLOAD_URL_SECONDS = 15 * 60
CLAIM_SECONDS = 120
# Worst case of one record: S3 + KMS + image + the provider's read timeout (10 s) + DynamoDB + events.
MIN_REMAINING_MS = 20_000


class NotEnoughTime(Exception):
    """Raised before a record is started when the invocation could end during its check."""
CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp")


def object_key(verification_id: str) -> str:
    return f"{PREFIX}{verification_id}"


def create_upload(payload: Any) -> dict[str, Any]:
    settings = get_settings()
    consent, threshold, reference = checks.parse_common(payload, settings)
    check = payload.get("check", "compare")
    if check not in checks.CHECKS:
        raise errors.InvalidRequest(f"check must be one of {', '.join(checks.CHECKS)}")
    content_type = payload.get("content_type", "image/jpeg")
    if content_type not in CONTENT_TYPES:
        raise errors.InvalidRequest(f"content_type must be one of {', '.join(CONTENT_TYPES)}")
    person = checks.parse_person(payload, with_mobile=check == "four_factor")
    bucket = require(settings.upload_bucket, "UPLOAD_BUCKET")
    secret = get_provider_secrets(settings.provider_secret_id)
    created = clock.now()
    verification_id = clock.new_verification_id(created)
    request = checks.CheckRequest(check, person, consent, threshold, reference)
    item = checks.pending_record(request, verification_id, secret, created)
    item["threshold"] = threshold
    item["pending_data"] = vault.seal(
        {"name": person.name, "id_number": person.id_number, "mobile": person.mobile},
        key_id=settings.data_key_id,
        verification_id=verification_id,
    )
    records.Repository(settings.verifications_table).create(item)
    post = aws.client("s3").generate_presigned_post(
        Bucket=bucket,
        Key=object_key(verification_id),
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", MIN_UPLOAD_BYTES, MAX_UPLOAD_BYTES]],
        ExpiresIn=UPLOAD_URL_SECONDS,
    )
    logger.info("upload ticket issued", extra={"verification_id": verification_id, "check": check})
    return {
        "verification_id": verification_id,
        "status": "pending",
        "upload": {"url": post["url"], "fields": post["fields"]},
        "max_bytes": MAX_UPLOAD_BYTES,
        "expires_at": clock.iso(created + UPLOAD_URL_SECONDS),
    }


def s3_records(message_body: str) -> list[tuple[str, str]]:
    """(bucket, decoded key) pairs of an S3 event notification delivered through SQS."""
    import json

    try:
        event = json.loads(message_body)
    except ValueError:
        raise errors.InvalidRequest("queue message is not JSON") from None
    if event.get("Event") == "s3:TestEvent":
        return []
    pairs = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        pairs.append((s3.get("bucket", {}).get("name", ""), unquote_plus(s3.get("object", {}).get("key", ""))))
    return pairs


def process_object(bucket: str, key: str) -> str:
    """Run the check for one uploaded object; returns what happened (for logs and tests)."""
    settings = get_settings()
    s3 = aws.client("s3")
    verification_id = key[len(PREFIX) :] if key.startswith(PREFIX) else ""
    if not clock.is_verification_id(verification_id):
        logger.warning("upload key outside the uploads/ scheme ignored")
        return "ignored"
    repository = records.Repository(settings.verifications_table)
    item = repository.get(verification_id)
    if item is None or item.get("status") != "pending" or "pending_data" not in item:
        s3.delete_object(Bucket=bucket, Key=key)
        logger.info("upload without a pending check removed", extra={"verification_id": verification_id})
        return "orphan"
    claimed_until = item.get("claimed_until")
    if claimed_until is not None and float(claimed_until) < clock.now():
        return _abandoned(item, bucket, key, repository)
    if not repository.claim(verification_id, CLAIM_SECONDS, clock.now()):
        logger.info("upload already being processed", extra={"verification_id": verification_id})
        return "busy"
    try:
        return _run(item, bucket, key, repository)
    except errors.ResultNotStored:
        raise  # billed, maybe: keep the claim, so a redelivery ends the record instead of paying again
    except Exception:
        repository.release(verification_id)
        raise


def _abandoned(item: dict[str, Any], bucket: str, key: str, repository: records.Repository) -> str:
    """An earlier attempt was stopped mid-check (e.g. the function timed out): the provider may have
    billed it, so the check is not run again blindly; the record ends in error with an unknown charge."""
    failed = records.apply_error(
        item,
        "check_interrupted",
        "an earlier attempt was stopped while the check ran; it may have been charged, so it was not repeated",
        None,
        clock.now(),
    )
    repository.finish(failed)
    aws.client("s3").delete_object(Bucket=bucket, Key=key)
    logger.warning("interrupted upload check not repeated", extra={"verification_id": item["verification_id"]})
    return "interrupted"


def _run(item: dict[str, Any], bucket: str, key: str, repository: records.Repository) -> str:
    from idv import images

    verification_id = item["verification_id"]
    s3 = aws.client("s3")
    data = vault.unseal(item["pending_data"], verification_id=verification_id)
    person = checks.Person(name=data["name"], id_number=data["id_number"], mobile=data.get("mobile"))
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_UPLOAD_BYTES + 1)
    try:
        prepared = images.prepare_image(body, checks.image_target(item["check"]))
    except errors.ImageError as exc:
        failed = records.apply_error(item, exc.code, exc.detail, False, clock.now())
        repository.finish(failed)
        s3.delete_object(Bucket=bucket, Key=key)
        logger.info("upload refused", extra={"verification_id": verification_id, "code": exc.code})
        return "refused"
    request = checks.CheckRequest(
        check=item["check"],
        person=person,
        consent=item.get("consent") or {},
        threshold=float(get_settings().face_score_threshold if item.get("threshold") is None else item["threshold"]),
        client_reference=item.get("client_reference"),
        image_b64=prepared.base64(),
    )
    try:
        checks.run_check(request, verification_id=verification_id, stored=item)
    except (errors.ProviderError, errors.InvalidInput) as exc:
        if checks.worth_redelivery(exc):
            raise
        outcome = "error"
    else:
        outcome = "completed"
    s3.delete_object(Bucket=bucket, Key=key)
    return outcome
