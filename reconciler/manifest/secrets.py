"""Secrets are references: ``env:NAME`` or ``file:PATH`` (relative to the file that names it).

A secret field given a literal value is an input error. Resolved values live only in memory;
they are compared directly or through keyed fingerprints (HMAC-SHA256) and never rendered.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, StrictStr

from reconciler.errors import SecretError

_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


def _check_ref(value: str) -> str:
    if not _REF.match(value):
        # never echo the value: it may be the secret itself
        raise ValueError(
            "secret fields take a reference (env:NAME or file:PATH), not a literal value"
        )
    return value


SecretRef = Annotated[StrictStr, AfterValidator(_check_ref)]
"""A pydantic type for secret fields: only ``env:NAME`` / ``file:PATH`` references pass."""


def resolve(ref: str, *, base_dir: Path | None = None) -> str:
    """The secret value behind ``ref``. Errors name the reference, never a value."""
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if value is None or value == "":
            raise SecretError(f"secret reference {ref}: environment variable {name} is not set")
        return value
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"secret reference {ref}: cannot read {path} ({exc.strerror})") from None
        if not value:
            raise SecretError(f"secret reference {ref}: {path} is empty")
        return value
    raise SecretError("secret reference must start with env: or file:")


class Fingerprinter:
    """Keyed fingerprints of secret values: comparable across runs, useless to brute-force offline
    without the key (the key itself is a secret: configured, or derived from provider credentials)."""

    def __init__(self, key: bytes):
        self._key = hashlib.sha256(b"reconciler-fingerprint-v1\0" + key).digest()

    def __call__(self, value: str | bytes) -> str:
        data = value.encode("utf-8") if isinstance(value, str) else value
        return "hmac-sha256:" + hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:  # never show the key
        return "Fingerprinter(<key>)"
