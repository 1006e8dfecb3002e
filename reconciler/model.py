"""The plan model: plain data that every renderer (text, Markdown, JSON) reads.

A :class:`Plan` holds ordered :class:`Change` objects. Secret values never enter this model:
secret fields appear only as ``(sensitive)`` with keyed fingerprints.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

SENSITIVE = "(sensitive)"


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


# deletes first, then creates, replaces, updates (STYLE.md "identity apart from content")
ACTION_ORDER = {Action.DELETE: 0, Action.CREATE: 1, Action.REPLACE: 2, Action.UPDATE: 3}


DEFAULT_CONNECTION = "default"


def address(kind: str, key: str, connection: str = DEFAULT_CONNECTION) -> str:
    return f"{kind}/{key}" if connection == DEFAULT_CONNECTION else f"{kind}/{key}@{connection}"


def scope_label(kind: str, connection: str = DEFAULT_CONNECTION) -> str:
    return kind if connection == DEFAULT_CONNECTION else f"{kind}@{connection}"


def _plain(value: Any) -> Any:
    """A deep copy of plain data, as :func:`dataclasses.asdict` makes it: dicts, lists and tuples
    copied, dataclasses turned into dicts, anything else deep-copied; built-in scalars (immutable)
    kept. asdict itself checks every value for a dataclass and deep-copies every scalar: a plan of
    100,000 changes spent most of the time it took to save (and a journal to open) there."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if t is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    if t is list:
        return [_plain(v) for v in value]
    if t is tuple:
        return tuple(_plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return copy.deepcopy(value)


@dataclass
class FieldDiff:
    """One field that differs. ``before``/``after`` are display values (secrets masked)."""

    path: str
    before: Any = None
    after: Any = None
    sensitive: bool = False


@dataclass
class Change:
    """One resource-level change.

    ``key`` is the object's identity within its kind (e.g. a username, ``"14"`` for an allowlist,
    ``"items|1001"`` for a TcaplusDB record). ``precondition`` is what the plan saw of the live
    object (``{"exists": False}``, ``{"fingerprint": "..."}``, ``{"record_version": 7}``); a saved
    plan is refused for this resource when it no longer holds. ``data`` is the kind's private,
    JSON-serialisable payload needed to apply (never a secret value; secret *references* are fine).
    """

    kind: str
    vendor: str
    key: str
    action: Action
    resource: str = ""  # "KIND/NAME" of the manifest document (empty for a prune)
    source: str = ""  # "file:line" of the document
    diffs: list[FieldDiff] = field(default_factory=list)
    precondition: dict[str, Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    summary: str = ""  # short human summary, e.g. "+3 -1 of 2,041"
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    # how many existing objects this change updates, replaces or deletes (for the safety
    # thresholds); element-level kinds such as IpAllowlist count elements
    impact: int = 1
    connection: str = DEFAULT_CONNECTION  # the named connection of the vendor it is made on
    # the money a change grants (FreeSpinEvent): stake and withdrawal ceiling before and after, as
    # decimal strings (None: unknown); see reconciler.engine.exposure and docs/kinds/free-spin-event.md
    exposure: dict[str, Any] | None = None

    @property
    def address(self) -> str:
        """``KIND/KEY``, and ``@CONNECTION`` on a named connection (identity includes it)."""
        return address(self.kind, self.key, self.connection)

    @property
    def scope(self) -> str:
        """What safety thresholds are counted per: the kind, on one connection."""
        return scope_label(self.kind, self.connection)

    def sort_key(self) -> tuple[int, str, str, str]:
        return (ACTION_ORDER[self.action], self.kind, self.connection, self.key)

    def to_dict(self) -> dict[str, Any]:
        """As ``dataclasses.asdict`` (a deep copy), with the action's value."""
        d: dict[str, Any] = {}
        for name in _CHANGE_FIELDS:  # in field order, as asdict
            if name == "diffs":
                d[name] = [
                    {"path": x.path, "before": _plain(x.before), "after": _plain(x.after), "sensitive": x.sensitive}
                    if type(x) is FieldDiff
                    else _plain(x)
                    for x in self.diffs
                ]
            elif name == "action":
                d[name] = self.action.value
            else:
                d[name] = _plain(getattr(self, name))
        return d

    def as_record(self) -> dict[str, Any]:
        """:meth:`to_dict` without the deep copy, for a change written out at once (a plan file, a
        journal's run record): plain dicts and lists holding the change's own values, to be
        serialised, never changed. Copying them (``_plain``) was most of the time a planset of
        100,000 changes took to merge, and a journal of a shard's 25,000 to open."""
        d: dict[str, Any] = {}
        for name in _CHANGE_FIELDS:  # in field order, as to_dict
            if name == "diffs":
                d[name] = [
                    {"path": x.path, "before": x.before, "after": x.after, "sensitive": x.sensitive}
                    if type(x) is FieldDiff
                    else _plain(x)
                    for x in self.diffs
                ]
            elif name == "action":
                d[name] = self.action.value
            else:
                d[name] = getattr(self, name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Change":
        d = dict(d)
        d["action"] = Action(d["action"])
        d["diffs"] = [FieldDiff(**x) for x in d.get("diffs", [])]
        return cls(**d)


_CHANGE_FIELDS = tuple(f.name for f in fields(Change))


@dataclass
class Unmanaged:
    """A live object that no manifest declares and that lies outside every prune scope."""

    kind: str
    vendor: str
    key: str
    reason: str = "not declared; outside every prune scope"
    connection: str = DEFAULT_CONNECTION

    @property
    def address(self) -> str:
        return address(self.kind, self.key, self.connection)


@dataclass
class Gap:
    """Something a plan could not read or compare, so its summary cannot say "No changes",
    "matches" or "Drift: none" for it (DESIGN principle 11, "words are earned").

    ``field`` is empty when the kind's live state could not be read at all (``why`` is the error);
    otherwise it names what could not be compared (a field the vendor does not return, players a
    vendor cannot list) for ``resources`` resources of the kind.
    """

    kind: str
    why: str
    field: str = ""
    resources: int = 0
    connection: str = DEFAULT_CONNECTION

    @property
    def scope(self) -> str:
        return scope_label(self.kind, self.connection)

    def line(self) -> str:
        """``KIND[@CONN]: field F (N resource(s)): why`` or ``KIND[@CONN]: not read: why``."""
        if not self.field:
            return f"{self.scope}: live state not read: {self.why}"
        count = f" ({self.resources} resource(s))" if self.resources else ""
        return f"{self.scope}: {self.field} not compared{count}: {self.why}"


@dataclass
class KindPlan:
    """What one kind's planning produced."""

    changes: list[Change] = field(default_factory=list)
    noops: int = 0
    unmanaged: list[Unmanaged] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # live objects in the kind's managed scope (for the update/delete thresholds)
    existing_in_scope: int = 0
    # "KIND/NAME" of resources a change outside the product ended (e.g. a free-spin event
    # terminated in the vendor's back office): nothing to apply, but drift (`plan --drift` exits 2)
    out_of_band: list[str] = field(default_factory=list)
    # what this kind could not compare (fields the vendor does not return, players it cannot
    # list): the plan lists them and says "incomplete" instead of "matches"
    uncompared: list[Gap] = field(default_factory=list)
    # "KIND/NAME: what" of live state seen to differ from the manifests in a way apply does not
    # change (e.g. an excluded player still bound to an ACTIVE event: JDB unbinds only while
    # INACTIVE): nothing to apply, but never "matches" (`plan --drift` exits 2)
    differs: list[str] = field(default_factory=list)
    # the money each live managed event grants now (FreeSpinEvent), for drift reports against the
    # exposure budgets: {"resource", "currency", "players", "stake", "ceiling", "from_last_applied"}
    live_exposure: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    noops: dict[str, int] = field(default_factory=dict)  # per kind
    unmanaged: list[Unmanaged] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    existing_in_scope: dict[str, int] = field(default_factory=dict)  # per kind (and named connection)
    environment: str | None = None  # --env
    connections: list[str] = field(default_factory=list)  # "vendor/name" the plan covers
    # kinds (on a named connection: KIND@NAME) whose live state could not be read after retries:
    # label -> the error. Such a part has no changes in the plan, so nothing of it is written or
    # pruned on an incomplete read.
    failed: dict[str, str] = field(default_factory=dict)
    out_of_band: list[str] = field(default_factory=list)  # see KindPlan.out_of_band
    # documents marked metadata.incomplete (an export's gaps), skipped: not planned, not restored
    not_restored: list[str] = field(default_factory=list)
    # the plan's promotional exposure: totals per connection and currency, and what is over a
    # budget (reconciler.engine.exposure.summarize); {} when no change grants money
    exposure: dict[str, Any] = field(default_factory=dict)
    live_exposure: list[dict[str, Any]] = field(default_factory=list)  # see KindPlan.live_exposure (+ "connection")
    uncompared: list[Gap] = field(default_factory=list)  # see KindPlan.uncompared
    differs: list[str] = field(default_factory=list)  # see KindPlan.differs

    def gaps(self) -> list[Gap]:
        """Everything this plan could not read (``failed``) or compare (``uncompared``), in a
        stable order, kinds not read first (a list cut short never hides one): what text,
        Markdown and JSON list under "incomplete"."""
        unread = [
            Gap(kind=label.split("@", 1)[0], why=why, connection=label.split("@", 1)[1] if "@" in label else DEFAULT_CONNECTION)
            for label, why in self.failed.items()
        ]
        return sorted(unread + self.uncompared, key=lambda g: (bool(g.field), g.kind, g.connection, g.field, g.why))

    @property
    def complete(self) -> bool:
        """Every read the plan speaks for succeeded and every compared field could be read."""
        return not self.failed and not self.uncompared

    def incomplete_line(self) -> str:
        """``Incomplete: 1 kind(s) not read, 2 field(s) not compared.`` or "" when complete."""
        gaps = self.gaps()
        if not gaps:
            return ""
        unread = sum(not g.field for g in gaps)
        parts = ([f"{unread} kind(s) not read"] if unread else []) + (
            [f"{len(gaps) - unread} field(s) not compared"] if len(gaps) > unread else []
        )
        return f"Incomplete: {', '.join(parts)}."

    def header(self) -> str:
        """Which environment and connections the plan covers ("" when it is the plain default)."""
        named = [c for c in self.connections if not c.endswith("/" + DEFAULT_CONNECTION)]
        if not self.environment and not named:
            return ""
        parts = [f"Environment: {self.environment}" if self.environment else "No environment"]
        if self.connections:
            parts.append("connections: " + ", ".join(self.connections))
        return "; ".join(parts) + "."

    def sort(self) -> None:
        self.changes.sort(key=Change.sort_key)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        c = {a.value: 0 for a in Action}
        for ch in self.changes:
            c[ch.action.value] += 1
        c["noop"] = sum(self.noops.values())
        c["unmanaged"] = len(self.unmanaged)
        return c

    def summary_line(self) -> str:
        """One grep-able line: ``Plan: 2 to create, 1 to update, 0 to replace, 0 to delete, 5 unchanged, 1 unmanaged.``"""
        c = self.counts()
        return (
            f"Plan: {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
            f"{c['delete']} to delete, {c['noop']} unchanged, {c['unmanaged']} unmanaged."
        )


@dataclass
class Outcome:
    """The result of applying one change."""

    change: Change
    # "applied" | "failed" | "stale" | "skipped"; "interrupted" = not started (the run was stopped);
    # "unknown" = still in flight when a stopped run gave up waiting (resolve by resuming);
    # "pending" = the vendor says the object exists but does not show it yet (a documented
    # visibility window): nothing written, not a failure
    status: str
    message: str = ""
    details: list[str] = field(default_factory=list)  # e.g. players JDB reported as failed
    # a failure the vendor answered as a refusal worth retrying (busy): the write did not happen,
    # so the engine may try the change again later in the same run
    retryable: bool = False
