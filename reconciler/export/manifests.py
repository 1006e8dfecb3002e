"""``reconciler export manifests``: live state written back as manifests (DR backups, adoption).

The engine owns the algorithm; each kind fills its ``export`` hook (``Kind.export``) and returns
documents, data files and notes. This module:

- asks every registered kind whose provider is configured for its live objects, telling it what
  the manifests under PATH declare (which scopes, tables, index keys and agents to read, and with
  ``--unmanaged`` what to leave out);
- turns secret values an API returned (BestProxy passwords) into references: ``file:`` references
  to files of mode 0600 under ``--secrets-dir``, otherwise ``env:NAME`` references plus the list
  of names to set (``SECRETS-TO-SET.txt``, names only);
- writes one YAML file per kind or scope in a stable order, with comments for what only the
  server knows, copies the prune scopes (unless ``--unmanaged``) and refuses to write a byte that
  holds a provider credential;
- writes an object whose spec is not valid without fields the vendor did not return as
  *incomplete*: what is known, a comment naming the missing fields and ``metadata.incomplete``
  listing them. validate, plan and apply skip such a document with a warning (it is not restored)
  and restore the others; its live object is added to the ``protect`` list of the copied prune
  scopes of its kind, so a plan of the export never prunes it meanwhile.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler import safeio
from reconciler.clients import redact
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds import KINDS
from reconciler.vendor import title, vendors
from reconciler.manifest import confine
from reconciler.model import DEFAULT_CONNECTION
from reconciler.kinds.shard import Shard
from reconciler.kinds.base import ExportDoc, ExportFile, ExportGroup, ExportRequest, KindExport, RunContext, ScopeDecl

API_VERSION = "reconciler/v1"
SECRETS_LIST = "SECRETS-TO-SET.txt"
SCOPES_FILE = "prune-scopes.yaml"


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Block style for mappings, flow style for lists and mappings of scalars; lists indented."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


class _Flow(dict):  # type: ignore[type-arg]
    """A mapping written on one line (a record, an allowlist entry)."""


class _FlowList(list):  # type: ignore[type-arg]
    """A list of scalars written on one line (machine types, tags)."""


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _styled(value: Any, *, in_list: bool = False) -> Any:
    """Block mappings, one-line list items and scalar lists: the way people write manifests."""
    if isinstance(value, dict):
        items = {k: _styled(v) for k, v in value.items()}
        return _Flow(items) if in_list else items
    if isinstance(value, list):
        if all(not isinstance(x, (dict, list)) for x in value):
            return _FlowList(value)
        return [_styled(x, in_list=True) for x in value]
    return value


def dump_yaml(data: Any) -> str:
    return str(
        yaml.dump(_styled(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)
    )


def _comment(lines: list[str], indent: str = "") -> list[str]:
    out = []
    for line in lines:
        for part in str(line).splitlines() or [""]:
            out.append(f"{indent}# {part}".rstrip())
    return out


def render_doc(doc: ExportDoc) -> str:
    """One YAML document with its comments (above, at the end of spec lines, for missing fields)."""
    meta: dict[str, Any] = {"name": doc.name}
    if doc.connection is not None:
        meta["connection"] = doc.connection
    if doc.protected:
        meta["protected"] = True
    comments = list(doc.comments)
    if doc.incomplete:
        meta["incomplete"] = list(doc.incomplete)
        comments.insert(0, incomplete_comment(doc))
    head = dump_yaml({"apiVersion": API_VERSION, "kind": doc.kind, "metadata": meta})
    lines = _comment(comments) + head.rstrip("\n").splitlines() + ["spec:"]
    body = dump_yaml(doc.spec).rstrip("\n").splitlines() if doc.spec else []
    for line in body:
        key = line.split(":", 1)[0] if line and not line[0].isspace() and not line.startswith("-") else None
        text = f"  {line}"
        if key in doc.field_comments:
            text += f"  # {doc.field_comments[key]}"
        lines.append(text)
    for key, why in doc.missing.items():
        lines.append(f"  # {key}: ({why})")
    return "\n".join(lines) + "\n"


def incomplete_comment(doc: ExportDoc) -> str:
    kind_cls = KINDS.get(doc.kind)
    vendor = title(kind_cls.vendor) if kind_cls else "the vendor"
    missing = [f for f in doc.incomplete if f in doc.missing]
    invalid = [f for f in doc.incomplete if f not in doc.missing]
    said = " and ".join(
        part
        for part in (
            f"{vendor} did not return {', '.join(missing)}" if missing else "",
            f"returned {', '.join(invalid)} not valid in a manifest" if invalid else "",
        )
        if part
    )
    return (
        f"incomplete: {said}; fill these in before restoring, then delete metadata.incomplete (until then "
        "validate, plan and apply skip this object: it is not restored)"
    )


def incomplete_fields(doc: ExportDoc) -> list[str]:
    """The fields that keep ``doc`` from being a valid manifest: every field the vendor did not
    return, when the spec is not valid without them (empty when it is: a write-only optional field
    the vendor does not return leaves the object restorable)."""
    kind_cls = KINDS.get(doc.kind)
    if kind_cls is None or kind_cls.Spec is None:
        return []
    try:
        kind_cls.Spec.model_validate(doc.spec)
    except ValidationError as exc:
        bad = [str(e["loc"][0]) for e in exc.errors() if e.get("loc")]
        return list(dict.fromkeys([*doc.missing, *bad])) or ["spec"]
    return []


def render_group(group: ExportGroup) -> str:
    parts = []
    header = "\n".join(_comment(group.header))
    for i, doc in enumerate(group.docs):
        text = render_doc(doc)
        parts.append(text if i == 0 else "---\n" + text)
    return (header + "\n" if header else "") + "".join(parts)


def _scope_doc(scope: ScopeDecl, protect: list[str] | None = None) -> str:
    data = dict(scope.doc.data)
    if protect:
        spec = dict(data.get("spec") or {})
        spec["protect"] = list(dict.fromkeys([*(spec.get("protect") or []), *protect]))
        data["spec"] = spec
    return dump_yaml(data)


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "SECRET"


@dataclass
class ExportResult:
    out_dir: Path
    files: list[str] = field(default_factory=list)  # relative paths written (manifests and data)
    secret_files: list[str] = field(default_factory=list)
    env_names: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # documents per kind
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # "KIND/NAME in PATH: missing fields" (not restorable as written)


def env_prefix(patterns: list[str]) -> str:
    """A prefix whose names ``settings.manifest_secret_env`` lets manifests reference (the first
    ``PREFIX*`` pattern; ``RECONCILER_`` when there is none)."""
    for pattern in patterns:
        if pattern.endswith("*") and re.fullmatch(r"[A-Z0-9_]+", pattern[:-1] or "-"):
            return pattern[:-1]
    return "RECONCILER_"


class _Secrets:
    """Secret values an API returned, as references; values only ever go to ``--secrets-dir``."""

    def __init__(self, out_dir: Path, secrets_dir: Path | None, prefix: str = "RECONCILER_"):
        self.out_dir = out_dir
        self.secrets_dir = secrets_dir
        self.prefix = prefix
        self.values: dict[str, str] = {}  # file or env name -> value

    def ref(self, manifest_path: str, name: str, value: str) -> str:
        redact.register(value)  # a password read from an API never reaches a log line either
        base = (
            self.prefix + _env_name(name)
            if self.secrets_dir is None
            else re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "secret"
        )
        unique, n = base, 2
        while unique in self.values and self.values[unique] != value:
            unique, n = f"{base}{'_' if self.secrets_dir is None else '-'}{n}", n + 1
        self.values[unique] = value
        if self.secrets_dir is None:
            return f"env:{unique}"
        manifest_dir = (self.out_dir / manifest_path).parent
        rel = os.path.relpath(self.secrets_dir / unique, manifest_dir)
        return "file:" + PurePosixPath(*Path(rel).parts).as_posix()


def _prefixed_ref(secrets: _Secrets, prefix: str) -> Any:
    def ref(manifest_path: str, name: str, value: str) -> str:
        return secrets.ref(prefix + manifest_path, f"{prefix.strip('/')}-{name}" if prefix else name, value)

    return ref


def _forbidden_values(ctx: RunContext) -> list[str]:
    """Provider credentials (and the fingerprint key): long random strings that no export may hold.
    Passwords an API returns are not in this list: they only ever reach ``secret_ref`` (the
    kinds never put them in a spec), and a short password equal to, say, a username or a remark
    must not make a backup impossible."""
    values: list[str] = []
    cfg = ctx.config.config
    refs: list[str | None] = []
    specs = vendors()
    for vendor, _name, conn in cfg.all_connections():
        refs += specs[vendor].credentials_of(conn)  # every credential the vendor declares
    if ctx.config.settings.fingerprint_key:
        refs.append(ctx.config.settings.fingerprint_key)
    for ref in refs:
        if ref:
            try:
                values.append(ctx.config_secret(ref))
            except ReconcilerError:
                pass
    return sorted({x for x in values if len(x) >= 4}, key=len, reverse=True)


def _check_clean(path: str, text: str, forbidden: list[str]) -> None:
    for value in forbidden:
        if value in text:
            raise UsageError(
                f"export: {path} would contain a provider credential; nothing was written "
                "(live data holds the value of a credential: rotate it)"
            )


def export_manifests(
    *,
    resources: dict[str, list[Any]],
    scopes: dict[str, list[ScopeDecl]],
    ctx: RunContext,
    out_dir: Path,
    secrets_dir: Path | None = None,
    unmanaged: bool = False,
    targets: tuple[str, ...] = (),
    extra: dict[str, list[Any]] | None = None,
    shard: Shard | None = None,
) -> ExportResult:
    """Read live state of every kind and write it under ``out_dir`` (which must be empty or new).
    ``shard`` (``--shard K/N``): write only the documents (with their data files) shard K owns —
    by kind, connection and document name — and the prune scopes in shard 1, so the N folders
    together hold the unsharded export, each document once. Every shard reads the live state."""
    safeio.check_folder(out_dir)  # before reading anything: no symlink on the way (refused when writing too)
    if secrets_dir is not None:
        safeio.check_folder(secrets_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"--out {out_dir}: the folder is not empty; export into a new folder")
    if secrets_dir is not None:
        if secrets_dir.exists() and (not secrets_dir.is_dir() or any(secrets_dir.iterdir())):
            raise UsageError(f"--secrets-dir {secrets_dir}: the folder is not empty; use a new folder")
        out_abs, sec_abs = out_dir.resolve(), secrets_dir.resolve()
        if sec_abs == out_abs or out_abs in sec_abs.parents:
            raise UsageError("--secrets-dir must not be inside --out (the manifests are shared; the secrets are not)")
        root = confine.get_root()
        if root is not None and not (sec_abs == root or root in sec_abs.parents):
            raise UsageError(
                f"--secrets-dir {secrets_dir}: manifests may reference files only inside the workspace "
                f"root ({root}); use a folder there that git ignores, e.g. .reconciler/dr-secrets"
            )
    patterns = ctx.config.settings.manifest_secret_env
    secrets = _Secrets(out_dir.resolve(), secrets_dir.resolve() if secrets_dir else None, env_prefix(patterns))
    request = ExportRequest(unmanaged=unmanaged, secret_ref=secrets.ref, extra={k: list(v) for k, v in (extra or {}).items()})
    result = ExportResult(out_dir=out_dir)
    exports: list[tuple[str, KindExport]] = []
    protect: dict[tuple[str, str], list[str]] = {}  # (kind, connection) -> live objects of incomplete documents
    for kind_cls in sorted(KINDS.values(), key=lambda k: (k.apply_order, k.kind)):
        vendor = kind_cls.vendor
        names = ctx.config.config.connection_names(vendor)
        if not names:
            result.notes.append(f"{kind_cls.kind}: no {vendor} connection is configured; not exported")
        for conn in names:
            # a named connection's files go under <name>/, its documents say metadata.connection
            prefix = "" if conn == DEFAULT_CONNECTION else f"{conn}/"
            explicit = conn != DEFAULT_CONNECTION or ctx.config.default_connection(vendor) != DEFAULT_CONNECTION
            conn_request = replace(request, secret_ref=_prefixed_ref(secrets, prefix))
            ke = kind_cls().export(
                [r for r in resources.get(kind_cls.kind, []) if r.connection == conn],
                [s for s in scopes.get(kind_cls.kind, []) if s.connection == conn],
                ctx.bind(vendor, conn),
                conn_request,
            )
            for g in ke.groups:
                g.path = prefix + g.path
                for d in g.docs:
                    d.connection = conn if explicit else None
                    d.incomplete = incomplete_fields(d)
                    if d.incomplete and d.protect_key:
                        protect.setdefault((kind_cls.kind, conn), []).append(d.protect_key)
            for f in ke.files:
                f.path = prefix + f.path
            exports.append((kind_cls.kind, ke))
            result.notes.extend(f"{n} (connection {conn})" if prefix else n for n in ke.notes)
    if targets:
        _filter_targets(exports, targets)
    if shard is not None:
        _filter_shard(exports, shard)

    texts: dict[str, str] = {}
    for kind, ke in exports:
        for g in ke.groups:
            if not g.docs and not g.keep:
                continue
            texts[g.path] = texts.get(g.path, "") + ("---\n" if g.path in texts else "") + render_group(g)
            if g.docs:
                result.counts[kind] = result.counts.get(kind, 0) + len(g.docs)
            result.incomplete += [f"{d.ref} in {g.path}: {', '.join(d.incomplete)}" for d in g.docs if d.incomplete]
        for f in ke.files:
            texts[f.path] = f.text
    if not unmanaged and not targets and (shard is None or shard.k == 1):
        scope_docs = [_scope_doc(s, protect.get((s.target_kind, s.connection))) for _, ss in sorted(scopes.items()) for s in ss]
        if scope_docs:
            head = (
                "# Prune scopes copied from the manifests the export read: inside them, live objects\n"
                "# that no manifest declares are deleted.\n"
            )
            if protect:
                head += (
                    "# protect also lists the live objects of incomplete documents (metadata.incomplete): "
                    "skipped until\n# filled in, they are kept from pruning meanwhile.\n"
                )
            texts[SCOPES_FILE] = head + "---\n".join(scope_docs)
    if secrets.secrets_dir is None and secrets.values:
        if not any(fnmatchcase(n, p) for n in secrets.values for p in patterns):
            result.notes.append(
                f"settings.manifest_secret_env ({', '.join(patterns) or 'none'}) does not allow "
                f"{secrets.prefix}* names: add {secrets.prefix}* to it before planning the export"
            )
        lines = [
            "# Environment variables the exported manifests reference (env:NAME).",
            "# Set each to the secret's value before plan or apply; the values are not part of the export.",
            *sorted(secrets.values),
        ]
        texts[SECRETS_LIST] = "\n".join(lines) + "\n"
        result.env_names = sorted(secrets.values)

    forbidden = _forbidden_values(ctx)
    root = out_dir.resolve()
    for path, text in texts.items():
        _check_clean(path, text, forbidden)
        if root not in (root / path).resolve().parents:
            raise UsageError(f"export: {path} is outside --out; nothing written (report this as a bug)")
    # every file through safeio: folders made and entered without following a symlink (one is
    # refused), each file a new file renamed over its name (a symlink there is replaced)
    safeio.ensure_dir(out_dir)
    for path, text in sorted(texts.items()):
        safeio.write_text(out_dir / path, text, create_parents=True)
        result.files.append(path)
    if secrets.secrets_dir is not None and secrets.values:
        safeio.ensure_dir(secrets.secrets_dir, mode=0o700, chmod=0o700)
        for name, value in sorted(secrets.values.items()):
            safeio.write_text(secrets.secrets_dir / name, value + "\n", mode=0o600)
            result.secret_files.append(name)
    return result


def _filter_shard(exports: list[tuple[str, KindExport]], shard: Shard) -> None:
    for _, ke in exports:
        dropped: set[str] = set()
        for g in ke.groups:
            kept = [d for d in g.docs if shard.owns(d.kind, d.connection or DEFAULT_CONNECTION, d.name)]
            dropped.update(d.ref for d in g.docs if d not in kept)
            g.docs = kept
            g.keep = g.keep and shard.k == 1  # a file of comments only: written once
        ke.files = [f for f in ke.files if f.ref not in dropped and (f.ref or shard.k == 1)]


def _filter_targets(exports: list[tuple[str, KindExport]], targets: tuple[str, ...]) -> None:
    matched: set[str] = set()
    for _, ke in exports:
        for g in ke.groups:
            kept = [d for d in g.docs if d.ref in targets]
            matched.update(d.ref for d in kept)
            g.docs = kept
        ke.files = [f for f in ke.files if f.ref in targets]
    missing = [t for t in targets if t not in matched]
    if missing:
        raise UsageError(f"--target {', '.join(missing)}: no exported object has this KIND/NAME")


__all__ = ["ExportFile", "ExportResult", "dump_yaml", "export_manifests", "render_doc", "render_group"]
