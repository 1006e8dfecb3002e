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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from antlr4.error.ErrorListener import ErrorListener
from proto_schema_parser import ast
from proto_schema_parser.antlr.ProtobufParser import ProtobufParser
from proto_schema_parser.antlr.ProtobufParserListener import ProtobufParserListener
from proto_schema_parser.parser import Parser

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
_MAX_FIELD_NUMBER = 2**29 - 1
_RESERVED_NUMBERS = range(19000, 20000)
_INDEX_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)\s*$")

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
        return tuple(record[name] for name in self.primary_key)


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
    tree, positions = _parse(text, file=file, resource=resource)
    return _Builder(tree, positions, file=file, resource=resource).build()


# -- parsing with positions ---------------------------------------------------------------------


class _SyntaxError(Exception):
    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line = line
        self.col = col


class _RaisingErrorListener(ErrorListener):  # type: ignore[misc]
    """ANTLR's default listener prints and recovers; we stop at the first error instead."""

    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any) -> None:  # noqa: N802,N803
        raise _SyntaxError(line, column + 1, msg)


@dataclass
class _Positions:
    """Source positions keyed by scope (tuple of enclosing message names) plus a name."""

    messages: dict[tuple[str, ...], Position] = field(default_factory=dict)
    fields: dict[tuple[str, ...], list[Position]] = field(default_factory=dict)
    field_types: dict[tuple[str, ...], list[Position]] = field(default_factory=dict)
    options: dict[tuple[str, ...], list[Position]] = field(default_factory=dict)  # scope + (option name,)
    others: dict[tuple[str, ...], Position] = field(default_factory=dict)  # enums, oneofs
    syntax: Position = (1, 1)


def _at(token: Any) -> Position:
    return int(token.line), int(token.column) + 1


def _scope(ctx: Any) -> tuple[str, ...]:
    names: list[str] = []
    while ctx is not None:
        if isinstance(ctx, ProtobufParser.MessageDeclContext):
            names.append(ctx.messageName().getText())
        ctx = ctx.parentCtx
    return tuple(reversed(names))


def _inside(ctx: Any, kinds: tuple[type, ...]) -> bool:
    while ctx is not None:
        if isinstance(ctx, kinds):
            return True
        ctx = ctx.parentCtx
    return False


def _option_owner_is_message(ctx: Any) -> bool:
    owners = (
        ProtobufParser.MessageDeclContext, ProtobufParser.EnumDeclContext, ProtobufParser.OneofDeclContext,
        ProtobufParser.ServiceDeclContext, ProtobufParser.MethodDeclContext, ProtobufParser.ExtensionDeclContext,
    )
    parent = ctx.parentCtx
    while parent is not None and not isinstance(parent, owners):
        parent = parent.parentCtx
    return parent is None or isinstance(parent, ProtobufParser.MessageDeclContext)


class _PositionRecorder(ProtobufParserListener):  # type: ignore[misc]
    """Records positions as the parser leaves each rule (children are complete by then)."""

    def __init__(self) -> None:
        self.positions = _Positions()

    def exitSyntaxDecl(self, ctx: Any) -> None:  # noqa: N802
        self.positions.syntax = _at(ctx.start)

    def exitEditionDecl(self, ctx: Any) -> None:  # noqa: N802
        self.positions.syntax = _at(ctx.start)

    def exitMessageName(self, ctx: Any) -> None:  # noqa: N802
        self.positions.messages[_scope(ctx.parentCtx)] = _at(ctx.start)

    def exitFieldName(self, ctx: Any) -> None:  # noqa: N802
        decl = ctx.parentCtx
        if _inside(decl, (ProtobufParser.ExtensionDeclContext,)):
            return
        key = _scope(decl) + (ctx.getText(),)
        self.positions.fields.setdefault(key, []).append(_at(ctx.start))
        self.positions.field_types.setdefault(key, []).append(_at(decl.start))

    def exitOptionDecl(self, ctx: Any) -> None:  # noqa: N802
        if _option_owner_is_message(ctx):
            name = "".join(ctx.optionName().getText().split())
            key = _scope(ctx) + (name,)
            self.positions.options.setdefault(key, []).append(_at(ctx.optionValue().start))

    def exitEnumName(self, ctx: Any) -> None:  # noqa: N802
        self.positions.others[_scope(ctx) + (ctx.getText(),)] = _at(ctx.start)

    def exitOneofName(self, ctx: Any) -> None:  # noqa: N802
        self.positions.others[_scope(ctx) + (ctx.getText(),)] = _at(ctx.start)


