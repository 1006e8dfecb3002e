"""A run's set-up: config (real or sandbox), context, manifests, digests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine.load import Loaded, digest_files, display_path, load_manifests
from reconciler.errors import InputError, Problem
from reconciler.kinds.base import RunContext, RunOptions
from reconciler.clients import redact
from reconciler.manifest import confine
from reconciler.manifest.config import Config, LoadedConfig, config_model, is_vendor, load_config, vendor_names
from reconciler.manifest.trusted import apply_trusted_connections
from reconciler.manifest.validate import validate_model
from reconciler.manifest import yamlload
from reconciler.manifest.yamlload import Document, Path_


@dataclass
class Session:
    config: LoadedConfig
    ctx: RunContext
    paths: list[Path]
    sandbox: Any = None  # a running reconciler.sandbox.serve.Sandbox
    loaded: Loaded | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Loaded:
        self.loaded = load_manifests(self.paths, self.ctx)
        return self.loaded

    def digest(self) -> dict[str, str]:
        assert self.loaded is not None
        files = list(self.loaded.files) + list(self.ctx.tracked_files)
        return {
            "manifests": digest_files(files),
            "config": digest_files([self.config.path]) if self.config.path else "none",
        }

    def resource_digests(self) -> dict[str, str]:
        """Content digests of every manifest document (resources and prune scopes), by
        ``KIND/NAME``, each covering the data files the document names (records, player lists) —
        the baseline a drift run compares against, and what a saved plan's freshness is judged by."""
        assert self.loaded is not None
        docs = [(r.ref, r.doc) for rs in self.loaded.resources.values() for r in rs]
        docs += [(sc.ref, sc.doc) for scs in self.loaded.scopes.values() for sc in scs]
        out = {}
        for ref, doc in docs:
            h = hashlib.sha256(json.dumps(doc.data, sort_keys=True, default=str).encode())
            files = self.ctx.files_by_resource.get(ref, [])
            if files:
                h.update(digest_files(files).encode())
            out[ref] = "sha256:" + h.hexdigest()[:32]
        return out

    def config_digests(self) -> dict[str, str]:
        """Digests of the config's parts a change can depend on: each ``providers.<vendor>``
        section as written (with the content of the files it names: ``VendorSpec.config_files``,
        e.g. table schemas) and ``settings``."""
        from reconciler.vendor import vendors

        data = self.config.doc.data if self.config.doc is not None and isinstance(self.config.doc.data, dict) else {}
        raw_providers = data.get("providers")
        providers = raw_providers if isinstance(raw_providers, dict) else {}
        out = {}
        for vendor, spec in vendors().items():
            h = hashlib.sha256(json.dumps(providers.get(vendor), sort_keys=True, default=str).encode())
            conn = getattr(self.config.providers, vendor, None)
            if spec.config_files is not None and conn is not None:
                h.update(digest_files([f for _where, f in spec.config_files(conn, self.config.base_dir)]).encode())
            out[f"providers.{vendor}"] = "sha256:" + h.hexdigest()[:32]
        out["settings"] = (
            "sha256:" + hashlib.sha256(json.dumps(data.get("settings"), sort_keys=True, default=str).encode()).hexdigest()[:32]
        )
        return out

    def connections_digest(self, connections: list[str]) -> str:
        """A digest of the settings of ``connections`` ("vendor/name") as this run uses them — the
        trusted ones under RECONCILER_CONNECTIONS_FROM: base URL, ids, credential references (a
        ``file:`` reference by its file name: the trusted file's folder differs between runs) and
        the vendor's own settings (tables, ...). A saved plan binds it under its signature, so it applies only where it
        was made (with the environment it names)."""
        out: dict[str, Any] = {}
        for item in sorted(set(connections)):
            vendor, _, name = item.partition("/")
            conn = self.config.config.connection(vendor, name) if is_vendor(vendor) else None
            dumped = _stable_refs(conn.model_dump(mode="json", exclude_none=True)) if conn is not None else None
            if dumped is not None and self.sandbox is not None:
                dumped["base_url"] = "sandbox"  # the emulators listen on a new port each run
            out[item] = dumped
        blob = json.dumps({"environment": self.config.env, "connections": out}, sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:32]

    def close(self) -> None:
        confine.set_root(None)
        yamlload.end_run()
        self.ctx.close()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None


def _stable_refs(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _stable_refs(v) for k, v in data.items()}
    if isinstance(data, str) and data.startswith("file:"):
        return "file:" + Path(data[5:]).name
    return data


class _Sandboxes:
    """The emulators of a sandbox run: one set for the default connections, one per named
    connection (its own state under ``connections/<name>/``), so two connections never share
    live state — as two real accounts would not."""

    def __init__(self) -> None:
        self.running: list[Any] = []

    def stop(self) -> None:
        for sbx in self.running:
            sbx.stop()
        self.running.clear()


