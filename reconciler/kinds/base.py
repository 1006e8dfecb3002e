"""The kind contract: the unit of extension (DESIGN.md "Layers").

A kind is one class, ``class MyKind(Kind[MySpec, MyClient])``, listed by its vendor's
:class:`reconciler.vendor.VendorSpec` (``kinds``). ``MySpec`` is the pydantic model of a document's
``spec``; ``MyClient`` the vendor client the kind calls. The engine owns everything around the kind:
loading and envelope validation, duplicate identities, secret problems, ``--target``, thresholds,
ordering, saved plans, journals, rendering. It calls the kind's hooks with all of the kind's
documents of one vendor connection at once, so a kind can coalesce reads and batch writes.

Class attributes (required):

- ``kind`` — the manifest ``kind`` name; ``vendor`` — the vendor package's name;
- ``Spec`` — the spec model (``extra="forbid"``; vendor constraints as types);
- ``Scope`` — the model of a ``PruneScope``'s ``spec.match`` for this kind, or ``None`` (no pruning).

Hooks (``ctx`` is the :class:`~reconciler.kinds.context.RunContext` bound to the connection):

- ``make_client(ctx) -> ClientT`` (required, a classmethod) — build the vendor client from
  ``ctx.config``; resolve credentials with ``ctx.config_secret``. Kinds never call it: they ask
  ``ctx.client(type(self))``, which checks the endpoint is approved first and makes one per vendor;
- ``keys(res)`` — the identities a document declares (one for most kinds, one per record for
  TcaplusRecords) so the engine can reject two documents declaring the same object;
- ``check(resources, scopes, ctx)`` — validation that needs other documents or the config (no API
  call); resolve secret references here with ``ctx.resolve_secret`` so a bad reference is an input
  error; return every problem at once;
- ``plan(resources, scopes, ctx)`` (required) — read live state (coalesced; "not found" is an absent
  entry), normalise it, diff by keyed ``==`` and return a :class:`~reconciler.model.KindPlan`; every
  change carries a ``precondition`` (a fingerprint of the live object via ``ctx.live_fingerprint``,
  or a vendor version). An undeclared live object is decided by
  :func:`reconciler.kinds.prune.undeclared` (unmanaged, protected by a scope, or delete);
- ``apply(changes, ctx)`` (required) — make the calls (batched, idempotent: an unknown outcome is
  read back by key before any repeat, :mod:`reconciler.kinds.writes`) and return one
  :class:`~reconciler.model.Outcome` per change;
- ``export(resources, scopes, ctx, request)`` — live objects as manifest documents (DR, adoption).

Optional abilities, each off by default: ``apply_units`` and ``ordered_units`` (writes batched
across changes), ``streams`` with ``apply_stream`` (many writes from one event loop),
``precondition_in_write`` (the write itself enforces the plan's precondition), ``progress_label``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from reconciler.model import Change, KindPlan, Outcome
from reconciler.errors import Problem, ReconcilerError
from reconciler.kinds.context import Baseline, RunContext, RunOptions, document_digest
from reconciler.manifest.yamlload import Document, Path_

__all__ = [
    "Baseline",
    "ClientT",
    "ExportDoc",
    "ExportFile",
    "ExportGroup",
    "ExportRequest",
    "Kind",
    "KindExport",
    "Resource",
    "RunContext",
    "RunOptions",
    "ScopeDecl",
    "SpecT",
    "aoutcome_of",
    "document_digest",
    "outcome_of",
]

SpecT = TypeVar("SpecT", bound=BaseModel)
"""A kind's spec model."""
ClientT = TypeVar("ClientT")
"""A kind's vendor client."""


@dataclass
class Resource(Generic[SpecT]):
    """One validated manifest document; ``spec`` is an instance of its kind's ``Spec``."""

    kind: str
    name: str
    spec: SpecT
    doc: Document
    protected: bool = False  # metadata.protected: never delete (prune or replace)
    connection: str = "default"  # the named connection of the kind's vendor it targets

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def source(self) -> str:
        line, _ = self.doc.position(())
        return f"{self.doc.file}:{line}"

    def problem(self, spec_path: Path_, message: str, *, key: bool = False) -> Problem:
        return self.doc.problem(("spec",) + tuple(spec_path), message, resource=self.ref, key=key)