def _parse(text: str, *, file: str, resource: str) -> tuple[ast.File, _Positions]:
    recorder = _PositionRecorder()

    def setup_lexer(lexer: Any) -> None:
        lexer.removeErrorListeners()
        lexer.addErrorListener(_RaisingErrorListener())

    def setup_parser(parser: Any) -> None:
        parser.removeErrorListeners()
        parser.addErrorListener(_RaisingErrorListener())
        parser.addParseListener(recorder)

    try:
        tree = Parser(setup_lexer=setup_lexer, setup_parser=setup_parser).parse(text)
    except _SyntaxError as exc:
        raise InputError([Problem(file, exc.line, exc.col, resource, "", f"syntax error: {exc}")]) from None
    except (ValueError, TypeError, AttributeError) as exc:  # malformed input the grammar let through
        raise InputError([Problem(file, 1, 1, resource, "", f"cannot parse .proto file: {exc}")]) from None
    return tree, recorder.positions


# -- building and checking ----------------------------------------------------------------------


@dataclass
class _MessageDecl:
    node: ast.Message
    scope: tuple[str, ...]  # its own path: enclosing names + its name

    @property
    def name(self) -> str:
        return ".".join(self.scope)


class _Builder:
    """Turns the AST into typed schemas, collecting every rule violation as a positioned problem."""

    def __init__(self, tree: ast.File, positions: _Positions, *, file: str, resource: str):
        self.tree = tree
        self.pos = positions
        self.file = file
        self.resource = resource
        self.problems: list[Problem] = []
        self.syntax = tree.syntax or "proto2"
        self.package = next((e.name for e in tree.file_elements if isinstance(e, ast.Package)), "")
        self.imports = {e.name for e in tree.file_elements if isinstance(e, ast.Import)}
        self.decls: dict[str, _MessageDecl] = {}
        self.enums: set[str] = set()
        self.messages: dict[str, MessageType] = {}

    def problem(self, where: Position, field_path: str, message: str) -> None:
        self.problems.append(Problem(self.file, where[0], where[1], self.resource, field_path, message))

    def build(self) -> ProtoFile:
        self._check_syntax()
        self._collect(self.tree.file_elements, ())
        for name, decl in self.decls.items():
            line, col = self.pos.messages.get(decl.scope, (1, 1))
            self.messages[name] = MessageType(name=name, fields={}, line=line, col=col)
        for decl in self.decls.values():
            self._fill_fields(decl)
        tables = self._tables()
        if self.problems:
            raise InputError(self.problems)
        return ProtoFile(self.file, self.syntax, self.package, self.messages, tables)

    def _check_syntax(self) -> None:
        if self.tree.edition is not None:
            self.problem(self.pos.syntax, "", "protobuf editions are not supported by TcaplusDB; use proto2 or proto3")
        elif self.syntax not in ("proto2", "proto3"):
            self.problem(self.pos.syntax, "", f"unknown syntax {self.syntax!r}; use proto2 or proto3")

    def _collect(self, elements: Sequence[Any], scope: tuple[str, ...]) -> None:
        for element in elements:
            if isinstance(element, ast.Message):
                own = scope + (element.name,)
                name = ".".join(own)
                if name in self.decls:
                    self.problem(self.pos.messages.get(own, (1, 1)), name, f"message {name!r} is defined twice")
                    continue
                self.decls[name] = _MessageDecl(element, own)
                self._collect(element.elements, own)
            elif isinstance(element, ast.Enum):
                own = scope + (element.name,)
                self.enums.add(".".join(own))
                self.problem(
                    self.pos.others.get(own, (1, 1)), ".".join(own),
                    "enums are not supported in TcaplusDB tables; use an int32 field",
                )

    # -- fields -------------------------------------------------------------------------------
    def _fill_fields(self, decl: _MessageDecl) -> None:
        message = self.messages[decl.name]
        numbers: dict[int, str] = {}
        seen: dict[str, int] = {}
        for element in decl.node.elements:
            if isinstance(element, ast.Field):
                occurrence = seen.get(element.name, 0)
                seen[element.name] = occurrence + 1
                built = self._field(decl, element, occurrence)
                if built is None:
                    continue
                self._check_unique(decl, built, numbers, message)
            else:
                self._reject_unsupported(decl, element)

    def _check_unique(self, decl: _MessageDecl, built: Field, numbers: dict[int, str], message: MessageType) -> None:
        where = (built.line, built.col)
        path = f"{decl.name}.{built.name}"
        if built.name in message.fields:
            self.problem(where, path, f"field {built.name!r} is defined twice")
        elif built.number in numbers:
            self.problem(where, path, f"field number {built.number} is already used by {numbers[built.number]!r}")
        else:
            numbers[built.number] = built.name
            message.fields[built.name] = built

    def _reject_unsupported(self, decl: _MessageDecl, element: Any) -> None:
        if isinstance(element, ast.MapField):
            where = self._field_pos(decl.scope, element.name, 0)
            self.problem(where, f"{decl.name}.{element.name}", "map fields are not supported by TcaplusDB")
        elif isinstance(element, ast.OneOf):
            where = self.pos.others.get(decl.scope + (element.name,), (1, 1))
            self.problem(where, f"{decl.name}.{element.name}", "oneof is not supported by TcaplusDB")
        elif isinstance(element, ast.Group):
            where = self._field_pos(decl.scope, element.name, 0)
            self.problem(where, f"{decl.name}.{element.name}", "groups are not supported by TcaplusDB")

    def _field_pos(self, scope: tuple[str, ...], name: str, occurrence: int, *, type_: bool = False) -> Position:
        table = self.pos.field_types if type_ else self.pos.fields
        found = table.get(scope + (name,), [])
        return found[occurrence] if occurrence < len(found) else self.pos.messages.get(scope, (1, 1))

    def _field(self, decl: _MessageDecl, node: ast.Field, occurrence: int) -> Field | None:
        where = self._field_pos(decl.scope, node.name, occurrence)
        type_at = self._field_pos(decl.scope, node.name, occurrence, type_=True)
        path = f"{decl.name}.{node.name}"
        ok = self._check_field_basics(node, where, path)
        label = self._label(node, type_at, path)
        message = self._field_type(node.type, decl.scope, type_at, path)
        if not ok or label is None or message is False:
            return None
        nested = message if isinstance(message, MessageType) else None
        type_name = nested.name if nested else node.type
        return Field(node.name, type_name, label, node.number, nested, where[0], where[1])

    def _check_field_basics(self, node: ast.Field, where: Position, path: str) -> bool:
        ok = True
        if len(node.name.encode("utf-8")) > MAX_FIELD_NAME_BYTES:
            self.problem(where, path, f"field names are limited to {MAX_FIELD_NAME_BYTES} bytes")
            ok = False
        if not 1 <= node.number <= _MAX_FIELD_NUMBER or node.number in _RESERVED_NUMBERS:
            self.problem(where, path, f"field number {node.number} is not allowed (1..{_MAX_FIELD_NUMBER}, not 19000-19999)")
            ok = False
        return ok

    def _label(self, node: ast.Field, where: Position, path: str) -> Label | None:
        card = node.cardinality
        if card is None:
            if self.syntax == "proto2":
                self.problem(where, path, "proto2 fields need a label: required, optional or repeated")
                return None
            return Label.OPTIONAL
        if card is ast.FieldCardinality.REQUIRED and self.syntax == "proto3":
            self.problem(where, path, "'required' is not allowed in proto3")
            return None
        return Label(card.value.lower())

    def _field_type(self, type_name: str, scope: tuple[str, ...], where: Position, path: str) -> MessageType | bool:
        """``True`` for a scalar, the message type for a message, ``False`` after a problem."""
        if type_name in SCALAR_TYPES:
            return True
        resolved = self._resolve(type_name, scope)
        if type_name.lstrip(".").startswith("google.protobuf."):
            self.problem(where, path, f"well-known type {type_name!r} is not supported by TcaplusDB")
        elif resolved is None:
            self.problem(where, path, f"unknown type {type_name!r} (types must be scalars or messages of this file)")
        elif resolved in self.enums:
            self.problem(where, path, f"enum type {type_name!r} is not supported by TcaplusDB; use int32")
        else:
            return self.messages[resolved]
        return False

    def _resolve(self, type_name: str, scope: tuple[str, ...]) -> str | None:
        known = set(self.decls) | self.enums
        prefix = f"{self.package}." if self.package else ""
        if type_name.startswith("."):
            name = type_name[1:]
            name = name[len(prefix):] if prefix and name.startswith(prefix) else name
            return name if name in known else None
        candidates = [".".join(scope[:i] + (type_name,)) for i in range(len(scope), -1, -1)]
        if prefix and type_name.startswith(prefix):
            candidates.append(type_name[len(prefix):])
        return next((c for c in candidates if c in known), None)

    # -- tables -------------------------------------------------------------------------------
    def options_of(self, decl: _MessageDecl, name: str) -> list[tuple[Any, Position]]:
        values = [e.value for e in decl.node.elements if isinstance(e, ast.Option) and e.name == name]
        found = self.pos.options.get(decl.scope + (name,), [])
        default = self.pos.messages.get(decl.scope, (1, 1))
        return [(v, found[i] if i < len(found) else default) for i, v in enumerate(values)]

    def _tables(self) -> dict[str, TableSchema]:
        self._check_options_import()
        tables: dict[str, TableSchema] = {}
        for name, decl in self.decls.items():
            pk = self.options_of(decl, PRIMARY_KEY_OPTION)
            if not pk:
                continue
            if len(decl.scope) > 1:
                self.problem(pk[0][1], name, "a table must be a top-level message")
                continue
            table = _TableBuilder(self, decl).build(pk)
            if table is not None:
                tables[name] = table
        return tables

    def _check_options_import(self) -> None:
        for name in sorted(self.imports):  # imports are never read; one that leaves the workspace is refused
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "~")) or ".." in parts or ":" in name:
                self.problem((1, 1), "", f"import {name!r}: imports must be relative paths inside the workspace")
        if OPTIONS_IMPORT in self.imports:
            return
        for name, decl in self.decls.items():
            used = [e.name for e in decl.node.elements if isinstance(e, ast.Option) and e.name.startswith("(tcaplusservice.")]
            if used:
                where = self.options_of(decl, used[0])[0][1]
                self.problem(where, name, f'tcaplusservice options need: import "{OPTIONS_IMPORT}";')
                return


