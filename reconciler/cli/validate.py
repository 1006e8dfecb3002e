"""``reconciler validate`` (manifests and config, no API call) and ``reconciler schema``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli.base import (
    MAX_VALIDATE_WARNINGS,
    _err,
    _with_globals,
    cli,
    common,
    handle_errors,
    refuse_targets,
    run_settings,
)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@click.option(
    "--resolve-secrets",
    is_flag=True,
    help="Also resolve secret references (environment variables, secret files) and check their values.",
)
@handle_errors
def validate(
    paths: tuple[Path, ...],
    config_path: Path,
    sandbox: bool,
    sandbox_state: Path | None,
    targets: tuple[str, ...],
    force: bool,
    resolve_secrets: bool,
) -> int:
    """Load and validate manifests and config; no API calls.

    Offline by default: no credential is needed and nothing is written (no emulator is started with
    --sandbox); secret references are checked by syntax and scope, not resolved, unless
    --resolve-secrets."""
    from reconciler.engine.validate import validate as validate_manifests

    def warn(warnings: list[str]) -> None:
        for warning in warnings[:MAX_VALIDATE_WARNINGS]:
            _err(f"warning: {warning}")
        if len(warnings) > MAX_VALIDATE_WARNINGS:
            _err(f"warning: ... and {len(warnings) - MAX_VALIDATE_WARNINGS} more")

    loaded = validate_manifests(
        run_settings(), paths=paths, targets=targets, resolve_secrets=resolve_secrets, on_warnings=warn
    ).loaded
    secrets_note = "" if resolve_secrets else " (secret references checked, not resolved: --resolve-secrets does)"
    skipped = (
        f"; {len(loaded.incomplete)} incomplete document(s) skipped (metadata.incomplete: not restored until filled in)"
        if loaded.incomplete
        else ""
    )
    click.echo(
        f"Valid: {loaded.count} resource(s), {sum(len(s) for s in loaded.scopes.values())} prune scope(s) "
        f"in {len(loaded.files)} file(s){secrets_note}{skipped}."
    )
    return 0


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
