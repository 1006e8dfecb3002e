"""Kind ``TcaplusRecords``: seed records of one TcaplusDB table (identity = table + primary key).

A document declares records of ``table`` (a table of ``providers.tcaplus.tables``, whose ``.proto``
gives the schema) inline (``records:``) or in a data file (``file:``, JSON Lines or YAML, relative
to the manifest). Every record is checked against the table's schema before any call.

``mode``:

- ``declared`` (default): only the fields a record declares are managed (leaf by leaf, nested
  messages included; a repeated field is one value). Other fields of the live record are kept.
- ``whole``: the record is the whole record; live fields it does not declare are cleared.

Reads: GetRecord per record (``select`` = the declared fields in declared mode), with bounded
concurrency; records under an optional ``prune`` scope (an index and its key values) are read
with paged PartkeyGetRecord calls instead. Fields absent from a live record compare equal to
their protobuf defaults, ``float`` values are compared at float32 precision and ``bytes`` by
content, so a read-back never shows phantom drift. ``RecordVersion`` is the change's precondition
and never a diff.

Writes (every one checked against the version seen when planning, DESIGN.md principle 3):

- create: AddRecord. If the key exists by then (-1293), or the reply was lost, the record is read
  back: with the declared values it is done, otherwise it is reported stale and left alone.
- update: the record is read; a different version (or a deleted record) is stale. Otherwise the
  new record — the declared record (whole), or the live record with the declared fields set
  (declared) — is written with SetRecord under version check 1 (``x-tcaplus-data-version-check:
  1``, the planned version): a concurrent writer makes it fail with -7949, reported stale. The
  manual gives FieldSetRecord no version check (only Add and Set), so declared mode does not use it.
- delete: only records inside a declared ``prune`` scope that no document declares. The record is
  read first and deleted only if its version is still the planned one (DeleteRecord has no
  version check of its own).
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
import os
import struct
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from reconciler.clients.http import json_value
from reconciler.vendors.tcaplus.client import (
    DEFAULT_PAGE_SIZE,
    TcaplusClient,
    TcaplusRecordExistsError,
    TcaplusRecordNotFoundError,
    TcaplusVersionMismatchError,
    VersionCheck,
    VersionedRecord,
)
from reconciler.model import Action, Change, FieldDiff, KindPlan, Outcome, Unmanaged
from reconciler.errors import MAX_PROBLEMS_PER_FILE, InputError, Problem, ProblemCounter, more_problems, ReconcilerError, SecretError, UsageError
from reconciler.kinds.base import ExportDoc, ExportFile, ExportGroup, ExportRequest, Kind, KindExport, Resource, RunContext, ScopeDecl, aoutcome_of
from reconciler.kinds.writes import ATTEMPTS, unknown_outcome
from reconciler.manifest.yamlload import Document, Path_, dotted, load_file
from reconciler.manifest import confine
from reconciler.vendors.tcaplus.protoschema import (
    FLOAT_TYPES,
    INT_RANGES,
    Field as ProtoField,
    MessageType,
    TableSchema,
    load_table,
    validate_keys,
    validate_record,
)

TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
JSON_LINES = (".jsonl", ".ndjson")
YAML_FILES = (".yaml", ".yml")


class PruneSpec(BaseModel):
    """Ownership scope: live records whose ``index`` fields equal ``keys`` and that no document
    declares are deleted."""

    model_config = ConfigDict(extra="forbid")
    index: StrictStr = Field(min_length=1, description="a tcaplus_index of the table")
    keys: dict[StrictStr, Any] = Field(min_length=1, description="a value for every field of the index")


class TcaplusRecordsSpec(BaseModel):
    """Records of one table, inline (``records``) or from a data file (``file``)."""

    model_config = ConfigDict(extra="forbid")
    table: StrictStr = Field(pattern=TABLE_NAME, description="a table of providers.tcaplus.tables")
    mode: Literal["declared", "whole"] = Field(
        default="declared", description="declared: manage only the declared fields; whole: the record is the whole record"
    )
    records: list[dict[StrictStr, Any]] | None = Field(default=None, description="records as mappings (JSON mapping of protobuf)")
    file: StrictStr | None = Field(default=None, min_length=1, description="JSON Lines (.jsonl) or YAML data file, relative to this manifest")
    prune: PruneSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "TcaplusRecordsSpec":
        if (self.records is None) == (self.file is None):
            raise ValueError("give exactly one of records or file")
        return self


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

    res: Resource
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
    parts = [v if isinstance(v, str) and "|" not in v else str(v) if type(v) is int else json.dumps(v, ensure_ascii=False)
             for v in key]
    return "|".join([table, *parts])


_DECLARED: "weakref.WeakKeyDictionary[RunContext, dict[int, tuple[Resource, list[_Declared], list[Problem]]]]" = (
    weakref.WeakKeyDictionary()
)
"""Per run (its context), per document: the validated records (see ``TcaplusRecordsKind._declared``)."""


def _data_path(res: Resource) -> Path:
    return res.doc.base_dir / str(res.spec.file)


def _read_records(res: Resource) -> tuple[list[tuple[Any, _Where]], list[Problem]]:
    """The records a document declares, each with its position; or problems with the data file."""
    spec: TcaplusRecordsSpec = res.spec
    if spec.records is not None:
        return [(rec, _Where(res.doc.file, res.doc.position(("spec", "records", i))[0], res.doc, ("spec", "records", i)))
                for i, rec in enumerate(spec.records)], []
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
def _json_lines(path: str, mtime_ns: int, size: int, display: str, resource: str) -> tuple[list[tuple[Any, _Where]], list[Problem]]:
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
                    problems.add(Problem(display, number, col, resource, "", f"invalid JSON: {getattr(exc, 'msg', None) or 'nested too deep'}"))
                    continue
                # a string parsed from a line holds a refused character only if the line holds it as
                # it is or writes it as an escape (``\u202e``, ``\f``): every escape starts with a
                # backslash; a line with neither is not walked (nearly every line)
                if ("\\" in line or confine.bad_character(line) is not None):
                    for where, msg in confine.bad_strings(record):
                        problems.add(Problem(display, number, 1, resource, ".".join(map(str, where)), msg))
                if not isinstance(record, dict) or not record:  # no table has a record without fields
                    problems.add(Problem(display, number, 1, resource, "",
                                         "a record is a JSON object holding at least its primary key"))
                    continue
                if not problems.full:  # past the cap the file fails: its records are not needed
                    records.append((record, _Where(display, number)))
    except confine.ConfinementError as exc:
        return [], [Problem(display, 1, 1, resource, "", exc.reason)]
    except OSError as exc:
        return [], [Problem(display, 1, 1, resource, "", f"cannot read ({exc.strerror or type(exc).__name__})")]
    return records, problems.result(display, resource)


@lru_cache(maxsize=32)
def _yaml_records(path: str, mtime_ns: int, size: int, display: str, resource: str) -> tuple[list[tuple[Any, _Where]], list[Problem]]:
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
    return load_table(path, table, message=message, display=display,
                      read=lambda p: confine.read_text(p, what="proto"))


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
            raise InputError([doc.problem(where, exc.reason, resource="Config") if doc is not None
                              else Problem(str(ctx.config.path), 1, 1, "Config", ".".join(where), exc.reason)]) from None
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    return _cached_table(str(path), mtime, table, entry.message, os.path.relpath(path))


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
        known = _STRUCTS[id(message)] = (message, any(f.message is not None and not f.is_repeated
                                                      for f in message.fields.values()))
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


def _leaf_diffs(schema: TableSchema, declared: Mapping[str, Any], live: Mapping[str, Any], *, whole: bool,
                want: dict[str, Any] | None = None) -> list[FieldDiff]:
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


# -- the kind -----------------------------------------------------------------------------------


class TcaplusRecordsKind(Kind):
    """Seed records of TcaplusDB tables; see the module docstring."""

    kind = "TcaplusRecords"
    vendor = "tcaplus"
    Spec = TcaplusRecordsSpec
    apply_order = 30
    precondition_in_write = True
    progress_label = "TcaplusDB: writing"

    def keys(self, res: Resource) -> list[tuple[str, Path_]]:
        # A record's identity needs its table's primary key, i.e. the config, which this hook
        # does not see: duplicates across documents are found in check().
        return []

    # sharded runs: the unit is the record (table and primary key, its identity); each shard reads
    # and writes only its own records, so a restore of millions of records splits N ways
    shard_aware = True

    def declared_identities(self, resources: list[Resource], ctx: RunContext) -> set[str]:
        return {d.identity for res in resources for d in self._declared(res, ctx)[0]}

    @classmethod
    def make_client(cls, ctx: RunContext) -> TcaplusClient:
        p = ctx.config.providers.tcaplus
        if p is None:
            raise UsageError("providers.tcaplus is not configured in the config file")
        return TcaplusClient(
            p.base_url, app_id=p.app_id, zone_id=p.zone_id, password=ctx.config_secret(p.password),
            timeout=p.timeout, retry=ctx.retry_policy(p),
            max_connections=p.concurrency, requests_per_second=p.requests_per_second,
        )

    # -- check --------------------------------------------------------------------------------
    def check(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        if not resources:
            return []
        problems = self._provider_problems(resources[0], ctx)
        if problems:
            return problems
        seen: dict[str, _Declared] = {}
        for res in resources:
            declared, found = self._declared(res, ctx)
            problems += found
            for d in declared:
                first = seen.setdefault(d.identity, d)
                if first is not d:
                    problems.append(d.where.problem((), f"duplicate record {d.identity}: also declared at {first.where.source}", res.ref))
        return problems

    def _provider_problems(self, res: Resource, ctx: RunContext) -> list[Problem]:
        p = ctx.config.providers.tcaplus
        if p is None:
            return [res.doc.problem(("kind",), "providers.tcaplus is not configured in the config file", resource=res.ref)]
        if ctx.config.doc is not None:
            ctx.resolve_secret(ctx.config.doc, ("providers", "tcaplus", "password"), p.password, resource="Config")
            return []
        try:
            ctx.config_secret(p.password)
        except SecretError as exc:
            return [res.doc.problem(("kind",), str(exc), resource=res.ref)]
        return []

    def _declared(self, res: Resource, ctx: RunContext) -> tuple[list[_Declared], list[Problem]]:
        """The document's valid records, and every problem of the document (validated once per
        run: ``check`` and ``plan`` share the answer)."""
        done = _DECLARED.setdefault(ctx, {})
        found = done.get(id(res))
        if found is None or found[0] is not res:
            found = done[id(res)] = (res, *self._validate(res, ctx))
        return found[1], found[2]

    def _validate(self, res: Resource, ctx: RunContext) -> tuple[list[_Declared], list[Problem]]:
        spec: TcaplusRecordsSpec = res.spec
        known = ctx.config.providers.tcaplus.tables if ctx.config.providers.tcaplus else {}
        if spec.table not in known:
            names = ", ".join(sorted(known)) or "none"
            return [], [res.problem(("table",), f"table {spec.table!r} is not in providers.tcaplus.tables (known: {names})")]
        try:
            schema = table_schema(ctx, spec.table)
        except InputError as exc:
            return [], exc.problems
        if spec.file is not None:
            ctx.track_file(_data_path(res), resource=res.ref)
        raw, read_problems = _read_records(res)  # cached: never mutate what it returns
        problems = [*read_problems, *self._prune_problems(res, schema)]
        declared = []
        mode, key_fields = str(spec.mode), schema.primary_key
        more = 0  # problems past the per-file cap: counted, not kept (bounded memory and output)
        for record, where in raw:
            issues = validate_record(schema, record, require_required=True)
            if issues:
                if len(problems) < MAX_PROBLEMS_PER_FILE:
                    problems += [where.problem(i.path, i.message, res.ref, key=i.on_key) for i in issues]
                else:
                    more += len(issues)
                continue
            keys = {k: record[k] for k in key_fields}
            declared.append(_Declared(res, schema, record, where, identity(schema.name, keys.values()), keys, mode))
        if more:
            problems.append(more_problems(raw[-1][1].file, more, res.ref))
        return declared, problems

    @staticmethod
    def _prune_problems(res: Resource, schema: TableSchema) -> list[Problem]:
        prune: PruneSpec | None = res.spec.prune
        if prune is None:
            return []
        fields = schema.indexes.get(prune.index)
        if fields is None:
            names = ", ".join(sorted(schema.indexes)) or "none"
            return [res.problem(("prune", "index"), f"table {schema.name} has no index {prune.index!r} (indexes: {names})")]
        issues = validate_keys(schema, prune.keys, fields=fields)
        return [res.problem(("prune", "keys") + tuple(i.path), i.message, key=i.on_key) for i in issues]

    # -- plan ---------------------------------------------------------------------------------
    def plan(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client: TcaplusClient = ctx.client(type(self))
        kp = KindPlan()
        by_table: dict[str, list[_Declared]] = {}
        for res in resources:
            declared, problems = self._declared(res, ctx)
            if problems:
                raise InputError(problems)
            for d in declared:
                by_table.setdefault(d.schema.name, []).append(d)
        prunes = [r for r in resources if r.spec.prune is not None]
        for table in sorted({*by_table, *(r.spec.table for r in prunes)}):
            _TablePlanner(self, client, ctx, table_schema(ctx, table), kp, owns=lambda key: ctx.owns(self, key)).plan(
                by_table.get(table, []), [r for r in prunes if r.spec.table == table]
            )
        return kp

    # -- apply --------------------------------------------------------------------------------
    # thousands of one-record calls: driven from one event loop (Kind.streams), the engine
    # journals each change as it starts and reports it as it ends (``progress_label``)
    streams = True

    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        done: dict[int, Outcome] = {}
        self.apply_stream(changes, ctx, started=lambda c: None, finished=lambda c, o: done.__setitem__(id(c), o))
        return [done.get(id(c)) or Outcome(c, "interrupted", "not started: the run was stopped") for c in changes]

    def apply_stream(self, changes: list[Change], ctx: RunContext, *, started: Callable[[Change], None],
                     finished: Callable[[Change, Outcome], None]) -> None:
        client: TcaplusClient = ctx.client(type(self))
        writer = _Writer(client, ctx)

        async def one(change: Change) -> None:
            if ctx.stop.is_set():  # stopped: start no new write
                return
            started(change)
            finished(change, await aoutcome_of(change, lambda: writer.apply(change)))

        client.run(lambda: RunContext.amap(one, changes, concurrency=_concurrency(ctx)))

    # -- export (DR, adoption) ----------------------------------------------------------------
    def export(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext,
               request: ExportRequest) -> KindExport:
        """Records of every configured table, one ``tcaplus/<table>.yaml`` each (see :class:`_Exporter`)."""
        declared: list[_Declared] = []
        for res in resources:
            found, problems = self._declared(res, ctx)
            if problems:
                raise InputError(problems)
            declared += found
        provider = ctx.config.providers.tcaplus
        assert provider is not None
        out = KindExport(notes=[REST_LIMITS])
        out.notes.extend(f"--index {table}:{index}: table {table} is not in this connection's tables; not read"
                         for table, index, _ in request.index_keys if table not in provider.tables)
        client: TcaplusClient = ctx.client(type(self))
        for table in sorted(provider.tables):
            _Exporter(self, client, ctx, table_schema(ctx, table), request).export(
                [d for d in declared if d.schema.name == table], [r for r in resources if r.spec.table == table], out)
        return out


MAX_INDEX_KEYSETS = 20
"""Distinct index keys of declared records read to find unmanaged rows (per table and index)."""


def index_keysets(schema: TableSchema, records: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """``(index, keys)`` of every index for the key values ``records`` take, and warnings for
    indexes with more distinct keys than :data:`MAX_INDEX_KEYSETS` (not read)."""
    out: list[tuple[str, dict[str, Any]]] = []
    warnings = []
    for index, fields in sorted(schema.indexes.items()):
        found = {json.dumps({f: r[f] for f in fields}, sort_keys=True) for r in records if all(f in r for f in fields)}
        if len(found) > MAX_INDEX_KEYSETS:
            warnings.append(f"{schema.name}: declared records take {len(found)} keys of index {index}; rows under them "
                            f"that no document declares are not listed (more than {MAX_INDEX_KEYSETS})")
            continue
        out.extend((index, json.loads(k)) for k in sorted(found))
    return out, warnings


_Rows = tuple[tuple[str, dict[str, Any]], list[VersionedRecord] | None]
"""An index key read for unmanaged rows, and what it holds (``None``: more than the cap)."""

MAX_UNMANAGED_ROWS = 10_000
"""Rows under one index key read to list unmanaged ones; beyond it the plan says it did not look."""


async def read_capped(client: TcaplusClient, table: str, index: str, keys: dict[str, Any],
                      cap: int = MAX_UNMANAGED_ROWS) -> list[VersionedRecord] | None:
    """Every record under an index key (paged), or ``None`` when the first page says there are
    more than ``cap``."""
    records: list[VersionedRecord] = []
    while True:
        page = await client.apartkey_get(table, index, keys, limit=DEFAULT_PAGE_SIZE, offset=len(records))
        if max(page.total, len(records) + len(page.records) + page.remain) > cap:
            return None
        records += page.records
        if page.remain <= 0 or not page.records:
            return records


def _concurrency(ctx: RunContext) -> int:
    return ctx.config.providers.tcaplus.concurrency if ctx.config.providers.tcaplus else 1


class _TablePlanner:
    """Plans one table: coalesced reads (prune scopes by index, the rest one by one), then diffs."""

    def __init__(self, kind: TcaplusRecordsKind, client: TcaplusClient, ctx: RunContext, schema: TableSchema, kp: KindPlan,
                 owns: Callable[[str], bool] = lambda identity: True):
        self.kind = kind
        self.owns = owns  # a sharded run: the records (identities) this shard plans
        self.client = client
        self.ctx = ctx
        self.schema = schema
        self.kp = kp
        # prune scopes by key names (see _covered), per list of scopes (kept alive beside it)
        self._scopes: dict[int, tuple[list[Resource], dict[tuple[str, ...], set[tuple[Any, ...]]], list[Resource]]] = {}

    def plan(self, declared: list[_Declared], prunes: list[Resource]) -> None:
        # a sharded run reads and plans only its own records; prune scopes are listed whole (an
        # index read cannot be split) and only the shard's own undeclared rows are deleted, never
        # a record any document declares (``declared`` is every document's)
        mine = [d for d in declared if self.owns(d.identity)]
        # every read of the table from one event loop (many requests in flight on one thread)
        scoped, live, rows = self.client.run(lambda: self._read(declared, mine, prunes))
        for d in sorted(mine, key=lambda d: d.identity):
            self._plan_record(d, live.get(d.identity))
        self._plan_prunes(declared, prunes, scoped)
        self._list_unmanaged(declared, rows)

    async def _read(self, declared: list[_Declared], mine: list[_Declared], prunes: list[Resource]) -> tuple[
            dict[str, tuple[Resource, VersionedRecord]], dict[str, VersionedRecord], list[_Rows]]:
        scoped = await self._read_scopes(prunes, declared)
        live = await self._read_declared(mine, prunes, scoped)
        return scoped, live, await self._read_unmanaged(mine, prunes)

    async def _read_unmanaged(self, declared: list[_Declared], prunes: list[Resource]) -> list[_Rows]:
        """The rows under the index keys declared records take, outside prune scopes."""
        keysets, skipped = index_keysets(self.schema, [d.record for d in declared if not self._covered(d, prunes)])
        self.kp.warnings.extend(skipped)

        async def read(ik: tuple[str, dict[str, Any]]) -> _Rows:
            return ik, await read_capped(self.client, self.schema.name, ik[0], ik[1], MAX_UNMANAGED_ROWS)

        return await RunContext.amap(read, keysets, concurrency=_concurrency(self.ctx))

    def _list_unmanaged(self, declared: list[_Declared], rows: list[_Rows]) -> None:
        """Rows under the index keys declared records take (outside prune scopes) that no
        document declares: listed, never touched."""
        names = {d.identity for d in declared}
        seen: set[str] = set()
        for (index, keys), records in rows:
            if records is None:
                self.kp.warnings.append(f"{self.schema.name}: more than {MAX_UNMANAGED_ROWS:,} rows under index {index} "
                                        f"{json.dumps(keys)}; rows no document declares there are not listed")
                continue
            for vr in records:
                key = identity(self.schema.name, self.schema.key_of(vr.record))
                if key not in names and key not in seen:
                    seen.add(key)
                    self.kp.unmanaged.append(Unmanaged(self.kind.kind, self.kind.vendor, key,
                                                       f"not declared; under index {index} {json.dumps(keys)}, outside every prune scope"))

    def _select(self, declared: list[_Declared]) -> list[str] | None:
        """Fields to read: the declared ones when every record is in declared mode."""
        if not declared or any(d.mode == "whole" for d in declared):
            return None
        paths: set[str] = set()
        for d in declared:
            paths.update(_leaf_paths(self.schema, d.record))
        return sorted(paths) or None

    async def _read_scopes(self, prunes: list[Resource], declared: list[_Declared]) -> dict[str, tuple[Resource, VersionedRecord]]:
        select = self._select(declared)

        async def read(res: Resource) -> list[VersionedRecord]:
            prune: PruneSpec = res.spec.prune
            return await self.client.apartkey_get_all(self.schema.name, prune.index, prune.keys, select=select,
                                                      concurrency=pages_at_once)

        # scopes are read side by side; the pages of one scope share what is left of the concurrency
        pages_at_once = max(1, _concurrency(self.ctx) // max(1, len(prunes)))

        out: dict[str, tuple[Resource, VersionedRecord]] = {}
        for res, records in zip(prunes, await RunContext.amap(read, prunes, concurrency=_concurrency(self.ctx)), strict=True):
            for vr in records:
                out.setdefault(identity(self.schema.name, self.schema.key_of(vr.record)), (res, vr))
        return out

    def _covered(self, d: _Declared, prunes: list[Resource]) -> bool:
        """Whether a prune scope holds ``d`` (its index key values are the scope's)."""
        if not prunes:
            return False
        scopes = self._scopes.get(id(prunes))
        if scopes is None:  # by the scopes' key names: one set lookup per name set, not one per scope
            by_names: dict[tuple[str, ...], set[tuple[Any, ...]]] = {}
            odd: list[Resource] = []
            for r in prunes:
                names = tuple(sorted(r.spec.prune.keys))
                values = tuple(r.spec.prune.keys[n] for n in names)
                try:
                    by_names.setdefault(names, set()).add(values)
                except TypeError:  # an unhashable value: compared one by one
                    odd.append(r)
            scopes = self._scopes[id(prunes)] = (prunes, by_names, odd)
        _, by_names, odd = scopes
        record = d.record
        for names, keysets in by_names.items():
            try:
                if tuple(record.get(n) for n in names) in keysets:
                    return True
            except TypeError:
                if any(all(record.get(k) == v for k, v in zip(names, vs, strict=True)) for vs in keysets):
                    return True
        return any(all(record.get(k) == v for k, v in r.spec.prune.keys.items()) for r in odd)

    async def _read_declared(
        self, declared: list[_Declared], prunes: list[Resource], scoped: dict[str, tuple[Resource, VersionedRecord]]
    ) -> dict[str, VersionedRecord]:
        live = {d.identity: scoped[d.identity][1] for d in declared if d.identity in scoped}
        missing = [d for d in declared if d.identity not in scoped and not self._covered(d, prunes)]

        async def read(d: _Declared) -> VersionedRecord | None:
            return await self.client.aget(self.schema.name, d.keys, select=d.select)

        for d, vr in zip(missing, await RunContext.amap(read, missing, concurrency=_concurrency(self.ctx),
                                                        progress=(self.ctx, f"TcaplusDB {self.schema.name}: reading")),
                         strict=True):
            if vr is not None:
                live[d.identity] = vr
        return live

    def _plan_record(self, d: _Declared, live: VersionedRecord | None) -> None:
        if live is not None:
            self.kp.existing_in_scope += 1
            whole = d.mode == "whole"
            diffs = [] if _equal_as_read(d.record, live.record, whole=whole) else _leaf_diffs(
                self.schema, d.record, live.record, whole=whole, want=d.leaves)
            if not diffs:  # the common case of a plan: nothing else to build
                self.kp.noops += 1
                return
        base: dict[str, Any] = dict(kind=self.kind.kind, vendor=self.kind.vendor, key=d.identity, resource=d.res.ref, source=d.where.source)
        data = {"table": self.schema.name, "mode": d.mode, "keys": d.keys, "record": d.record}
        if live is None:
            diffs = [FieldDiff(p, None, v) for p, v in d.leaves.items() if p not in self.schema.primary_key]
            self.kp.changes.append(Change(action=Action.CREATE, diffs=diffs, precondition={"exists": False},
                                          calls=["POST AddRecord"], data=data, **base))
            return
        notes = [] if d.mode == "whole" else ["declared mode: undeclared fields of the live record are kept"]
        self.kp.changes.append(Change(
            action=Action.UPDATE, diffs=diffs, precondition={"record_version": live.version},
            calls=["GET GetRecord", "PUT SetRecord (x-tcaplus-data-version-check: 1)"], notes=notes, data=data, **base,
        ))

    def _plan_prunes(self, declared: list[_Declared], prunes: list[Resource], scoped: dict[str, tuple[Resource, VersionedRecord]]) -> None:
        names = {d.identity for d in declared}
        for key, (res, vr) in sorted(scoped.items()):
            if key in names or not self.owns(key):
                continue
            self.kp.existing_in_scope += 1
            prune: PruneSpec = res.spec.prune
            diffs = [FieldDiff(p, v, None) for p, v in _leaves(self.schema.message, vr.record).items() if p not in self.schema.primary_key]
            self.kp.changes.append(Change(
                kind=self.kind.kind, vendor=self.kind.vendor, key=key, action=Action.DELETE, resource="", source=res.source,
                diffs=diffs, precondition={"record_version": vr.version}, calls=["GET GetRecord", "DELETE DeleteRecord"],
                notes=[f"not declared; inside the prune scope of {res.ref} (index {prune.index})"],
                data={"table": self.schema.name, "keys": {k: vr.record[k] for k in self.schema.primary_key}},
            ))


class _Writer:
    """Applies one change under its planned precondition (on the event loop); maps conflicts to ``stale``."""

    def __init__(self, client: TcaplusClient, ctx: RunContext):
        self.client = client
        self.ctx = ctx
        self._actions: dict[Action, Callable[[Change], Awaitable[Outcome]]] = {
            Action.CREATE: self._create,
            Action.UPDATE: self._update,
            Action.DELETE: self._delete,
        }

    async def apply(self, change: Change) -> Outcome:
        return await self._actions[change.action](change)

    def _matches(self, change: Change, live: VersionedRecord) -> bool:
        schema = table_schema(self.ctx, change.data["table"])
        return not _diffs(schema, change.data["record"], live.record, whole=change.data["mode"] == "whole")

    def _settle(self, change: Change, live: VersionedRecord | None, what: str) -> Outcome:
        """After an AddRecord that met an existing record or lost its reply: read back and decide."""
        if live is None:
            return Outcome(change, "failed", f"{what}, and the record is not there; re-run apply")
        if self._matches(change, live):
            return Outcome(change, "applied", "the record holds the declared values")
        return Outcome(change, "stale", f"{what}: the record exists with other values (version {live.version}); not overwritten")

    async def _create(self, change: Change) -> Outcome:
        table, record, keys = change.data["table"], change.data["record"], change.data["keys"]
        for _ in range(ATTEMPTS):
            try:
                await self.client.aadd(table, record)
                return Outcome(change, "applied")
            except TcaplusRecordExistsError:
                return self._settle(change, await self.client.aget(table, keys), "created by another writer since the plan")
            except ReconcilerError as exc:
                if not unknown_outcome(exc):
                    raise
                live = await self.client.aget(table, keys)  # read back before any retry
                if live is not None:
                    return self._settle(change, live, "AddRecord got no reply")
        return Outcome(change, "failed", f"AddRecord: no reply {ATTEMPTS} times and the record is not there; re-run apply")

    async def _current(self, change: Change) -> tuple[VersionedRecord | None, Outcome | None]:
        """The live record if it still has the planned version, else the stale outcome."""
        planned = change.precondition["record_version"]
        live = await self.client.aget(change.data["table"], change.data["keys"])
        if live is None:
            return None, Outcome(change, "stale", "the record was deleted since the plan")
        if live.version != planned:
            return None, Outcome(change, "stale", f"changed since the plan (version {planned} -> {live.version}); not overwritten")
        return live, None

    async def _update(self, change: Change) -> Outcome:
        live, stale = await self._current(change)
        if live is None:
            assert stale is not None
            return stale
        table, planned = change.data["table"], change.precondition["record_version"]
        schema = table_schema(self.ctx, table)
        record = change.data["record"] if change.data["mode"] == "whole" else _merge(live.record, schema, change.data["record"])
        for _ in range(ATTEMPTS):
            try:
                await self.client.aset(table, record, check=VersionCheck.MATCH, version=planned)
                return Outcome(change, "applied")
            except TcaplusVersionMismatchError:
                return Outcome(change, "stale", "changed by another writer during apply (-7949); not overwritten")
            except ReconcilerError as exc:
                if not unknown_outcome(exc):
                    raise
            after = await self.client.aget(table, change.data["keys"])  # read back before any retry
            if after is not None and self._matches(change, after):
                return Outcome(change, "applied")
            if after is None or after.version != planned:
                return Outcome(change, "stale", "SetRecord got no reply and the record was changed by another "
                                                "writer meanwhile; not overwritten")
        return Outcome(change, "failed", f"SetRecord: no reply {ATTEMPTS} times and the record does not hold the "
                                         "declared values; re-run apply")

    async def _delete(self, change: Change) -> Outcome:
        table, keys = change.data["table"], change.data["keys"]
        live = await self.client.aget(table, keys)
        if live is None:
            return Outcome(change, "applied", "already gone")
        if live.version != change.precondition["record_version"]:
            return Outcome(change, "stale", f"changed since the plan (version {change.precondition['record_version']} -> {live.version}); not deleted")
        for _ in range(ATTEMPTS):
            try:
                await self.client.adelete(table, keys)
                return Outcome(change, "applied")
            except TcaplusRecordNotFoundError:
                return Outcome(change, "applied", "already gone")
            except ReconcilerError as exc:
                if not unknown_outcome(exc):
                    raise
            after = await self.client.aget(table, keys)  # read back before any retry
            if after is None:
                return Outcome(change, "applied")
            if after.version != change.precondition["record_version"]:
                return Outcome(change, "stale", "DeleteRecord got no reply and the record changed meanwhile; not deleted")
        return Outcome(change, "failed", f"DeleteRecord: no reply {ATTEMPTS} times and the record is still there; re-run apply")


# -- export -------------------------------------------------------------------------------------
REST_LIMITS = ("TcaplusRecords: TcaplusDB RESTful API v1.0 cannot list a table's records or an index's key values; "
               "only records under index keys that prune scopes declare, that --index names or that declared records "
               "take, and declared records (read by key), are exported")
INLINE_MAX = 20
"""Up to this many records are written inline; more go to a JSON Lines data file."""


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts)
    slug = "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug[:200] or "records"


