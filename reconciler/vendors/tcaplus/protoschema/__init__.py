"""TcaplusDB table schemas read from ``.proto`` files, and records checked against them.

A bottom layer (standard library, ``proto_schema_parser`` and :mod:`reconciler.errors` only): the
TcaplusDB emulator and the ``TcaplusRecords`` kind both use it.

A *table* is a top-level message carrying ``option(tcaplusservice.tcaplus_primary_key) = "a,b"``
(reference/tcaplus.md §1.1). The rules enforced here are the ones TcaplusDB documents: at most
:data:`MAX_KEY_FIELDS` primary-key fields, each an existing, singular scalar (``required`` in
proto2); ``tcaplus_index`` fields are primary-key fields and all indexes share at least one field;
no ``enum``, ``map``, ``oneof``, group or well-known type anywhere in the file.

Every problem is an :class:`~reconciler.errors.InputError` whose problems carry the ``.proto``
file's ``line:col``. The parser's AST has no positions, so a parse listener records the position of
every message, field, option and enum while the same parse runs.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from reconciler.errors import InputError, Problem, ReconcilerError
from reconciler.vendors.tcaplus.protoschema._types import (
    CUSTOMATTR_OPTION,
    FLOAT_TYPES,
    Field,
    INCREMENTABLE_TYPES,
    INDEX_OPTION,
    INT_RANGES,
    Label,
    MAX_FIELD_NAME_BYTES,
    MAX_INDEXES,
    MAX_KEY_FIELDS,
    MAX_KEY_VALUE_BYTES,
    MAX_VALUE_BYTES,
    MAX_VALUE_FIELDS,
    MessageType,
    OPTIONS_IMPORT,
    PRIMARY_KEY_OPTION,
    PathPart,
    Position,
    ProtoFile,
    RecordIssue,
    SCALAR_TYPES,
    SHARDING_KEY_OPTION,
    TableSchema,
    _FLOAT_MAX,
)

# the types and limits live in ._types (the parser imports them from there); they are this package's names
__all__ = [
    "CUSTOMATTR_OPTION",
    "FLOAT_TYPES",
    "INCREMENTABLE_TYPES",
    "INDEX_OPTION",
    "INT_RANGES",
    "MAX_FIELD_NAME_BYTES",
    "MAX_INDEXES",
    "MAX_KEY_FIELDS",
    "MAX_KEY_VALUE_BYTES",
    "MAX_VALUE_BYTES",
    "MAX_VALUE_FIELDS",
    "OPTIONS_IMPORT",
    "PRIMARY_KEY_OPTION",
    "SCALAR_TYPES",
    "SHARDING_KEY_OPTION",
    "Field",
    "Label",
    "MessageType",
    "PathPart",
    "Position",
    "ProtoFile",
    "RecordIssue",
    "TableSchema",
    "load_proto",
    "load_table",
    "parse_proto",
    "scalar_problem",
    "validate_keys",
    "validate_record",
]


# -- loading ------------------------------------------------------------------------------------


def load_proto(
    path: Path | str, *, display: str | None = None, resource: str = "", read: Callable[[Path], str] | None = None
) -> ProtoFile:
    """Read and validate a ``.proto`` file; problems name ``display`` (default: the path).

    ``read`` reads the file: the product passes the workspace-confined reader
    (:func:`reconciler.manifest.confine.read_text`); its errors never quote the content."""
    name = display or str(path)
    try:
        text = read(Path(path)) if read is not None else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(name, 1, 1, resource, "", f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise InputError([Problem(name, 1, 1, resource, "", f"cannot read .proto file: {exc.strerror}")]) from None
    except ReconcilerError as exc:
        raise InputError([Problem(name, 1, 1, resource, "", f"cannot read .proto file: {getattr(exc, 'reason', exc)}")]) from None
    return parse_proto(text, file=name, resource=resource)


def load_table(
    path: Path | str,
    table: str,
    *,
    message: str | None = None,
    display: str | None = None,
    resource: str = "",
    read: Callable[[Path], str] | None = None,
) -> TableSchema:
    """The table ``table`` of a ``.proto`` file (its message is ``message``, default the table name)."""
    proto = load_proto(path, display=display, resource=resource, read=read)
    wanted = message or table
    schema = proto.tables.get(wanted)
    if schema is None:
        raise InputError([_missing_table_problem(proto, wanted, resource)])
    return schema if schema.name == table else replace(schema, name=table)


def _missing_table_problem(proto: ProtoFile, wanted: str, resource: str) -> Problem:
    msg = proto.messages.get(wanted)
    if msg is None:
        tables = ", ".join(sorted(proto.tables)) or "none"
        return Problem(proto.file, 1, 1, resource, "", f"no message {wanted!r} in this file (tables: {tables})")
    return Problem(
        proto.file,
        msg.line,
        msg.col,
        resource,
        wanted,
        f"message {wanted!r} has no option {PRIMARY_KEY_OPTION}: it is not a table",
    )


def parse_proto(text: str, *, file: str, resource: str = "") -> ProtoFile:
    """Parse ``.proto`` source text and enforce TcaplusDB's rules; all problems at once."""
    from reconciler.vendors.tcaplus.protoschema._parse import build_proto  # the ANTLR parser: loaded by the first .proto read

    return build_proto(text, file=file, resource=resource)


