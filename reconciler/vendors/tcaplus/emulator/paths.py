"""Dotted field paths inside a record (``pay.auth.key``): test, take, put, project on the selected
paths, list the leaves; and which record a write answers with (``x-tcaplus-result-flag``). The
emulator's own, independent of any client code.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from reconciler.vendors.tcaplus.protoschema import MessageType


def _written(flag: int, *, request: Any, after: Any, before: Any) -> Any:
    return {0: None, 1: request, 2: after, 3: before}[flag]


def _has(record: Mapping[str, Any], path: str) -> bool:
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _take(record: Mapping[str, Any], path: str) -> Any:
    current: Any = record
    for part in path.split("."):
        current = current[part]
    return current


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    current = record
    for part in parents:
        nested = current.get(part)
        if not isinstance(nested, dict):
            nested = current[part] = {}
        current = nested
    current[leaf] = copy.deepcopy(value)


def _project(record: Mapping[str, Any], paths: list[str], key_fields: tuple[str, ...]) -> dict[str, Any]:
    """The key fields plus the selected paths that have a value."""
    out: dict[str, Any] = {k: record[k] for k in key_fields if k in record}
    for path in paths:
        if _has(record, path):
            _put(out, path, _take(record, path))
    return out


def _leaf_paths(message: MessageType, record: Mapping[str, Any], skip: tuple[str, ...], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, value in record.items():
        if name in skip:
            continue
        f = message.fields[name]
        if f.message is not None and not f.is_repeated and isinstance(value, Mapping):
            paths += _leaf_paths(f.message, value, (), f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths
