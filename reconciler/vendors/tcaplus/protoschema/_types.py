"""The shapes a parsed ``.proto`` file becomes (tables, messages, fields) and TcaplusDB's limits.

Shared by the package's loader and record checks (:mod:`reconciler.vendors.tcaplus.protoschema`) and
by its parser (:mod:`._parse`), so that neither imports the other's module for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

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
    "int32": _I32,
    "sint32": _I32,
    "sfixed32": _I32,
    "uint32": _U32,
    "fixed32": _U32,
    "int64": _I64,
    "sint64": _I64,
    "sfixed64": _I64,
    "uint64": _U64,
    "fixed64": _U64,
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
