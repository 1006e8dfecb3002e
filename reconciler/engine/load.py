"""Load manifests: files -> YAML documents -> validated resources and prune scopes.

Every problem of the run is collected (syntax, envelope, spec, cross-document, secrets) and
raised at once as :class:`InputError` before any API call.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from reconciler.engine.heap import long_lived
from reconciler.errors import InputError, Problem
from reconciler.kinds import KINDS
from reconciler.kinds.base import Kind, Resource, RunContext, ScopeDecl
from reconciler.manifest import confine
from reconciler.manifest.config import CONNECTION_NAME, DEFAULT_CONNECTION
from reconciler.manifest.validate import validate_model
from reconciler.manifest.variables import substitute
from reconciler.manifest.yamlload import Document, load_file

API_VERSION = "reconciler/v1"
SCOPE_KIND = "PruneScope"


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
    protected: StrictBool = False
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    description: StrictStr | None = None
    connection: StrictStr | None = Field(
        default=None,
        pattern=CONNECTION_NAME,
        description="the named connection of the kind's vendor this document targets (connections.<vendor>.<name>); "
        "default: the environment's connection, else providers.<vendor>",
    )
    incomplete: list[StrictStr] | None = Field(
        default=None,
        min_length=1,
        description="written by `export manifests`: spec fields the vendor did not return; validate, plan and apply "
        "skip this document (warning: not restored) until they are filled in and this is deleted",
    )


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiVersion: StrictStr
    kind: StrictStr
    metadata: Metadata
    spec: Any = None


class ScopeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: StrictStr  # the kind the scope applies to
    match: dict[str, Any] = Field(default_factory=dict)  # validated by the target kind's Scope model
    protect: list[StrictStr] = Field(default_factory=list)  # identities never deleted


@dataclass
class Loaded:
    resources: dict[str, list[Resource[Any]]] = field(default_factory=dict)  # by kind
    scopes: dict[str, list[ScopeDecl]] = field(default_factory=dict)  # by target kind
    files: list[Path] = field(default_factory=list)
    # documents marked metadata.incomplete (an export's gaps): skipped, one line each
    incomplete: list[str] = field(default_factory=list)

    def kinds(self) -> list[type[Kind[Any, Any]]]:
        names = set(self.resources) | set(self.scopes)
        return sorted((KINDS[n] for n in names), key=lambda k: (k.apply_order, k.kind))

    def parts(self) -> list[tuple[type[Kind[Any, Any]], str, list[Resource[Any]], list[ScopeDecl]]]:
        """``(kind, connection, resources, scopes)`` per kind and named connection, in apply order:
        the unit a kind plans, checks and applies."""
        out = []
        for kind_cls in self.kinds():
            resources = self.resources.get(kind_cls.kind, [])
            scopes = self.scopes.get(kind_cls.kind, [])
            for conn in sorted({r.connection for r in resources} | {s.connection for s in scopes}):
                out.append(
                    (kind_cls, conn, [r for r in resources if r.connection == conn], [s for s in scopes if s.connection == conn])
                )
        return out

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.resources.values())


def display_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)


def manifest_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """Every ``*.yaml``/``*.yml`` under ``paths``. Nothing is skipped silently — a manifest that
    disappears would make its objects look undeclared and get pruned: entries that are not plain
    files (a broken symlink, a symlink loop, a FIFO) are kept so that reading them reports an error,
    a folder that cannot be listed is an error, and a symlinked folder is followed when it stays
    inside the workspace root (else an error)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for p in paths:
        if p.is_dir():
            files.extend(_walk(p, problems))
        elif p.is_file() or p.is_symlink():
            files.append(p)
        else:
            problems.append(Problem(display_path(p), 1, 1, "", "", "no such file or directory"))
    return files, problems


