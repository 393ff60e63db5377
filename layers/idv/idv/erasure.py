"""Erasure (DESIGN §9): a record and every copy that could replay it — its Idempotency-Key's answer, its
sealed data (on the record) and its uploaded object.

Order matters for money: the key becomes a tombstone first (a replay answers 410 and pays nothing),
then the record is deleted. A check still running when its record is erased cannot bring it back:
its finish is conditional on the record existing and still holding the claim.
"""

from __future__ import annotations

from idv import aws, claims
from idv.config import get_settings
from idv.uploads import object_key


def erase_verification(verification_id: str) -> bool:
    """Erase one verification and its copies; False when there was no such record."""
    repository = claims.repository()
    item = repository.get(verification_id)
    if item is None:
        return False
    if item.get("idempotency_id"):
        repository.apply(claims.store().erase_write(item["idempotency_id"]))
    repository.delete(verification_id)
    settings = get_settings()
    if settings.upload_bucket:
        aws.client("s3").delete_object(Bucket=settings.upload_bucket, Key=object_key(verification_id))
    return True
