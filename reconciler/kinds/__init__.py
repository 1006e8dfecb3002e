"""Registered kinds. Adding a kind: its module, one line here, its tests and its docs."""

from __future__ import annotations

from reconciler.kinds.base import Kind

KINDS: dict[str, type[Kind]] = {}


def register(cls: type[Kind]) -> type[Kind]:
    KINDS[cls.kind] = cls
    return cls


def _load() -> None:
    # explicit list, no discovery magic
    import importlib

    for module in (
        "reconciler.kinds.proxy_account",
        "reconciler.kinds.ip_allowlist",
        "reconciler.kinds.tcaplus_records",
        "reconciler.kinds.free_spin_event",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


_load()
