"""YAML with source positions, duplicate-key detection and YAML 1.2 scalars.

PyYAML implements YAML 1.1, where an unquoted ``NO``, ``on`` or ``yes`` becomes a boolean and
``010`` an octal 8. Manifests are read with the YAML 1.2 core schema instead: only
``true``/``false`` are booleans, so ``country: NO`` stays the string ``"NO"``.

Every value keeps the position of its node: :class:`Document` maps a path such as
``("spec", "entries", 3, "ip")`` to ``(line, col)`` (1-based) for the value and, for mapping
entries, for the key.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import Problem, ProblemCounter
from reconciler.manifest.confine import ConfinementError, bad_character, read_text

try:  # the C parser is ~5x faster (reference/libraries.md §4.5)
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader


class _Yaml12Loader(_BaseLoader):  # type: ignore[misc]
    pass


# YAML 1.2 core schema resolvers (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
]:
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_regexp), _first)

Path_ = tuple[Any, ...]
_STR = "tag:yaml.org,2002:str"


@dataclass
class Document:
    """One YAML document of a manifest file, with positions."""

    file: str
    index: int  # 0-based position of the document in its file
    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    start: tuple[int, int] = (1, 1)
    # values written elsewhere (``${var.NAME}`` of an environment): path -> (file, line, col, note)
    origins: dict[Path_, tuple[str, int, int, str]] = field(default_factory=dict)

    @cached_property
    def base_dir(self) -> Path:
        """The folder relative references of this document start from (asked per resource)."""
        return Path(self.file).parent

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The position of the value at ``path`` (or of its key), else of its nearest ancestor."""
        p = tuple(path)
        if key and p in self.key_marks:
            return self.key_marks[p]
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), self.start)

    def problem(
        self, path: Path_, message: str, *, resource: str = "", key: bool = False, field_path: str | None = None
    ) -> Problem:
        fp = field_path if field_path is not None else dotted(path)
        p = tuple(path)
        while p and not key:
            if p in self.origins:  # the value was written in the config: point there
                file, line, col, note = self.origins[p]
                return Problem(file, line, col, resource, fp, f"{message} ({note})")
            if p in self.marks:
                break
            p = p[:-1]
        line, col = self.position(path, key=key)
        return Problem(self.file, line, col, resource, fp, message)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


MAX_ALIASES = 1_000  # alias uses per document
MAX_DEPTH = 64  # nesting of mappings and sequences


@dataclass
class Budget:
    """What building YAML costs, counted per file and per run (:func:`start_run`): every node;
    nodes produced by expanding aliases; characters of scalars (an alias of a long string costs its
    length again wherever the value is used)."""

    nodes: int = 0
    alias_nodes: int = 0
    chars: int = 0


# per file: no file within its size limit needs more without aliases (an 8 MiB manifest of "- 1"
# lines is 2 million nodes); per run: so that many files, each under its own bound, cannot add up
# to a MemoryError (40 documents of alias fan-out in 16 KB did)
FILE_BUDGET = Budget(nodes=4_000_000, alias_nodes=100_000, chars=64 * 1024 * 1024)
RUN_BUDGET = Budget(nodes=8_000_000, alias_nodes=250_000, chars=256 * 1024 * 1024)
MAX_ALIAS_NODES = FILE_BUDGET.alias_nodes  # (the per-document bound of earlier versions, now per file)

_run: Budget | None = None  # None: no run started (a library call): per-file budgets only
_run_lock = threading.Lock()


def start_run() -> None:
    """A run starts (the engine calls this with the workspace root): its YAML budget is full again."""
    global _run
    with _run_lock:
        _run = Budget()


def end_run() -> None:
    """No run any more: only the per-file budgets apply (until the next :func:`start_run`)."""
    global _run
    with _run_lock:
        _run = None


def run_spent() -> Budget | None:
    """What the YAML read so far in this run has cost (``None`` outside a run)."""
    with _run_lock:
        return None if _run is None else Budget(_run.nodes, _run.alias_nodes, _run.chars)


class _TooBig(Exception):
    """An input bound was hit (alias bomb, recursion, nesting): the document is not built.
    ``budget``: a per-file or per-run bound, after which the rest of the file is not read."""

    def __init__(self, node: yaml.Node, path: Path_, message: str, *, budget: bool = False):
        super().__init__(message)
        self.node = node
        self.path = path
        self.budget = budget


