"""``reconciler export``: ``manifests`` (live state as manifests) and the commands vendors add.

A vendor adds commands to this group (:attr:`reconciler.vendor.VendorSpec.export_commands`, given
a :class:`reconciler.vendor.CliServices`) and options to ``export manifests``
(:attr:`reconciler.vendor.VendorSpec.export_options`, whose values reach its kinds as
``ExportRequest.extra``). Both are added on first use, so a command that does not export never
loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.cli.base import (
    MAX_VALIDATE_WARNINGS,
    _err,
    _session,
    _with_globals,
    check_writable,
    cli,
    common,
    handle_errors,
    refuse_targets,
    shard_of_run,
)
from reconciler.vendor import CliServices, ExportOption, RegistryError, vendors


def services() -> CliServices:
    """What a vendor's commands borrow from the CLI."""
    return CliServices(
        with_globals=_with_globals,
        handle_errors=handle_errors,
        open_session=lambda paths: _session(tuple(paths)),
        check_writable=check_writable,
        refuse_targets=refuse_targets,
        err=_err,
        echo=click.echo,
    )


class VendorExportGroup(click.Group):
    """The ``export`` group: its own commands, and each installed vendor's."""

    _vendors_added = False

    def _add_vendor_commands(self) -> None:
        if self._vendors_added:
            return
        self._vendors_added = True
        for spec in vendors().values():
            if spec.export_commands is not None:
                spec.export_commands(self, services())

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_vendor_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_vendor_commands()
        return super().get_command(ctx, cmd_name)


def _param_name(vendor: str, option: ExportOption) -> str:
    return f"vendor_{vendor}_{option.key}"


class VendorOptionsCommand(click.Command):
    """A command whose options end with those the installed vendors add (``export_options``)."""

    _vendors_added = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._vendors_added:
            self._vendors_added = True
            taken = {opt for p in self.params for opt in getattr(p, "opts", [])}
            for name, spec in vendors().items():
                for option in spec.export_options:
                    if option.flag in taken:
                        raise RegistryError(f"vendor {name}: its export option {option.flag} is already taken")
                    taken.add(option.flag)
                    self.params.append(
                        click.Option(
                            [option.flag, _param_name(name, option)], multiple=True, metavar=option.metavar, help=option.help
                        )
                    )
        return super().get_params(ctx)


def _extra(values: dict[str, tuple[str, ...]]) -> dict[str, list[Any]]:
    """The vendor options' values as the kinds read them (``ExportRequest.extra``), parsed (a bad
    value is an error before anything is read)."""
    extra: dict[str, list[Any]] = {}
    for name, spec in vendors().items():
        for option in spec.export_options:
            given = values.get(_param_name(name, option)) or ()
            extra.setdefault(option.key, []).extend(option.parse(v) if option.parse else v for v in given)
    return extra


@cli.group(cls=VendorExportGroup)
@_with_globals
def export() -> None:
    """Export live data."""


@export.command("manifests", cls=VendorOptionsCommand)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="New folder for the manifests (and data and players files).",
)
@click.option(
    "--secrets-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write secret values the API returns here (files mode 0600, referenced as file:); without it they are env: references.",
)
@click.option("--unmanaged", is_flag=True, help="Only objects that no manifest under PATH declares (adoption).")
@handle_errors
def export_manifests_cmd(
    paths: tuple[Path, ...],
    config_path: Path,
    sandbox: bool,
    sandbox_state: Path | None,
    targets: tuple[str, ...],
    force: bool,
    out: Path,
    secrets_dir: Path | None,
    unmanaged: bool,
    **vendor_options: tuple[str, ...],
) -> int:
    """Write live state as manifests (DR backups, adoption); see docs/disaster-recovery.md."""
    from reconciler.export.manifests import export_manifests

    extra = _extra(vendor_options)
    shard = shard_of_run("export manifests")
    s = _session(paths, (), force)
    try:
        loaded = s.load() if any(p.exists() for p in s.paths) or paths else None
        result = export_manifests(
            resources=loaded.resources if loaded else {},
            scopes=loaded.scopes if loaded else {},
            ctx=s.ctx,
            out_dir=out,
            secrets_dir=secrets_dir,
            unmanaged=unmanaged,
            targets=targets,
            extra=extra,
            shard=shard,
        )
    finally:
        s.close()
    for note in result.notes:
        _err(f"note: {note}")
    for line in result.incomplete[:MAX_VALIDATE_WARNINGS]:
        _err(f"warning: incomplete, not restorable as written: {line} (fill these in, then delete metadata.incomplete)")
    if len(result.incomplete) > MAX_VALIDATE_WARNINGS:
        _err(
            f"warning: ... and {len(result.incomplete) - MAX_VALIDATE_WARNINGS} more incomplete object(s) "
            "(each marked metadata.incomplete in its file)"
        )
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items())) or "nothing"
    incomplete = f"; {len(result.incomplete)} incomplete, skipped by a restore until filled in" if result.incomplete else ""
    click.echo(f"Exported {counts} to {out} ({len(result.files)} file(s){incomplete}).")
    if result.secret_files:
        click.echo(f"Wrote {len(result.secret_files)} secret file(s) (mode 0600) to {secrets_dir}; keep them out of git.")
    if result.env_names:
        shown = ", ".join(result.env_names[:10]) + (
            f" and {len(result.env_names) - 10} more" if len(result.env_names) > 10 else ""
        )
        click.echo(
            f"Set {len(result.env_names)} environment variable(s) before plan or apply: {shown} "
            f"(all listed in {out / 'SECRETS-TO-SET.txt'})."
        )
    return 0
