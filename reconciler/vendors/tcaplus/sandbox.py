"""TcaplusDB in the embedded sandbox: its emulator, serving the tables of the user's config, and the
connection that points at it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.sandbox.serve import alnum
from reconciler.vendor import VendorSandbox

SANDBOX_TCAPLUS_APP_ID = 2
SANDBOX_TCAPLUS_ZONE_ID = 3
Tables = dict[str, Path | tuple[Path, str]]  # table -> .proto, or (.proto, message) when not named after the table


def tables_from_config(tables: Mapping[str, Any], base_dir: Path) -> Tables:
    """TcaplusDB tables of a config (``{name: {proto, message}}`` models) for the emulator."""
    out: Tables = {}
    for name, t in tables.items():
        path = (base_dir / t.proto).resolve()
        out[name] = (path, t.message) if t.message and t.message != name else path
    return out


def _tables(options: Mapping[str, Any]) -> Tables:
    return {
        k: (Path(v[0]).resolve(), v[1]) if isinstance(v, tuple) else Path(v).resolve()
        for k, v in (options.get("tcaplus_tables") or {}).items()
    }


def _table_config(table: Path | tuple[Path, str]) -> dict[str, str]:
    if isinstance(table, tuple):
        return {"proto": str(table[0]), "message": table[1]}
    return {"proto": str(table)}


class TcaplusSandbox(VendorSandbox):
    credentials = {"password": alnum(24)}
    options = ("tcaplus_tables",)

    def emulator(self, state_dir: Path, creds: Mapping[str, str], options: Mapping[str, Any]) -> Any:
        from reconciler.vendors.tcaplus.emulator import TcaplusEmulator

        return TcaplusEmulator(
            state_dir,
            app_id=SANDBOX_TCAPLUS_APP_ID,
            zone_id=SANDBOX_TCAPLUS_ZONE_ID,
            password=creds["password"],
            tables=_tables(options),
        )

    def connection(self, url: str, ref: Callable[[str], str], options: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "base_url": url,
            "app_id": SANDBOX_TCAPLUS_APP_ID,
            "zone_id": SANDBOX_TCAPLUS_ZONE_ID,
            "password": ref("password"),
            "tables": {name: _table_config(t) for name, t in _tables(options).items()},
        }

    def options_from_config(self, section: Any, base_dir: Path) -> dict[str, Any]:
        return {"tcaplus_tables": tables_from_config(section.tables, base_dir)} if section is not None else {}

    def placeholder(self, url: str, ref: str, section: Any) -> dict[str, Any]:
        tables = section.model_dump(exclude_none=True)["tables"] if section is not None else {}
        return {"base_url": url, "app_id": 1, "zone_id": 1, "password": ref, "tables": tables}