# -- records ------------------------------------------------------------------------------------


def validate_record(
    table: TableSchema, record: Any, *, require_key: bool = True, require_required: bool = False
) -> list[RecordIssue]:
    """Check a JSON-like record against ``table``; an empty list means it is valid.

    ``require_key``: every primary-key field must be present. ``require_required``: every proto2
    ``required`` field must be present too (a whole record written with Add/SetRecord).
    Values follow protobuf's JSON mapping: integers in range for their type, numbers for
    float/double, ``true``/``false``, strings, base64 strings for ``bytes``, lists for repeated
    fields, mappings for messages. ``null`` is rejected.
    """
    if not isinstance(record, Mapping):
        return [RecordIssue((), "a record must be a mapping of field names to values")]
    issues: list[RecordIssue] = []
    if require_key:
        issues += [RecordIssue((), f"primary-key field {k!r} is missing") for k in table.primary_key if k not in record]
    _check_message(table.message, record, (), issues, require_required=require_required, keys=frozenset(table.primary_key))
    return issues


def validate_keys(table: TableSchema, keys: Any, *, fields: Sequence[str] | None = None) -> list[RecordIssue]:
    """Check a key object: exactly ``fields`` (default: the primary key), each a valid value."""
    wanted = tuple(fields) if fields is not None else table.primary_key
    if not isinstance(keys, Mapping):
        return [RecordIssue((), "keys must be a mapping of field names to values")]
    issues = [RecordIssue((), f"key field {k!r} is missing") for k in wanted if k not in keys]
    for name, value in keys.items():
        if name not in wanted:
            issues.append(RecordIssue((name,), f"{name!r} is not one of the key fields ({', '.join(wanted)})", True))
            continue
        _check_single(table.fields[name], value, (name,), issues, key=True, require_required=False)
    return issues


