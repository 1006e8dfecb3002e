"""Reading a ``.proto`` file with ANTLR and recording where each declaration is.

The parser's AST has no positions: a parse listener records the ``line:col`` of every message,
field, option and enum while the same parse runs. A bracket count refuses files nested deeper than
:data:`MAX_NESTING` before the (recursive) parser sees them. Used by :mod:`._parse`, which builds the
schemas from the tree and these positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from antlr4.error.ErrorListener import ErrorListener
from proto_schema_parser import ast
from proto_schema_parser.antlr.ProtobufParser import ProtobufParser
from proto_schema_parser.antlr.ProtobufParserListener import ProtobufParserListener
from proto_schema_parser.parser import Parser

from reconciler.errors import InputError, Problem
from reconciler.vendors.tcaplus.protoschema._types import Position

MAX_NESTING = 32
"""Brackets (``{`` ``[`` ``(``) open at once in a ``.proto`` file: messages nested in messages,
option values in option values. The parser and the schema builder recurse once (or more) per
level; 3,000 nested messages ended in ``RecursionError``. Tables nest a few levels."""


def too_deep(text: str) -> tuple[int, int] | None:
    """``(line, col)`` of the first bracket nested deeper than :data:`MAX_NESTING`, outside comments
    and string literals; else ``None``. One pass, no recursion."""
    depth = 0
    line, col = 1, 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            col += end - i - 1
            i = end
            continue
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            chunk = text[i:end]
            breaks = chunk.count("\n")
            line, col = (line + breaks, len(chunk) - chunk.rfind("\n") - 1) if breaks else (line, col + len(chunk) - 1)
            i = end
            continue
        elif ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            col += j - i
            i = j + 1 if j < n and text[j] == ch else j  # an unterminated string: the parser reports it
            continue
        elif ch in "{[(":
            depth += 1
            if depth > MAX_NESTING:
                return line, col
        elif ch in "}])":
            depth -= 1
        i += 1
    return None


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
class Positions:
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
            names.append(ctx.messageName().getText())  # type: ignore[no-untyped-call]
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
        ProtobufParser.MessageDeclContext,
        ProtobufParser.EnumDeclContext,
        ProtobufParser.OneofDeclContext,
        ProtobufParser.ServiceDeclContext,
        ProtobufParser.MethodDeclContext,
        ProtobufParser.ExtensionDeclContext,
    )
    parent = ctx.parentCtx
    while parent is not None and not isinstance(parent, owners):
        parent = parent.parentCtx
    return parent is None or isinstance(parent, ProtobufParser.MessageDeclContext)


class _PositionRecorder(ProtobufParserListener):
    """Records positions as the parser leaves each rule (children are complete by then)."""

    def __init__(self) -> None:
        self.positions = Positions()

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


def parse_with_positions(text: str, *, file: str, resource: str) -> tuple[ast.File, Positions]:
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
