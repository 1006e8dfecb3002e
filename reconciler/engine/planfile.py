"""The saved plan: a versioned JSON document with a published JSON Schema.

It holds what a reviewer saw and what apply needs: the tool and format versions, digests of the
manifests and config, the options, and per change its kind, identity, action, field diffs (secret
values only as keyed fingerprints), the precondition it observed and the calls it will make.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict
import json
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from reconciler import __version__, safeio
from reconciler.model import Action, Change, FieldDiff, Gap, Plan, Unmanaged, scope_label
from reconciler.errors import ReconcilerError
from reconciler.manifest import confine

FORMAT_VERSION = 1


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldDiffModel(_M):
    path: str
    before: Any = None
    after: Any = None
    sensitive: bool = False


class ChangeExposureModel(_M):
    """The promotional value a change grants (for example a free-spin event: docs/kinds/free-spin-event.md,
    "Exposure"). Amounts are decimal strings in the grant's currency; null = unknown (a factor the
    vendor did not return), never zero."""

    currency: str | None = Field(description="currency code of the grant; null when neither the vendor nor the config says")
    players_before: int | None = Field(description="players bound before (as the vendor reported them); 0 for a create")
    players_after: int | None = Field(description="players bound after the apply (declared)")
    stake_before: str | None = Field(description="players x spins x bet before (BONUSCHIPS: players x bonusChips)")
    stake_after: str | None = Field(description="players x spins x bet after, from the declared fields")
    stake_added: str | None = Field(
        description="stake this change adds: the whole new grant for a create or replace, else the increase "
        "(at most stake_after when stake_before is unknown); 0 for a delete"
    )
    ceiling_before: str | None = Field(description="withdrawal ceiling before: players x maxWithdrawal, or 'unbounded'")
    ceiling_after: str | None = Field(
        description="withdrawal ceiling after: players x maxWithdrawal, or 'unbounded' (maxWithdrawal \"-1\")"
    )
    upper_bounds: list[str] = Field(default_factory=list, description="figures that are worst cases rather than exact values")


class ExposureTotalModel(_M):
    vendor: str = Field(default="?", description="the vendor of the connection")
    connection: str = Field(description="the connection name")
    currency: str | None
    events: int = Field(ge=0, description="event changes summed")
    stake_before: str
    stake_after: str
    stake_added: str = Field(description="the stake this plan adds on this connection in this currency")
    ceiling_after: str = Field(description="sum of withdrawal ceilings after, or 'unbounded'")
    unknown: dict[str, int] = Field(description="per figure, events whose figure is unknown (left out of the sum)")
    upper_bound: bool = Field(description="some summed figure is a worst case")


class ExposureModel(_M):
    """The plan's promotional exposure and how it stands against the trusted budgets."""

    totals: list[ExposureTotalModel] = Field(default_factory=list, description="per connection and currency")
    budgets: dict[str, Any] = Field(default_factory=dict, description="the budgets that applied, by setting path")
    over_budget: list[str] = Field(default_factory=list, description="one line per budget exceeded (or not provable)")
    approved: bool = Field(
        default=False,
        description="planned with --approve-exposure (with --force alone the findings stay unsafe: lines and apply passes them as it passes thresholds)",
    )


class ChangeModel(_M):
    kind: str
    vendor: str
    key: str
    action: Literal["create", "update", "replace", "delete"]
    resource: str
    source: str
    diffs: list[FieldDiffModel]
    precondition: dict[str, Any] = Field(description="what the plan saw of the live object")
    calls: list[str] = Field(description="the API calls this change will make")
    summary: str
    notes: list[str]
    data: dict[str, Any] = Field(description="kind-specific payload needed to apply; never a secret value")
    impact: int = Field(ge=0, description="existing objects this change updates, replaces or deletes")
    connection: str = Field(default="default", description="the named connection of the vendor")
    exposure: ChangeExposureModel | None = Field(default=None, description="money granted (FreeSpinEvent changes)")


class UnmanagedModel(_M):
    kind: str
    vendor: str
    key: str
    reason: str
    connection: str = "default"


