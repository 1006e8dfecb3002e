"""How a command's run is set up, apart from the command line that asked for it.

:class:`RunSettings` holds what the global options say (config file, sandbox, environment,
workspace root, approved endpoints); :func:`open_run` turns them and a command's own choices
(paths, targets, ``--force``) into a :class:`~reconciler.engine.session.Session`. The CLI builds the
settings from its options; a program or a test builds them directly (no click involved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.engine.session import Session, open_session
from reconciler.engine.targets import check_target_syntax
from reconciler.errors import UsageError
from reconciler.kinds.base import RunOptions

DEFAULT_PATH = Path("manifests")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """What every run of a command shares (the CLI's global options)."""

    config_path: Path = Path("reconciler.yaml")
    config_given: bool = False  # --config was given (a missing file is then an error, sandbox or not)
    sandbox: bool = False
    sandbox_state: Path | None = None
    env: str | None = None  # --env: the environment of the config
    root: Path | None = None  # --root: the workspace root
    allowed_endpoints: tuple[str, ...] = ()
    # called with each session once it is open (the CLI drives its progress display from it)
    on_session: Callable[[Session], None] | None = None


def check_config_given(settings: RunSettings, config_path: Path) -> None:
    """``--sandbox`` runs without a config file only when ``--config`` was not given: a ``--config``
    that names no file is an error, never silently replaced by the sandbox's defaults."""
    if settings.sandbox and settings.config_given and config_path == settings.config_path and not config_path.is_file():
        raise UsageError(
            f"--config {config_path}: no such file (with --sandbox, leave --config out to run on the sandbox's own defaults)"
        )


def open_run(
    settings: RunSettings,
    *,
    paths: tuple[Path, ...] = (),
    config_path: Path | None = None,
    targets: tuple[str, ...] = (),
    force: bool = False,
    allow_replace: bool = False,
    recorded: bool = False,
    env: str | None = None,
) -> Session:
    """A run's session. The environment is ``settings.env``, unless the run was ``recorded`` (a
    saved plan or a journal): then it is ``env``, the one it was planned for. ``config_path``:
    the settings' unless a recorded run names its own."""
    config_path = settings.config_path if config_path is None else config_path
    check_target_syntax(targets)
    check_config_given(settings, config_path)
    opts = RunOptions(
        force=force, allow_replace=allow_replace, targets=tuple(targets), allowed_endpoints=settings.allowed_endpoints
    )
    s = open_session(
        paths=list(paths) or [DEFAULT_PATH],
        config_path=config_path,
        sandbox=settings.sandbox,
        options=opts,
        state_dir=settings.sandbox_state,
        env=env if recorded else settings.env,
        root=settings.root,
    )
    if settings.on_session is not None:
        settings.on_session(s)
    return s
