"""What a kind gets from the engine for one run: :class:`RunContext` (the config bound to one
connection, options, secrets resolved by reference, keyed fingerprints, vendor clients, progress
and bounded concurrency), :class:`RunOptions`, and the baseline of the last applied plan.

Apart from the kind contract (:mod:`reconciler.kinds.base`): a kind is written against this
context; the engine builds it, binds it per vendor connection and closes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, TypeVar

from reconciler.errors import Problem, SecretError
from reconciler.clients import redact
from reconciler.clients.http import RetryPolicy
from reconciler.manifest.config import Connection, LoadedConfig, credential_refs
from reconciler.manifest.endpoints import check_endpoint
from reconciler.manifest.secret_policy import job_credential_values, manifest_ref_problem
from reconciler.manifest.secrets import Fingerprinter, file_ref_problem, resolve
from reconciler.manifest.yamlload import Document, Path_
from reconciler.kinds.shard import Shard

if TYPE_CHECKING:  # the contract names the context; the context names the contract for typing only
    from reconciler.kinds.base import Kind, Resource

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C")


def document_digest(data: Any) -> str:
    """The content digest of one manifest document (the saved plan's ``resources`` entries)."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:32]


@dataclass
class Baseline:
    """What the last applied saved plan (``--baseline PLANFILE``) tells of the manifests then:
    each document's digest and, for the resources it changed, the kind's ``desired`` payload.
    Kinds whose vendor does not return a field use it to tell a manifest change from no change."""

    resources: dict[str, str] = field(default_factory=dict)
    desired: dict[str, dict[str, Any]] = field(default_factory=dict)
    # this run's digests (the engine sets them once the manifests are loaded; not saved)
    current: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"resources": dict(self.resources), "desired": dict(self.desired)}


@dataclass
class RunOptions:
    force: bool = False
    allow_replace: bool = False
    approve_exposure: bool = False  # --approve-exposure: a plan over an exposure budget may be applied
    targets: tuple[str, ...] = ()
    allowed_endpoints: tuple[str, ...] = ()  # --allow-endpoint (besides RECONCILER_ALLOWED_ENDPOINTS)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    baseline: Baseline | None = None
    # --shard K/N (issue 26): plan and apply only the objects this shard owns (reconciler.kinds.shard)
    shard: Shard | None = None


