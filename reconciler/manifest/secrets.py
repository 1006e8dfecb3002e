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
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, StrictStr

from reconciler.errors import SecretError
from reconciler.manifest.confine import ConfinementError, read_text

if TYPE_CHECKING:
    from reconciler.manifest.config import LoadedConfig

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
        path = _file_path(ref, base_dir)
        try:
            value = read_text(path, what="secret", confine=confine).strip()
        except ConfinementError as exc:
            raise SecretError(f"secret reference {ref}: {_after_path(str(exc), path)}") from None
        if not value:
            raise SecretError(f"secret reference {ref}: {path} is empty")
        return value
    raise SecretError("secret reference must start with env: or file:")


def manifest_ref_problem(ref: str, config: LoadedConfig, *, base_dir: Path) -> str | None:
    """Why a manifest may not use ``ref`` (``None`` when it may): manifests reference only the
    secrets meant for them, never a provider credential."""
    from fnmatch import fnmatchcase

    from reconciler.manifest.config import DENIED_ENV_PATTERNS, PROVIDER_SECRET_ENV_PATTERNS, RESERVED_ENV, credential_refs

    creds = credential_refs(config.config)
    if ref.startswith("env:"):
        name = ref[4:]
        cred_names = {r[4:] for r in creds if r.startswith("env:")}
        if name in cred_names or name in RESERVED_ENV:
            return f"secret reference {ref}: {name} holds a provider credential or a setting of the tool; manifests cannot use it"
        if any(fnmatchcase(name, pat) for pat in DENIED_ENV_PATTERNS):
            return f"secret reference {ref}: {name} belongs to the CI platform or a cloud SDK; manifests cannot use it"
        if any(fnmatchcase(name, pat) for pat in PROVIDER_SECRET_ENV_PATTERNS):
            return (f"secret reference {ref}: {name} is named like a credential of the job (a CI token or a "
                    "provider's key); manifests cannot use it")
        patterns = config.settings.manifest_secret_env
        if not any(fnmatchcase(name, pat) for pat in patterns):
            return (f"secret reference {ref}: manifests may reference only environment variables matching "
                    f"settings.manifest_secret_env ({', '.join(patterns) or 'none'})")
        return None
    if ref.startswith("file:"):
        target = _file_path(ref, base_dir)
        for c in creds:
            if c.startswith("file:") and _same_file(target, _file_path(c, config.base_dir)):
                return f"secret reference {ref}: this file holds a provider credential; manifests cannot use it"
    return None


def job_credential_values() -> set[str]:
    """The values of the job's credential variables (:data:`PROVIDER_SECRET_ENV_PATTERNS`), whatever
    the config under review references: none of them may be a resource value."""
    from fnmatch import fnmatchcase

    from reconciler.manifest.config import PROVIDER_SECRET_ENV_PATTERNS

    return {v for k, v in os.environ.items()
            if v and any(fnmatchcase(k, pat) for pat in PROVIDER_SECRET_ENV_PATTERNS)}


def _file_path(ref: str, base_dir: Path | None) -> Path:
    try:
        path = Path(ref[5:]).expanduser()
    except RuntimeError:  # ~user of an unknown user: left as written (then "no such file")
        path = Path(ref[5:])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _same_file(a: Path, b: Path) -> bool:
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
    path = _file_path(ref, base_dir)
    if "\0" in str(path) or os.path.lexists(path):  # (a NUL: confine.check names it)
        try:
            confine.check(path, what="secret")
        except ConfinementError as exc:
            return f"secret reference {ref}: {_after_path(str(exc), path)}"
        return None
    root = confine.get_root()
    if root is not None and not confine.is_inside(Path(os.path.abspath(path)), root):
        return (f"secret reference {ref}: resolves outside the workspace root ({root}); "
                "files named by manifests and config must stay inside it")
    return None