class GapModel(_M):
    kind: str
    why: str
    field: str = Field(default="", description="what could not be compared; empty: the kind was not read")
    resources: int = Field(default=0, ge=0, description="how many resources it concerns (0: all of the kind)")
    connection: str = "default"


class DigestModel(_M):
    manifests: str
    config: str


class OwnedModel(_M):
    count: int = Field(ge=0, description="declared identities of the kind this shard owns")
    digest: str = Field(description="sha256 over those identities, sorted, one a line")


class ShardPlanModel(_M):
    """A shard plan's part of a sharded run (``plan --shard K/N --out``): what ``plan merge`` checks."""

    k: int = Field(ge=1, description="this shard (1-based)")
    n: int = Field(ge=1, le=1024, description="the number of shards")
    algorithm: str = Field(description="the partition: blake2b over (kind, connection, unit) with a fixed tag")
    owned: dict[str, OwnedModel] = Field(description="per kind (KIND@CONNECTION when named): declared identities owned")
    partitioned: list[str] = Field(
        default_factory=list,
        description="kinds planned for this shard alone: their counts are this shard's "
        "and add up over shards (the others' are the whole kind's)",
    )
    calls: dict[str, int] = Field(default_factory=dict, description="API calls planned per vendor/connection")


class PlansetShardModel(_M):
    k: int = Field(ge=1)
    counts: dict[str, int] = Field(description="the shard plan's own counts")
    calls: dict[str, int] = Field(default_factory=dict, description="API calls it planned per vendor/connection")
    rate_share: dict[str, float] = Field(
        default_factory=dict,
        description="its share of each connection's requests_per_second (half split evenly, half by planned calls)",
    )
    plan_signature: str | None = Field(default=None, description="the signature of the shard plan merged")


class PlansetModel(_M):
    """A merged sharded plan (``plan merge``): one gate over all shards."""

    n: int = Field(ge=1, le=1024)
    algorithm: str
    verdict: Literal["safe", "forced", "unsafe"] = Field(
        description="the safety thresholds judged once over the whole plan: safe, forced (over them with "
        "`plan merge --force`) or unsafe (apply refuses the planset)"
    )
    unsafe: list[str] = Field(default_factory=list, description="the threshold findings, one a line")
    shards: list[PlansetShardModel]


class PlanFile(_M):
    """A saved plan (``reconciler plan --out FILE``)."""

    format_version: Literal[1]
    tool_version: str
    created_at: str
    paths: list[str] = Field(description="the manifest paths the plan was made from")
    config_path: str | None
    sandbox: bool
    targets: list[str]
    force: bool = Field(default=False, description="planned with --force: apply may exceed the safety thresholds")
    allow_replace: bool = Field(default=False, description="planned with --allow-replace: replaces are not blocked")
    approve_exposure: bool = Field(
        default=False, description="planned with --approve-exposure: apply may exceed the exposure budgets (signed)"
    )
    exposure: ExposureModel | None = Field(default=None, description="promotional exposure: totals, budgets, what is over")
    digest: DigestModel
    summary: str
    counts: dict[str, int]
    changes: list[ChangeModel]
    noops: dict[str, int]
    unmanaged: list[UnmanagedModel]
    warnings: list[str]
    existing_in_scope: dict[str, int]
    incomplete: list[GapModel] = Field(
        default_factory=list,
        description="what the plan could not read or compare (its summary says 'incomplete', never 'matches')",
    )
    differs: list[str] = Field(
        default_factory=list, description="live state seen to differ in ways apply cannot change (KIND/NAME: what)"
    )
    baseline: dict[str, Any] | None = Field(
        default=None,
        description="planned with --baseline: the last applied plan's document digests and desired payloads "
        "(kinds compare fields the vendor does not return against it); apply re-plans with it",
    )
    resources: dict[str, str] = Field(
        default_factory=dict,
        description="content digest per manifest document (KIND/NAME, with the data files it names): what "
        "apply judges freshness by, and the baseline for `plan --drift --baseline`",
    )
    environment: str | None = Field(default=None, description="the environment planned (--env)")
    connections: list[str] = Field(default_factory=list, description="vendor/connection the plan covers")
    not_restored: list[str] = Field(
        default_factory=list,
        description="documents marked metadata.incomplete (an export's gaps): skipped, not planned, not restored",
    )
    config_sections: dict[str, str] = Field(
        default_factory=dict,
        description="digest per config section a change can depend on (providers.<vendor>, settings)",
    )
    connections_digest: str | None = Field(
        default=None,
        description="digest of the settings of the connections the plan covers (base URL, ids, credential "
        "references, vendor settings such as table schemas) as the run used them: apply refuses the plan on other connections",
    )
    review: bool = Field(
        default=False,
        description="made from a config under review (RECONCILER_CONNECTIONS_FROM): `show --format markdown` "
        "shows live values of undeclared objects as keys and counts, as the plan run did",
    )
    shard: ShardPlanModel | None = Field(
        default=None, description="a shard plan (plan --shard K/N): its shard and what plan merge checks (signed)"
    )
    planset: PlansetModel | None = Field(
        default=None, description="a merged sharded plan (plan merge): the shards, their rate shares and the verdict (signed)"
    )
    # read_plan(keep=...): the signed changes read apart and the count of all changes (not in the file)
    _signed_changes: list[dict[str, Any]] | None = PrivateAttr(default=None)
    _total_changes: int | None = PrivateAttr(default=None)
    signature: str | None = Field(
        default=None,
        description="keyed MAC (the fingerprint key, else the provider credentials) over everything apply "
        "uses to make its fresh plan: paths, config, environment, connections and their digest, "
        "targets, force, allow_replace, digests, existing_in_scope and the baseline; apply (and "
        "--last-applied / --baseline) refuse a plan whose signature does not match",
    )


