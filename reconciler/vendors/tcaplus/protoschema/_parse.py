"""Building a ``.proto`` file's schemas from its parse and checking TcaplusDB's rules (see the package docstring).

Imported by :func:`reconciler.vendors.tcaplus.protoschema.parse_proto` on first use: the ANTLR parser and its
runtime are loaded only by a run that reads a ``.proto`` file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proto_schema_parser import ast

from reconciler.errors import InputError, Problem
from reconciler.vendors.tcaplus.protoschema._positions import MAX_NESTING, Positions, parse_with_positions, too_deep
from reconciler.vendors.tcaplus.protoschema._types import (
    CUSTOMATTR_OPTION,
    INDEX_OPTION,
    MAX_FIELD_NAME_BYTES,
    MAX_INDEXES,
    MAX_KEY_FIELDS,
    MAX_VALUE_FIELDS,
    OPTIONS_IMPORT,
    PRIMARY_KEY_OPTION,
    SCALAR_TYPES,
    SHARDING_KEY_OPTION,
    Field,
    Label,
    MessageType,
    Position,
    ProtoFile,
    TableSchema,
)

_MAX_FIELD_NUMBER = 2**29 - 1
_RESERVED_NUMBERS = range(19000, 20000)
_INDEX_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)\s*$")


def build_proto(text: str, *, file: str, resource: str = "") -> ProtoFile:
    """:func:`reconciler.vendors.tcaplus.protoschema.parse_proto`: the file parsed, its schemas built and checked."""
    deep = too_deep(text)
    if deep is not None:
        line, col = deep
        raise InputError(
            [Problem(file, line, col, resource, "", f"nested deeper than {MAX_NESTING} levels (messages, options or brackets)")]
        )
    try:
        tree, positions = parse_with_positions(text, file=file, resource=resource)
        return _Builder(tree, positions, file=file, resource=resource).build()
    except RecursionError:  # a shape the bracket count does not see: still one line, never a traceback
        raise InputError([Problem(file, 1, 1, resource, "", "too deeply nested to read")]) from None


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

    def __init__(self, tree: ast.File, positions: Positions, *, file: str, resource: str):
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
                    self.pos.others.get(own, (1, 1)),
                    ".".join(own),
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
            name = name[len(prefix) :] if prefix and name.startswith(prefix) else name
            return name if name in known else None
        candidates = [".".join(scope[:i] + (type_name,)) for i in range(len(scope), -1, -1)]
        if prefix and type_name.startswith(prefix):
            candidates.append(type_name[len(prefix) :])
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
            self.problem(
                (self.message.line, self.message.col), name, f"at most {MAX_VALUE_FIELDS} non-key fields (found {non_key})"
            )
        if not self.ok:
            return None
        return TableSchema(
            name=name,
            file=self.b.file,
            syntax=self.b.syntax,
            message=self.message,
            primary_key=primary_key,
            indexes=indexes,
            sharding_key=sharding,
            messages=self.b.messages,
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
