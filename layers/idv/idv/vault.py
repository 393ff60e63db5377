"""KMS envelope for personal data that must wait for a check (uploads): sealed until the worker runs."""

from __future__ import annotations

import json
from typing import Any

from idv import aws
from idv.errors import ConfigurationError


def seal(data: dict[str, Any], *, key_id: str, verification_id: str) -> bytes:
    """KMS-encrypt a small JSON object, bound to its verification id by the encryption context."""
    if not key_id:
        raise ConfigurationError("environment variable DATA_KEY_ID is not set")
    answer = aws.client("kms").encrypt(
        KeyId=key_id,
        Plaintext=json.dumps(data, ensure_ascii=False).encode(),
        EncryptionContext={"verification_id": verification_id},
    )
    return bytes(answer["CiphertextBlob"])


def unseal(blob: bytes, *, verification_id: str) -> dict[str, Any]:
    answer = aws.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext={"verification_id": verification_id})
    data: dict[str, Any] = json.loads(answer["Plaintext"])
    return data