def _quick_int(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and low <= v <= high


def _quick_float(limit: float) -> Callable[[Any], bool]:
    return lambda v: (type(v) is int or (type(v) is float and math.isfinite(v))) and abs(v) <= limit


def _quick_list(single: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: type(v) is list and all(map(single, v))


# Per scalar type, a test that a value is valid for a field of that type, key or not: true only of
# values scalar_problem accepts under the smaller (key) size limit. The common valid values of a
# record pass it without the full check; anything else takes the full check and its message.
_QUICK: dict[str, Callable[[Any], bool]] = {
    **{t: _quick_int(low, high) for t, (low, high) in INT_RANGES.items()},
    "float": _quick_float(_FLOAT_MAX),
    "double": _quick_float(math.inf),
    "bool": lambda v: type(v) is bool,
    "string": lambda v: type(v) is str and v.isascii() and len(v) <= MAX_KEY_VALUE_BYTES,  # ASCII: UTF-8 size = len
}


@lru_cache(maxsize=256)  # a MessageType hashes by identity
def _quick_checks(message: MessageType) -> tuple[dict[str, Callable[[Any], bool]], tuple[str, ...]]:
    """The quick tests of ``message``'s scalar fields by name, and its ``required`` fields."""
    quick = {}
    for f in message.fields.values():
        single = _QUICK.get(f.type) if f.message is None else None
        if single is not None:
            quick[f.name] = _quick_list(single) if f.is_repeated else single
    return quick, tuple(f.name for f in message.fields.values() if f.label is Label.REQUIRED)


def _check_message(
    message: MessageType,
    value: Mapping[Any, Any],
    path: tuple[PathPart, ...],
    issues: list[RecordIssue],
    *,
    require_required: bool,
    keys: set[str] | frozenset[str] = frozenset(),
) -> None:
    quick, required = _quick_checks(message)
    fields = message.fields
    for name, item in value.items():
        q = quick.get(name)
        if q is not None and q(item):
            continue
        f = fields.get(name) if isinstance(name, str) else None
        if f is None:
            issues.append(RecordIssue(path + (name,), f"unknown field: {message.name} has no field {name!r}", True))
            continue
        _check_value(f, item, path + (name,), issues, key=name in keys, require_required=require_required)
    if require_required:
        for name in required:
            if name not in value and name not in keys:
                issues.append(RecordIssue(path, f"required field {name!r} is missing"))


def _check_value(
    f: Field, value: Any, path: tuple[PathPart, ...], issues: list[RecordIssue], *, key: bool, require_required: bool
) -> None:
    if not f.is_repeated:
        _check_single(f, value, path, issues, key=key, require_required=require_required)
    elif not isinstance(value, list):
        issues.append(RecordIssue(path, f"expected a list ({f.label.value} {f.type})"))
    else:
        for i, item in enumerate(value):
            _check_single(f, item, path + (i,), issues, key=key, require_required=require_required)


def _check_single(
    f: Field, value: Any, path: tuple[PathPart, ...], issues: list[RecordIssue], *, key: bool, require_required: bool
) -> None:
    if f.message is not None:
        if isinstance(value, Mapping):
            _check_message(f.message, value, path, issues, require_required=require_required)
        else:
            issues.append(RecordIssue(path, f"expected a mapping (message {f.message.name})"))
        return
    problem = scalar_problem(f.type, value, max_bytes=MAX_KEY_VALUE_BYTES if key else MAX_VALUE_BYTES)
    if problem:
        issues.append(RecordIssue(path, problem))


def scalar_problem(type_: str, value: Any, *, max_bytes: int = MAX_VALUE_BYTES) -> str | None:
    """Why ``value`` is not a valid JSON value of the protobuf scalar ``type_`` (``None`` if it is)."""
    if value is None:
        return f"null is not a {type_} value"
    if type_ in INT_RANGES:
        return _int_problem(type_, value)
    if type_ in FLOAT_TYPES:
        return _float_problem(type_, value)
    if type_ == "bool":
        return None if isinstance(value, bool) else "expected true or false (bool)"
    if type_ == "string":
        return _string_problem(value, max_bytes)
    return _bytes_problem(value, max_bytes)


def _int_problem(type_: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an integer ({type_})"
    low, high = INT_RANGES[type_]
    if not low <= value <= high:
        return f"{value} is out of range for {type_} ({low}..{high})"
    return None


def _float_problem(type_: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number ({type_})"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and infinity cannot be sent as JSON"
    if type_ == "float" and abs(value) > _FLOAT_MAX:
        return "out of range for float"
    return None


def _string_problem(value: Any, max_bytes: int) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8 text"
    return f"longer than {max_bytes} bytes ({size})" if size > max_bytes else None


def _bytes_problem(value: Any, max_bytes: int) -> str | None:
    if not isinstance(value, str):
        return "expected a base64 string (bytes)"
    try:
        size = len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return "expected a base64 string (bytes)"
    return f"longer than {max_bytes} bytes ({size})" if size > max_bytes else None