def _sandbox_config(config_path: Path | None, state_dir: Path, env: str | None = None) -> tuple[LoadedConfig, Any]:
    from reconciler.sandbox.serve import Sandbox

    user = load_config(config_path, required=False, env=env)
    check_config_files(user)  # the emulators read them: the same confinement as a real run
    sandboxes = _Sandboxes()

    def start(folder: Path, name: str | None) -> Any:
        sbx = Sandbox(folder, **sandbox_options(user, name)).start()
        sandboxes.running.append(sbx)
        return sbx

    try:
        data = user.config.model_dump(exclude_none=True)
        data["providers"] = start(state_dir, None).providers()
        named = user.config.connections
        for name in sorted({n for vendor in vendor_names() for n in getattr(named, vendor)}):
            served = start(state_dir / "connections" / name, name).providers()
            for vendor in vendor_names():
                if name in getattr(named, vendor):
                    data["connections"][vendor][name] = served[vendor]
    except BaseException:
        sandboxes.stop()
        raise
    doc = Document(file=str(config_path or "<sandbox>"), index=0, data=data)
    model, problems = validate_model(config_model(), data, doc, resource="Config")
    if problems:
        sandboxes.stop()
        raise InputError(problems)
    assert isinstance(model, Config)
    return LoadedConfig(model, path=user.path, doc=user.doc, env=env), sandboxes


def sandbox_options(user: LoadedConfig, name: str | None) -> dict[str, Any]:
    """What the user's config asks of the emulators of connection ``name`` (``None``: the default
    ones): each vendor's ``VendorSandbox.options_from_config`` of that connection's section (a named
    connection a vendor lacks falls back to the vendor's default connection)."""
    from reconciler.vendor import vendors

    out: dict[str, Any] = {}
    for vendor, spec in vendors().items():
        if spec.sandbox is None:
            continue
        section = getattr(user.config.connections, vendor).get(name) if name is not None else None
        section = section or getattr(user.providers, vendor)
        out.update(spec.sandbox.options_from_config(section, user.base_dir) if section is not None else {})
    return out


def workspace_root(config_path: Path | None, root: Path | None = None) -> Path:
    """The folder every file named by manifests and config must stay in: ``--root``, else the
    config file's folder (as written, not where a symlink points), else the working directory."""
    if root is not None:
        return Path(os.path.abspath(root))
    if config_path is not None:
        return Path(os.path.abspath(config_path)).parent
    return Path.cwd()


def enter_workspace(config_path: Path | None, root: Path | None = None) -> Path:
    """Set the process-wide confinement root for a run and return it."""
    r = workspace_root(config_path, root)
    confine.set_root(r)
    yamlload.start_run()  # the run's YAML budget (aliases, values, expanded size) starts full
    return r


def check_config_files(cfg: LoadedConfig) -> None:
    """Every file a connection names (``VendorSpec.config_files``, e.g. a table's ``.proto``)
    resolves inside the workspace root."""
    from reconciler.vendor import vendors

    problems = []
    for vendor, spec in vendors().items():
        if spec.config_files is None:
            continue
        sections: list[tuple[Path_, Any]] = [(("providers", vendor), getattr(cfg.providers, vendor))]
        sections += [(("connections", vendor, n), c) for n, c in sorted(getattr(cfg.config.connections, vendor).items())]
        for prefix, conn in sections:
            if conn is None:
                continue
            for where_in, path in spec.config_files(conn, cfg.base_dir):
                try:
                    confine.check(path, what="proto" if path.suffix == ".proto" else "config file")
                except confine.ConfinementError as exc:
                    where = prefix + where_in
                    if cfg.doc is not None:
                        problems.append(cfg.doc.problem(where, exc.reason, resource="Config"))
                    else:
                        problems.append(Problem(str(cfg.path), 1, 1, "Config", ".".join(where), exc.reason))
    if problems:
        raise InputError(problems)


def open_session(
    *,
    paths: list[Path],
    config_path: Path,
    sandbox: bool,
    options: RunOptions,
    state_dir: Path | None = None,
    env: str | None = None,
    root: Path | None = None,
) -> Session:
    from reconciler.sandbox.serve import DEFAULT_STATE_DIR

    enter_workspace(config_path, root)
    redact.install()
    try:
        if sandbox:
            cfg, sbx = _sandbox_config(config_path if config_path.exists() else None, state_dir or DEFAULT_STATE_DIR, env)
        else:
            cfg, sbx = load_config(config_path, env=env), None
            cfg = apply_trusted_connections(cfg)
    except BaseException:
        confine.set_root(None)  # the session will not be closed: leave no root behind
        raise
    return Session(config=cfg, ctx=RunContext(config=cfg, options=options), paths=paths, sandbox=sbx)


def shown_paths(paths: list[Path]) -> list[str]:
    return [display_path(p) for p in paths]
