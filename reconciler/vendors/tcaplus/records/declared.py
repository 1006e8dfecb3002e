"""TcaplusRecords' declared records: inline or from a data file (JSON Lines or YAML, read once per
content, bounded), each with where it was declared; and the table schemas from the ``.proto`` files."""

from __future__ import annotations

import io
import json
import os
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from reconciler.clients.http import json_value
from reconciler.errors import InputError, Problem, ProblemCounter, UsageError
from reconciler.kinds.base import Resource
from reconciler.kinds.context import RunContext
from reconciler.manifest.yamlload import Document, Path_, dotted, load_file
from reconciler.manifest import confine
from reconciler.vendors.tcaplus.protoschema import TableSchema, load_table

from reconciler.vendors.tcaplus.records.spec import JSON_LINES, TcaplusRecordsSpec, YAML_FILES
from reconciler.vendors.tcaplus.records.compare import _leaf_paths, _leaves


# -- declared records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)  # one per record of a data file: no __dict__ each
class _Where:
    """Where a declared record is written: an inline/YAML node or a line of a JSON Lines file."""

    file: str
    line: int
    doc: Document | None = None
    base: Path_ = ()

    def problem(self, path: Path_, message: str, resource: str, *, key: bool = False) -> Problem:
        if self.doc is not None:
            return self.doc.problem(self.base + tuple(path), message, resource=resource, key=key)
        return Problem(self.file, self.line, 1, resource, dotted(path), message)

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"


T = TypeVar("T")


