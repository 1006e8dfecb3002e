"""``validate``: load and check manifests and config without any API call.

Offline by default: no credential is needed and nothing is written (with the sandbox, no emulator
is started: its connections are placeholders); secret references are checked by syntax and scope,
not resolved, unless ``resolve_secrets``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.engine.load import Loaded, load_manifests
from reconciler.engine.session import enter_workspace
from reconciler.engine.settings import DEFAULT_PATH, RunSettings, check_config_given
from reconciler.engine.targets import check_target_syntax, check_targets_declared
from reconciler.errors import InputError
from reconciler.kinds.base import RunContext, RunOptions
from reconciler.manifest import confine
from reconciler.manifest.config import Config, LoadedConfig, config_model, load_config
from reconciler.manifest.trusted import apply_trusted_connections


@dataclass
class Validated:
    loaded: Loaded
    warnings: list[str]  # the config's (a trusted part the config under review changes) first


def validate(
    settings: RunSettings,
    *,
    paths: tuple[Path, ...] = (),
    targets: tuple[str, ...] = (),
    resolve_secrets: bool = False,
    on_warnings: Callable[[list[str]], None] | None = None,
) -> Validated:
    """Every problem of the manifests and config at once (:class:`~reconciler.errors.InputError`),
    or what was loaded and the warnings. ``on_warnings`` hears the warnings as soon as the
    documents are loaded (before the targets are checked against them)."""
    config_path = settings.config_path
    check_target_syntax(targets)
    check_config_given(settings, config_path)
    enter_workspace(config_path if config_path.exists() else None, settings.root)
    try:
        if settings.sandbox and resolve_secrets:  # the sandbox's credentials exist once it has been set up
            from reconciler.engine.session import _sandbox_config

            cfg, sbx = _sandbox_config(
                config_path if config_path.exists() else None, settings.sandbox_state or Path(".reconciler/sandbox"), settings.env
            )
            sbx.stop()
        elif settings.sandbox:
            cfg = offline_sandbox_config(config_path if config_path.exists() else None, settings.env)
        else:
            cfg = apply_trusted_connections(load_config(config_path, env=settings.env))
        ctx = RunContext(config=cfg, options=RunOptions(targets=targets))
        ctx.resolve_secrets = resolve_secrets
        loaded = load_manifests(list(paths) or [DEFAULT_PATH], ctx)
        ctx.warnings[:0] = cfg.warnings  # a trusted part the config under review changes
        if on_warnings is not None:
            on_warnings(list(ctx.warnings))
    finally:
        confine.set_root(None)
    check_targets_declared(loaded, targets)
    return Validated(loaded=loaded, warnings=list(ctx.warnings))


def offline_sandbox_config(config_path: Path | None, env: str | None = None) -> Any:
    """The config ``--sandbox`` would use, without starting (or creating) the sandbox: the user's
    settings, environments and vendor settings (tables), with placeholder connections (the default ones and
    every named one) whose secrets are never resolved."""
    from reconciler.manifest.validate import validate_model
    from reconciler.manifest.yamlload import Document
    from reconciler.vendor import vendors

    user = load_config(config_path, required=False, env=env)
    data = user.config.model_dump(exclude_none=True)
    placeholder = "http://127.0.0.1:1"

    def section(vendor: str, name: str | None) -> dict[str, Any]:
        sandbox = vendors()[vendor].sandbox
        assert sandbox is not None
        own = getattr(user.config.connections, vendor).get(name) if name is not None else None
        return sandbox.placeholder(placeholder, "env:RECONCILER_SANDBOX", own or getattr(user.providers, vendor))

    served = [v for v, spec in vendors().items() if spec.sandbox is not None]
    data["providers"] = {v: section(v, None) for v in served}
    for vendor, by_name in (data.get("connections") or {}).items():
        for name in by_name:
            by_name[name] = section(vendor, name)
    doc = Document(file=str(config_path or "<sandbox>"), index=0, data=data)
    model, problems = validate_model(config_model(), data, doc, resource="Config")
    if problems:
        raise InputError(problems)
    assert isinstance(model, Config)
    return LoadedConfig(model, path=user.path, doc=user.doc or doc, env=env)
