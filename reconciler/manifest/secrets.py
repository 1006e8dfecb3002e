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
from reconciler.manifest.confine import ConfinementError, read_text


_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


def _check_ref(value: str) -> str:
    if not _REF.match(value):
        # never echo the value: it may be the secret itself
        raise ValueError("secret fields take a reference (env:NAME or file:PATH), not a literal value")
    return value


SecretRef = Annotated[StrictStr, AfterValidator(_check_ref)]
"""A pydantic type for secret fields: only ``env:NAME`` / ``file:PATH`` references pass."""


def resolve(ref: str, *, base_dir: Path | None = None, confine: bool = True) -> str:
    """The secret value behind ``ref``. Errors name the reference, never a value.

    ``file:`` references are read through :mod:`reconciler.manifest.confine`: a regular file of
    at most 64 KiB, inside the workspace root unless ``confine=False`` (references in the trusted
    config may name mounted CI secrets elsewhere)."""
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if value is None or value == "":
            raise SecretError(f"secret reference {ref}: environment variable {name} is not set")
        return value
    if ref.startswith("file:"):
        path = ref_path(ref, base_dir)
        try:
            value = read_text(path, what="secret", confine=confine).strip()
        except ConfinementError as exc:
            raise SecretError(f"secret reference {ref}: {_after_path(str(exc), path)}") from None
        if not value:
            raise SecretError(f"secret reference {ref}: {path} is empty")
        return value
    raise SecretError("secret reference must start with env: or file:")


def ref_path(ref: str, base_dir: Path | None) -> Path:
    try:
        path = Path(ref[5:]).expanduser()
    except RuntimeError:  # ~user of an unknown user: left as written (then "no such file")
        path = Path(ref[5:])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:  # pragma: no cover
        return False


def _after_path(message: str, path: Path) -> str:
    """``secret PATH: reason`` -> ``PATH: reason`` (the reference already says it is a secret)."""
    return message.removeprefix("secret ")


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


def file_ref_problem(ref: str, *, base_dir: Path) -> str | None:
    """Offline check of a manifest's ``file:`` reference, reading nothing: an existing target must
    be a regular file inside the workspace root (within the size limit); a missing one must lie
    inside the root as written (it may be created later, e.g. by the CI job that applies)."""
    from reconciler.manifest import confine

    if not ref.startswith("file:"):
        return None
    path = ref_path(ref, base_dir)
    if "\0" in str(path) or os.path.lexists(path):  # (a NUL: confine.check names it)
        try:
            confine.check(path, what="secret")
        except ConfinementError as exc:
            return f"secret reference {ref}: {_after_path(str(exc), path)}"
        return None
    root = confine.get_root()
    if root is not None and not confine.is_inside(Path(os.path.abspath(path)), root):
        return (
            f"secret reference {ref}: resolves outside the workspace root ({root}); "
            "files named by manifests and config must stay inside it"
        )
    return None
