"""``reconciler sandbox serve``: the embedded emulators as real servers, until interrupted."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.base import _err, _globals, _with_globals, check_writable, cli, handle_errors, refuse_targets


@cli.group()
@_with_globals
def sandbox() -> None:
    """The embedded emulators of the installed vendors' APIs."""


@sandbox.command("serve")
@click.option("--port", type=int, default=0, help="First port (the first vendor listed; each next one +1). 0 picks free ports.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=Path(".reconciler/sandbox"), show_default=True)
@click.option("--config-out", type=click.Path(path_type=Path), help="Write a reconciler.yaml pointing at the emulators.")
@_with_globals
@handle_errors
def sandbox_serve(port: int, state: Path, config_out: Path | None) -> int:
    """Run the emulators in the foreground until interrupted (vendor settings such as tables come from --config, if it exists)."""
    refuse_targets("sandbox serve", "it serves every emulator")
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
