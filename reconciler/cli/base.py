"""The command line's shared parts: global options, error mapping, output helpers, the root group.

Exit codes (DESIGN.md): 0 success; 1 error (invalid input, API error, refused); 2 ``plan
--detailed-exitcode`` / ``--drift`` found changes; 3 a saved plan was stale for some resource;
4 partial apply (some changes failed; what succeeded is listed); 5 ``plan --drift`` found no drift
but could not read or compare everything (the report lists what).

Each command group is a module of this package (``validate``, ``plan``, ``apply``, ``export``,
``sandbox``); the commands parse, call the engine, render and map errors to exit codes.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import shlex
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

import click
from click.core import ParameterSource

from reconciler import __version__
from reconciler.cli.progress import progress_for, stop_progress
from reconciler.clients import redact
from reconciler.engine.render import DETAILS, NORMAL_MAX_CHANGES, render_text
from reconciler.engine.session import Session
from reconciler.engine.settings import DEFAULT_PATH, RunSettings, open_run
from reconciler.errors import ReconcilerError, UsageError
from reconciler.manifest import oneline
from reconciler.model import Plan

__all__ = ["DEFAULT_PATH"]

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
    click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        default=None,
        expose_value=False,
        callback=_store_global,
        help="Provider settings file  [default: reconciler.yaml]",
    ),
    click.option(
        "--sandbox",
        is_flag=True,
        expose_value=False,
        callback=_store_global,
        help="Run against the embedded emulators (state in .reconciler/sandbox/).",
    ),
    click.option(
        "--sandbox-state", type=click.Path(path_type=Path), default=None, hidden=True, expose_value=False, callback=_store_global
    ),
    click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="KIND/NAME",
        expose_value=False,
        callback=_store_global,
        help="Limit to this resource (repeatable; matching nothing is an error).",
    ),
    click.option(
        "--force",
        is_flag=True,
        expose_value=False,
        callback=_store_global,
        help="Allow changes beyond the safety thresholds; terminate active events.",
    ),
    click.option("--debug", is_flag=True, expose_value=False, callback=_store_global, help="Show tracebacks and HTTP logs."),
    click.option(
        "--shard",
        "shard",
        metavar="K/N",
        expose_value=False,
        callback=_store_global,
        help="plan, apply PLANSET, export manifests: only shard K of N (1-based; also RECONCILER_SHARD, "
        "JOB_COMPLETION_INDEX + RECONCILER_SHARD_TOTAL, CI_NODE_INDEX/CI_NODE_TOTAL). docs/scale-out.md",
    ),
    click.option(
        "--no-color",
        "no_color",
        is_flag=True,
        expose_value=False,
        callback=_store_global,
        help="No colour (also when the NO_COLOR environment variable is set).",
    ),
    click.option(
        "--env",
        "env",
        metavar="NAME",
        expose_value=False,
        callback=lambda c, p, v: _remember_env(c, p, v),
        help="Environment of the config (its connections and ${var.NAME} values).",
    ),
    click.option(
        "--root",
        type=click.Path(path_type=Path, file_okay=False),
        expose_value=False,
        callback=lambda c, p, v: _remember_root(c, p, v),
        is_eager=True,
        help="Workspace root: files named by manifests and config must stay inside it (default: the config file's folder).",
    ),
    click.option(
        "--allow-endpoint",
        "allow_endpoint",
        multiple=True,
        expose_value=False,
        callback=lambda c, p, v: _remember_endpoints(c, p, v),
        metavar="HOST[:PORT]",
        help="Approve a provider host for credentials (repeatable; also RECONCILER_ALLOWED_ENDPOINTS).",
    ),
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
                stop_progress()  # before any error line, and before the exit
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
        kwargs.update(
            config_path=g.config_path, sandbox=g.sandbox, sandbox_state=g.sandbox_state, targets=g.targets, force=g.force
        )
        return fn(*args, **kwargs)

    inner.__click_params__ = list(getattr(fn, "__click_params__", []))  # type: ignore[attr-defined]
    return _with_globals(inner)


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


def run_settings() -> RunSettings:
    """This command's :class:`~reconciler.engine.settings.RunSettings`, from the global options;
    each session it opens drives a progress display."""
    g = _globals()
    ctx = click.get_current_context(silent=True)
    allowed = ctx.meta.get("reconciler.allowed_endpoints", ()) if ctx is not None else ()
    return RunSettings(
        config_path=g.config_path,
        config_given=g.config_given,
        sandbox=g.sandbox,
        sandbox_state=g.sandbox_state,
        env=_env(),
        root=_root(),
        allowed_endpoints=allowed,
        on_session=lambda s: progress_for(s.ctx, color=use_color(sys.stderr)),
    )


def _session(paths: tuple[Path, ...], targets: tuple[str, ...] = (), force: bool = False, allow_replace: bool = False) -> Session:
    """A run's session (manifests under ``paths``, ``manifests/`` when none)."""
    return open_run(run_settings(), paths=paths, targets=targets, force=force, allow_replace=allow_replace)


def shard_of_run(command: str, *, takes_shard: bool = True) -> Any:
    """The shard of this run (``--shard K/N`` or the engines' variables); a command that is not
    sharded refuses an explicit ``--shard`` and ignores the engines' variables."""
    from reconciler.engine.shard import resolve_shard

    if not takes_shard:
        if _globals().shard:
            raise UsageError(f"--shard {_globals().shard}: {command} takes no --shard")
        return None
    return resolve_shard(_globals().shard)


class ReconcilerGroup(click.Group):
    """A click group whose usage errors exit 1 (2 means "changes present", DESIGN.md). ``{vendors}``
    in its help stands for the installed vendors' titles (alphabetical)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.help and "{vendors}" in self.help:
            from reconciler.vendor import vendors

            titles = sorted((spec.title for spec in vendors().values()), key=str.lower)
            listed = ", ".join(titles[:-1]) + " and " + titles[-1] if len(titles) > 1 else "".join(titles)
            self.help = self.help.replace("{vendors}", listed)
        super().format_help_text(ctx, formatter)

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
    """Declarative desired state for {vendors}: validate, plan, apply."""
    redact.install()  # every log record (ours, stamina's) is redacted when created


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


DETAIL_OPTION = click.option(
    "--detail",
    type=click.Choice(list(DETAILS)),
    default="normal",
    show_default=True,
    help="Text format: summary (counts only), normal (per kind the first "
    f"{NORMAL_MAX_CHANGES} changes and every delete, long diffs cut; apply: every outcome "
    f"but ok, and the first {NORMAL_MAX_CHANGES} ok per kind), full (everything).",
)


APPROVE_EXPOSURE_OPTION = click.option(
    "--approve-exposure",
    "approve_exposure",
    is_flag=True,
    help="Allow free-spin changes over the exposure budgets (settings.exposure_budgets); recorded and signed in a saved plan.",
)


def refuse_targets(command: str, why: str) -> None:
    """``--target`` given to a command it does not limit is an error, never silently ignored."""
    targets = _globals().targets
    if targets:
        raise UsageError(f"--target {', '.join(targets)}: {command} takes no --target ({why})")


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
