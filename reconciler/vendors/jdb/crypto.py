"""The JDB request envelope: ``x`` = AES-128-CBC of the compact JSON action, URL-safe Base64.

Rules (``reference/jdb.md`` §1.3, matching JDB's own sample code byte for byte):

- key and IV are 16-character strings used as their 16 ASCII bytes (never hex-decoded);
- the plaintext is the UTF-8 compact JSON of the action, padded with zero bytes to a multiple of 16
  (nothing is added when it is already aligned);
- the ciphertext is written in URL-safe Base64 without ``=``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping

from reconciler.errors import UsageError

BLOCK = 16


def _ascii16(value: str, what: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raw = b""
    if len(raw) != BLOCK:
        raise UsageError(f"the JDB {what} must be 16 ASCII characters (check the secret reference)")
    return raw


def zero_pad(data: bytes) -> bytes:
    """Append 0x00 bytes up to the next multiple of 16 (none when aligned)."""
    return data + b"\0" * (-len(data) % BLOCK)


def compact_json(action: Mapping[str, Any]) -> bytes:
    return json.dumps(action, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class JdbCipher:
    """Encrypts JDB actions with one agent's key and IV. Its ``repr`` never shows them."""

    def __init__(self, key: str, iv: str):
        self._key = _ascii16(key, "key")
        self._iv = _ascii16(iv, "IV")

    def __repr__(self) -> str:
        return "JdbCipher(<key>, <iv>)"

    def encrypt(self, plaintext: bytes) -> str:
        """``x`` for ``plaintext``: zero padding, AES-128-CBC, URL-safe Base64 without ``=``."""
        from Crypto.Cipher import AES  # loaded by the first call: validate and plans without JDB never encrypt

        ciphertext = AES.new(self._key, AES.MODE_CBC, iv=self._iv).encrypt(zero_pad(plaintext))
        return base64.urlsafe_b64encode(ciphertext).rstrip(b"=").decode("ascii")

    def seal(self, action: Mapping[str, Any]) -> str:
        """``x`` for an action object (serialised as compact JSON)."""
        return self.encrypt(compact_json(action))