class _Caps:
    """The bounds left for one file: the smaller of its own budget and what is left of the run's."""

    def __init__(self) -> None:
        spent = run_spent()
        if spent is None:  # outside a run: the run's budget never binds first
            spent = Budget(-RUN_BUDGET.nodes, -RUN_BUDGET.alias_nodes, -RUN_BUDGET.chars)
        self.spent = Budget()
        self.nodes, self.nodes_run = self._cap(FILE_BUDGET.nodes, RUN_BUDGET.nodes - spent.nodes)
        self.alias_nodes, self.alias_nodes_run = self._cap(FILE_BUDGET.alias_nodes, RUN_BUDGET.alias_nodes - spent.alias_nodes)
        self.chars, self.chars_run = self._cap(FILE_BUDGET.chars, RUN_BUDGET.chars - spent.chars)

    @staticmethod
    def _cap(per_file: int, left_in_run: int) -> tuple[int, bool]:
        return (per_file, False) if per_file <= left_in_run else (max(left_in_run, 0), True)

    def over(self, node: yaml.Node, path: Path_, what: str) -> _TooBig:
        if what == "nodes":
            run, limit = self.nodes_run, (RUN_BUDGET if self.nodes_run else FILE_BUDGET).nodes
            text = f"more than {limit:,} YAML values"
        elif what == "alias_nodes":
            run, limit = self.alias_nodes_run, (RUN_BUDGET if self.alias_nodes_run else FILE_BUDGET).alias_nodes
            text = f"aliases expand to more than {limit:,} values"
        else:
            run, limit = self.chars_run, (RUN_BUDGET if self.chars_run else FILE_BUDGET).chars
            text = f"strings expand to more than {limit // (1024 * 1024)} MiB"
        where = " in this run (all files read so far)" if run else ""
        return _TooBig(node, path, f"{text}{where} (alias bomb?)" if what != "nodes" else f"{text}{where}", budget=True)

    def commit(self) -> None:
        with _run_lock:
            if _run is None:
                return
            _run.nodes += self.spent.nodes
            _run.alias_nodes += self.spent.alias_nodes
            _run.chars += self.spent.chars


