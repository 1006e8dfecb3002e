"""Run all emulators together, persisted under one state folder, and describe them as config.

Used by ``reconciler sandbox serve`` (foreground servers) and by ``--sandbox`` on any command
(embedded servers on free ports, state under ``.reconciler/sandbox/``, so consecutive commands see
the same live state). Sandbox credentials are random, made once per state folder, kept in files
there, and handed to the reconciler as ``file:`` references like any real secret.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler import safeio

if TYPE_CHECKING:  # the server (aiohttp) is loaded when a sandbox starts, not with the vendor registry
    from reconciler.sandbox.wire import EmulatorServer

DEFAULT_STATE_DIR = Path(".reconciler/sandbox")


def _credential(state_dir: Path, name: str, make: Any) -> Path:
    """The credential file ``name``, made once. Read and written through safeio: a symlink committed
    at its name is never read through, and a new credential replaces it (never written through)."""
    path = state_dir / "credentials" / name
    if _read_credential(path) is None:
        safeio.ensure_dir(path.parent, mode=0o700)
        safeio.write_text(path, make() + "\n", mode=0o600)
    return path


def _read_credential(path: Path) -> str | None:
    data = safeio.read_bytes(path, limit=4096, absent_ok=True)
    return None if data is None else data.decode("utf-8", errors="replace").strip()


def alnum(n: int) -> Callable[[], str]:
    """A maker of random ``n``-character alphanumeric credentials."""
    return lambda: "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def base32() -> str:
    """A random 32-character base32 secret (a TOTP seed)."""
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(32))


class Sandbox:
    """The emulators of every installed vendor (``VendorSpec.sandbox``), sharing one state folder.

    ``options`` are forwarded to the vendors that declare them (``VendorSandbox.options``, e.g. the
    tables a table store serves); one no vendor declares is an error."""

    def __init__(self, state_dir: Path, *, host: str = "127.0.0.1", ports: dict[str, int] | None = None, **options: Any):
        from reconciler.vendor import vendors

        # absolute as written, not resolved: a symlink on the way is refused (safeio), not followed
        self.state_dir = Path(os.path.abspath(state_dir))
        safeio.ensure_dir(self.state_dir)
        self.vendors = {name: spec.sandbox for name, spec in vendors().items() if spec.sandbox is not None}
        known = {o for vs in self.vendors.values() for o in vs.options}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"Sandbox: no installed vendor takes option(s) {', '.join(unknown)}")
        self.options = {name: {o: options[o] for o in vs.options if o in options} for name, vs in self.vendors.items()}
        self.host = host
        self.ports = ports or {}
        sd = self.state_dir
        # "<vendor>_<name>" -> credential file
        self.cred = {
            f"{name}_{cred}": _credential(sd, f"{name}_{cred}", make)
            for name, vs in self.vendors.items()
            for cred, make in vs.credentials.items()
        }
        self.servers: dict[str, EmulatorServer] = {}

    def _read(self, name: str) -> str:
        value = _read_credential(self.cred[name])
        if value is None:  # replaced by a symlink since it was made
            raise safeio.UnsafePathError(str(self.cred[name]), "not a regular file", verb="read")
        return value

    def start(self) -> "Sandbox":
        from reconciler.sandbox.wire import EmulatorServer

        try:
            for name, vs in self.vendors.items():
                creds = {c: self._read(f"{name}_{c}") for c in vs.credentials}
                emu = vs.emulator(self.state_dir, creds, self.options[name])
                self.servers[name] = EmulatorServer(emu, host=self.host, port=self.ports.get(name, 0)).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()
        self.servers.clear()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self.servers.items()}

    def providers(self) -> dict[str, Any]:
        """The ``providers`` section of a config pointing at the running emulators."""
        u = self.urls()

        def refs(name: str) -> Callable[[str], str]:
            return lambda cred: f"file:{self.cred[f'{name}_{cred}']}"

        return {name: vs.connection(u[name], refs(name), self.options[name]) for name, vs in self.vendors.items()}
