"""Juhe field encryption for `verifyface/verifyEncry`: AES/ECB/PKCS5Padding, standard base64.

The provider document: the key is the first 16 characters of the lowercase hex md5 of the account's
openid (so AES-128); each of `idcard`, `realname` and `image` is encrypted separately and sent as
standard base64, not lowercased. The base64 text is form-urlencoded by `requests` when the form is
posted (the document's "加密后的数据需要urlencode传入"); nothing here encodes it a second time.

pycryptodome is imported only when a field is actually encrypted, so importing this module (and
every handler that does not use AES mode) stays cheap.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

BLOCK_SIZE = 16


@lru_cache(maxsize=8)
def juhe_aes_key(openid: str) -> bytes:
    """The AES-128 key: the first 16 hex characters of md5(openid), lowercase, as ASCII bytes."""
    if not isinstance(openid, str) or not openid:
        raise ValueError("openid must be a non-empty string")
    return hashlib.md5(openid.encode("utf-8")).hexdigest()[:16].encode("ascii")


def encrypt_field(plaintext: str, openid: str) -> str:
    """AES-128-ECB of the UTF-8 `plaintext` with PKCS#5/7 padding, as standard base64 text."""
    from Crypto.Cipher import AES  # lazy: pycryptodome loads only in AES mode
    from Crypto.Util.Padding import pad

    cipher = AES.new(juhe_aes_key(openid), AES.MODE_ECB)
    return base64.b64encode(cipher.encrypt(pad(plaintext.encode("utf-8"), BLOCK_SIZE, style="pkcs7"))).decode("ascii")
