"""``reconciler apply``: the manifests, a saved plan, or the rest of a journaled run.

The workflow (saved-plan checks, staleness, journal, resume, signals, exit codes) is the
engine's (:mod:`reconciler.engine.apply`); this command parses, streams what the engine reports,
renders the result and exits with its code.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import click

from reconciler.cli.base import (
    APPROVE_EXPOSURE_OPTION,
    DETAIL_OPTION,
    _err,
    _json_out,
    _text,
    cli,
    command_line,
    common,
    handle_errors,
    run_settings,
    shard_of_run,
)
from reconciler.engine.render import OutcomeStream, render_apply_markdown, render_markdown, render_outcomes
from reconciler.errors import UsageError
from reconciler.model import Outcome, Plan


def _confirm(_plan: Plan) -> bool:
    return click.confirm("Apply these changes?", default=False)


def _outcome_printer(fmt: str, detail: str) -> Callable[[Outcome], None] | None:
    """Each outcome as it happens; Markdown is one document written at the end (a table of
    results), not lines as they happen."""
    from reconciler.engine.journal import outcome_record

    if fmt == "markdown":
        return None
    if fmt != "json":
        return OutcomeStream(sys.stdout, detail)

    def emit(o: Outcome) -> None:
        _json_out(outcome_record(o))
        sys.stdout.flush()

    return emit


def _render_apply_plan(p: Plan, fmt: str, safety: list[str], detail: str = "normal") -> None:
    if fmt == "markdown":
        click.echo(render_markdown(p, safety=safety), nl=False)
    elif fmt == "json":
        _json_out(
            {
                "type": "plan",
                "summary": p.summary_line(),
                "counts": p.counts(),
                "unsafe": safety,
                "failed_reads": p.failed,
                "complete": p.complete,
                "incomplete": [asdict(g) for g in p.gaps()],
                **({"exposure": p.exposure} if p.exposure else {}),
            }
        )
    else:
        _text(p, safety, detail)


def resume_command(journal_path: Path, approved: bool) -> str:
    """The command that finishes an interrupted run, as it must be typed (sandbox, config)."""
    return command_line("apply", "--resume", str(journal_path), *(["--auto-approve"] if approved else []))


def _not_restored(incomplete: list[str]) -> None:
    """After an apply: the documents skipped as incomplete are not live (the run exits 4 for them,
    naming each; the plan's warnings listed them already)."""
    if not incomplete:
        return
    names = [line.split(": ", 2)[1] if line.count(": ") >= 2 else line for line in incomplete]
    shown = ", ".join(names[:20]) + (f", ... and {len(names) - 20} more" if len(names) > 20 else "")
    _err(
        f"not restored: {len(names)} incomplete object(s) skipped ({shown}); fill in the fields their "
        "metadata.incomplete lists, delete it and apply again"
    )


def _render_result(result: Any, fmt: str, emit: Callable[[Outcome], None] | None) -> int:
    """The end of a run: the summary in ``fmt``, what was not read, how to finish an interrupted
    run, what was not restored; the exit code."""
    from reconciler.engine.run import failed_reads

    outcomes = result.outcomes
    if fmt == "json":
        click.echo(
            json.dumps(
                {"type": "summary", "counts": result.counts(), "failed_reads": result.failed_reads, "exit_code": result.code}
            )
        )
    elif fmt == "markdown":
        click.echo(render_apply_markdown(outcomes), nl=False)
    else:
        if isinstance(emit, OutcomeStream):
            emit.close()
        render_outcomes(outcomes, sys.stdout, streamed=True)
    for line in failed_reads(Plan(failed=result.failed_reads)):
        _err(f"error: {line}")
    if result.stopped:
        _err(
            f"interrupted: stopped before {sum(o.status == 'interrupted' for o in outcomes)} change(s); "
            + (f"finish with: {resume_command(result.journal, result.approved)}" if result.journal else "apply again to finish")
        )
    if result.abandoned:
        # calls still in flight after the grace period: their threads cannot be waited for
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.code)
    _not_restored(result.not_restored)
    return int(result.exit_code)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@DETAIL_OPTION
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--allow-replace", is_flag=True, help="Allow replacing resources whose immutable fields changed.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (the plan, each outcome as it happens, the summary).",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Record the run as JSON Lines (intent before each write, outcome after).",
)
@click.option(
    "--resume",
    "resume_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Finish the run a journal recorded (interrupted or crashed); appends to that journal.",
)
@APPROVE_EXPOSURE_OPTION
@handle_errors
def apply(
    paths: tuple[Path, ...],
    config_path: Path,
    sandbox: bool,
    sandbox_state: Path | None,
    targets: tuple[str, ...],
    force: bool,
    detail: str,
    auto_approve: bool,
    allow_replace: bool,
    fmt: str,
    journal_path: Path | None,
    resume_path: Path | None,
    approve_exposure: bool = False,
) -> int:
    """Apply the manifests (or exactly a saved plan: `apply plan.json`)."""
    from reconciler.engine.apply import ApplyHooks, ApplyRequest, SavedApplyRequest, apply_manifests, apply_saved, is_saved_plan

    if paths and paths[0] == Path("merge-report"):
        return _apply_merge_report(paths[1:])
    shard = shard_of_run("apply")
    if resume_path and journal_path and resume_path != journal_path:
        raise UsageError("--resume FILE keeps journaling to FILE; do not give another --journal")
    emit = _outcome_printer(fmt, detail)
    if is_saved_plan(paths):
        if targets or allow_replace:
            raise UsageError(
                "--target and --allow-replace are decided when planning; they cannot be "
                "combined with a saved plan (make the plan with them)"
            )
        if resume_path:
            raise UsageError("--resume finishes a run from its manifests: `reconciler apply --resume FILE`")
        result = apply_saved(
            run_settings(),
            SavedApplyRequest(plan=paths[0], force=force, approve_exposure=approve_exposure, journal=journal_path, shard=shard),
            ApplyHooks(on_outcome=emit, on_note=lambda line: _err(f"note: {line}")),
        )
        if result.saved_plan_empty:
            click.echo("The saved plan has no changes." if shard is None else f"Shard {shard} has no changes.")
            _not_restored(result.not_restored)
            return result.exit_code
        return _render_result(result, fmt, emit)
    if shard is not None:
        raise UsageError(
            f"apply --shard {shard} applies a merged planset (`reconciler plan merge ... --out PLANSET`, "
            "then `apply PLANSET --shard K/N`): thresholds are judged once over all shards, never per shard"
        )
    result = apply_manifests(
        run_settings(),
        ApplyRequest(
            paths=paths,
            targets=targets,
            force=force,
            allow_replace=allow_replace,
            approve_exposure=approve_exposure,
            auto_approve=auto_approve,
            journal=journal_path,
            resume=resume_path,
        ),
        ApplyHooks(
            on_note=lambda line: _err(f"note: {line}"),
            on_plan=lambda p, safety: _render_apply_plan(p, fmt, safety, detail),
            confirm=_confirm if sys.stdin.isatty() else None,
            on_outcome=emit,
        ),
    )
    if result.nothing_to_do:
        if result.resumed and fmt != "json":
            click.echo(f"Nothing left to do: the run {resume_path} recorded is complete.")
        _not_restored(result.not_restored)
        return result.exit_code
    return _render_result(result, fmt, emit)


def _apply_merge_report(files: tuple[Path, ...]) -> int:
    """``apply merge-report JOURNAL...``: the shards' applies as one outcome and exit code."""
    from reconciler.engine.planset_apply import merge_reports
    from reconciler.manifest import oneline

    shard_of_run("apply merge-report", takes_shard=False)
    lines, code = merge_reports(list(files))
    for line in lines:
        click.echo(oneline.one_line(line))
    return code
