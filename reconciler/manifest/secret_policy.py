"""Which secrets a manifest may reference: never a provider credential, a setting of the tool, a
CI platform's or cloud SDK's variable, or a variable named like one of the job's credentials.

Apart from :mod:`reconciler.manifest.secrets` (resolving references), which the config models
import: this module needs the config, so it sits above both and no import cycle remains.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

from reconciler.manifest.config import (
    DENIED_ENV_PATTERNS,
    RESERVED_ENV,
    LoadedConfig,
    credential_refs,
    provider_secret_env_patterns,
)
from reconciler.manifest.secrets import ref_path, same_file


def manifest_ref_problem(ref: str, config: LoadedConfig, *, base_dir: Path) -> str | None:
    """Why a manifest may not use ``ref`` (``None`` when it may): manifests reference only the
    secrets meant for them, never a provider credential."""
    creds = credential_refs(config.config)
    if ref.startswith("env:"):
        name = ref[4:]
        cred_names = {r[4:] for r in creds if r.startswith("env:")}
        if name in cred_names or name in RESERVED_ENV:
            return f"secret reference {ref}: {name} holds a provider credential or a setting of the tool; manifests cannot use it"
        if any(fnmatchcase(name, pat) for pat in DENIED_ENV_PATTERNS):
            return f"secret reference {ref}: {name} belongs to the CI platform or a cloud SDK; manifests cannot use it"
        if any(fnmatchcase(name, pat) for pat in provider_secret_env_patterns()):
            return (
                f"secret reference {ref}: {name} is named like a credential of the job (a CI token or a "
                "provider's key); manifests cannot use it"
            )
        patterns = config.settings.manifest_secret_env
        if not any(fnmatchcase(name, pat) for pat in patterns):
            return (
                f"secret reference {ref}: manifests may reference only environment variables matching "
                f"settings.manifest_secret_env ({', '.join(patterns) or 'none'})"
            )
        return None
    if ref.startswith("file:"):
        target = ref_path(ref, base_dir)
        for c in creds:
            if c.startswith("file:") and same_file(target, ref_path(c, config.base_dir)):
                return f"secret reference {ref}: this file holds a provider credential; manifests cannot use it"
    return None


def job_credential_values() -> set[str]:
    """The values of the job's credential variables (:func:`provider_secret_env_patterns`), whatever
    the config under review references: none of them may be a resource value."""
    return {v for k, v in os.environ.items() if v and any(fnmatchcase(k, pat) for pat in provider_secret_env_patterns())}