class RunContext:
    """What kinds get from the engine: config, options, secrets, clients, fingerprints."""

    def __init__(self, *, config: LoadedConfig, options: RunOptions | None = None):
        self.config = config
        self.options = options or RunOptions()
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self._secrets: dict[tuple[str, str, bool], str] = {}  # resolved values by (folder, reference, manifest)
        self._ref_checks: dict[tuple[str, str], str] = {}  # offline: problem ("" none) by (folder, reference)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._fingerprinters: dict[str, Fingerprinter] = {}
        self._children: dict[tuple[str, str], RunContext] = {}
        self.tracked_files: list[Path] = []  # data files kinds read (part of the saved-plan digest)
        self.files_by_resource: dict[str, list[Path]] = {}  # the same, by the document that names them
        # False for an offline ``validate``: references are checked by syntax (and scope) only; no
        # environment variable or secret file is read, and value checks are skipped
        self.resolve_secrets = True
        # progress of long steps (``report``); the CLI sets it to drive a display
        self.on_progress: Callable[[str, int, int | None], None] | None = None
        # "waiting for VENDOR at HOST: WHAT (N s so far)" lines when a vendor is slow (the engine
        # says what it waits for; the CLI prints it on stderr)
        self.on_wait: Callable[[str], None] | None = None
        # set by the engine when the run is stopped (SIGINT/SIGTERM): start no new write
        self.stop = threading.Event()

    def report(self, what: str, done: int, total: int | None = None) -> None:
        """Progress of a long step (``what``: e.g. ``"TcaplusRecords: reading"``); cheap when unused."""
        if self.on_progress is not None:
            self.on_progress(what, done, total)

    def manifest_changed(self, res: Resource[Any]) -> bool | None:
        """Whether ``res``'s document changed since the baseline plan (``None``: no baseline)."""
        b = self.options.baseline
        if b is None:
            return None
        return b.resources.get(res.ref) != b.current.get(res.ref, document_digest(res.doc.data))

    def bind(self, vendor: str, connection: str) -> "RunContext":
        """The context the kinds of ``vendor`` get for one named connection: ``config.providers``
        holds that connection; secrets, problems and tracked files are shared with this context,
        clients and fingerprint keys are the connection's own."""
        with self._lock:
            key = (vendor, connection)
            child = self._children.get(key)
            if child is None:
                child = RunContext(config=self.config.bound(vendor, connection), options=self.options)
                child.problems, child.warnings, child._secrets = self.problems, self.warnings, self._secrets
                child._ref_checks = self._ref_checks
                child.tracked_files, child.files_by_resource = self.tracked_files, self.files_by_resource
                child.resolve_secrets, child.on_progress = self.resolve_secrets, self.on_progress
                child.on_wait = self.on_wait
                child.stop = self.stop
                self._children[key] = child
            return child

    def owns(self, kind: Any, key: str) -> bool:
        """Whether this run's shard (``--shard K/N``) owns the object ``key`` of ``kind`` (a kind
        class or instance) on the bound connection; True when the run is not sharded. For kinds that
        read only what they own (``Kind.shard_aware``)."""
        shard = self.options.shard
        if shard is None:
            return True
        connection = self.config.connection[1] if self.config.connection else "default"
        return shard.owns(kind.kind, connection, kind.shard_unit(key))

    def track_file(self, path: Path, *, resource: str = "") -> None:
        """Declare a data file the desired state depends on (records, player lists); ``resource``
        is the ``KIND/NAME`` of the document that names it (part of that document's digest)."""
        self.tracked_files.append(path)
        self.files_by_resource.setdefault(resource, []).append(path)

    # -- secrets ---------------------------------------------------------------------------
    # Manifest references (documents other than the config) are scoped: they may not name a
    # provider credential (by reference or by value), env names must match
    # settings.manifest_secret_env, and file: references must stay inside the workspace root.
    # Config references may point outside the root (mounted CI secrets). Every resolved value is
    # registered for log redaction.
    def _is_config(self, doc: Document | None) -> bool:
        return doc is not None and self.config.doc is not None and doc is self.config.doc

    def _resolve(self, ref: str, base: Path, *, manifest: bool) -> str:
        cache_key = (str(base), ref, manifest)
        if cache_key not in self._secrets:
            if manifest:
                problem = manifest_ref_problem(ref, self.config, base_dir=base)
                if problem:
                    raise SecretError(problem)
            value = resolve(ref, base_dir=base, confine=manifest)
            redact.register(value)
            if manifest and value in self._credential_values():
                raise SecretError(
                    f"secret reference {ref}: its value is a provider credential; credentials are never sent as resource values"
                )
            self._secrets[cache_key] = value
        return self._secrets[cache_key]

    def _credential_values(self) -> set[str]:
        out = job_credential_values()  # the job's credential variables, whatever the config says
        for ref in credential_refs(self.config.config):
            try:
                out.add(self.config_secret(ref))
            except SecretError:
                continue
        return out

    def resolve_secret(self, doc: Document, path: Path_, ref: str, *, resource: str = "") -> str | None:
        """Resolve ``ref`` (relative to ``doc``'s folder); on failure record a problem at ``path``.
        Offline (``resolve_secrets`` False) nothing is read: a manifest's reference is checked for
        its scope only, and None is returned."""
        if not self.resolve_secrets:
            if not self._is_config(doc):
                # checked once per (folder, reference): a fleet's documents share a few references
                key = (str(doc.base_dir), ref)
                problem = self._ref_checks.get(key)
                if problem is None:
                    problem = (
                        manifest_ref_problem(ref, self.config, base_dir=doc.base_dir)
                        or file_ref_problem(ref, base_dir=doc.base_dir)
                        or ""
                    )
                    self._ref_checks[key] = problem
                if problem:
                    self.problems.append(doc.problem(path, problem, resource=resource))
            return None
        try:
            return self._resolve(ref, doc.base_dir, manifest=not self._is_config(doc))
        except SecretError as exc:
            self.problems.append(doc.problem(path, str(exc), resource=resource))
            return None

    def secret(self, where: Document | Path, ref: str) -> str:
        """A manifest's reference already resolved during ``check`` (or resolve it now, raising on
        failure). ``where`` is the document that names it, or the folder relative references start from."""
        if isinstance(where, Document) and self._is_config(where):
            return self.config_secret(ref)
        base = where.base_dir if isinstance(where, Document) else Path(where)
        return self._resolve(ref, base, manifest=True)

    def secret_for_change(self, source: str, ref: str) -> str:
        """Resolve ``ref`` for a change whose ``source`` is ``file:line`` of its manifest."""
        return self.secret(Path(source.rsplit(":", 1)[0]).parent, ref)

    def config_secret(self, ref: str) -> str:
        """A secret referenced from ``reconciler.yaml`` (relative to the config's folder)."""
        return self._resolve(ref, self.config.base_dir, manifest=False)

    # -- fingerprints ----------------------------------------------------------------------
    def fingerprint_for(self, vendor: str) -> Fingerprinter:
        """Keyed fingerprint of a secret value (key: the fingerprint key — RECONCILER_FINGERPRINT_KEY
        or the trusted settings.fingerprint_key — else derived from the credentials of ``vendor``'s
        connection, so a plan file alone cannot be used to guess a password, and a change to another
        vendor's connection does not change these fingerprints)."""
        return self._fingerprinter(vendor, b"")

    def precondition_fingerprint(self, vendor: str) -> Fingerprinter:
        """Keyed fingerprint of a *live* secret inside a precondition: the same key material as
        :meth:`fingerprint_for`, derived apart, so a desired value's fingerprint in a plan (which a
        pull request chose, e.g. a guessed password) can never be matched against a live one's."""
        return self._fingerprinter(vendor, b"reconciler-precondition-v1\0")

    def _fingerprinter(self, vendor: str, label: bytes) -> Fingerprinter:
        with self._lock:
            cache = vendor + "\0" + label.decode()
            if cache not in self._fingerprinters:
                s = self.config.settings
                if s.fingerprint_key:
                    key = self.config_secret(s.fingerprint_key).encode()
                else:
                    from reconciler.vendor import vendor as vendor_spec

                    spec = vendor_spec(vendor)
                    conn = getattr(self.config.providers, vendor, None) if spec is not None else None
                    refs = spec.keys_of(conn) if spec is not None and conn is not None else []
                    parts = [vendor]
                    for ref in refs:
                        try:
                            parts.append(self.config_secret(ref))
                        except SecretError:
                            parts.append(ref)
                    key = "\0".join(parts).encode()
                self._fingerprinters[cache] = Fingerprinter(label + key)
            return self._fingerprinters[cache]

    def plan_signer(self, connections: list[str]) -> Callable[[bytes], str] | None:
        """The keyed MAC for a saved plan covering ``connections`` ("vendor/name"): keyed with
        settings.fingerprint_key, else with the credentials of those connections (the trusted side
        alone can make one). ``None`` when there is nothing to key it with (a plan of no connection).
        A credential that cannot be resolved is an error, never a public stand-in key."""
        s = self.config.settings
        if s.fingerprint_key:
            key = self.config_secret(s.fingerprint_key).encode()
        else:
            parts = []
            for item in sorted(set(connections)):
                vendor, _, name = item.partition("/")
                from reconciler.vendor import vendor as vendor_spec

                spec = vendor_spec(vendor)
                conn = self.config.config.connection(vendor, name) if spec is not None else None
                if spec is None or conn is None:
                    raise SecretError(f"plan signature: no {vendor} connection named '{name}' in the config")
                parts += [item + "\0" + self.config_secret(ref) for ref in spec.keys_of(conn)]
            if not parts:
                return None
            key = "\0".join(parts).encode()
        return Fingerprinter(b"reconciler-plan-signature-v1\0" + key)

    def live_fingerprint(self, obj: Any) -> str:
        """A content fingerprint of a normalised live object (for saved-plan staleness checks).
        Secret values inside ``obj`` must already be replaced by keyed fingerprints."""
        blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:32]

    # -- clients ---------------------------------------------------------------------------
    def client(self, kind_cls: type[Kind[Any, C]]) -> C:
        """The vendor client of ``kind_cls`` for this context's connection (one per vendor, made by
        the kind's :meth:`~reconciler.kinds.base.Kind.make_client` once the endpoint is approved)."""
        with self._lock:
            if kind_cls.vendor not in self._clients:
                # credentials only to approved hosts: checked before the client exists
                check_endpoint(self.config, kind_cls.vendor, allowed=self.options.allowed_endpoints)
                self._clients[kind_cls.vendor] = kind_cls.make_client(self)
            client: C = self._clients[kind_cls.vendor]
            return client

    def close(self) -> None:
        for child in self._children.values():
            child.close()
        self._children.clear()
        for c in self._clients.values():
            close = getattr(c, "close", None)
            if close:
                close()
        self._clients.clear()

    @staticmethod
    def retry_policy(connection: Connection) -> RetryPolicy:
        """The client retry policy a provider's connection settings ask for."""
        return RetryPolicy(attempts=connection.retry_attempts, wait_initial=connection.retry_wait_initial)

    # -- concurrency -----------------------------------------------------------------------
    @staticmethod
    def map(
        fn: Callable[[T], R], items: Iterable[T], *, concurrency: int, progress: tuple["RunContext", str] | None = None
    ) -> list[R]:
        """``[fn(x) for x in items]`` with at most ``concurrency`` in flight; order kept.
        ``progress=(ctx, what)`` reports each finished item through ``ctx.report``."""
        items = list(items)
        if progress is not None:
            pctx, what = progress
            done = itertools.count(1)
            total = len(items)
            inner = fn

            def fn(x: T) -> R:
                result = inner(x)
                pctx.report(what, next(done), total)
                return result

        if concurrency <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        # workers take the next item from one shared cursor and store results by index: no
        # future per item and no wake-up of this thread per result (GIL hand-offs that cost
        # client CPU at fleet scale). After a failure no new item starts; the failure of the
        # earliest item is raised, as a sequential loop would.
        results: list[Any] = [None] * len(items)
        errors: dict[int, BaseException] = {}
        cursor = iter(range(len(items)))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if errors:
                        return
                    i = next(cursor, None)
                if i is None:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                    with lock:
                        errors[i] = exc

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(concurrency, len(items)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[min(errors)]
        return results

    @staticmethod
    async def amap(
        fn: Callable[[T], Awaitable[R]], items: Iterable[T], *, concurrency: int, progress: tuple["RunContext", str] | None = None
    ) -> list[R]:
        """:meth:`map` on the running event loop: at most ``concurrency`` of ``fn(x)`` awaited at
        once, order kept; after a failure no new item starts and the earliest failure is raised."""
        items = list(items)
        results: list[Any] = [None] * len(items)
        errors: dict[int, Exception] = {}
        cursor = iter(range(len(items)))
        done = itertools.count(1)

        async def worker() -> None:
            while not errors:
                i = next(cursor, None)
                if i is None:
                    return
                try:
                    results[i] = await fn(items[i])
                except Exception as exc:  # noqa: BLE001 - re-raised below, the earliest first
                    errors[i] = exc
                    return
                if progress is not None:
                    progress[0].report(progress[1], next(done), len(items))

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
        if errors:
            raise errors[min(errors)]
        return results