class _TableBuilder:
    """Checks one table message's primary key, indexes, sharding key and custom attributes."""

    def __init__(self, builder: _Builder, decl: _MessageDecl):
        self.b = builder
        self.decl = decl
        self.message = builder.messages[decl.name]
        self.ok = True

    def problem(self, where: Position, field_path: str, message: str) -> None:
        self.ok = False
        self.b.problem(where, field_path, message)

    def build(self, pk_options: list[tuple[Any, Position]]) -> TableSchema | None:
        name = self.decl.name
        if len(pk_options) > 1:
            self.problem(pk_options[1][1], name, f"option {PRIMARY_KEY_OPTION} is given twice")
        value, where = pk_options[0]
        primary_key = self._primary_key(value, where)
        indexes = self._indexes(primary_key)
        sharding = self._sharding_key(primary_key, indexes)
        self._custom_attributes()
        non_key = len(self.message.fields) - len(primary_key)
        if non_key > MAX_VALUE_FIELDS:
            self.problem((self.message.line, self.message.col), name, f"at most {MAX_VALUE_FIELDS} non-key fields (found {non_key})")
        if not self.ok:
            return None
        return TableSchema(
            name=name, file=self.b.file, syntax=self.b.syntax, message=self.message, primary_key=primary_key,
            indexes=indexes, sharding_key=sharding, messages=self.b.messages,
        )

    def _names(self, value: Any, where: Position, what: str) -> list[str] | None:
        if not isinstance(value, str):
            self.problem(where, self.decl.name, f"{what} must be a string of comma-separated field names")
            return None
        names = [n.strip() for n in value.split(",")]
        if any(not n for n in names):
            self.problem(where, self.decl.name, f"{what} has an empty field name")
            return None
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            self.problem(where, self.decl.name, f"{what} names {', '.join(duplicates)} more than once")
            return None
        return names

    def _primary_key(self, value: Any, where: Position) -> tuple[str, ...]:
        names = self._names(value, where, "the primary key")
        if names is None:
            return ()
        if len(names) > MAX_KEY_FIELDS:
            self.problem(where, self.decl.name, f"at most {MAX_KEY_FIELDS} primary-key fields (found {len(names)})")
        for key in names:
            self._check_key_field(key, where)
        return tuple(names)

    def _check_key_field(self, key: str, where: Position) -> None:
        path = f"{self.decl.name}.{key}"
        f = self.message.fields.get(key)
        if f is None:
            if not any(key == e.name for e in self.decl.node.elements if isinstance(e, ast.Field)):
                self.problem(where, path, f"primary-key field {key!r} is not a field of {self.decl.name}")
            else:
                self.ok = False  # the field itself was already reported
            return
        at = (f.line, f.col)
        if f.is_message:
            self.problem(at, path, "a primary-key field must be a scalar, not a message")
        elif f.is_repeated:
            self.problem(at, path, "a primary-key field cannot be repeated")
        elif self.b.syntax == "proto2" and f.label is not Label.REQUIRED:
            self.problem(at, path, "a primary-key field must be 'required' in proto2")

    def _indexes(self, primary_key: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        indexes: dict[str, tuple[str, ...]] = {}
        options = self.b.options_of(self.decl, INDEX_OPTION)
        if len(options) > MAX_INDEXES:
            self.problem(options[MAX_INDEXES][1], self.decl.name, f"at most {MAX_INDEXES} indexes per table")
        for value, where in options:
            parsed = self._index(value, where, primary_key)
            if parsed is None:
                continue
            index_name, fields = parsed
            if index_name in indexes:
                self.problem(where, self.decl.name, f"index {index_name!r} is declared twice")
            indexes[index_name] = fields
        if indexes and not set.intersection(*(set(f) for f in indexes.values())):
            self.problem(options[0][1], self.decl.name, "the indexes must share at least one field")
        return indexes

    def _index(self, value: Any, where: Position, primary_key: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
        match = _INDEX_RE.match(value) if isinstance(value, str) else None
        if match is None:
            self.problem(where, self.decl.name, 'an index is written "name(field1,field2)"')
            return None
        names = self._names(match.group(2), where, f"index {match.group(1)!r}")
        if names is None:
            return None
        outside = [n for n in names if n not in primary_key]
        if outside:
            self.problem(where, self.decl.name, f"index {match.group(1)!r}: {', '.join(outside)} not in the primary key")
            return None
        return match.group(1), tuple(names)

    def _sharding_key(self, primary_key: tuple[str, ...], indexes: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        allowed = set.intersection(*(set(f) for f in indexes.values())) if indexes else set(primary_key)
        options = self.b.options_of(self.decl, SHARDING_KEY_OPTION)
        if not options:
            return tuple(n for n in primary_key if n in allowed)
        value, where = options[0]
        names = self._names(value, where, "the sharding key")
        if names is None:
            return ()
        outside = [n for n in names if n not in allowed]
        if outside:
            what = "in every index" if indexes else "in the primary key"
            self.problem(where, self.decl.name, f"sharding key fields must be {what}: {', '.join(outside)}")
        return tuple(names)

    def _custom_attributes(self) -> None:
        for value, where in self.b.options_of(self.decl, CUSTOMATTR_OPTION):
            if not isinstance(value, str):
                self.problem(where, self.decl.name, f"{CUSTOMATTR_OPTION} must be a string")
                continue
            attrs = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
            table_type = attrs.get("TableType", "GENERIC").strip().upper()
            if table_type != "GENERIC":
                self.problem(where, self.decl.name, f"{table_type} tables are not supported by the RESTful API v1.0")


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
