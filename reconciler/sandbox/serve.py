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
from typing import Any

from reconciler import safeio
from reconciler.sandbox.wire import EmulatorServer

SANDBOX_JDB_DC = "sbx"
SANDBOX_JDB_AGENT = "sandboxag"
SANDBOX_TCAPLUS_APP_ID = 2
SANDBOX_TCAPLUS_ZONE_ID = 3
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


def _alnum(n: int) -> Any:
    return lambda: "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _base32() -> str:
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(32))


def _table_config(table: Path | tuple[Path, str]) -> dict[str, str]:
    if isinstance(table, tuple):
        return {"proto": str(table[0]), "message": table[1]}
    return {"proto": str(table)}


def tables_from_config(tables: dict[str, Any], base_dir: Path) -> dict[str, Path | tuple[Path, str]]:
    """TcaplusDB tables of a config (``{name: {proto, message}}`` models) for the emulator."""
    out: dict[str, Path | tuple[Path, str]] = {}
    for name, t in tables.items():
        path = (base_dir / t.proto).resolve()
        out[name] = (path, t.message) if t.message and t.message != name else path
    return out


class Sandbox:
    """The three emulators, sharing one state folder."""

    def __init__(self, state_dir: Path, *, tcaplus_tables: dict[str, Path | tuple[Path, str]] | None = None,
                 host: str = "127.0.0.1", ports: dict[str, int] | None = None):
        # absolute as written, not resolved: a symlink on the way is refused (safeio), not followed
        self.state_dir = Path(os.path.abspath(state_dir))
        safeio.ensure_dir(self.state_dir)
        # table -> .proto path, or (path, message name) when the message is not named after the table
        self.tcaplus_tables: dict[str, Path | tuple[Path, str]] = {
            k: (Path(v[0]).resolve(), v[1]) if isinstance(v, tuple) else Path(v).resolve()
            for k, v in (tcaplus_tables or {}).items()
        }
        self.host = host
        self.ports = ports or {}
        sd = self.state_dir
        self.cred = {
            "bestproxy_app_key": _credential(sd, "bestproxy_app_key", _alnum(32)),
            "bestproxy_totp_secret": _credential(sd, "bestproxy_totp_secret", _base32),
            "tcaplus_password": _credential(sd, "tcaplus_password", _alnum(24)),
            "jdb_key": _credential(sd, "jdb_key", _alnum(16)),
            "jdb_iv": _credential(sd, "jdb_iv", _alnum(16)),
        }
        self.servers: dict[str, EmulatorServer] = {}

    def _read(self, name: str) -> str:
        value = _read_credential(self.cred[name])
        if value is None:  # replaced by a symlink since it was made
            raise safeio.UnsafePathError(str(self.cred[name]), "not a regular file", verb="read")
        return value

    def start(self) -> "Sandbox":
        from reconciler.sandbox.bestproxy import BestProxyEmulator
        from reconciler.sandbox.jdb import JdbEmulator
        from reconciler.sandbox.tcaplus import TcaplusEmulator

        emulators = {
            "bestproxy": BestProxyEmulator(
                self.state_dir, app_key=self._read("bestproxy_app_key"),
                totp_secret=self._read("bestproxy_totp_secret"),
            ),
            "tcaplus": TcaplusEmulator(
                self.state_dir, app_id=SANDBOX_TCAPLUS_APP_ID, zone_id=SANDBOX_TCAPLUS_ZONE_ID,
                password=self._read("tcaplus_password"), tables=dict(self.tcaplus_tables),
            ),
            "jdb": JdbEmulator(
                self.state_dir, dc=SANDBOX_JDB_DC, key=self._read("jdb_key"), iv=self._read("jdb_iv"),
                agents=[SANDBOX_JDB_AGENT],
            ),
        }
        for name, emu in emulators.items():
            self.servers[name] = EmulatorServer(emu, host=self.host, port=self.ports.get(name, 0)).start()
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
        ref = lambda name: f"file:{self.cred[name]}"  # noqa: E731
        return {
            "bestproxy": {
                "base_url": u["bestproxy"],
                "app_key": ref("bestproxy_app_key"),
                "ip_delete_verification": {"type": "totp", "totp_secret": ref("bestproxy_totp_secret")},
            },
            "tcaplus": {
                "base_url": u["tcaplus"],
                "app_id": SANDBOX_TCAPLUS_APP_ID,
                "zone_id": SANDBOX_TCAPLUS_ZONE_ID,
                "password": ref("tcaplus_password"),
                "tables": {name: _table_config(t) for name, t in self.tcaplus_tables.items()},
            },
            "jdb": {
                "base_url": u["jdb"],
                "dc": SANDBOX_JDB_DC,
                "key": ref("jdb_key"),
                "iv": ref("jdb_iv"),
            },
        }
