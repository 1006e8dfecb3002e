"""TcaplusRecords compare/normalise: a record's leaves, protobuf defaults, float32 and bytes
canonical forms, so a read-back never shows phantom drift; field diffs for display."""

from __future__ import annotations

import base64
import binascii
import copy
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.model import FieldDiff
from reconciler.vendors.tcaplus.protoschema import FLOAT_TYPES, INT_RANGES, Field as ProtoField, MessageType, TableSchema


# -- comparison ---------------------------------------------------------------------------------


def _leaves(message: MessageType, record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{dotted path: value}`` down through singular message fields (unknown fields skipped)."""
    if not prefix and not _has_structs(message):  # most tables: the record's known fields as they are
        fields = message.fields
        return {name: value for name, value in record.items() if name in fields}
    return _walk_leaves(message, record, prefix)


def _walk_leaves(message: MessageType, record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """:func:`_leaves` field by field (any message)."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        f = message.fields.get(name)
        if f is None:
            continue
        if f.message is not None and not f.is_repeated and isinstance(value, Mapping):
            out.update(_walk_leaves(f.message, value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def _leaf_paths(schema: TableSchema, record: Mapping[str, Any]) -> Iterable[str]:
    """The leaf paths of ``record`` but its key fields (a read's ``select``)."""
    key = schema.primary_key
    if _has_structs(schema.message):
        return [p for p in _walk_leaves(schema.message, record) if p not in key]
    fields = schema.message.fields
    return [name for name in record if name in fields and name not in key]


_STRUCTS: dict[int, tuple[MessageType, bool]] = {}


def _has_structs(message: MessageType) -> bool:
    """Whether ``message`` has a singular message field (a leaf path may then have dots)."""
    known = _STRUCTS.get(id(message))
    if known is None or known[0] is not message:
        known = _STRUCTS[id(message)] = (
            message,
            any(f.message is not None and not f.is_repeated for f in message.fields.values()),
        )
    return known[1]


def _default(f: ProtoField) -> Any:
    if f.is_repeated:
        return []
    if f.message is not None:
        return {}
    if f.type in INT_RANGES:
        return 0
    if f.type in FLOAT_TYPES:
        return 0.0
    return False if f.type == "bool" else ""


def _canonical(f: ProtoField, value: Any) -> Any:
    """A comparable form: defaults for absent values, float32 rounding, canonical base64."""
    if value is None:
        return _canonical(f, _default(f))
    if f.is_repeated and isinstance(value, list):
        return [_canonical_single(f, v) for v in value]
    return _canonical_single(f, value)


def _canonical_single(f: ProtoField, value: Any) -> Any:
    if f.message is not None:
        return _strip_defaults(f.message, value) if isinstance(value, Mapping) else value
    if isinstance(value, bool) or f.type in ("bool", "string"):
        return value
    if f.type in INT_RANGES and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)  # 64-bit integers may come back as JSON strings (protobuf JSON mapping)
    if f.type == "float" and isinstance(value, int | float):
        try:
            return struct.unpack("<f", struct.pack("<f", value))[0]
        except (OverflowError, struct.error):
            return value
    if f.type == "double" and isinstance(value, int):
        return float(value)
    if f.type == "bytes" and isinstance(value, str):
        try:
            return base64.b64encode(base64.b64decode(value)).decode()
        except (binascii.Error, ValueError):
            return value
    return value


def _strip_defaults(message: MessageType, record: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in record.items():
        f = message.fields.get(name)
        if f is None:
            continue
        canonical = _canonical(f, value)
        if canonical != _canonical(f, _default(f)):
            out[name] = canonical
    return out


def _equal_as_read(declared: Mapping[str, Any], live: Mapping[str, Any], *, whole: bool) -> bool:
    """Every declared leaf equal to the live one as read (the common case of a plan): no diff, and
    nothing to flatten. ``False`` says nothing: compare leaf by leaf (:func:`_leaf_diffs`)."""
    return declared == live if whole else all(name in live and live[name] == v for name, v in declared.items())


def _diffs(schema: TableSchema, declared: Mapping[str, Any], live: Mapping[str, Any], *, whole: bool) -> list[FieldDiff]:
    """Field-level differences, keys excluded; ``whole`` also compares fields only the live record has."""
    if _equal_as_read(declared, live, whole=whole):
        return []
    return _leaf_diffs(schema, declared, live, whole=whole)


def _leaf_diffs(
    schema: TableSchema, declared: Mapping[str, Any], live: Mapping[str, Any], *, whole: bool, want: dict[str, Any] | None = None
) -> list[FieldDiff]:
    """:func:`_diffs` leaf by leaf."""
    if want is None:
        want = _leaves(schema.message, declared)
    have = _leaves(schema.message, live)
    paths = sorted((set(want) | set(have)) if whole else set(want))
    out = []
    for path in paths:
        if path in schema.primary_key:
            continue
        w, h = want.get(path), have.get(path)
        if w == h and w is not None:  # equal as read: equal in canonical form too (no defaults to fill in)
            continue
        f = schema.field_at(path)
        assert f is not None
        if _canonical(f, w) != _canonical(f, h):
            out.append(FieldDiff(path, have.get(path), want.get(path)))
    return out


def _merge(live: Mapping[str, Any], schema: TableSchema, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The live record with every declared leaf set (declared mode)."""
    merged = copy.deepcopy(dict(live))
    for path, value in _leaves(schema.message, declared).items():
        *parents, leaf = path.split(".")
        node = merged
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = copy.deepcopy(value)
    return merged
