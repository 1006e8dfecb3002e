"""The command line: parse, call the engine, render, map errors to exit codes.

Exit codes (DESIGN.md): 0 success; 1 error (invalid input, API error, refused); 2 ``plan
--detailed-exitcode`` / ``--drift`` found changes; 3 a saved plan was stale for some resource;
4 partial apply (some changes failed; what succeeded is listed); 5 ``plan --drift`` found no drift
but could not read or compare everything (the report lists what).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import click
from click.core import ParameterSource

from reconciler import __version__
from reconciler.model import Change, Outcome, Plan
from reconciler.engine import exposure
from reconciler.engine.render import (
    DETAILS,
    render_apply_markdown,
    render_markdown,
    render_outcomes,
    OutcomeStream,
    NORMAL_MAX_CHANGES,
    render_text,
)
from reconciler.engine.session import Session, open_session, shown_paths
from reconciler.engine.targets import check_target_syntax, check_targets_declared, check_targets_matched
from reconciler.clients import redact
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.base import Baseline, RunOptions
from reconciler.manifest import oneline

# The run, saved-plan and journal machinery is imported by the commands that use it (plan, apply,
# show, schema): validate, sandbox serve and export never load it.
if TYPE_CHECKING:
    from reconciler.engine.journal import Journal

DEFAULT_PATH = Path("manifests")


MAX_VALIDATE_WARNINGS = 50


def _json_out(data: Any, **kwargs: Any) -> None:
    """JSON on stdout, non-ASCII text as it is but controls, line separators and bidirectional
    overrides as ``\\uXXXX`` escapes (:mod:`reconciler.manifest.oneline`): the same values for a
    JSON reader, and a CI log that shows the document cannot be reordered, split or sent a
    workflow command by a file name or a vendor's value."""
    click.echo(oneline.lines(json.dumps(data, ensure_ascii=False, **kwargs)))


def _err(line: str) -> None:
    """One line on stderr, written by :func:`reconciler.manifest.oneline.one_line`: a problem may
    quote a field name or a file name from the input, and an error a vendor's message; none may
    end the line, start another (``::error::`` for a CI runner) or reorder what the line says."""
    click.echo(oneline.one_line(line), err=True)


def _err_block(text: str) -> None:
    """A ``--debug`` traceback: its own line breaks kept, each line written as :func:`_err` would."""
    click.echo(oneline.lines(text), err=True)


class _OneLineFormatter(logging.Formatter):
    """Log records (``--debug`` HTTP logs, warnings) as one line each: a message may quote a
    vendor's answer."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return oneline.one_line(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return oneline.lines(super().formatException(ei))


def check_writable(path: Path) -> None:
    """Fail before any work when a file the command will write cannot be written (safely: no
    symlink on the way to its folder; one at its name is replaced, never followed)."""
    from reconciler import safeio

    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{path}: is a folder, expected a file to write")
    if not parent.is_dir():
        raise UsageError(f"{path}: cannot write: folder {parent} does not exist")
    safeio.check_target(path)
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{path}: cannot write: folder {parent} is not writable")


def command_line(*args: str, sandbox: bool | None = None) -> str:
    """A command to print as a hint, carrying the global options this run was given so that it
    works as printed (same sandbox, same config)."""
    g = _globals()
    parts = ["reconciler", *args]
    if g.sandbox if sandbox is None else sandbox:
        parts.append("--sandbox")
    if g.sandbox_state is not None:
        parts += ["--sandbox-state", str(g.sandbox_state)]
    if g.config_path != Path("reconciler.yaml"):
        parts += ["--config", str(g.config_path)]
    return shlex.join(parts)


@dataclass
class Globals:
    """Options accepted before or after the subcommand (``reconciler --debug plan`` and
    ``reconciler plan --debug`` mean the same; ``--target`` given in both places adds up)."""

    config_path: Path = Path("reconciler.yaml")
    config_given: bool = False  # --config was given (a missing file is then an error, sandbox or not)
    sandbox: bool = False
    sandbox_state: Path | None = None
    targets: tuple[str, ...] = ()
    force: bool = False
    debug: bool = False
    no_color: bool = False
    shard: str | None = None  # --shard K/N (plan, apply, export manifests; issue 26)


def _globals() -> Globals:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Globals()
    root = ctx.find_root()
    if not isinstance(root.obj, Globals):
        root.obj = Globals()
    return root.obj


def _store_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if param.name is None or ctx.get_parameter_source(param.name) in (None, ParameterSource.DEFAULT):
        return
    g = _globals()
    if param.name == "targets":
        g.targets = g.targets + tuple(value)
    else:
        setattr(g, param.name, value)
    if param.name == "config_path":
        g.config_given = True


GLOBAL_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, expose_value=False,
                 callback=_store_global, help="Provider settings file  [default: reconciler.yaml]"),
    click.option("--sandbox", is_flag=True, expose_value=False, callback=_store_global,
                 help="Run against the embedded emulators (state in .reconciler/sandbox/)."),
    click.option("--sandbox-state", type=click.Path(path_type=Path), default=None, hidden=True, expose_value=False,
                 callback=_store_global),
    click.option("--target", "targets", multiple=True, metavar="KIND/NAME", expose_value=False, callback=_store_global,
                 help="Limit to this resource (repeatable; matching nothing is an error)."),
    click.option("--force", is_flag=True, expose_value=False, callback=_store_global,
                 help="Allow changes beyond the safety thresholds; terminate active events."),
    click.option("--debug", is_flag=True, expose_value=False, callback=_store_global,
                 help="Show tracebacks and HTTP logs."),
    click.option("--shard", "shard", metavar="K/N", expose_value=False, callback=_store_global,
                 help="plan, apply PLANSET, export manifests: only shard K of N (1-based; also RECONCILER_SHARD, "
                      "JOB_COMPLETION_INDEX + RECONCILER_SHARD_TOTAL, CI_NODE_INDEX/CI_NODE_TOTAL). docs/scale-out.md"),
    click.option("--no-color", "no_color", is_flag=True, expose_value=False, callback=_store_global,
                 help="No colour (also when the NO_COLOR environment variable is set)."),
    click.option("--env", "env", metavar="NAME", expose_value=False, callback=lambda c, p, v: _remember_env(c, p, v),
                 help="Environment of the config (its connections and ${var.NAME} values)."),
    click.option("--root", type=click.Path(path_type=Path, file_okay=False), expose_value=False,
                 callback=lambda c, p, v: _remember_root(c, p, v), is_eager=True,
                 help="Workspace root: files named by manifests and config must stay inside it "
                      "(default: the config file's folder)."),
    click.option("--allow-endpoint", "allow_endpoint", multiple=True, expose_value=False,
                 callback=lambda c, p, v: _remember_endpoints(c, p, v), metavar="HOST[:PORT]",
                 help="Approve a provider host for credentials (repeatable; also RECONCILER_ALLOWED_ENDPOINTS)."),
]


def _with_globals(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(GLOBAL_OPTIONS):
        fn = opt(fn)
    return fn


def _setup_logging(debug: bool) -> None:
    redact.install()
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if type(handler.formatter) is logging.Formatter:  # basicConfig's, not a caller's own
            handler.setFormatter(_OneLineFormatter(handler.formatter._fmt))
    if not debug:
        for noisy in ("stamina",):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _quiet_broken_pipe() -> int:
    """The reader went away (``reconciler plan | head -1``): stop quietly, like a process killed by
    SIGPIPE (exit 141), and keep the interpreter from complaining while it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (CliRunner)
        pass
    return 141


def handle_errors(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Catch our error tree: one line per problem, the documented exit code, no traceback
    unless ``--debug``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        debug = _globals().debug
        _setup_logging(debug)
        try:
            try:
                code = fn(*args, **kwargs) or 0
                sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
            finally:
                _stop_progress()  # before any error line, and before the exit
        except ReconcilerError as exc:
            if debug:
                _err_block(redact.redact(traceback.format_exc()).rstrip("\n"))
            for line in exc.lines():
                _err(f"error: {line}")
            code = exc.exit_code
        except BrokenPipeError:
            code = _quiet_broken_pipe()
        except KeyboardInterrupt:
            _err("interrupted")
            code = 130
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except OSError as exc:  # a file we read or write: one clean line (names a path, never a secret)
            if debug:
                _err_block(redact.redact(traceback.format_exc()).rstrip("\n"))
            where = f"{exc.filename}: " if exc.filename else ""
            _err(f"error: {where}{exc.strerror or type(exc).__name__}")
            code = 1
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback by default
            if debug:
                _err_block(redact.redact(traceback.format_exc()).rstrip("\n"))
            _err(f"internal error: {type(exc).__name__} (run with --debug for details)")
            code = 1
        sys.exit(code)

    return wrapper


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The run options of a command (global options, see :class:`Globals`), passed to it as
    keyword arguments."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        g = _globals()
        kwargs.update(config_path=g.config_path, sandbox=g.sandbox, sandbox_state=g.sandbox_state,
                      targets=g.targets, force=g.force)
        return fn(*args, **kwargs)

    inner.__click_params__ = list(getattr(fn, "__click_params__", []))  # type: ignore[attr-defined]
    return _with_globals(inner)


PROGRESS_INTERVAL = 5.0  # seconds between one-line progress reports when stderr is not a terminal


class ProgressDisplay:
    """Progress of long steps, fed by ``RunContext.report`` (from worker threads too).

    On a terminal (stderr): a rich progress display, shown while some step is running and removed
    when none is. Otherwise: one line per step at most every ``PROGRESS_INTERVAL`` seconds (short runs
    print nothing)."""

    def __init__(self, stream: Any, *, color: bool):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", None) and stream.isatty())
        self.color = color
        self.lock = threading.Lock()
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.last_line = time.monotonic()

    def __call__(self, what: str, done: int, total: int | None) -> None:
        what = oneline.one_line(what)  # a label may name a table from the config
        with self.lock:
            if self.tty:
                self._live(what, done, total)
            elif time.monotonic() - self.last_line >= PROGRESS_INTERVAL:
                self.last_line = time.monotonic()
                count = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
                print(f"progress: {what}: {count}", file=self.stream, flush=True)

    def _live(self, what: str, done: int, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        finished = total is not None and done >= total
        if self.progress is None:
            if finished:
                return
            console = Console(file=self.stream, no_color=not self.color, force_terminal=True)
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console, transient=True)
            self.progress.start()
        task = self.tasks.get(what)
        if task is None:
            task = self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(task, completed=done, total=total)
        if finished:
            self.progress.remove_task(task)
            del self.tasks[what]
            if not self.tasks:
                self.close_locked()

    def notice(self, text: str) -> None:
        """One line at once (what a slow run waits for), above a live display on a terminal."""
        with self.lock:
            line = oneline.one_line(text)
            if self.progress is not None:
                self.progress.console.print(line, markup=False, highlight=False)
            else:
                print(line, file=self.stream, flush=True)

    def close_locked(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.tasks.clear()

    def close(self) -> None:
        with self.lock:
            self.close_locked()


def _progress_for(ctx: Any) -> None:
    """Drive a progress display from this run's reports; stopped when the command ends."""
    display = ProgressDisplay(sys.stderr, color=use_color(sys.stderr))
    ctx.on_progress = display
    ctx.on_wait = display.notice
    _displays.append(display)
    click.get_current_context().call_on_close(display.close)


_displays: list[ProgressDisplay] = []


def _stop_progress() -> None:
    while _displays:
        _displays.pop().close()


def _remember_env(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().meta["reconciler.env"] = value


def _env() -> str | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta.get("reconciler.env") if ctx else None


def _remember_endpoints(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> None:
    # given before and after the subcommand: both count (ctx.meta is shared by the context chain)
    ctx.meta["reconciler.allowed_endpoints"] = ctx.meta.get("reconciler.allowed_endpoints", ()) + tuple(value or ())


def _remember_root(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta["reconciler.root"] = value


def _root() -> Path | None:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("reconciler.root") if ctx is not None else None


def check_config_given(config_path: Path, sandbox: bool) -> None:
    """``--sandbox`` runs without a config file only when ``--config`` was not given: a ``--config``
    that names no file is an error, never silently replaced by the sandbox's defaults."""
    g = _globals()
    if sandbox and g.config_given and config_path == g.config_path and not config_path.is_file():
        raise UsageError(f"--config {config_path}: no such file (with --sandbox, leave --config out to run on "
                         "the sandbox's own defaults)")


def _session(paths: tuple[Path, ...], config_path: Path, sandbox: bool, sandbox_state: Path | None,
             targets: tuple[str, ...], force: bool, allow_replace: bool = False, *,
             recorded: bool = False, env: str | None = None) -> Session:
    """A run's session. The environment is ``--env``, unless the run was ``recorded`` (a saved
    plan or a journal): then it is ``env``, the one it was planned for."""
    check_target_syntax(targets)
    check_config_given(config_path, sandbox)
    ctx = click.get_current_context(silent=True)
    allowed = ctx.meta.get("reconciler.allowed_endpoints", ()) if ctx is not None else ()
    opts = RunOptions(force=force, allow_replace=allow_replace, targets=tuple(targets), allowed_endpoints=allowed)
    s = open_session(paths=list(paths) or [DEFAULT_PATH], config_path=config_path, sandbox=sandbox,
                     options=opts, state_dir=sandbox_state, env=env if recorded else _env(),
                     root=_root())
    _progress_for(s.ctx)
    return s


def _shard(command: str, *, takes_shard: bool = True) -> Any:
    """The shard of this run (``--shard K/N`` or the engines' variables); a command that is not
    sharded refuses an explicit ``--shard`` and ignores the engines' variables."""
    from reconciler.engine.shard import resolve_shard

    if not takes_shard:
        if _globals().shard:
            raise UsageError(f"--shard {_globals().shard}: {command} takes no --shard")
        return None
    return resolve_shard(_globals().shard)


class ReconcilerGroup(click.Group):
    """A click group whose usage errors exit 1 (2 means "changes present", DESIGN.md)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]  # click declares it a class variable
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]  # click declares it a class variable
            raise


@click.group(cls=ReconcilerGroup)
@_with_globals
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative desired state for BestProxy, JDB and TcaplusDB: validate, plan, apply."""
    redact.install()  # every log record (ours, stamina's) is redacted when created


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
    check_config_given(config_path, sandbox)
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


def use_color(stream: Any) -> bool:
    """Colour on a terminal, unless ``--no-color`` or the ``NO_COLOR`` environment variable
    (no-color.org: present and not empty) says no."""
    if _globals().no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _text(plan: Plan, safety: list[str] | None = None, detail: str = "normal", keys_only: bool = False) -> None:
    out = sys.stdout
    render_text(plan, out, safety=safety, detail=detail, color=use_color(out), keys_only=keys_only)


DETAIL_OPTION = click.option("--detail", type=click.Choice(list(DETAILS)), default="normal", show_default=True,
                             help="Text format: summary (counts only), normal (per kind the first "
                                  f"{NORMAL_MAX_CHANGES} changes and every delete, long diffs cut; apply: every outcome "
                                  f"but ok, and the first {NORMAL_MAX_CHANGES} ok per kind), full (everything).")


APPROVE_EXPOSURE_OPTION = click.option(
    "--approve-exposure", "approve_exposure", is_flag=True,
    help="Allow free-spin changes over the exposure budgets (settings.exposure_budgets); recorded and signed "
         "in a saved plan.")


def _render(plan: Plan, fmt: str, data: dict[str, Any], safety: list[str], detail: str = "normal",
            keys_only: bool = False) -> None:
    if fmt == "json":
        _json_out(data, indent=2)
    elif fmt == "markdown":
        click.echo(render_markdown(plan, safety=safety, keys_only=keys_only), nl=False)
    else:
        _text(plan, safety, detail, keys_only=keys_only)


def _load_baseline(path: Path, s: Session) -> Baseline:
    """The last applied saved plan as a baseline: document digests, and the desired payloads of the
    resources it changed (fields a vendor does not return are compared against them). It steers the
    plan, so it is checked like a plan to apply: its signature under this run's key, and the
    connections it was made for."""
    from reconciler.engine.planfile import baseline_payloads, read_plan

    pf, saved = read_plan(path)
    _verify_signature(path, pf, saved, s, what="baseline")
    desired = baseline_payloads([c.model_dump(mode="json") for c in pf.changes])  # the signed ones
    return Baseline(resources=dict(pf.resources), desired=desired)


def _plan_data(s: Session, plan: Plan) -> dict[str, Any]:
    from reconciler.engine.planfile import plan_to_dict, sign_plan

    data = plan_to_dict(
        plan,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        paths=shown_paths(s.paths),
        config_path=str(s.config.path) if s.config.path else None,
        sandbox=s.sandbox is not None,
        targets=list(s.ctx.options.targets),
        digest=s.digest(),
        resources=s.resource_digests(),
        config_sections=s.config_digests(),
        force=s.ctx.options.force,
        allow_replace=s.ctx.options.allow_replace,
        approve_exposure=s.ctx.options.approve_exposure,
        baseline=s.ctx.options.baseline.to_dict() if s.ctx.options.baseline else None,
        connections_digest=s.connections_digest(plan.connections),
        review=s.config.review,
    )
    if s.ctx.options.shard is not None:  # a shard plan: what `plan merge` checks (signed)
        from reconciler.engine.shard import shard_record

        assert s.loaded is not None
        data["shard"] = shard_record(s.loaded, s.ctx, s.ctx.options.shard, plan.changes)
    return sign_plan(data, s.ctx.plan_signer(list(data.get("connections") or [])))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@click.option("--out", "out", type=click.Path(path_type=Path), help="Save the plan (JSON) for `apply PLANFILE`.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@DETAIL_OPTION
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option("--allow-replace", is_flag=True, help="Do not block replaces (recorded in a saved plan).")
@click.option("--drift", is_flag=True, help="Report only out-of-band changes; exit 2 when drift is found.")
@click.option("--baseline", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="With --drift: a previously applied saved plan; resources whose manifests changed since are pending, not drift.")
@click.option("--last-applied", "last_applied", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The last applied saved plan: fields a vendor does not return are compared against it, so a "
                   "manifest change to them is planned (recorded in --out; --drift --baseline does the same).")
@APPROVE_EXPOSURE_OPTION
@handle_errors
def plan(paths: tuple[Path, ...], config_path: Path, sandbox: bool, sandbox_state: Path | None,
         targets: tuple[str, ...], force: bool, out: Path | None, fmt: str, detail: str, detailed_exitcode: bool,
         allow_replace: bool, drift: bool, baseline: Path | None, last_applied: Path | None = None,
         approve_exposure: bool = False) -> int:
    """Read live state and show what apply would change (`plan merge SHARD-PLAN... --out PLANSET`:
    join shard plans; docs/scale-out.md)."""
    from reconciler.engine import run
    from reconciler.engine.planfile import write_plan

    if paths and paths[0] == Path("merge"):
        if detailed_exitcode or allow_replace or drift or baseline or last_applied or approve_exposure:
            raise UsageError("plan merge takes the shard plans, --out, --format and --force (the rest was decided "
                             "when the shard plans were made)")
        return _plan_merge(paths[1:], config_path, sandbox, sandbox_state, force, out, fmt, detail)
    shard = _shard("plan")
    if shard is not None and force:
        raise UsageError("--force goes to `plan merge`, where the safety thresholds are judged once over all shards; "
                         "a shard plan takes no --force")
    if shard is not None and drift:
        raise UsageError("--drift is not sharded: run it without --shard")
    if baseline and not drift:
        raise UsageError("--baseline goes with --drift (to compare unreturned fields with the last applied plan, use --last-applied)")
    if last_applied and baseline:
        raise UsageError("--baseline already names the last applied plan; drop --last-applied")
    if out and drift:
        raise UsageError("--out saves a plan to apply; a drift report (--drift) is not one")
    if out:
        check_writable(out)
    s = _session(paths, config_path, sandbox, sandbox_state, targets, force, allow_replace)
    s.ctx.options.approve_exposure = approve_exposure
    s.ctx.options.shard = shard
    try:
        last = baseline or last_applied
        if last is not None:
            s.ctx.options.baseline = _load_baseline(last, s)
        s.load()
        assert s.loaded is not None
        check_targets_declared(s.loaded, targets)
        if s.ctx.options.baseline is not None:
            s.ctx.options.baseline.current = s.resource_digests()
        from reconciler.engine.shard import equal_split, scaled_rates

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
        data = _plan_data(s, p) if out or fmt == "json" else {}
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
            _err(f"Saved shard plan {shard} to {out}. Merge all {shard.n} with: "
                 f"{command_line('plan', 'merge', f'SHARD-PLAN-1..{shard.n}', '--out', 'planset.json')}")
        elif out:
            _err(f"Saved plan to {out}. Apply it with: {command_line('apply', str(out))}")
        return 2 if detailed_exitcode and (p.has_changes or p.not_restored) else 0
    finally:
        s.close()


def _plan_merge(files: tuple[Path, ...], config_path: Path, sandbox: bool, sandbox_state: Path | None, force: bool,
                out: Path | None, fmt: str, detail: str) -> int:
    """``plan merge SHARD-PLAN... --out PLANSET``: one signed planset, the thresholds judged once."""
    from reconciler.engine.planfile import read_plan, write_plan
    from reconciler.engine.planset import ShardPlan, merge_plans, shard_line

    _shard("plan merge", takes_shard=False)
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
    s = _session(tuple(Path(p) for p in first.paths), cfg_path, sandbox, sandbox_state, tuple(first.targets), force,
                 first.allow_replace, recorded=True, env=first.environment)
    try:
        loaded = s.load()
        merged = merge_plans(plans, loaded=loaded, session=s, force=force,
                             created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_plan(merged.data, out)
        if fmt == "json":
            _json_out(merged.data, indent=2)
        elif fmt == "markdown":
            click.echo(merged.markdown, nl=False)
        else:
            click.echo(shard_line(len(plans)).strip("_"))
            _text(merged.plan, merged.safety, detail, keys_only=s.config.review)
        if merged.verdict == "unsafe":
            _err(f"error: the merged plan exceeds the safety thresholds (judged over all {len(plans)} shards); "
                 f"{out} is saved but no shard applies it; merge again with --force if this is intended")
            return 1
        n = len(plans)
        _err(f"Saved planset to {out} ({merged.verdict}). Apply shard K of {n} with: "
             f"{command_line('apply', str(out), '--shard', f'K/{n}')}")
        return 0
    finally:
        s.close()


def _apply_merge_report(files: tuple[Path, ...]) -> int:
    """``apply merge-report JOURNAL...``: the shards' applies as one outcome and exit code."""
    from reconciler.engine.planset import merge_reports

    _shard("apply merge-report", takes_shard=False)
    lines, code = merge_reports(list(files))
    for line in lines:
        click.echo(oneline.one_line(line))
    return code


def _not_restored(incomplete: list[str], code: int) -> int:
    """After an apply: the documents skipped as incomplete are not live; a run that did everything
    else exits 4 (partial) for them, naming each (the plan's warnings listed them already)."""
    if not incomplete:
        return code
    names = [line.split(": ", 2)[1] if line.count(": ") >= 2 else line for line in incomplete]
    shown = ", ".join(names[:20]) + (f", ... and {len(names) - 20} more" if len(names) > 20 else "")
    _err(f"not restored: {len(names)} incomplete object(s) skipped ({shown}); fill in the fields their "
         "metadata.incomplete lists, delete it and apply again")
    return 4 if code in (0, 3) else code  # 4 wins over 3, as for failed changes


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
        _json_out({"drift": [c.to_dict() for c in p.changes], "pending": pending,
                   "out_of_band": p.out_of_band, "differs": p.differs, "complete": not gaps,
                   "incomplete": [asdict(g) for g in gaps], "summary": p.summary_line(),
                   **({"live_exposure": live} if live else {})}, indent=2)
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


def _confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise UsageError("apply needs confirmation: run on a terminal, or pass --auto-approve")
    if not click.confirm("Apply these changes?", default=False):
        raise UsageError("apply cancelled")


class Interrupted(ReconcilerError):
    """SIGINT/SIGTERM before any write started (128 + the signal number)."""

    def __init__(self, signum: int):
        self.exit_code = 128 + signum
        super().__init__(f"interrupted ({signal.Signals(signum).name}); nothing was written")


class _Signals:
    """SIGINT/SIGTERM during an apply: the first stops the run — no new write starts, calls in
    flight finish (bounded), what was done is printed and journaled, exit 130/143; a second
    Ctrl-C exits at once. Before the writes begin, a signal simply ends the command."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.signum: int | None = None
        self.applying = False
        self.journal: Journal | None = None  # fsynced when a signal interrupts the writes
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.signum is not None:
            return  # stopping: a further Ctrl-C during the clean-up still exits at once
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                sys.stdout.flush()
                if self.journal is not None:
                    self.journal.sync_now()
                os.write(2, b"interrupted again: exiting now; writes in flight have an unknown outcome\n")
                os._exit(130)
            return
        self.signum = signum
        self.ctx.stop.set()
        if not self.applying:
            raise Interrupted(signum)
        if self.journal is not None:
            self.journal.sync_now()
        os.write(2, f"{signal.Signals(signum).name}: stopping - no new writes; waiting for the calls in "
                    "flight (Ctrl-C again to exit at once)\n".encode())

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


def _outcome_printer(fmt: str, detail: str) -> Callable[[Outcome], None]:
    from reconciler.engine.journal import outcome_record

    if fmt != "json":
        return OutcomeStream(sys.stdout, detail)

    def emit(o: Outcome) -> None:
        _json_out(outcome_record(o))
        sys.stdout.flush()

    return emit


def _journal_run(s: Session, journal: Journal, changes: list[Change], *, existing: dict[str, int], resumed: bool) -> None:
    """The journal's ``run`` record: the plan this run carries out and how it was started."""
    journal.run(changes=changes, existing_in_scope=existing, resumed=resumed, digest=s.digest(), options={
        "paths": shown_paths(s.paths), "config_path": str(s.config.path) if s.config.path else None,
        "sandbox": s.sandbox is not None, "targets": list(s.ctx.options.targets),
        "force": s.ctx.options.force, "allow_replace": s.ctx.options.allow_replace,
        "environment": s.config.env, **s.extras.get("journal", {}),
    })


def _run_apply(s: Session, changes: list[Change], *, fmt: str, journal: Journal | None, signals: _Signals,
               resumed: bool, existing: dict[str, int], failed: dict[str, str], done: list[Outcome] | None = None,
               detail: str = "normal", approved: bool = False) -> int:
    """Apply ``changes`` streaming each outcome; journal; the exit code. ``approved``: the run
    needed no confirmation (``--auto-approve``, a saved plan), so the resume hint carries
    ``--auto-approve`` and works as printed where no one can confirm (CI)."""
    from reconciler.engine import run

    done = list(done or [])
    if journal is not None:
        _journal_run(s, journal, changes, existing=existing, resumed=resumed)
    # Markdown is one document written at the end (a table of results), not lines as they happen
    emit = _outcome_printer(fmt, detail) if fmt != "markdown" else None
    for o in done:
        if emit is not None:
            emit(o)
        if journal is not None:
            journal.outcome(o)
    signals.journal = journal
    signals.applying = True
    outcomes = done + run.apply_changes(changes, s.ctx, on_outcome=emit, journal=journal)
    code = run.exit_code_for(outcomes)
    if failed:
        code = code or 4
    stopped = signals.exit_code
    if stopped is not None:
        code = stopped
    if fmt == "json":
        counts = dict(Counter(o.status for o in outcomes))
        click.echo(json.dumps({"type": "summary", "counts": counts, "failed_reads": failed, "exit_code": code}))
    elif fmt == "markdown":
        click.echo(render_apply_markdown(outcomes), nl=False)
    else:
        if isinstance(emit, OutcomeStream):
            emit.close()
        render_outcomes(outcomes, sys.stdout, streamed=True)
    for line in run.failed_reads(Plan(failed=failed)):
        _err(f"error: {line}")
    if stopped is not None:
        _err(f"interrupted: stopped before {sum(o.status == 'interrupted' for o in outcomes)} change(s); "
             + (f"finish with: {resume_command(journal.path, approved)}" if journal else "apply again to finish"))
    if journal is not None:
        journal.end(status="interrupted" if stopped is not None else "finished", exit_code=code,
                    counts=dict(Counter(o.status for o in outcomes)))
        journal.close()
    if any(o.status == "unknown" for o in outcomes):
        # calls still in flight after the grace period: their threads cannot be waited for
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def resume_command(journal_path: Path, approved: bool) -> str:
    """The command that finishes an interrupted run, as it must be typed (sandbox, config)."""
    return command_line("apply", "--resume", str(journal_path), *(["--auto-approve"] if approved else []))


def _render_apply_plan(p: Plan, fmt: str, safety: list[str], detail: str = "normal") -> None:
    if fmt == "markdown":
        click.echo(render_markdown(p, safety=safety), nl=False)
    elif fmt == "json":
        _json_out({"type": "plan", "summary": p.summary_line(), "counts": p.counts(),
                   "unsafe": safety, "failed_reads": p.failed, "complete": p.complete,
                   "incomplete": [asdict(g) for g in p.gaps()], **({"exposure": p.exposure} if p.exposure else {})})
    else:
        _text(p, safety, detail)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@DETAIL_OPTION
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--allow-replace", is_flag=True, help="Allow replacing resources whose immutable fields changed.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="json: one JSON object per line (the plan, each outcome as it happens, the summary).")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Record the run as JSON Lines (intent before each write, outcome after).")
@click.option("--resume", "resume_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Finish the run a journal recorded (interrupted or crashed); appends to that journal.")
@APPROVE_EXPOSURE_OPTION
@handle_errors
def apply(paths: tuple[Path, ...], config_path: Path, sandbox: bool, sandbox_state: Path | None,
          targets: tuple[str, ...], force: bool, detail: str, auto_approve: bool, allow_replace: bool, fmt: str,
          journal_path: Path | None, resume_path: Path | None, approve_exposure: bool = False) -> int:
    """Apply the manifests (or exactly a saved plan: `apply plan.json`)."""
    from reconciler.engine import run
    from reconciler.engine.journal import Journal, read_journal

    if paths and paths[0] == Path("merge-report"):
        return _apply_merge_report(paths[1:])
    shard = _shard("apply")
    if resume_path and journal_path and resume_path != journal_path:
        raise UsageError("--resume FILE keeps journaling to FILE; do not give another --journal")
    if len(paths) == 1 and paths[0].suffix == ".json" and paths[0].is_file():
        if targets or allow_replace:
            raise UsageError("--target and --allow-replace are decided when planning; they cannot be "
                             "combined with a saved plan (make the plan with them)")
        if resume_path:
            raise UsageError("--resume finishes a run from its manifests: `reconciler apply --resume FILE`")
        return _apply_saved(paths[0], config_path, sandbox, sandbox_state, force, fmt, journal_path, detail,
                            approve_exposure=approve_exposure, shard=shard)
    if shard is not None:
        raise UsageError(f"apply --shard {shard} applies a merged planset (`reconciler plan merge ... --out PLANSET`, "
                         "then `apply PLANSET --shard K/N`): thresholds are judged once over all shards, never per shard")
    state = read_journal(resume_path) if resume_path else None
    if state is not None:
        for note in state.notes:
            _err(f"note: {note}")
    if state is not None and state.empty:
        # killed before its run record reached the file, so before its first write: nothing of
        # it was applied; this is a new run from the manifests given (journaled to the same file)
        _err(f"note: {resume_path} records no run (empty, or its first line was cut): nothing was applied "
             "by it; planning from the manifests as a new run")
    if state is not None and not state.empty:
        root = state.root
        if not paths:
            paths = tuple(Path(x) for x in root.get("paths", []))
            if root.get("config_path"):
                config_path = Path(root["config_path"])
            targets = targets or tuple(root.get("targets", []))
            allow_replace = allow_replace or bool(root.get("allow_replace"))
        if bool(root.get("sandbox")) != sandbox:
            raise UsageError(f"{resume_path} recorded a run {'with' if root.get('sandbox') else 'without'} "
                             "--sandbox; resume it the same way")
        if _env() is not None and _env() != root.get("environment"):
            raise UsageError(f"{resume_path} recorded a run for "
                             f"{'environment ' + str(root['environment']) if root.get('environment') else 'no environment'}; "
                             "resume it without --env")
    recorded = state is not None and not state.empty
    s = _session(paths, config_path, sandbox, sandbox_state, targets, force, allow_replace,
                 recorded=recorded, env=state.root.get("environment") if state is not None and recorded else None)
    s.ctx.options.approve_exposure = approve_exposure
    try:
        with _Signals(s.ctx) as signals:
            s.load()
            assert s.loaded is not None
            check_targets_declared(s.loaded, targets)
            p = run.make_plan(s.loaded, s.ctx)
            check_targets_matched(p, s.loaded, targets)
            if state is not None and recorded:
                if s.digest() != state.root.get("digest"):
                    raise UsageError(f"{resume_path}: the manifests or config changed since the interrupted run; "
                                     "plan and apply them as a new run")
                safety = run.check_resumed_safety(p, state.approved, s.ctx)
            else:
                safety = run.check_safety(p, s.ctx)
            _render_apply_plan(p, fmt, safety, detail)
            if p.failed and not p.noops:
                # nothing could be read: an API error, nothing applied
                raise ReadFailed(list(dict.fromkeys(p.failed.values())))
            if not p.has_changes and not p.failed:
                if recorded and fmt != "json":
                    click.echo(f"Nothing left to do: the run {resume_path} recorded is complete.")
                return _not_restored(p.not_restored, 0)
            if safety and not force:
                over = [f for f in safety if f.startswith("settings.exposure_budgets")]
                raise UsageError("the plan exceeds the safety thresholds; nothing was applied (use --force)"
                                 + (f"; over exposure budgets (--approve-exposure approves them): {'; '.join(over[:5])}"
                                    if over else ""))
            run.refuse_blocked(p)
            if p.has_changes:
                _confirm(auto_approve)
            journal = None
            if resume_path and not recorded:
                journal = Journal.open_new(resume_path)  # it holds no run: written afresh
            elif resume_path:
                journal = Journal(resume_path, append=True)
            elif journal_path:
                journal = Journal.open_new(journal_path)
            return _not_restored(p.not_restored, _run_apply(
                s, p.changes, fmt=fmt, journal=journal, signals=signals, resumed=recorded,
                existing=p.existing_in_scope, failed=p.failed, detail=detail, approved=auto_approve))
    finally:
        s.close()


class ReadFailed(ReconcilerError):
    """Live state could not be read for any kind: nothing was planned or applied."""

    def __init__(self, lines: list[str]):
        self._lines = lines
        super().__init__("; ".join(lines))

    def lines(self) -> list[str]:
        return self._lines


def _verify_signature(path: Path, pf: Any, saved: Plan, s: Session, *, what: str = "plan") -> None:
    """A saved plan is used (applied, or read as a baseline) only if everything apply builds its
    fresh plan from — paths, config, environment, connections and their settings, targets, --force,
    digests, the safety baseline and the last-applied baseline — is as the trusted side signed it,
    and it was made for the connections this run uses."""
    from reconciler.engine.planfile import signature_matches

    fix = "make a new plan" if what == "plan" else "give the plan file that was applied, or none"
    covered = set(pf.connections)
    outside = sorted({f"{c.vendor}/{c.connection}" for c in saved.changes} - covered)
    if outside:
        raise UsageError(f"{path}: changes on connections the plan does not cover ({', '.join(outside)}); {fix}")
    try:
        signer = s.ctx.plan_signer(sorted(covered))
    except ReconcilerError as exc:
        raise UsageError(f"{path}: cannot check the {what}'s signature: {exc}") from None
    if signer is None and not saved.changes and pf.baseline is None and what == "plan":
        return  # a plan of no connection: nothing to key a signature with, and nothing to write
    if not signature_matches(pf, signer):
        raise UsageError(f"{path}: its signature does not match how it says it was made (paths, config, environment, "
                         "connections, targets, --force, digests, baseline): it was changed after it was made, or "
                         f"made with other credentials or fingerprint key; {fix}")
    now = s.connections_digest(list(pf.connections))
    if pf.connections_digest != now:
        env = f"environment {pf.environment}" if pf.environment else "no environment"
        raise UsageError(f"{path}: made for other connection settings than this run's ({env}: "
                         f"{', '.join(pf.connections) or 'none'}; base URL, ids, credential references or tables "
                         f"differ); {fix}")


def _apply_saved(path: Path, config_path: Path, sandbox: bool, sandbox_state: Path | None, force: bool,
                 fmt: str = "text", journal_path: Path | None = None, detail: str = "normal", *,
                 approve_exposure: bool = False, shard: Any = None) -> int:
    from reconciler.engine import freshness, run
    from reconciler.engine.journal import Journal
    from reconciler.engine.planfile import read_plan
    from reconciler.engine.planset import finish_started, open_shard_journal, planset_digest, planset_part
    from reconciler.engine.shard import scaled_rates

    pf, saved = read_plan(path)
    if pf.planset is not None and force:
        raise UsageError("--force goes to `plan merge` (the planset records it); apply a planset without --force")
    # a planset (issue 26): this shard's part and its share of each rate budget; an unsafe verdict is refused
    saved.changes, shares = planset_part(pf, saved.changes, shard)
    if pf.sandbox != sandbox:
        raise UsageError(f"{path} was planned {'with' if pf.sandbox else 'without'} --sandbox; apply it the same way")
    cfg_path = Path(pf.config_path) if pf.config_path else config_path
    if os.path.abspath(cfg_path) != os.path.abspath(config_path):
        raise UsageError(f"{path} was planned with --config {pf.config_path}; apply it with the same --config")
    force = force or pf.force
    if _env() is not None and _env() != pf.environment:
        raise UsageError(f"{path} was planned for {f'environment {pf.environment}' if pf.environment else 'no environment'}; "
                         "the environment is decided when planning (apply it without --env)")
    s = _session(tuple(Path(p) for p in pf.paths), cfg_path, sandbox, sandbox_state, tuple(pf.targets), force,
                 pf.allow_replace, recorded=True, env=pf.environment)
    if pf.baseline is not None:
        s.ctx.options.baseline = Baseline(**pf.baseline)
    s.ctx.options.approve_exposure = approve_exposure or pf.approve_exposure  # recorded under the signature
    s.ctx.options.shard = shard
    if pf.planset is not None:
        s.extras["journal"] = {"shard": str(shard) if shard else None, "planset": planset_digest(pf)}
    try:
        _verify_signature(path, pf, saved, s)
        with scaled_rates(s.ctx, shares), _Signals(s.ctx) as signals:
            s.load()
            if s.ctx.options.baseline is not None:
                s.ctx.options.baseline.current = s.resource_digests()
            # kinds may track data files while planning: plan first, then compare digests
            kinds_to_replan = {c.kind for c in saved.changes}
            fresh = run.make_plan(s.loaded, s.ctx, kinds=kinds_to_replan)  # type: ignore[arg-type]
            changed = freshness.changed_dependencies(
                saved.changes, planned_docs=pf.resources, docs_now=s.resource_digests(),
                planned_config=pf.config_sections, config_now=s.config_digests())
            if changed:
                raise UsageError(f"{path}: changed since this plan was made: {freshness.describe(changed)}; make a new plan")
            if not saved.changes:
                click.echo("The saved plan has no changes." if shard is None else f"Shard {shard} has no changes.")
                if journal_path and shard is not None:  # its report for `apply merge-report`: done, nothing to do
                    done_journal = open_shard_journal(journal_path, pf, shard)[0]
                    _journal_run(s, done_journal, [], existing=saved.existing_in_scope, resumed=False)
                    done_journal.end(status="finished", exit_code=0, counts={})
                    done_journal.close()
                return _not_restored(fresh.not_restored, 0)
            # a kind that could not be read now is not checked against the plan, so not written
            unread = [Outcome(c, "failed", f"live state could not be read: {fresh.failed[c.scope]}")
                      for c in saved.changes if c.scope in fresh.failed]
            to_apply, stale = run.reconcile_saved([c for c in saved.changes if c.scope not in fresh.failed], fresh)
            journal: Journal | None = None
            if journal_path and pf.planset is not None:
                journal, notes, started = open_shard_journal(journal_path, pf, shard)  # a retried shard continues it
                for note in notes:
                    _err(f"note: {note}")
                finish, stale = finish_started(stale, fresh, started)
                to_apply += finish
            safety = run.check_safety(Plan(changes=to_apply, existing_in_scope=saved.existing_in_scope), s.ctx)
            if safety and not force:
                raise UsageError("; ".join(safety))
            run.refuse_blocked(Plan(changes=to_apply))
            if journal_path and journal is None:
                journal = Journal.open_new(journal_path)
            if fmt == "markdown":
                if journal is not None:
                    _journal_run(s, journal, to_apply, existing=saved.existing_in_scope, resumed=False)
                signals.journal = journal
                signals.applying = True
                outcomes = unread + stale + run.apply_changes(to_apply, s.ctx, journal=journal)
                click.echo(render_apply_markdown(outcomes), nl=False)
                code = signals.exit_code or run.exit_code_for(outcomes)
                if journal is not None:
                    journal.end(status="interrupted" if signals.exit_code else "finished", exit_code=code,
                                counts=dict(Counter(o.status for o in outcomes)))
                    journal.close()
                return _not_restored(fresh.not_restored, code)
            return _not_restored(fresh.not_restored, _run_apply(
                s, to_apply, fmt=fmt, journal=journal, signals=signals, resumed=False,
                existing=saved.existing_in_scope, failed={}, done=unread + stale, detail=detail, approved=True))
    finally:
        s.close()


def _refuse_targets(command: str, why: str) -> None:
    """``--target`` given to a command it does not limit is an error, never silently ignored."""
    targets = _globals().targets
    if targets:
        raise UsageError(f"--target {', '.join(targets)}: {command} takes no --target ({why})")


@cli.command()
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@DETAIL_OPTION
@_with_globals
@handle_errors
def show(planfile: Path, fmt: str, detail: str) -> int:
    """Render a saved plan again (no API call, no credential): text, Markdown or its JSON."""
    from reconciler.engine.planfile import read_plan

    _refuse_targets("show", "it renders the whole saved plan; --target is decided when planning")
    pf, saved = read_plan(planfile)
    if fmt == "json":
        _json_out(pf.model_dump(mode="json", exclude_unset=True), indent=2)
    elif fmt == "markdown":
        click.echo(render_markdown(saved, title=f"reconciler plan ({pf.created_at})", keys_only=pf.review), nl=False)
    else:
        _text(saved, detail=detail, keys_only=pf.review)
        _err(f"Saved plan made {pf.created_at} by reconciler {pf.tool_version} from {', '.join(pf.paths)}"
             + (" (sandbox)" if pf.sandbox else "") + f". Apply it with: {command_line('apply', str(planfile), sandbox=pf.sandbox)}")
    return 0


@cli.command()
@click.argument("what", type=click.Choice(["manifest", "config", "plan"]), default="manifest")
@_with_globals
@handle_errors
def schema(what: str) -> int:
    """Print a JSON Schema (manifests, config or saved plan) generated from the models."""
    _refuse_targets("schema", "a schema covers every kind")
    from reconciler.engine.planfile import plan_schema
    from reconciler.schema import config_schema, manifest_schema

    data = {"manifest": manifest_schema, "config": config_schema, "plan": plan_schema}[what]()
    click.echo(json.dumps(data, indent=2))
    return 0


@cli.group()
@_with_globals
def sandbox() -> None:
    """The embedded emulators of the three vendor APIs."""


@sandbox.command("serve")
@click.option("--port", type=int, default=0, help="First port (the first vendor listed; each next one +1). 0 picks free ports.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=Path(".reconciler/sandbox"), show_default=True)
@click.option("--config-out", type=click.Path(path_type=Path), help="Write a reconciler.yaml pointing at the emulators.")
@_with_globals
@handle_errors
def sandbox_serve(port: int, state: Path, config_out: Path | None) -> int:
    """Run the emulators in the foreground until interrupted (vendor settings such as tables come from --config, if it exists)."""
    _refuse_targets("sandbox serve", "it serves every emulator")
    config_path = _globals().config_path
    if _globals().config_given and not config_path.is_file():  # said, never silent
        _err(f"note: --config {config_path}: no such file; serving without vendor settings (tables) from a config")
    if config_out:
        check_writable(config_out)
    import threading

    import yaml

    from reconciler import safeio
    from reconciler.manifest.config import load_config
    from reconciler.engine.session import check_config_files, enter_workspace, sandbox_options
    from reconciler.sandbox.serve import Sandbox
    from reconciler.vendor import vendors

    enter_workspace(config_path if config_path.exists() else None)  # files it names stay inside the workspace
    user = load_config(config_path if config_path.exists() else None, required=False)
    check_config_files(user)
    served = [v for v, spec in vendors().items() if spec.sandbox is not None]
    ports = {v: port + i for i, v in enumerate(served)} if port else {}
    sbx = Sandbox(state, ports=ports, **sandbox_options(user, None)).start()
    try:
        for name, url in sbx.urls().items():
            click.echo(f"{name:10} {url}")
        if config_out:
            cfg = {"apiVersion": "reconciler/v1", "kind": "Config", "providers": sbx.providers()}
            safeio.write_text(config_out, yaml.safe_dump(cfg, sort_keys=False))
            click.echo(f"wrote {config_out}")
        click.echo("Serving; press Ctrl-C to stop.")
        threading.Event().wait()
    finally:
        sbx.stop()
    return 0


@cli.group()
@_with_globals
def export() -> None:
    """Export live data."""


def _export_progress() -> Any:
    """A rich progress bar on a terminal (stderr), nothing otherwise; yields the callback."""
    import contextlib

    @contextlib.contextmanager
    def bar() -> Any:
        if not sys.stderr.isatty():
            yield None
            return
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("JDB Action 29", total=None)
            yield lambda p: progress.update(task, total=p.windows_total, completed=p.windows_done,
                                            description=f"JDB Action 29: {p.records} record(s)")

    return bar()


@export.command("transactions")
@click.option("--agent", required=True, help="JDB agent ID (the request parent).")
@click.option("--from", "start", required=True, metavar="TIME",
              help="Start, ISO-8601 with offset, whole minute, at most 2 hours back.")
@click.option("--to", "end", metavar="TIME", help="End (exclusive); default: the newest minute JDB serves.")
@click.option("--game-type", "game_types", type=int, multiple=True, help="Only this gType (repeatable).")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="JSON Lines file to write.")
@_with_globals
@handle_errors
def export_transactions(agent: str, start: str, end: str | None, game_types: tuple[int, ...], out: Path) -> int:
    """JDB transaction details (Action 29) of a time range as JSON Lines (see docs/export-transactions.md)."""
    _refuse_targets("export transactions", "it exports an agent's transactions, not resources")
    g = _globals()
    config_path, sandbox, sandbox_state = g.config_path, g.sandbox, g.sandbox_state
    check_writable(out)
    from reconciler.vendors.jdb import transactions as jt
    from reconciler.vendors.jdb.free_spin_event import FreeSpinEventKind

    now = datetime.now(timezone.utc)
    first = jt.parse_bound(start, "--from")
    last = jt.parse_bound(end, "--to") if end else jt.latest_end(now)
    s = _session((), config_path, sandbox, sandbox_state, (), False)
    try:
        client = s.ctx.client(FreeSpinEventKind)
        with _export_progress() as progress:
            result = jt.export_transactions(client, agent=agent, start=first, end=last, out_path=out,
                                            game_types=list(game_types) or None, progress=progress, now=now)
    finally:
        s.close()
    click.echo(f"Exported {result.records} record(s) from {result.windows} window(s) to {out} "
               f"({result.duplicates} duplicate(s) dropped).")
    for warning in result.warnings:
        _err(f"warning: {warning}")
    return 0


def _index_option(values: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for v in values:
        table, sep, rest = v.partition(":")
        index, sep2, keys = rest.partition(":")
        try:
            parsed = json.loads(keys) if sep and sep2 else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not parsed or not table or not index:
            raise UsageError(f'--index {v}: expected TABLE:INDEX:{{"field": value, ...}} (a JSON object)')
        out.append((table, index, parsed))
    return out


@export.command("manifests")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="New folder for the manifests (and data and players files).")
@click.option("--secrets-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write secret values the API returns here (files mode 0600, referenced as file:); "
                   "without it they are env: references.")
@click.option("--unmanaged", is_flag=True, help="Only objects that no manifest under PATH declares (adoption).")
@click.option("--index", "indexes", multiple=True, metavar='TABLE:INDEX:{"k":v}',
              help="Also read TcaplusDB records under this index key (repeatable).")
@click.option("--agent", "agents", multiple=True, help="Also read this JDB agent's events (repeatable).")
@handle_errors
def export_manifests_cmd(paths: tuple[Path, ...], config_path: Path, sandbox: bool, sandbox_state: Path | None,
                         targets: tuple[str, ...], force: bool, out: Path, secrets_dir: Path | None, unmanaged: bool,
                         indexes: tuple[str, ...], agents: tuple[str, ...]) -> int:
    """Write live state as manifests (DR backups, adoption); see docs/disaster-recovery.md."""
    from reconciler.export.manifests import export_manifests

    index_keys = _index_option(indexes)
    shard = _shard("export manifests")
    s = _session(paths, config_path, sandbox, sandbox_state, (), force)
    try:
        loaded = s.load() if any(p.exists() for p in s.paths) or paths else None
        result = export_manifests(
            resources=loaded.resources if loaded else {}, scopes=loaded.scopes if loaded else {}, ctx=s.ctx,
            out_dir=out, secrets_dir=secrets_dir, unmanaged=unmanaged, targets=targets,
            index_keys=index_keys, agents=list(agents), shard=shard,
        )
    finally:
        s.close()
    for note in result.notes:
        _err(f"note: {note}")
    for line in result.incomplete[:MAX_VALIDATE_WARNINGS]:
        _err(f"warning: incomplete, not restorable as written: {line} (fill these in, then delete metadata.incomplete)")
    if len(result.incomplete) > MAX_VALIDATE_WARNINGS:
        _err(f"warning: ... and {len(result.incomplete) - MAX_VALIDATE_WARNINGS} more incomplete object(s) "
             "(each marked metadata.incomplete in its file)")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items())) or "nothing"
    incomplete = f"; {len(result.incomplete)} incomplete, skipped by a restore until filled in" if result.incomplete else ""
    click.echo(f"Exported {counts} to {out} ({len(result.files)} file(s){incomplete}).")
    if result.secret_files:
        click.echo(f"Wrote {len(result.secret_files)} secret file(s) (mode 0600) to {secrets_dir}; keep them out of git.")
    if result.env_names:
        shown = ", ".join(result.env_names[:10]) + (f" and {len(result.env_names) - 10} more" if len(result.env_names) > 10 else "")
        click.echo(f"Set {len(result.env_names)} environment variable(s) before plan or apply: {shown} "
                   f"(all listed in {out / 'SECRETS-TO-SET.txt'}).")
    return 0


def main() -> None:
    from reconciler.engine import heap

    heap.one_run()  # a process that runs one command: what it loads is frozen (gc.freeze)
    try:
        cli(prog_name="reconciler")
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code: object) -> NoReturn:
    """Exit with ``code`` (as ``SystemExit`` would) without tearing the interpreter down.

    Once a command is done, freeing every object one by one (a 1x plan holds ~100 MB of them)
    took 0.15 s of CPU, 5% of a plan, for nothing. The exit handlers still run (logging's flush,
    coverage), the standard streams are flushed, and every worker thread the commands start has
    been joined by then."""
    import atexit

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head) or stream: nothing more to say
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
