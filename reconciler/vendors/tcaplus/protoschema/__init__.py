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
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from reconciler.errors import InputError, Problem, ReconcilerError

MAX_KEY_FIELDS = 4  # TcaplusDB "Generic" tables; newer servers (3.37+) allow 8 (reference/tcaplus.md)
MAX_VALUE_FIELDS = 128
MAX_INDEXES = 8
MAX_FIELD_NAME_BYTES = 32
MAX_KEY_VALUE_BYTES = 1024
MAX_VALUE_BYTES = 256 * 1024

OPTIONS_IMPORT = "tcaplusservice.optionv1.proto"
PRIMARY_KEY_OPTION = "(tcaplusservice.tcaplus_primary_key)"
INDEX_OPTION = "(tcaplusservice.tcaplus_index)"
SHARDING_KEY_OPTION = "(tcaplusservice.tcaplus_sharding_key)"
CUSTOMATTR_OPTION = "(tcaplusservice.tcaplus_customattr)"

_I32 = (-(2**31), 2**31 - 1)
_U32 = (0, 2**32 - 1)
_I64 = (-(2**63), 2**63 - 1)
_U64 = (0, 2**64 - 1)
INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": _I32, "sint32": _I32, "sfixed32": _I32,
    "uint32": _U32, "fixed32": _U32,
    "int64": _I64, "sint64": _I64, "sfixed64": _I64,
    "uint64": _U64, "fixed64": _U64,
}
FLOAT_TYPES = frozenset({"float", "double"})
SCALAR_TYPES = frozenset(INT_RANGES) | FLOAT_TYPES | {"bool", "string", "bytes"}
INCREMENTABLE_TYPES = frozenset({"int32", "int64", "uint32", "uint64"})  # FieldIncRecord
_FLOAT_MAX = 3.4028234663852886e38

Position = tuple[int, int]
PathPart = str | int


class Label(str, Enum):
    """Field cardinality; a proto3 field without a label is ``optional`` (singular)."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    REPEATED = "repeated"


@dataclass(frozen=True, eq=False)
class MessageType:
    """A message of the file (a table's own message or a nested struct type).

    ``name`` is the dotted name inside the file without the package (``Outer.Inner``).
    """

    name: str
    fields: dict[str, Field]
    line: int
    col: int


@dataclass(frozen=True)
class Field:
    """One field; ``message`` is the resolved type when ``type`` names a message."""

    name: str
    type: str
    label: Label
    number: int
    message: MessageType | None = field(default=None, repr=False, compare=False)
    line: int = 0
    col: int = 0

    @property
    def is_repeated(self) -> bool:
        return self.label is Label.REPEATED

    @property
    def is_message(self) -> bool:
        return self.message is not None


@dataclass(frozen=True, eq=False)
class TableSchema:
    """A TcaplusDB table: its message, primary key, indexes and every message type of its file."""

    name: str
    file: str
    syntax: str
    message: MessageType
    primary_key: tuple[str, ...]
    indexes: dict[str, tuple[str, ...]]
    sharding_key: tuple[str, ...]
    messages: dict[str, MessageType]

    @property
    def fields(self) -> dict[str, Field]:
        return self.message.fields

    def field_at(self, path: str) -> Field | None:
        """The field a dotted path (``pay.auth.pay_keys``) names, or ``None``.

        Every step but the last must be a singular message field.
        """
        current: MessageType | None = self.message
        found: Field | None = None
        for part in path.split("."):
            if current is None or part not in current.fields:
                return None
            found = current.fields[part]
            current = found.message if not found.is_repeated else None
        return found

    def key_of(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        """The primary-key values of ``record`` in key order (the record must hold them all)."""
        return tuple([record[name] for name in self.primary_key])


@dataclass(frozen=True, eq=False)
class ProtoFile:
    """A parsed, validated ``.proto`` file."""

    file: str
    syntax: str
    package: str
    messages: dict[str, MessageType]
    tables: dict[str, TableSchema]


class RecordIssue(NamedTuple):
    """One problem of a record: where inside the record (keys and list indexes) and what.

    ``on_key``: the problem is the field name itself (an unknown field), not its value.
    """

    path: tuple[PathPart, ...]
    message: str
    on_key: bool = False


# -- loading ------------------------------------------------------------------------------------


def load_proto(path: Path | str, *, display: str | None = None, resource: str = "",
               read: Callable[[Path], str] | None = None) -> ProtoFile:
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
    path: Path | str, table: str, *, message: str | None = None, display: str | None = None, resource: str = "",
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
        proto.file, msg.line, msg.col, resource, wanted,
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
    message: MessageType, value: Mapping[Any, Any], path: tuple[PathPart, ...], issues: list[RecordIssue],
    *, require_required: bool, keys: set[str] | frozenset[str] = frozenset(),
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
