"""``reconciler plan`` (with ``--out``, ``--drift``) and ``reconciler show PLANFILE``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from reconciler.cli.base import (
    APPROVE_EXPOSURE_OPTION,
    DETAIL_OPTION,
    _err,
    _json_out,
    _session,
    _text,
    _with_globals,
    check_writable,
    cli,
    command_line,
    common,
    handle_errors,
    refuse_targets,
    run_settings,
    shard_of_run,
)
from reconciler.engine import exposure
from reconciler.engine.render import render_markdown
from reconciler.engine.session import Session
from reconciler.engine.targets import check_targets_declared, check_targets_matched
from reconciler.errors import UsageError
from reconciler.model import Change, Plan


def _render(
    plan: Plan, fmt: str, data: dict[str, Any], safety: list[str], detail: str = "normal", keys_only: bool = False
) -> None:
    if fmt == "json":
        _json_out(data, indent=2)
    elif fmt == "markdown":
        click.echo(render_markdown(plan, safety=safety, keys_only=keys_only), nl=False)
    else:
        _text(plan, safety, detail, keys_only=keys_only)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@click.option("--out", "out", type=click.Path(path_type=Path), help="Save the plan (JSON) for `apply PLANFILE`.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@DETAIL_OPTION
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option("--allow-replace", is_flag=True, help="Do not block replaces (recorded in a saved plan).")
@click.option("--drift", is_flag=True, help="Report only out-of-band changes; exit 2 when drift is found.")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --drift: a previously applied saved plan; resources whose manifests changed since are pending, not drift.",
)
@click.option(
    "--last-applied",
    "last_applied",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The last applied saved plan: fields a vendor does not return are compared against it, so a "
    "manifest change to them is planned (recorded in --out; --drift --baseline does the same).",
)
@APPROVE_EXPOSURE_OPTION
@handle_errors
def plan(
    paths: tuple[Path, ...],
    config_path: Path,
    sandbox: bool,
    sandbox_state: Path | None,
    targets: tuple[str, ...],
    force: bool,
    out: Path | None,
    fmt: str,
    detail: str,
    detailed_exitcode: bool,
    allow_replace: bool,
    drift: bool,
    baseline: Path | None,
    last_applied: Path | None = None,
    approve_exposure: bool = False,
) -> int:
    """Read live state and show what apply would change (`plan merge SHARD-PLAN... --out PLANSET`:
    join shard plans; docs/scale-out.md)."""
    from reconciler.engine import run
    from reconciler.engine.planfile import write_plan
    from reconciler.engine.saved import load_baseline, plan_data
    from reconciler.engine.shard import equal_split, scaled_rates

    if paths and paths[0] == Path("merge"):
        if detailed_exitcode or allow_replace or drift or baseline or last_applied or approve_exposure:
            raise UsageError(
                "plan merge takes the shard plans, --out, --format and --force (the rest was decided "
                "when the shard plans were made)"
            )
        return _plan_merge(paths[1:], config_path, sandbox, force, out, fmt, detail)
    shard = shard_of_run("plan")
    if shard is not None and force:
        raise UsageError(
            "--force goes to `plan merge`, where the safety thresholds are judged once over all shards; "
            "a shard plan takes no --force"
        )
    if shard is not None and drift:
        raise UsageError("--drift is not sharded: run it without --shard")
    if baseline and not drift:
        raise UsageError(
            "--baseline goes with --drift (to compare unreturned fields with the last applied plan, use --last-applied)"
        )
    if last_applied and baseline:
        raise UsageError("--baseline already names the last applied plan; drop --last-applied")
    if out and drift:
        raise UsageError("--out saves a plan to apply; a drift report (--drift) is not one")
    if out:
        check_writable(out)
    s = _session(paths, targets, force, allow_replace)
    s.ctx.options.approve_exposure = approve_exposure
    s.ctx.options.shard = shard
    try:
        last = baseline or last_applied
        if last is not None:
            s.ctx.options.baseline = load_baseline(last, s)
        s.load()
        assert s.loaded is not None
        check_targets_declared(s.loaded, targets)
        if s.ctx.options.baseline is not None:
            s.ctx.options.baseline.current = s.resource_digests()
        # a shard plans within 1/N of each rate budget (N shards plan at once)
        with scaled_rates(s.ctx, equal_split(s.ctx, shard) if shard is not None else {}):
            p = run.make_plan(s.loaded, s.ctx)
        if drift and p.failed:
            # "no drift" must never mean "could not look": the report lists what was not read, and
            # the run is an error (exit 1) whatever else it found
            for line in run.failed_reads(p):
                _err(f"error: {line}")
            _drift(s, p, baseline, fmt, detail)  # its one-line summary stays the last line
            return 1
        check_targets_matched(p, s.loaded, targets)
        if drift:
            return _drift(s, p, baseline, fmt, detail)
        safety = run.check_safety(p, s.ctx) if shard is None else []
        if shard is not None:
            _err(f"shard {shard}: safety thresholds are judged once over all shards by `reconciler plan merge`")
        # the saved-plan form (digests of every document, signature) only where it is written out
        data = plan_data(s, p) if out or fmt == "json" else {}
        if p.failed:
            # the rest of the plan is shown; a plan missing a kind is never saved to be applied
            if fmt == "json":
                data["failed_reads"] = p.failed
            _render(p, fmt, data, safety, detail, keys_only=s.config.review)
            for line in run.failed_reads(p):
                _err(f"error: {line}")
            if out:
                _err(f"error: the plan is incomplete; not saved to {out}")
            return 1
        if out:
            write_plan(data, out)
        _render(p, fmt, data, safety, detail, keys_only=s.config.review)
        if out and shard is not None:
            _err(
                f"Saved shard plan {shard} to {out}. Merge all {shard.n} with: "
                f"{command_line('plan', 'merge', f'SHARD-PLAN-1..{shard.n}', '--out', 'planset.json')}"
            )
        elif out:
            _err(f"Saved plan to {out}. Apply it with: {command_line('apply', str(out))}")
        return 2 if detailed_exitcode and (p.has_changes or p.not_restored) else 0
    finally:
        s.close()


def _plan_merge(
    files: tuple[Path, ...], config_path: Path, sandbox: bool, force: bool, out: Path | None, fmt: str, detail: str
) -> int:
    """``plan merge SHARD-PLAN... --out PLANSET``: one signed planset, the thresholds judged once."""
    import os
    from datetime import datetime, timezone

    from reconciler.cli.base import _globals
    from reconciler.engine.planfile import read_plan, write_plan
    from reconciler.engine.planset import ShardPlan, merge_plans, shard_line
    from reconciler.engine.settings import open_run

    shard_of_run("plan merge", takes_shard=False)
    if _globals().targets:
        raise UsageError("plan merge takes no --target (it was decided when the shard plans were made)")
    if out is None:
        raise UsageError("plan merge needs --out PLANSET (the signed file `apply PLANSET --shard K/N` applies)")
    if not files:
        raise UsageError("plan merge needs the shard plans to merge (plan --shard K/N --out FILE)")
    check_writable(out)
    plans = [ShardPlan(f, *read_plan(f)) for f in files]
    first = plans[0].pf
    if first.sandbox != sandbox:
        raise UsageError(f"{files[0]} was planned {'with' if first.sandbox else 'without'} --sandbox; merge it the same way")
    cfg_path = Path(first.config_path) if first.config_path else config_path
    if os.path.abspath(cfg_path) != os.path.abspath(config_path) and _globals().config_given:
        raise UsageError(f"{files[0]} was planned with --config {first.config_path}; merge with the same --config")
    s = open_run(
        run_settings(),
        paths=tuple(Path(p) for p in first.paths),
        config_path=cfg_path,
        targets=tuple(first.targets),
        force=force,
        allow_replace=first.allow_replace,
        recorded=True,
        env=first.environment,
    )
    try:
        loaded = s.load()
        merged = merge_plans(
            plans, loaded=loaded, session=s, force=force, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds")
        )
        write_plan(merged.data, out, changes_read_back=True)  # the shard plans' changes, read and validated above
        if fmt == "json":
            _json_out(merged.data, indent=2)
        elif fmt == "markdown":
            click.echo(merged.markdown, nl=False)
        else:
            click.echo(shard_line(len(plans)).strip("_"))
            _text(merged.plan, merged.safety, detail, keys_only=s.config.review)
        if merged.verdict == "unsafe":
            _err(
                f"error: the merged plan exceeds the safety thresholds (judged over all {len(plans)} shards); "
                f"{out} is saved but no shard applies it; merge again with --force if this is intended"
            )
            return 1
        n = len(plans)
        _err(
            f"Saved planset to {out} ({merged.verdict}). Apply shard K of {n} with: "
            f"{command_line('apply', str(out), '--shard', f'K/{n}')}"
        )
        return 0
    finally:
        s.close()


def _drift(s: Session, p: Plan, baseline: Path | None, fmt: str, detail: str = "normal") -> int:
    from reconciler.engine.planfile import read_plan

    pending: list[str] = []
    if baseline:
        before = read_plan(baseline)[0].resources
        now = s.resource_digests()
        changed = {ref for ref, d in now.items() if before.get(ref) != d}  # edited or added
        removed = {ref for ref in before if ref not in now}
        scopes_moved = any(ref.startswith("PruneScope/") for ref in changed | removed)

        def is_pending(c: Change) -> bool:
            if c.resource:
                return c.resource in changed
            # a prune: pending when a document of its kind was removed or a scope was edited
            return scopes_moved or any(ref.split("/", 1)[0] == c.kind for ref in removed)

        pending = sorted({c.address for c in p.changes if is_pending(c)})
        p.changes = [c for c in p.changes if not is_pending(c)]
    gaps = p.gaps()
    live = _live_exposure(s, p)
    if fmt == "json":
        _json_out(
            {
                "drift": [c.to_dict() for c in p.changes],
                "pending": pending,
                "out_of_band": p.out_of_band,
                "differs": p.differs,
                "complete": not gaps,
                "incomplete": [asdict(g) for g in gaps],
                "summary": p.summary_line(),
                **({"live_exposure": live} if live else {}),
            },
            indent=2,
        )
    elif fmt == "markdown":
        click.echo(render_markdown(p, title="reconciler drift report"), nl=False)
    else:
        _text(p, detail=detail)
    found: list[str] = []
    if p.changes:
        kinds = sorted({c.kind for c in p.changes})
        against = "unchanged manifests" if baseline else "the manifests (no baseline)"
        found.append(f"{len(p.changes)} resource(s) differ from {against} ({', '.join(kinds)})")
    if p.out_of_band:
        found.append(f"{len(p.out_of_band)} resource(s) ended out of band ({_names(p.out_of_band)})")
    if p.differs:
        refs = [d.split(": ", 1)[0] for d in p.differs]
        found.append(f"{len(refs)} resource(s) differ in ways apply cannot change ({_names(refs)})")
    if found:
        line = "Drift: " + "; ".join(found) + "."
    elif p.failed:
        line = f"Drift: not known: {len(p.failed)} kind(s) could not be read."
    elif gaps:
        line = "Drift: none found in what could be read and compared, but the check is incomplete."
    else:
        line = "Drift: none."
    if gaps:
        line += f" {p.incomplete_line()}"
    if pending:
        line += f" {len(pending)} pending change(s) from edited manifests not counted."
    if fmt != "json":
        for text in exposure.live_lines(live)[:50]:
            _err(text)
    _err(line)
    if found:
        return 2
    return EXIT_INCOMPLETE if gaps else 0


EXIT_INCOMPLETE = 5  # plan --drift: no drift found, but something could not be read or compared


def _names(refs: list[str], limit: int = 20) -> str:
    names = sorted(refs)
    return ", ".join(names[:limit]) + (f", ... and {len(names) - limit} more" if len(names) > limit else "")


def _live_exposure(s: Session, p: Plan) -> dict[str, Any]:
    """Drift (issue 27): the live free-spin events' exposure against the trusted budgets."""
    return exposure.live_report(p.live_exposure, s.config.settings) if p.live_exposure else {}


@cli.command()
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@DETAIL_OPTION
@_with_globals
@handle_errors
def show(planfile: Path, fmt: str, detail: str) -> int:
    """Render a saved plan again (no API call, no credential): text, Markdown or its JSON."""
    from reconciler.engine.planfile import read_plan

    refuse_targets("show", "it renders the whole saved plan; --target is decided when planning")
    pf, saved = read_plan(planfile)
    if fmt == "json":
        _json_out(pf.model_dump(mode="json", exclude_unset=True), indent=2)
    elif fmt == "markdown":
        click.echo(render_markdown(saved, title=f"reconciler plan ({pf.created_at})", keys_only=pf.review), nl=False)
    else:
        _text(saved, detail=detail, keys_only=pf.review)
        _err(
            f"Saved plan made {pf.created_at} by reconciler {pf.tool_version} from {', '.join(pf.paths)}"
            + (" (sandbox)" if pf.sandbox else "")
            + f". Apply it with: {command_line('apply', str(planfile), sandbox=pf.sandbox)}"
        )
    return 0
