"""The providers' cryptography: Juhe's AES field encryption, Apetime's request sign, FaceID's return sign.

Juhe verifyEncry: AES/ECB/PKCS5Padding, key = the first 16 characters of lowercase hex md5(openid) used as
ASCII bytes (AES-128), ciphertext sent as standard base64 (then URL-encoded by the form encoding).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad, unpad


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def juhe_aes_key(openid: str) -> bytes:
    return md5_hex(openid)[:16].encode("ascii")


def aes_encrypt_field(plaintext: str | bytes, openid: str) -> str:
    """Encrypt one request field the way the document describes (the inverse of `aes_decrypt_field`)."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    return base64.b64encode(AES.new(juhe_aes_key(openid), AES.MODE_ECB).encrypt(pad(data, 16))).decode("ascii")


class FieldDecryptError(ValueError):
    """An encrypted field that is not base64, not whole AES blocks, or badly padded (wrong openid)."""


def aes_decrypt_field(value: str, openid: str) -> bytes:
    """Decrypt one field. Strict: a '+' that was not percent-encoded arrives as a space and fails here,
    exactly as it would at the provider."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FieldDecryptError("不是有效的base64") from exc
    if not raw or len(raw) % 16:
        raise FieldDecryptError("密文长度错误")
    try:
        return unpad(AES.new(juhe_aes_key(openid), AES.MODE_ECB).decrypt(raw), 16)
    except ValueError as exc:
        raise FieldDecryptError("解密失败") from exc


def apetime_sign(app_key: str, id_number: str, name: str, request_id: str, timestamp: str, app_secret: str) -> str:
    """md5 of the signed fields' values in alphabetical order of their names, then the secret."""
    return md5_hex(app_key + id_number + name + request_id + timestamp + app_secret)


def faceid_sign(response_json: str, key: str, form: str = "decoded") -> str:
    """sign = md5(response + key): over the JSON text exactly as sent (before URL-encoding, "decoded"), or
    over the value as placed in the returnUrl, quote(response, safe="") ("encoded")."""
    if form == "encoded":
        return md5_hex(quote(response_json, safe="") + key)
    if form != "decoded":
        raise ValueError("form must be 'decoded' or 'encoded'")
    return md5_hex(response_json + key)


def apetime_sign_matches(expected: str, sign: str) -> bool:
    """Constant-time comparison of Apetime's lowercase hex sign with what was sent (case-insensitive);
    any text, non-ASCII included, is simply a mismatch."""
    return hmac.compare_digest(expected.encode("utf-8"), sign.strip().lower().encode("utf-8"))
