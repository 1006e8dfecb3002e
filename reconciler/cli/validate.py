"""``reconciler validate`` (manifests and config, no API call) and ``reconciler schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from reconciler.cli.base import (
    DEFAULT_PATH,
    MAX_VALIDATE_WARNINGS,
    _env,
    _err,
    _root,
    _with_globals,
    cli,
    common,
    handle_errors,
    refuse_targets,
    run_settings,
)
from reconciler.engine.settings import check_config_given
from reconciler.engine.targets import check_target_syntax, check_targets_declared
from reconciler.kinds.base import RunOptions


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@click.option("--resolve-secrets", is_flag=True,
              help="Also resolve secret references (environment variables, secret files) and check their values.")
@handle_errors
def validate(paths: tuple[Path, ...], config_path: Path, sandbox: bool, sandbox_state: Path | None,
             targets: tuple[str, ...], force: bool, resolve_secrets: bool) -> int:
    """Load and validate manifests and config; no API calls.

    Offline by default: no credential is needed and nothing is written (no emulator is started with
    --sandbox); secret references are checked by syntax and scope, not resolved, unless
    --resolve-secrets."""
    from reconciler.engine.load import load_manifests
    from reconciler.engine.session import enter_workspace
    from reconciler.kinds.base import RunContext
    from reconciler.manifest import confine
    from reconciler.manifest.config import apply_trusted_connections, load_config

    check_target_syntax(targets)
    check_config_given(run_settings(), config_path)
    enter_workspace(config_path if config_path.exists() else None, _root())
    try:
        if sandbox and resolve_secrets:  # the sandbox's credentials exist once it has been set up
            from reconciler.engine.session import _sandbox_config

            cfg, sbx = _sandbox_config(config_path if config_path.exists() else None,
                                       sandbox_state or Path(".reconciler/sandbox"), _env())
            sbx.stop()
        elif sandbox:
            cfg = offline_sandbox_config(config_path if config_path.exists() else None, _env())
        else:
            cfg = apply_trusted_connections(load_config(config_path, env=_env()))
        ctx = RunContext(config=cfg, options=RunOptions(targets=targets))
        ctx.resolve_secrets = resolve_secrets
        loaded = load_manifests(list(paths) or [DEFAULT_PATH], ctx)
        ctx.warnings[:0] = cfg.warnings  # a trusted part the config under review changes
        for warning in ctx.warnings[:MAX_VALIDATE_WARNINGS]:
            _err(f"warning: {warning}")
        if len(ctx.warnings) > MAX_VALIDATE_WARNINGS:
            _err(f"warning: ... and {len(ctx.warnings) - MAX_VALIDATE_WARNINGS} more")
    finally:
        confine.set_root(None)
    check_targets_declared(loaded, targets)
    secrets_note = "" if resolve_secrets else " (secret references checked, not resolved: --resolve-secrets does)"
    skipped = (f"; {len(loaded.incomplete)} incomplete document(s) skipped (metadata.incomplete: not restored "
               "until filled in)" if loaded.incomplete else "")
    click.echo(f"Valid: {loaded.count} resource(s), {sum(len(s) for s in loaded.scopes.values())} prune scope(s) "
               f"in {len(loaded.files)} file(s){secrets_note}{skipped}.")
    return 0


def offline_sandbox_config(config_path: Path | None, env: str | None = None) -> Any:
    """The config ``--sandbox`` would use, without starting (or creating) the sandbox: the user's
    settings, environments and vendor settings (tables), with placeholder connections (the default ones and
    every named one) whose secrets are never resolved."""
    from reconciler.errors import InputError
    from reconciler.manifest.config import Config, LoadedConfig, config_model, load_config
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


@cli.command()
@click.argument("what", type=click.Choice(["manifest", "config", "plan"]), default="manifest")
@_with_globals
@handle_errors
def schema(what: str) -> int:
    """Print a JSON Schema (manifests, config or saved plan) generated from the models."""
    refuse_targets("schema", "a schema covers every kind")
    from reconciler.engine.planfile import plan_schema
    from reconciler.schema import config_schema, manifest_schema

    data = {"manifest": manifest_schema, "config": config_schema, "plan": plan_schema}[what]()
    click.echo(json.dumps(data, indent=2))
    return 0
