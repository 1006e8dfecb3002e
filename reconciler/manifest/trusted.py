"""A trusted configuration (docs/security.md, "A trusted configuration"): the config a real run uses
takes its trusted parts (:data:`TRUSTED_PARTS`) from ``RECONCILER_CONNECTIONS_FROM`` when set, not
from the change under review, and its fingerprint key from ``RECONCILER_FINGERPRINT_KEY``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from reconciler.errors import InputError, Problem
from reconciler.manifest.config import LoadedConfig, config_model, connection_problems, load_config
from reconciler.manifest.yamlload import Path_


TRUSTED_ENV = "RECONCILER_CONNECTIONS_FROM"
FINGERPRINT_ENV = "RECONCILER_FINGERPRINT_KEY"
FINGERPRINT_REF = f"env:{FINGERPRINT_ENV}"
# What the job trusts (docs/security.md, "A trusted configuration"). With RECONCILER_CONNECTIONS_FROM
# every part listed here comes from that file; the config under review contributes only the rest
# (the values of environments.<name>.vars). A part the config under review writes differently is
# reported (warning) and its trusted value is used.
TRUSTED_PARTS = (
    "providers",  # every default connection: base_url, credential references, ids, vendor settings (tables)
    "connections",  # every named connection, the same
    "environments.<name>.connections",  # which connection an environment targets
    "settings.fingerprint_key",
    "settings.manifest_secret_env",
    "settings.max_change_ratio",
    "settings.threshold_min_existing",
    "settings.exposure_budgets",  # promotional exposure budgets (issue 27)
)
TRUSTED_SETTINGS = ("fingerprint_key", "manifest_secret_env", "max_change_ratio", "threshold_min_existing", "exposure_budgets")
MAX_TRUSTED_WARNINGS = 20


def in_ci() -> bool:
    """Whether the run is a CI job (``CI`` set to a true value: GitHub Actions, GitLab CI and most
    others set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def apply_trusted_connections(cfg: LoadedConfig, trusted_path: str | None = None) -> LoadedConfig:
    """The config a real run uses: its trusted parts from outside the change under review.

    With ``RECONCILER_CONNECTIONS_FROM=FILE`` (e.g. ``reconciler.yaml`` of the pull request's target
    branch, written by the pipeline outside the checkout), every part of :data:`TRUSTED_PARTS` comes
    from FILE — connections (URL, credential references, ids, vendor settings such as tables), which connection
    each environment targets, the fingerprint key, ``manifest_secret_env`` and the safety thresholds;
    the workspace config contributes only ``environments.<name>.vars``. Where the workspace config
    writes a trusted part differently, the run warns ("reconciler.yaml changes trusted setting X;
    the trusted value is used"). Relative ``file:`` references in FILE are relative to FILE's folder;
    a table's ``proto`` is relative to the workspace config (the schema file is part of the change).

    The fingerprint key: ``RECONCILER_FINGERPRINT_KEY``, when set, is the key whatever any config
    says; else FILE's ``settings.fingerprint_key``. Without FILE, a CI run (``CI`` set) refuses a
    ``settings.fingerprint_key`` other than ``env:RECONCILER_FINGERPRINT_KEY``: the config could be
    the change under review, and a key it chooses (a file it commits, a variable it can read) would
    let it test guesses of live secrets offline.
    """
    path_text = trusted_path if trusted_path is not None else os.environ.get(TRUSTED_ENV)
    if not path_text:
        return _untrusted_source(cfg)
    trusted_path_ = Path(path_text)
    trusted = load_config(trusted_path_, required=True, confine=False)
    data = trusted.config.model_dump(exclude_none=True)
    own = cfg.config.model_dump(exclude_none=True)
    name = Path(cfg.path).name if cfg.path else "reconciler.yaml"
    changed = _trusted_differences(own, data) if cfg.doc is not None else []
    warnings = [
        f"{name} changes trusted setting {path}; the trusted value is used ({TRUSTED_ENV})"
        for path in changed[:MAX_TRUSTED_WARNINGS]
    ]
    if len(changed) > MAX_TRUSTED_WARNINGS:
        warnings.append(
            f"{name} changes {len(changed) - MAX_TRUSTED_WARNINGS} more trusted setting(s); the trusted values are used"
        )
    _absolute_file_refs(data, trusted_path_.parent)
    merged = dict(own)
    merged["providers"] = data.get("providers") or {}
    merged["connections"] = data.get("connections") or {}
    environments: dict[str, Any] = {}
    own_envs, trusted_envs = own.get("environments") or {}, data.get("environments") or {}
    for env_name in sorted(set(own_envs) | set(trusted_envs)):
        mine, theirs = own_envs.get(env_name) or {}, trusted_envs.get(env_name) or {}
        environments[env_name] = {
            "connections": theirs.get("connections") or {},
            "vars": mine.get("vars") if env_name in own_envs else theirs.get("vars") or {},
        }
    merged["environments"] = environments
    settings = merged.setdefault("settings", {})
    for key in TRUSTED_SETTINGS:
        settings.pop(key, None)
        if key in (data.get("settings") or {}):
            settings[key] = data["settings"][key]
    if os.environ.get(FINGERPRINT_ENV):
        settings["fingerprint_key"] = FINGERPRINT_REF
    model = config_model().model_validate(merged)
    if cfg.doc is not None:  # the workspace's environments must name connections the trusted file has
        problems = connection_problems(model, cfg.doc, cfg.env)
        if problems:
            raise InputError(problems)
    return LoadedConfig(
        model, path=cfg.path, doc=cfg.doc, env=cfg.env, connection_doc=trusted.doc, review=True, warnings=warnings
    )


def _untrusted_source(cfg: LoadedConfig) -> LoadedConfig:
    """No trusted file: the config is used as written, but for the fingerprint key (above)."""
    written = cfg.settings.fingerprint_key
    if os.environ.get(FINGERPRINT_ENV):
        warnings = []
        if written and written != FINGERPRINT_REF:
            warnings.append(f"settings.fingerprint_key ({written}) is not used: {FINGERPRINT_ENV} is set and is the key")
        settings = cfg.config.settings.model_copy(update={"fingerprint_key": FINGERPRINT_REF})
        model = cfg.config.model_copy(update={"settings": settings})
        return LoadedConfig(model, path=cfg.path, doc=cfg.doc, env=cfg.env, warnings=warnings)
    if written and written != FINGERPRINT_REF and in_ci():
        message = (
            f"a fingerprint key the config chooses ({written}) is refused in CI: the config may be the change "
            f"under review, and a key it knows lets it test guesses of live secrets offline; set "
            f"{FINGERPRINT_ENV} (a CI secret), or take the trusted settings from {TRUSTED_ENV}"
        )
        where: Path_ = ("settings", "fingerprint_key")
        problem = (
            cfg.doc.problem(where, message, resource="Config")
            if cfg.doc is not None
            else Problem(str(cfg.path or "reconciler.yaml"), 1, 1, "Config", "settings.fingerprint_key", message)
        )
        raise InputError([problem])
    return cfg


def _trusted_differences(own: dict[str, Any], trusted: dict[str, Any]) -> list[str]:
    """The dotted paths of trusted parts the workspace config writes differently."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: tuple[str, ...], depth: int) -> None:
        if a == b:
            return
        if depth == 0 or not isinstance(a, dict) or not isinstance(b, dict):
            out.append(".".join(_shown_key(k) for k in path))
            return
        for k in sorted(set(a) | set(b), key=str):
            walk(a.get(k), b.get(k), path + (str(k),), depth - 1)

    walk(own.get("providers") or {}, trusted.get("providers") or {}, ("providers",), 3)
    walk(own.get("connections") or {}, trusted.get("connections") or {}, ("connections",), 3)
    own_envs, trusted_envs = own.get("environments") or {}, trusted.get("environments") or {}
    for env_name in sorted(set(own_envs) | set(trusted_envs)):
        walk(
            (own_envs.get(env_name) or {}).get("connections") or {},
            (trusted_envs.get(env_name) or {}).get("connections") or {},
            ("environments", env_name, "connections"),
            0,
        )
    for key in TRUSTED_SETTINGS:
        walk((own.get("settings") or {}).get(key), (trusted.get("settings") or {}).get(key), ("settings", key), 0)
    return out


def _shown_key(key: str) -> str:
    """A config key as one safe word (keys are the change's: any character may be in one)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key) else json.dumps(key[:64], ensure_ascii=True)


def _absolute_file_refs(data: Any, base: Path) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str) and v.startswith("file:") and not Path(v[5:]).expanduser().is_absolute():
                data[k] = "file:" + str((base / v[5:]).absolute())
            else:
                _absolute_file_refs(v, base)