class _once(Generic[T]):
    """``functools.cached_property`` without the lock Python 3.11 takes on every first access
    (Python 3.12 dropped it): 20,000 records x two properties. The value is stored in the
    instance's ``__dict__``, which then answers every later access directly. Two threads asking
    at once may both compute it; the values are equal."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "_once[T]": ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> "T | _once[T]":
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


@dataclass(frozen=True)
class _Declared:
    """One declared record with its schema, document and position."""

    res: Resource[TcaplusRecordsSpec]
    schema: TableSchema
    record: dict[str, Any]
    where: _Where
    # computed once, when the record is validated (plans ask them often)
    identity: str  # identity(table, key values)
    keys: dict[str, Any]  # the primary-key fields
    mode: str  # its document's spec.mode: "declared" or "whole"

    @_once
    def leaves(self) -> dict[str, Any]:
        """``{dotted path: value}`` of the record (see :func:`_leaves`), computed once."""
        return _leaves(self.schema.message, self.record)

    @_once
    def select(self) -> list[str] | None:
        """The fields a read of this record asks for: its declared ones (None: the whole record)."""
        if self.mode == "whole":
            return None
        return sorted(_leaf_paths(self.schema, self.record)) or None


def identity(table: str, key: Iterable[Any]) -> str:
    """``table|v1|v2``: strings as they are (JSON-quoted when they hold ``|``), others as JSON."""
    # an int's JSON is its str(); asked for every record of every run, json.dumps was the cost
    parts = [
        v if isinstance(v, str) and "|" not in v else str(v) if type(v) is int else json.dumps(v, ensure_ascii=False) for v in key
    ]
    return "|".join([table, *parts])


_DECLARED: "weakref.WeakKeyDictionary[RunContext, dict[int, tuple[Resource[TcaplusRecordsSpec], list[_Declared], list[Problem]]]]" = weakref.WeakKeyDictionary()
"""Per run (its context), per document: the validated records (see ``TcaplusRecordsKind._declared``)."""


def _data_path(res: Resource[TcaplusRecordsSpec]) -> Path:
    return res.doc.base_dir / str(res.spec.file)


def _read_records(res: Resource[TcaplusRecordsSpec]) -> tuple[list[tuple[Any, _Where]], list[Problem]]:
    """The records a document declares, each with its position; or problems with the data file."""
    spec: TcaplusRecordsSpec = res.spec
    if spec.records is not None:
        return [
            (rec, _Where(res.doc.file, res.doc.position(("spec", "records", i))[0], res.doc, ("spec", "records", i)))
            for i, rec in enumerate(spec.records)
        ], []
    path = _data_path(res)
    display = os.path.normpath(Path(res.doc.file).parent / str(spec.file))
    if not path.is_file() and not path.is_symlink():
        return [], [res.problem(("file",), f"data file not found: {display}")]
    try:  # inside the workspace root, a regular file, bounded
        confine.check(path, what="data file")
    except confine.ConfinementError as exc:
        return [], [res.problem(("file",), f"data file {display}: {exc.reason}")]
    stat = path.stat()
    if path.suffix.lower() in JSON_LINES:
        return _json_lines(str(path), stat.st_mtime_ns, stat.st_size, display, res.ref)
    if path.suffix.lower() in YAML_FILES:
        return _yaml_records(str(path), stat.st_mtime_ns, stat.st_size, display, res.ref)
    return [], [res.problem(("file",), "data files are JSON Lines (.jsonl, .ndjson) or YAML (.yaml, .yml)")]


class _Capped(io.RawIOBase):
    """A descriptor read no further than ``cap`` bytes (the file may grow after it was checked)."""

    def __init__(self, fd: int, cap: int):
        self.fd, self.left = fd, cap

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = os.read(self.fd, min(len(buffer), self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise confine.ConfinementError("data file", "", "larger than the size limit for a data file")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def _text_lines(fh: Any, problems: ProblemCounter, display: str, resource: str) -> Any:
    """The lines of a binary stream as editors number them (LF, CR LF or CR: :func:`confine.text_lines`),
    decoded one by one: a line that is not UTF-8 is a problem at its own number and yields ``None``."""
    number = 0
    for raw in fh:
        try:
            text, bad = raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            text, bad = raw.decode("utf-8", "replace"), exc
        pieces: list[str | None] = list(confine.text_lines(text))
        if text.endswith("\n") or text.endswith("\r"):
            pieces.pop()  # the empty piece after the line's own break
        if bad is not None:
            problems.add(Problem(display, number + 1, 1, resource, "", f"not UTF-8 text ({bad.reason})"))
            pieces = [None] * len(pieces)
        number += len(pieces)
        yield from pieces


@lru_cache(maxsize=32)
def _json_lines(
    path: str, mtime_ns: int, size: int, display: str, resource: str
) -> tuple[list[tuple[Any, _Where]], list[Problem]]:
    """Streamed line by line from the confined descriptor (never more than the size limit, never
    the whole text twice); problems capped per file (:class:`ProblemCounter`): once the cap is hit
    the file cannot be planned, so its records are no longer kept, only its problems counted."""
    records: list[tuple[Any, _Where]] = []
    problems = ProblemCounter()
    number = 0
    try:
        fd, cap = confine.open_bytes(path, what="data file")
        with io.BufferedReader(_Capped(fd, cap)) as fh:
            for line in _text_lines(fh, problems, display, resource):
                number += 1
                if line is None or not line.strip():
                    continue
                if "\0" in line:
                    problems.add(Problem(display, number, 1, resource, "", "holds a NUL byte (not a text file)"))
                    continue
                try:
                    record = json_value(line)
                except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep (bounded input)
                    col = getattr(exc, "colno", 1)
                    problems.add(
                        Problem(
                            display, number, col, resource, "", f"invalid JSON: {getattr(exc, 'msg', None) or 'nested too deep'}"
                        )
                    )
                    continue
                # a string parsed from a line holds a refused character only if the line holds it as
                # it is or writes it as an escape (``\u202e``, ``\f``): every escape starts with a
                # backslash; a line with neither is not walked (nearly every line)
                if "\\" in line or confine.bad_character(line) is not None:
                    for where, msg in confine.bad_strings(record):
                        problems.add(Problem(display, number, 1, resource, ".".join(map(str, where)), msg))
                if not isinstance(record, dict) or not record:  # no table has a record without fields
                    problems.add(
                        Problem(display, number, 1, resource, "", "a record is a JSON object holding at least its primary key")
                    )
                    continue
                if not problems.full:  # past the cap the file fails: its records are not needed
                    records.append((record, _Where(display, number)))
    except confine.ConfinementError as exc:
        return [], [Problem(display, 1, 1, resource, "", exc.reason)]
    except OSError as exc:
        return [], [Problem(display, 1, 1, resource, "", f"cannot read ({exc.strerror or type(exc).__name__})")]
    return records, problems.result(display, resource)


@lru_cache(maxsize=32)
def _yaml_records(
    path: str, mtime_ns: int, size: int, display: str, resource: str
) -> tuple[list[tuple[Any, _Where]], list[Problem]]:
    docs, problems = load_file(Path(path), display, what="YAML data file")
    if problems:
        return [], problems
    if len(docs) != 1 or not isinstance(docs[0].data, list):
        return [], [Problem(display, 1, 1, resource, "", "a YAML data file holds one list of records")]
    doc = docs[0]
    return [(rec, _Where(display, doc.position((i,))[0], doc, (i,))) for i, rec in enumerate(doc.data)], []


# -- schemas ------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _cached_table(path: str, mtime_ns: int, table: str, message: str | None, display: str) -> TableSchema:
    # read through the workspace confinement (inside the root, a regular file, size-limited)
    return load_table(path, table, message=message, display=display, read=lambda p: confine.read_text(p, what="proto"))


def table_schema(ctx: RunContext, table: str) -> TableSchema:
    """The schema of a configured table (``InputError`` with the .proto's positions if it is bad)."""
    provider = ctx.config.providers.tcaplus
    if provider is None or table not in provider.tables:
        raise UsageError(f"table {table!r} is not in providers.tcaplus.tables")
    entry = provider.tables[table]
    path = Path(entry.proto) if Path(entry.proto).is_absolute() else ctx.config.base_dir / entry.proto
    if path.exists() or path.is_symlink():
        try:  # before the cache: a schema cached for another root must not bypass the rule
            confine.check(path, what="proto")
        except confine.ConfinementError as exc:
            where = ("providers", "tcaplus", "tables", table, "proto")
            doc = ctx.config.doc
            raise InputError(
                [
                    doc.problem(where, exc.reason, resource="Config")
                    if doc is not None
                    else Problem(str(ctx.config.path), 1, 1, "Config", ".".join(where), exc.reason)
                ]
            ) from None
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    return _cached_table(str(path), mtime, table, entry.message, os.path.relpath(path))
