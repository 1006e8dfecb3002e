"""JDB's entry in the vendor registry (entry point ``reconciler.vendors: jdb``)."""

from __future__ import annotations

from typing import Any

from reconciler.vendor import VendorSpec
from reconciler.vendors.jdb.cli import EXPORT_OPTIONS, export_commands
from reconciler.vendors.jdb.config import JdbProvider
from reconciler.vendors.jdb.sandbox import JdbSandbox


def _kinds() -> tuple[type[Any], ...]:
    from reconciler.vendors.jdb.free_spin_event import FreeSpinEventKind

    return (FreeSpinEventKind,)


VENDOR = VendorSpec(
    name="jdb",
    title="JDB",
    order=30,
    connection=JdbProvider,
    kinds=_kinds,
    # JDB gives the host to each operator privately ("JDB API Environment Setting.pdf")
    documented_hosts=frozenset(),
    credential_fields=("key", "iv"),
    key_fields=("key", "iv"),
    secret_env_patterns=("JDB_*", "*_JDB_KEY", "*_JDB_IV"),
    # 9999: JDB's generic failure (the sandbox: HTTP 503 "System busy"); its writes are safe to repeat.
    # 9012/9013/9019/9022: "try again later", maintenance and rate-limit statuses, should they come with
    # a 5xx: refusals. Not 9009/9010 (a time-out on JDB's side: the write may have run) nor 9017 ("work
    # in process": an earlier attempt may still complete): those stay unknown and are read back.
    refused_codes=frozenset({"9999", "9012", "9013", "9019", "9022"}),
    sandbox=JdbSandbox(),
    export_options=EXPORT_OPTIONS,
    export_commands=export_commands,
)