@dataclass
class ScopeDecl:
    """A ``PruneScope`` document: inside it, live objects no manifest declares are deleted."""

    name: str
    target_kind: str
    spec: Any  # the target kind's Scope instance (what ``spec.match`` says)
    doc: Document
    protect: list[str] = field(default_factory=list)  # identities never deleted, even inside the scope
    connection: str = "default"

    @property
    def ref(self) -> str:
        return f"PruneScope/{self.name}"


class Kind(ABC, Generic[SpecT, ClientT]):
    """The contract a kind implements (see the module documentation)."""

    kind: ClassVar[str]
    vendor: ClassVar[str]
    Spec: type[SpecT]  # set on the class (a ClassVar cannot name a type variable)
    Scope: ClassVar[type[BaseModel] | None] = None
    apply_order: ClassVar[int] = 100
    # True when saved-plan preconditions are enforced by the write itself (TcaplusDB version check)
    precondition_in_write: ClassVar[bool] = False

    def keys(self, res: Resource[SpecT]) -> list[tuple[str, Path_]]:
        return [(res.name, ())]

    # -- sharded runs (issue 26) ----------------------------------------------------------------
    # A sharded run (``--shard K/N``) plans and applies the objects whose *unit* hashes to shard K
    # (reconciler.kinds.shard.owner). The unit keeps one vendor object in one shard: an allowlist
    # with all its entries, an event with its players. By default the engine plans the kind in
    # full (every manifest, every live object of its scopes, so prune decisions see every
    # declaration) and keeps the changes and unmanaged objects the shard owns; its counts
    # (unchanged, existing in scope) are then the whole kind's, the same in every shard. A kind
    # that sets ``shard_aware`` reads and plans only what ``ctx.owns`` says it owns and counts
    # only that (its counts add up over the shards), still deleting nothing any document declares.
    shard_aware: ClassVar[bool] = False

    @classmethod
    def shard_unit(cls, key: str) -> str:
        """The unit of the object ``key`` (a change's or an unmanaged object's key): objects of one
        unit always belong to one shard. Default: the identity itself."""
        return key

    def declared_identities(self, resources: list[Resource[SpecT]], ctx: RunContext) -> set[str]:
        """The object identities (change keys) the documents declare: a sharded plan refuses a
        delete of any of them, and ``plan merge`` checks coverage against them. Default: ``keys``."""
        return {key for r in resources for key, _ in self.keys(r)}

    def check(self, resources: list[Resource[SpecT]], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        return []

    @abstractmethod
    def plan(self, resources: list[Resource[SpecT]], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan: ...

    @abstractmethod
    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]: ...

    # Units of work the engine may apply (and journal, and report) separately. By default every
    # change is its own unit and units are independent (the engine runs them concurrently within
    # the vendor's concurrency); a kind that batches writes across changes returns larger units
    # and sets ``ordered_units`` when they must run one after another in the given order.
    ordered_units: ClassVar[bool] = False
    # when set, the engine reports apply progress (changes done of the kind's total) under it
    progress_label: ClassVar[str | None] = None

    def apply_units(self, changes: list[Change]) -> list[list[Change]]:
        return [[c] for c in changes]

    # A kind that drives many writes from one event loop (TcaplusRecords: thousands of one-record
    # calls, where a thread per call in flight costs more CPU than the calls) sets ``streams`` and
    # defines ``apply_stream``; the engine then hands it all of a pass's changes at once instead of
    # units. The kind calls ``started(change)`` before the first write of a change (the engine
    # journals the intent) and ``finished(change, outcome)`` as soon as the outcome is known, starts
    # no change once ``ctx.stop`` is set, and keeps within the vendor's concurrency.
    streams: ClassVar[bool] = False

    def apply_stream(
        self,
        changes: list[Change],
        ctx: RunContext,
        *,
        started: Callable[[Change], None],
        finished: Callable[[Change, Outcome], None],
    ) -> None:
        raise NotImplementedError(f"{self.kind} does not stream its writes")

    @classmethod
    @abstractmethod
    def make_client(cls, ctx: RunContext) -> ClientT: ...

    def export(
        self, resources: list[Resource[SpecT]], scopes: list[ScopeDecl], ctx: RunContext, request: ExportRequest
    ) -> KindExport:
        """Live objects as manifest documents (DR, adoption). ``resources``/``scopes`` are what
        the manifests under PATH declare: they say what to read and, with ``request.unmanaged``,
        what to leave out. Default: nothing to export."""
        return KindExport(notes=[f"{self.kind}: export is not supported"])


def outcome_of(change: Change, fn: Callable[[], Any]) -> Outcome:
    """Run one change's calls; map our errors to a failed outcome (what succeeded stays listed)."""
    try:
        result = fn()
    except ReconcilerError as exc:
        return _failed(change, exc)
    return _result(change, result)


async def aoutcome_of(change: Change, fn: Callable[[], Awaitable[Any]]) -> Outcome:
    """:func:`outcome_of` for a change whose calls are awaited on the running event loop."""
    try:
        result = await fn()
    except ReconcilerError as exc:
        return _failed(change, exc)
    return _result(change, result)


def _failed(change: Change, exc: ReconcilerError) -> Outcome:
    from reconciler.kinds.writes import unknown_outcome

    refused = bool(getattr(exc, "retryable", False)) and not unknown_outcome(exc)
    return Outcome(change, "failed", str(exc), retryable=refused)


def _result(change: Change, result: Any) -> Outcome:
    if isinstance(result, Outcome):
        return result
    return Outcome(change, "applied", result if isinstance(result, str) else "")


# -- export (DR and adoption) ---------------------------------------------------------------------
@dataclass
class ExportDoc:
    """One manifest document an export writes, in the style a person writes it.

    ``comments`` go above the document (values only the server knows: ids, status, counters);
    ``field_comments`` end the line of a top-level spec field; ``missing`` names spec fields the
    vendor did not return, written as comment lines instead of invented values. A document whose
    spec is not valid without them is written as incomplete (the engine sets ``incomplete``:
    ``metadata.incomplete`` lists them, and validate, plan and apply skip it); ``protect_key`` is
    what a prune scope's ``protect`` lists to keep its live object while it is skipped.
    """

    kind: str
    name: str
    spec: dict[str, Any]
    comments: list[str] = field(default_factory=list)
    field_comments: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    protected: bool = False
    connection: str | None = None  # metadata.connection (set by the engine for named connections)
    incomplete: list[str] = field(default_factory=list)  # set by the engine (see above)
    protect_key: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class ExportGroup:
    """One manifest file (path relative to the output folder, ``/``-separated)."""

    path: str
    docs: list[ExportDoc] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    keep: bool = False  # write the file even without documents (its comments say what to add)


@dataclass
class ExportFile:
    """A data file next to the manifests (JSON Lines records, a players list)."""

    path: str
    text: str
    ref: str = ""  # KIND/NAME of the document that uses it (for --target)


@dataclass
class KindExport:
    groups: list[ExportGroup] = field(default_factory=list)
    files: list[ExportFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown to the user (what could not be read)


@dataclass
class ExportRequest:
    """What the engine asks of a kind's ``export`` hook.

    ``secret_ref(manifest_path, name, value)`` turns a secret value the API returned into the
    reference to write (``file:`` next to ``--secrets-dir``, else ``env:NAME``); the kind never
    writes the value itself. ``extra`` holds the values of the options vendors add to ``export
    manifests`` (``VendorSpec.export_options``), by their key, as each option parsed them (e.g.
    index keys or agents to read besides those the manifests name).
    """

    unmanaged: bool
    secret_ref: Callable[[str, str, str], str]
    extra: dict[str, list[Any]] = field(default_factory=dict)