# Everything apply uses to make its fresh plan (which manifests and config, environment and
# connections, targets, --force, the safety baseline, the last-applied baseline kinds compare
# unreturned fields against): signed, so a plan file changed in the artifact store cannot steer
# apply. The changes themselves are not signed: each is checked against a fresh plan instead
# (reconcile_saved), and a change the fresh plan does not reproduce is never written.
_CHANGES: TypeAdapter[list[ChangeModel]] = TypeAdapter(list[ChangeModel])
"""Changes read back as the schema reads them (the signed ones, :func:`sign_plan`)."""

SIGNED_FIELDS = (
    "format_version",
    "paths",
    "config_path",
    "sandbox",
    "targets",
    "force",
    "allow_replace",
    "approve_exposure",
    "environment",
    "connections",
    "connections_digest",
    "digest",
    "resources",
    "config_sections",
    "existing_in_scope",
    "baseline",
    "review",
    "not_restored",
    "shard",
    "planset",
)


def baseline_payloads(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """What a plan contributes when it is read back as the last applied one (``--last-applied``,
    ``--baseline``): the ``desired`` payload of each resource it changed. Signed with the plan."""
    return {
        c["resource"]: c["data"]["desired"]
        for c in changes
        if c.get("resource") and isinstance(c.get("data"), dict) and isinstance(c["data"].get("desired"), dict)
    }


def _signed_content(model: dict[str, Any]) -> bytes:
    signed = {k: model.get(k) for k in SIGNED_FIELDS}
    if not signed.get("approve_exposure"):
        signed.pop("approve_exposure")  # signed only when given: plans made before it existed still verify
    for optional in ("shard", "planset"):  # likewise: only sharded runs have them
        if signed.get(optional) is None:
            signed.pop(optional)
    signed["desired"] = baseline_payloads(model.get("changes") or [])
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _signed_view(pf: "PlanFile") -> dict[str, Any]:
    """What :func:`_signed_content` reads of a plan, dumped as the schema reads it back: the signed
    fields and the changes that carry a ``desired`` payload. Dumping every change (a planset of
    100,000) only to keep a few fields cost as much as the rest of signing and checking together."""
    include: dict[str, Any] = {k: True for k in SIGNED_FIELDS if k in PlanFile.model_fields}
    if pf._signed_changes is not None:  # read in part (read_plan's keep): the signed changes were read apart
        view = pf.model_dump(mode="json", include=include)
        if pf._signed_changes:
            view["changes"] = pf._signed_changes
        return view
    with_desired = {i: True for i, c in enumerate(pf.changes) if "desired" in c.data}
    if with_desired:
        include["changes"] = with_desired
    return pf.model_dump(mode="json", include=include)


def change_count(pf: "PlanFile") -> int:
    """How many changes the plan file holds (all of them, also when it was read in part)."""
    return pf._total_changes if pf._total_changes is not None else len(pf.changes)


def sign_plan(data: dict[str, Any], signer: Callable[[bytes], str] | None) -> dict[str, Any]:
    """``data`` with its ``signature`` (computed over the fields as the schema reads them back).
    Only what is signed is read back: the fields, and the changes that carry a ``desired`` payload
    (validating the 100,000 changes of a planset here as well took as long as writing it;
    :func:`write_plan` validates the whole before it is written)."""
    if signer is None:
        return {**data, "signature": None}
    view = _signed_view(PlanFile.model_validate({**data, "changes": [], "signature": None}))
    with_desired = [c for c in data.get("changes") or [] if isinstance(c.get("data"), dict) and "desired" in c["data"]]
    if with_desired:
        view["changes"] = _CHANGES.dump_python(_CHANGES.validate_python(with_desired), mode="json")
    return {**data, "signature": signer(_signed_content(view))}


def signature_matches(pf: "PlanFile", signer: Callable[[bytes], str] | None) -> bool:
    if not pf.signature or signer is None:
        return False
    return hmac.compare_digest(signer(_signed_content(_signed_view(pf))), pf.signature)


def plan_schema() -> dict[str, Any]:
    schema = PlanFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://reconciler.dev/schemas/plan-v1.json"
    return schema


def plan_to_dict(
    plan: Plan,
    *,
    created_at: str,
    paths: list[str],
    config_path: str | None,
    sandbox: bool,
    targets: list[str],
    digest: dict[str, str],
    resources: dict[str, str] | None = None,
    config_sections: dict[str, str] | None = None,
    force: bool = False,
    allow_replace: bool = False,
    baseline: dict[str, Any] | None = None,
    connections_digest: str | None = None,
    review: bool = False,
    approve_exposure: bool = False,
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "created_at": created_at,
        "paths": paths,
        "config_path": config_path,
        "sandbox": sandbox,
        "targets": targets,
        "force": force,
        "allow_replace": allow_replace,
        **({"approve_exposure": True} if approve_exposure else {}),
        "digest": digest,
        "summary": plan.summary_line(),
        "counts": plan.counts(),
        **({"exposure": plan.exposure} if plan.exposure else {}),
        "changes": [c.as_record() for c in plan.changes],
        "noops": plan.noops,
        "unmanaged": [u.__dict__ for u in plan.unmanaged],
        "warnings": plan.warnings,
        "existing_in_scope": plan.existing_in_scope,
        "incomplete": [asdict(g) for g in plan.gaps()],
        "differs": plan.differs,
        "resources": dict(sorted((resources or {}).items())),
        "config_sections": dict(sorted((config_sections or {}).items())),
        "environment": plan.environment,
        "connections": plan.connections,
        **({"not_restored": plan.not_restored} if plan.not_restored else {}),
        "connections_digest": connections_digest,
        "review": review,
        **({"baseline": baseline} if baseline is not None else {}),
    }


_ONE_LINE_EACH = ("changes", "unmanaged")
"""The lists of a plan file written one element per line (the rest is indented by 2)."""


def plan_text(data: dict[str, Any]) -> str:
    """A plan file's text: its fields indented by 2, each change (and unmanaged object) on one line.
    ``json.dumps(indent=2)`` of the whole took most of the time a plan of 100,000 changes took to
    save: with an indent, Python's JSON encoder runs in Python, not in C."""
    lines = ["{"]
    last = len(data) - 1
    for i, (k, v) in enumerate(data.items()):
        key, comma = json.dumps(k, ensure_ascii=False), "," if i < last else ""
        if k in _ONE_LINE_EACH and isinstance(v, list) and v:
            lines.append(f"  {key}: [")
            lines.extend(f"    {json.dumps(x, ensure_ascii=False)}," for x in v[:-1])
            lines.append(f"    {json.dumps(v[-1], ensure_ascii=False)}")
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {key}: " + json.dumps(v, indent=2, ensure_ascii=False).replace("\n", "\n  ") + comma)
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_plan(data: dict[str, Any], path: Path, *, changes_read_back: bool = False) -> None:
    """Write a plan file; never one that does not match its own schema. ``changes_read_back``: its
    changes are ones :func:`read_plan` validated and built, unchanged (a planset merged from shard
    plans), so only the rest is validated again: checking a 100,000-change planset's changes a second
    time was a fifth of ``plan merge``."""
    PlanFile.model_validate({**data, "changes": []} if changes_read_back else data)
    # a new file renamed over ``path``: a symlink committed at ``plan.json`` is replaced, not followed
    safeio.write_text(path, plan_text(data))


class PlanFileError(ReconcilerError):
    pass


def _change(c: ChangeModel) -> Change:
    """A saved change as the engine's :class:`Change` (as ``Change.from_dict(c.model_dump())``
    without the deep copy: the validated model is read, never changed, and is dropped with the plan)."""
    return Change(
        kind=c.kind,
        vendor=c.vendor,
        key=c.key,
        action=Action(c.action),
        resource=c.resource,
        source=c.source,
        diffs=[FieldDiff(d.path, d.before, d.after, d.sensitive) for d in c.diffs],
        precondition=c.precondition,
        calls=c.calls,
        summary=c.summary,
        notes=c.notes,
        data=c.data,
        impact=c.impact,
        connection=c.connection,
        exposure=c.exposure.model_dump() if c.exposure is not None else None,
    )


def read_plan(path: Path, *, keep: Callable[[dict[str, Any]], bool] | None = None) -> tuple[PlanFile, Plan]:
    """A saved plan, validated against its schema, and the plan it holds.

    With ``keep`` (a shard's apply of a planset: the changes it owns), only the changes ``keep``
    accepts are validated and become the plan's changes; the changes the signature covers (those
    with a ``desired`` payload) are still all read, so the signature is checked over the whole
    file, and :func:`change_count` still counts every change. A change ``keep`` cannot judge (not
    an object) is kept, so validation names it. Each shard of a 100,000-change planset otherwise
    validated and built the 75,000 changes it does not apply: several seconds of its start."""
    try:  # named by the operator (not confined to the workspace) but bounded: a regular file <= 256 MiB
        raw = json.loads(confine.read_text(path, what="plan", confine=False))
    except confine.ConfinementError as exc:
        raise PlanFileError(f"{path}: not a readable plan file ({exc.reason})") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep (a plan is untrusted input)
        raise PlanFileError(f"{path}: not a readable plan file ({exc.__class__.__name__})") from None
    if isinstance(raw, dict) and raw.get("format_version") not in (None, FORMAT_VERSION):
        raise PlanFileError(f"{path}: plan format {raw.get('format_version')} is not supported by this version ({__version__})")
    try:
        changes = raw.get("changes") if isinstance(raw, dict) else None
        if keep is not None and isinstance(changes, list):
            signed = [c for c in changes if isinstance(c, dict) and isinstance(c.get("data"), dict) and "desired" in c["data"]]
            pf = PlanFile.model_validate({**raw, "changes": [c for c in changes if not isinstance(c, dict) or keep(c)]})
            pf._signed_changes = _CHANGES.dump_python(_CHANGES.validate_python(signed), mode="json")
            pf._total_changes = len(changes)
        else:
            pf = PlanFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlanFileError(f"{path}: not a valid plan file ({'.'.join(map(str, first['loc']))}: {first['msg']})") from None
    plan = Plan(
        changes=[_change(c) for c in pf.changes],
        noops=pf.noops,
        unmanaged=[Unmanaged(**u.model_dump()) for u in pf.unmanaged],
        warnings=pf.warnings,
        existing_in_scope=pf.existing_in_scope,
        environment=pf.environment,
        connections=pf.connections,
        not_restored=pf.not_restored,
        uncompared=[Gap(**g.model_dump()) for g in pf.incomplete if g.field],
        failed={scope_label(g.kind, g.connection): g.why for g in pf.incomplete if not g.field},
        differs=pf.differs,
        exposure=pf.exposure.model_dump(mode="json") if pf.exposure is not None else {},
    )
    return pf, plan
