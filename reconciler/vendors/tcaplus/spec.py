"""TcaplusDB's entry in the vendor registry (entry point ``reconciler.vendors: tcaplus``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.vendor import VendorSpec
from reconciler.vendors.tcaplus.cli import EXPORT_OPTIONS
from reconciler.vendors.tcaplus.config import TcaplusProvider
from reconciler.vendors.tcaplus.sandbox import TcaplusSandbox


def _kinds() -> tuple[type[Any], ...]:
    from reconciler.vendors.tcaplus.records import TcaplusRecordsKind

    return (TcaplusRecordsKind,)


def _table_schemas(conn: Any, base_dir: Path) -> list[tuple[tuple[str, ...], Path]]:
    """Every table's ``.proto``: confined to the workspace, and a plan depends on its content."""
    out: list[tuple[tuple[str, ...], Path]] = []
    for name, table in conn.tables.items():
        path = Path(table.proto) if Path(table.proto).is_absolute() else base_dir / table.proto
        out.append((("tables", name, "proto"), path))
    return out


VENDOR = VendorSpec(
    name="tcaplus",
    title="TcaplusDB",
    order=20,
    connection=TcaplusProvider,
    kinds=_kinds,
    # the REST endpoint is per cluster: no documented public host (loopback or an approval)
    documented_hosts=frozenset(),
    credential_fields=("password",),
    key_fields=("password",),
    secret_env_patterns=("TCAPLUS_*",),
    refused_codes=frozenset({-1037}),  # "system busy": refused, not executed
    config_files=_table_schemas,
    sandbox=TcaplusSandbox(),
    export_options=EXPORT_OPTIONS,
)
