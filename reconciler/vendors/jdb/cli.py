"""JDB's command-line wiring: ``reconciler export transactions`` (Action 29 as JSON Lines) and the
``--agent`` option of ``reconciler export manifests``.

The CLI calls :func:`export_commands` with its ``export`` group and a
:class:`reconciler.vendor.CliServices` (global options, error mapping, sessions, output checks),
so this package never imports the CLI layer above it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.vendor import CliServices, ExportOption

if TYPE_CHECKING:  # pragma: no cover - click is imported by the command line that calls export_commands
    import click

EXPORT_OPTIONS = (
    # read by FreeSpinEventKind.export (request.extra["agents"])
    ExportOption(flag="--agent", key="agents", help="Also read this JDB agent's events (repeatable)."),
)


@contextlib.contextmanager
def _export_progress() -> Iterator[Any]:
    """A rich progress bar on a terminal (stderr), nothing otherwise; yields the callback."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("JDB Action 29", total=None)
        yield lambda p: progress.update(
            task, total=p.windows_total, completed=p.windows_done, description=f"JDB Action 29: {p.records} record(s)"
        )


def export_commands(group: "click.Group", cli: CliServices) -> None:
    """Add ``transactions`` to the CLI's ``export`` group."""
    import click

    @group.command("transactions")
    @click.option("--agent", required=True, help="JDB agent ID (the request parent).")
    @click.option(
        "--from", "start", required=True, metavar="TIME", help="Start, ISO-8601 with offset, whole minute, at most 2 hours back."
    )
    @click.option("--to", "end", metavar="TIME", help="End (exclusive); default: the newest minute JDB serves.")
    @click.option("--game-type", "game_types", type=int, multiple=True, help="Only this gType (repeatable).")
    @click.option(
        "--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="JSON Lines file to write."
    )
    @cli.with_globals
    @cli.handle_errors
    def export_transactions(agent: str, start: str, end: str | None, game_types: tuple[int, ...], out: Path) -> int:
        """JDB transaction details (Action 29) of a time range as JSON Lines (see docs/export-transactions.md)."""
        cli.refuse_targets("export transactions", "it exports an agent's transactions, not resources")
        cli.check_writable(out)
        from reconciler.vendors.jdb import transactions as jt
        from reconciler.vendors.jdb.free_spin_event import FreeSpinEventKind

        now = datetime.now(timezone.utc)
        first = jt.parse_bound(start, "--from")
        last = jt.parse_bound(end, "--to") if end else jt.latest_end(now)
        s = cli.open_session(())
        try:
            client = s.ctx.client(FreeSpinEventKind)
            with _export_progress() as progress:
                result = jt.export_transactions(
                    client,
                    agent=agent,
                    start=first,
                    end=last,
                    out_path=out,
                    game_types=list(game_types) or None,
                    progress=progress,
                    now=now,
                )
        finally:
            s.close()
        cli.echo(
            f"Exported {result.records} record(s) from {result.windows} window(s) to {out} "
            f"({result.duplicates} duplicate(s) dropped)."
        )
        for warning in result.warnings:
            cli.err(f"warning: {warning}")
        return 0