class _Builder:
    """Builds plain data from a composed node tree, bounded: PyYAML shares the node of an anchor
    between its aliases, so a "billion laughs" document is small as nodes but huge expanded."""

    def __init__(self, doc: Document, problems: ProblemCounter, caps: _Caps | None = None):
        self.doc = doc
        self.problems = problems
        self.caps = caps if caps is not None else _Caps()
        self.spent = self.caps.spent
        self._seen: set[int] = set()
        self._stack: set[int] = set()
        self._aliases = 0
        self._alias_depth = 0

    def build(self, node: yaml.Node, path: Path_) -> Any:
        spent, caps = self.spent, self.caps
        spent.nodes += 1
        if spent.nodes > caps.nodes:
            raise caps.over(node, path, "nodes")
        if type(node) is yaml.ScalarNode:  # most nodes: the rules below as they apply to a leaf
            if len(path) > MAX_DEPTH:
                raise _TooBig(node, path, f"nested deeper than {MAX_DEPTH} levels")
            spent.chars += len(node.value)
            if spent.chars > caps.chars:
                raise caps.over(node, path, "chars")
            if self._alias_depth:
                spent.alias_nodes += 1
                if spent.alias_nodes > caps.alias_nodes:
                    raise caps.over(node, path, "alias_nodes")
            mark = node.start_mark
            self.doc.marks[path] = (mark.line + 1, mark.column + 1)
            return self.scalar(node, path)
        key = id(node)
        if key in self._stack:
            raise _TooBig(node, path, "recursive alias: an anchor may not contain an alias of itself")
        if len(path) > MAX_DEPTH:
            raise _TooBig(node, path, f"nested deeper than {MAX_DEPTH} levels")
        shared = key in self._seen and isinstance(node, (yaml.MappingNode, yaml.SequenceNode))
        if shared:
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _TooBig(node, path, f"more than {MAX_ALIASES} alias uses (*name) in one document")
        if self._alias_depth or shared:
            spent.alias_nodes += 1
            if spent.alias_nodes > caps.alias_nodes:
                raise caps.over(node, path, "alias_nodes")
        self._seen.add(key)
        self._stack.add(key)
        self._alias_depth += shared
        try:
            return self._build(node, path)
        finally:
            self._alias_depth -= shared
            self._stack.discard(key)

    def _build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(self._p(knode, path, "merge keys (<<) are not supported"))
                    continue
                if type(knode) is yaml.ScalarNode and knode.tag == _STR:  # most keys: scalar() of a string
                    key = knode.value
                    if not key.isprintable() and (bad := bad_character(key)):
                        # named by its own path, as bad_strings names a field name (shown escaped)
                        self.problems.append(self._p(knode, path + (key,), f"field name: {bad}"))
                else:
                    key = self.build_scalar_key(knode, path)
                    if key is None:
                        continue
                at = path + (key,)
                if key in out:
                    first = self.doc.key_marks.get(at, (0, 0))
                    self.problems.append(self._p(knode, at, f"duplicate key '{key}' (first at line {first[0]})"))
                    continue
                mark = knode.start_mark
                self.doc.key_marks[at] = (mark.line + 1, mark.column + 1)
                out[key] = self.build(vnode, at)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def build_scalar_key(self, knode: yaml.Node, path: Path_) -> Any:
        if not isinstance(knode, yaml.ScalarNode):
            self.problems.append(self._p(knode, path, "mapping keys must be scalars"))
            return None
        value = self.scalar(knode, path)
        return value if isinstance(value, str) else str(value) if value is not None else "null"

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        tag = node.tag
        try:
            if tag == _STR:
                # a printable string holds no refused character (every one is a control, format or
                # surrogate code point): most values are cleared without the full check
                bad = None if node.value.isprintable() else bad_character(node.value)
                if bad:  # reported (the run stops before any call); the value stays for validation
                    self.problems.append(self._p(node, path, bad))
                return node.value
            if tag == "tag:yaml.org,2002:null":
                return None
            if tag == "tag:yaml.org,2002:bool":
                return node.value.lower() == "true"
            if tag == "tag:yaml.org,2002:int":
                v = node.value.replace("_", "")
                if v.startswith("0o"):
                    return int(v[2:], 8)
                if v.startswith("0x"):
                    return int(v[2:], 16)
                return int(v)
            if tag == "tag:yaml.org,2002:float":
                return float(
                    node.value.replace(".inf", "inf")
                    .replace(".Inf", "inf")
                    .replace(".INF", "inf")
                    .replace(".nan", "nan")
                    .replace(".NaN", "nan")
                    .replace(".NAN", "nan")
                )
        except ValueError:
            self.problems.append(self._p(node, path, f"cannot read {node.value!r} as {tag.rsplit(':', 1)[-1]}"))
            return None
        self.problems.append(self._p(node, path, f"unsupported YAML tag {tag}"))
        return None

    def _p(self, node: yaml.Node, path: Path_, message: str) -> Problem:
        line, col = _mark(node)
        return Problem(self.doc.file, line, col, "", dotted(path), message)


def load_documents(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Parse every YAML document of ``text``. Syntax errors and duplicate keys become problems."""
    problems = ProblemCounter()  # per file: the first problems kept, the rest counted
    docs: list[Document] = []
    loader = _Yaml12Loader(text)
    caps = _Caps()  # the file's budget and what is left of the run's: documents share them
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file=file, index=index, data=None, start=_mark(node))
            try:
                doc.data = _Builder(doc, problems, caps).build(node, ())
            except _TooBig as exc:
                line, col = _mark(exc.node)
                problems.append(Problem(file, line, col, "", dotted(exc.path), str(exc)))
                doc.data = None
                if exc.budget:  # one line for the file: the rest of it is not read
                    docs.append(doc)
                    break
            docs.append(doc)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(file, line, col, "", "", f"YAML syntax error: {exc.problem or exc}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, 1, "", "", f"YAML error: {exc}"))
    finally:
        loader.dispose()
        caps.commit()
    return docs, problems.result(file)


def load_file(
    path: Path, display: str | None = None, *, what: str = "manifest", confine: bool = True, root: Path | None = None
) -> tuple[list[Document], list[Problem]]:
    """Read (through :mod:`reconciler.manifest.confine`: inside the workspace root, a regular file,
    size-limited) and parse a YAML file."""
    name = display or str(path)
    try:
        text = read_text(path, what=what, confine=confine, root=root)
    except ConfinementError as exc:
        return [], [Problem(name, 1, 1, "", "", exc.reason)]
    return load_documents(text, name)