def _walk(top: Path, problems: list[Problem]) -> list[Path]:
    root = confine.get_root()
    bound = root if root is not None and confine.is_inside(top, root) else top
    seen = {os.path.realpath(top)}
    found: list[Path] = []

    def failed(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else top
        problems.append(Problem(display_path(where), 1, 1, "", "", f"cannot list the folder: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=failed):
        keep = []
        for d in sorted(dirnames):
            sub = Path(dirpath) / d
            real = os.path.realpath(sub)
            if sub.is_symlink() and not confine.is_inside(sub, bound):
                problems.append(
                    Problem(
                        display_path(sub), 1, 1, "", "", f"a symlinked folder that resolves outside the workspace root ({bound})"
                    )
                )
            elif real not in seen:  # a symlink loop or a second link to a folder: walked once
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        found += [Path(dirpath) / f for f in filenames if Path(f).suffix in (".yaml", ".yml")]
    return sorted(found)


def _read_root(f: Path, args: list[Path]) -> Path | None:
    """Manifests inside the workspace root are confined to it; a folder named on the command line
    outside the root (the trusted side chose it) confines what is found in it to that folder."""
    root = confine.get_root()
    if root is None or confine.is_inside(f.parent, root):
        return root
    for a in args:
        base = a if a.is_dir() else a.parent
        if f == a or base in f.parents:
            return base
    return root


def load_manifests(paths: list[Path], ctx: RunContext) -> Loaded:
    """Read, validate and check every manifest under ``paths`` (``InputError`` with every problem).
    What it makes lives for the whole run: the collector is paused meanwhile (engine/heap.py)."""
    with long_lived():
        return _load_manifests(paths, ctx)


def _load_manifests(paths: list[Path], ctx: RunContext) -> Loaded:
    files, problems = manifest_files(paths)
    loaded = Loaded(files=files)
    docs: list[Document] = []
    for f in files:
        ds, ps = load_file(f, display_path(f), root=_read_root(f, paths))
        docs.extend(ds)
        problems.extend(ps)
    if not files and not problems:
        problems.append(
            Problem(", ".join(display_path(p) for p in paths), 1, 1, "", "", "no manifest files (*.yaml, *.yml) found")
        )

    for doc in docs:
        if doc.data is None:
            continue  # an empty document (e.g. a trailing ---)
        var_problems = substitute(doc, ctx.config)
        problems.extend(var_problems)
        if not var_problems:
            problems.extend(_load_document(doc, loaded, ctx))

    seen: dict[tuple[str, str, str], tuple[Resource[Any], Any]] = {}
    for kind_name, resources in loaded.resources.items():
        kind = KINDS[kind_name]()
        for res in resources:
            for key, path in kind.keys(res):
                other = seen.get((kind_name, res.connection, key))
                if other:
                    o_res, o_path = other
                    line, _ = o_res.doc.position(("spec",) + tuple(o_path))
                    problems.append(
                        res.problem(path, f"duplicate identity '{key}': also declared by {o_res.ref} at {o_res.doc.file}:{line}")
                    )
                else:
                    seen[(kind_name, res.connection, key)] = (res, path)
    ctx.problems.clear()
    for kind_cls, conn, resources, scopes in loaded.parts():
        problems.extend(kind_cls().check(resources, scopes, ctx.bind(kind_cls.vendor, conn)))
    problems.extend(ctx.problems)
    ctx.problems.clear()
    if problems:
        raise InputError(_dedupe(problems))
    return loaded


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _connection(doc: Document, env: Envelope, vendor: str, ref: str, ctx: RunContext) -> tuple[str, list[Problem]]:
    """The connection a document targets: ``metadata.connection``, else the environment's, else default."""
    cfg = ctx.config
    name = env.metadata.connection or cfg.default_connection(vendor)
    if name != DEFAULT_CONNECTION and cfg.config.connection(vendor, name) is None:
        known = ", ".join(cfg.config.connection_names(vendor)) or "none"
        return name, [
            doc.problem(
                ("metadata", "connection"), f"no {vendor} connection named '{name}' in the config (known: {known})", resource=ref
            )
        ]
    return name, []


def _load_document(doc: Document, loaded: Loaded, ctx: RunContext) -> list[Problem]:
    if not isinstance(doc.data, dict):
        return [doc.problem((), "a manifest document must be a mapping with apiVersion, kind, metadata and spec")]
    env, problems = validate_model(Envelope, doc.data, doc)
    raw_kind = doc.data.get("kind")
    kind_name = raw_kind if isinstance(raw_kind, str) else ""
    name = ""
    md = doc.data.get("metadata")
    if isinstance(md, dict) and isinstance(md.get("name"), str):
        name = md["name"]
    ref = f"{kind_name}/{name}" if kind_name and name else kind_name
    problems = [Problem(p.file, p.line, p.col, ref, p.field, p.message) for p in problems]
    if env is None:
        return problems
    assert isinstance(env, Envelope)
    if env.apiVersion != API_VERSION:
        problems.append(doc.problem(("apiVersion",), f"unsupported apiVersion (expected {API_VERSION})", resource=ref))
    if env.kind == SCOPE_KIND:
        return problems + _load_scope(doc, env, ref, loaded, ctx)
    kind_cls = KINDS.get(env.kind)
    if kind_cls is None:
        known = ", ".join(sorted([*KINDS, SCOPE_KIND]))
        problems.append(doc.problem(("kind",), f"unknown kind '{env.kind}' (known: {known})", resource=ref))
        return problems
    if env.metadata.incomplete:
        if not problems:
            line, _ = doc.position(("metadata", "incomplete"))
            text = (
                f"{doc.file}:{line}: {ref}: incomplete, not restored: {', '.join(env.metadata.incomplete)} "
                "missing (fill them in, then delete metadata.incomplete)"
            )
            loaded.incomplete.append(text)
            ctx.warnings.append(text)
        return problems
    if env.spec is None:
        problems.append(doc.problem(("spec",), "required field is missing", resource=ref, key=True))
        return problems
    spec, ps = validate_model(kind_cls.Spec, env.spec, doc, prefix=("spec",), resource=ref)
    problems.extend(ps)
    conn, ps = _connection(doc, env, kind_cls.vendor, ref, ctx)
    problems.extend(ps)
    if spec is not None and not problems:
        loaded.resources.setdefault(env.kind, []).append(
            Resource(kind=env.kind, name=env.metadata.name, spec=spec, doc=doc, protected=env.metadata.protected, connection=conn)
        )
    return problems


def _load_scope(doc: Document, env: Envelope, ref: str, loaded: Loaded, ctx: RunContext) -> list[Problem]:
    spec, problems = validate_model(ScopeSpec, env.spec, doc, prefix=("spec",), resource=ref)
    if spec is None:
        return problems
    assert isinstance(spec, ScopeSpec)
    target = KINDS.get(spec.target)
    if target is None or target.Scope is None:
        scoped = ", ".join(sorted(k for k, c in KINDS.items() if c.Scope is not None))
        return problems + [
            doc.problem(("spec", "target"), f"kind '{spec.target}' has no prune scope (scoped kinds: {scoped})", resource=ref)
        ]
    match, ps = validate_model(target.Scope, spec.match, doc, prefix=("spec", "match"), resource=ref)
    problems.extend(ps)
    conn, cps = _connection(doc, env, target.vendor, ref, ctx)
    problems.extend(cps)
    if match is not None and not ps and not cps:
        loaded.scopes.setdefault(spec.target, []).append(
            ScopeDecl(
                name=env.metadata.name, target_kind=spec.target, spec=match, doc=doc, protect=list(spec.protect), connection=conn
            )
        )
    return problems


def digest_files(files: list[Path]) -> str:
    """A digest of the manifests' bytes (paths included), for saved-plan freshness. Files are read
    through the workspace confinement: a file outside the root (or not a regular file) is digested
    as a marker, never by its bytes — a plan file must not carry a hash of a file outside it."""
    h = hashlib.sha256()
    for f in sorted(set(files), key=lambda p: display_path(p)):
        h.update(display_path(f).encode() + b"\0")
        try:
            h.update(confine.read_bytes(f, what="data file"))
        except confine.ConfinementError as exc:
            h.update(b"<unreadable: " + exc.reason.encode() + b">")
        h.update(b"\0")
    return "sha256:" + h.hexdigest()