class _Exporter:
    """One table's export: index reads (prune scopes, named keys, keys of declared records), then
    the declared records read by key; a document per read, records inline or in a data file."""

    def __init__(self, kind: TcaplusRecordsKind, client: TcaplusClient, ctx: RunContext, schema: TableSchema,
                 request: ExportRequest):
        self.kind, self.client, self.ctx, self.schema, self.request = kind, client, ctx, schema, request
        self.path = f"tcaplus/{schema.name}.yaml"
        self.names: set[str] = set()

    def _ordered(self, record: Mapping[str, Any]) -> dict[str, Any]:
        order = [*self.schema.primary_key, *(f for f in self.schema.message.fields if f not in self.schema.primary_key)]
        out = {k: record[k] for k in order if k in record and record[k] is not None}
        out.update((k, v) for k, v in record.items() if k not in out and v is not None)
        return out

    def _name(self, wanted: str) -> str:
        name, n = wanted, 2
        while name in self.names:
            name, n = f"{wanted}-{n}", n + 1
        self.names.add(name)
        return name

    def export(self, declared: list[_Declared], resources: list[Resource], out: KindExport) -> None:
        names = {d.identity for d in declared}
        reads: list[tuple[str, dict[str, Any], Resource | None]] = []
        for r in resources:
            if r.spec.prune is not None:
                reads.append((r.spec.prune.index, dict(r.spec.prune.keys), r))
        for table, index, keys in self.request.index_keys:
            if table == self.schema.name:
                if index not in self.schema.indexes:
                    raise UsageError(f"--index {table}:{index}: table {table} has no index {index!r} "
                                     f"(indexes: {', '.join(sorted(self.schema.indexes)) or 'none'})")
                issues = validate_keys(self.schema, keys, fields=self.schema.indexes[index])
                if issues:
                    raise UsageError(f"--index {table}:{index}: " + "; ".join(
                        f"{'.'.join(map(str, i.path)) or 'keys'}: {i.message}" for i in issues))
                reads.append((index, keys, None))
        prunes = [r for r in resources if r.spec.prune is not None]
        outside = [d.record for d in declared
                   if not any(all(d.record.get(k) == v for k, v in r.spec.prune.keys.items()) for r in prunes)]
        keysets, skipped = index_keysets(self.schema, outside)
        out.notes.extend(skipped)
        reads.extend((i, k, None) for i, k in keysets)
        unique: dict[str, tuple[str, dict[str, Any], Resource | None]] = {}
        for index, keys, owner in reads:
            unique.setdefault(json.dumps([index, keys], sort_keys=True), (index, keys, owner))
        results = self.client.run(lambda: RunContext.amap(
            lambda rd: self.client.apartkey_get_all(self.schema.name, rd[0], rd[1]), list(unique.values()),
            concurrency=_concurrency(self.ctx)))
        claimed: dict[str, dict[str, Any]] = {}
        owner_of = {d.identity: d.res for d in declared}
        docs: list[tuple[ExportDoc, list[dict[str, Any]]]] = []
        for (index, keys, owner), records in zip(unique.values(), results, strict=True):
            rows, row_keys = [], []
            for vr in sorted(records, key=lambda v: identity(self.schema.name, self.schema.key_of(v.record))):
                key = identity(self.schema.name, self.schema.key_of(vr.record))
                if key in claimed or (self.request.unmanaged and key in names):
                    continue
                claimed[key] = vr.record
                rows.append(self._ordered(vr.record))
                row_keys.append(key)
            if not rows:
                continue
            spec: dict[str, Any] = {"table": self.schema.name}
            if owner is not None and not self.request.unmanaged:
                doc = ExportDoc(self.kind.kind, self._name(owner.name), spec, protected=owner.protected)
                spec["mode"] = owner.spec.mode
                spec["prune"] = {"index": index, "keys": keys}
                doc.comments.append(f"records under index {index} {json.dumps(keys)} (PartkeyGetRecord); the prune scope "
                                    f"is copied from {owner.source}")
            elif len(declarers := {owner_of[k].name: owner_of[k] for k in row_keys if k in owner_of}) == 1 \
                    and not self.request.unmanaged:
                res = next(iter(declarers.values()))
                doc = ExportDoc(self.kind.kind, self._name(res.name), spec, protected=res.protected)
                spec["mode"] = res.spec.mode
                doc.comments.append(f"records under index {index} {json.dumps(keys)} (PartkeyGetRecord), the key of the "
                                    f"records {res.source} declares")
            else:
                doc = ExportDoc(self.kind.kind, self._name(_slug(self.schema.name, index, *keys.values())), spec)
                spec["mode"] = "whole"
                doc.comments.append(f"records under index {index} {json.dumps(keys)} (PartkeyGetRecord)"
                                    + ("" if not self.request.unmanaged else " that no manifest declares"))
            docs.append((doc, rows))
        if not self.request.unmanaged:
            by_res: dict[str, list[_Declared]] = {}
            for d in declared:
                if d.identity not in claimed:
                    by_res.setdefault(d.res.name, []).append(d)
            missing: list[str] = []
            groups = sorted(by_res.items())
            everyone = [d for _, ds in groups for d in ds]
            answers = iter(self.client.run(lambda: RunContext.amap(
                lambda d: self.client.aget(self.schema.name, d.keys), everyone, concurrency=_concurrency(self.ctx))))
            for _, ds in groups:
                got = [next(answers) for _ in ds]
                rows = []
                for d, found in zip(ds, got, strict=True):
                    if found is None:
                        missing.append(d.identity)
                        continue
                    claimed[d.identity] = found.record
                    rows.append(self._ordered(found.record))
                if not rows:
                    continue
                owner = ds[0].res
                spec = {"table": self.schema.name, "mode": owner.spec.mode}
                doc = ExportDoc(self.kind.kind, self._name(owner.name), spec, protected=owner.protected)
                doc.comments.append(f"declared records read by key (GetRecord), as declared by {owner.source}")
                docs.append((doc, rows))
            if missing:
                out.notes.append(f"TcaplusRecords: {len(missing)} declared record(s) of {self.schema.name} do not exist "
                                 f"live and are not exported: {', '.join(missing[:10])}")
        group = ExportGroup(self.path, header=[
            f"TcaplusDB table {self.schema.name}, exported from live state. RecordVersion is server-owned and left out.",
            "REST API v1.0 cannot list a table's records or an index's key values: this file holds only the records",
            "under the index keys listed in each document and declared records read by key.",
        ])
        for doc, rows in docs:
            if len(rows) > INLINE_MAX:
                data = f"data/{doc.name}.jsonl"
                doc.spec["file"] = data
                doc.field_comments["file"] = f"{len(rows)} records, one JSON object per line"
                text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
                out.files.append(ExportFile(f"tcaplus/{data}", text, ref=doc.ref))
            else:
                doc.spec["records"] = rows
            if "prune" in doc.spec:  # keep the prune scope last, as people write it
                doc.spec["prune"] = doc.spec.pop("prune")
            group.docs.append(doc)
        out.groups.append(group)
