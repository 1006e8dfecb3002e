"""Kind ``ProxyAccount``: a BestProxy proxy account (identity = username).

Reads: one ``whitelist-account/list`` call for all accounts. Writes: batched ``add`` (one call per
product type and remark, ``user:pass,...``), batched ``delete``/``enable``/``disable``, and
``proxy-account/change`` per account for password, remark, limits and UDP. A refused batch is
resolved account by account (:func:`~reconciler.vendors.bestproxy.common.write_each`): whether
BestProxy refuses a batch whole or applies the rest is not documented.

The list does not return ``daily_limit`` or ``udp``: they are *write-only* — set on create and
whenever another field of the account changes; a drift in them cannot be seen (the plan says so).
A product type change has no API call: it is a replace (delete + add) and needs ``--allow-replace``.

Why one module: a kind is one module (DESIGN.md: adding a kind touches its own module); its plan,
apply and export share the spec model and the password and write-only field rules, and its
undeclared-object handling moves to the shared helper (issue 25 item 3), which shortens it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from reconciler.vendors.bestproxy.client import BestProxyClient, BestProxyParameterError, LiveAccount
from reconciler.model import SENSITIVE, Action, Change, FieldDiff, Gap, KindPlan, Outcome
from reconciler.errors import Problem, ReconcilerError
from reconciler.kinds.base import ExportDoc, ExportGroup, ExportRequest, Kind, KindExport, Resource, ScopeDecl
from reconciler.kinds.context import RunContext
from reconciler.kinds.prune import undeclared
from reconciler.vendors.bestproxy.common import (
    ALNUM,
    MAX_LIMIT_GB,
    UDP_PRODUCT_TYPES,
    ProductType,
    Remark,
    make_client,
    provider_problem,
    write_each,
)
from reconciler.kinds.writes import UNFINISHED_CREATE_NOTE, created_recently, settle_one
from reconciler.manifest.secrets import SecretRef

Username = StrictStr


# a pull-request plan (a config under review) does not reveal whether a password the change can
# write (a file: reference inside the checkout) equals the live one
NOT_COMPARED = "(secret; not compared in an untrusted plan)"


class ProxyAccountSpec(BaseModel):
    """A proxy account. ``password`` is a secret reference (``env:NAME`` / ``file:PATH``)."""

    model_config = ConfigDict(extra="forbid")
    username: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$", description="letters and digits only")
    password: SecretRef = Field(description="reference to a 6-16 character password of letters and digits")
    productType: ProductType = Field(
        description="9 dynamic residential traffic, 11 dynamic residential IP, 14 static datacenter, 25 static residential"
    )
    remark: Remark = ""
    trafficLimitGb: int = Field(default=0, ge=0, le=MAX_LIMIT_GB, strict=True, description="0 = unlimited")
    dailyLimitGb: int | None = Field(
        default=None, ge=0, le=MAX_LIMIT_GB, strict=True, description="0 = unlimited; write-only (the API does not return it)"
    )
    enabled: StrictBool = True
    udp: StrictBool | None = Field(default=None, description="only for product types 14 and 25; write-only")

    @model_validator(mode="after")
    def _udp_product(self) -> "ProxyAccountSpec":
        if self.udp is not None and self.productType not in UDP_PRODUCT_TYPES:
            raise ValueError(f"udp is only available for product types {', '.join(map(str, UDP_PRODUCT_TYPES))}")
        return self


class ProxyAccountScope(BaseModel):
    """Prune scope: live accounts with this username prefix (and product type) that no manifest
    declares are deleted."""

    model_config = ConfigDict(extra="forbid")
    usernamePrefix: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")
    productType: ProductType | None = None


COMPARED = ("remark", "productType", "trafficLimitGb", "enabled")
PENDING_NOTE = (
    "BestProxy answers that the account exists but does not list it yet (new accounts can take up "
    "to 5 minutes to appear): nothing was written; a plan after that window shows it, or shows it "
    "missing if it really is"
)
CREATED_AT_TZ = timezone(timedelta(hours=8))  # ``created_at`` has no offset: the vendor's (UTC+8), a guess


def _finishes_create(spec: ProxyAccountSpec, pw: str, a: LiveAccount, diffs: list[FieldDiff], ctx: RunContext) -> bool:
    """Whether an update only finishes a create a killed run left half done (kinds/writes.py): the
    account was created in the last hour with this manifest's password and product type, and it
    differs only in what the create's follow-up calls set (limit, disable, the write-only fields),
    each still at a new account's value (no limit, enabled). A remark is not among them: the add
    may have set another one, but so may a change of the manifests, which the thresholds must see."""
    if pw != a.password or spec.productType != a.product_type:
        return False
    try:
        created = datetime.strptime(str(a.raw.get("created_at") or ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CREATED_AT_TZ)
    except ValueError:
        return False
    if not created_recently(created, ctx.options.now()):
        return False
    new_account = {"trafficLimitGb": a.limit_gb == 0, "enabled": a.enabled, "dailyLimitGb": True, "udp": True}
    return all(new_account.get(d.path, False) for d in diffs)


WRITE_ONLY = ("dailyLimitGb", "udp")  # the account list does not return them: drift in them cannot be seen


class ProxyAccountKind(Kind[ProxyAccountSpec, BestProxyClient]):
    kind = "ProxyAccount"
    vendor = "bestproxy"
    Spec = ProxyAccountSpec
    Scope = ProxyAccountScope
    apply_order = 10

    def keys(self, res: Resource[ProxyAccountSpec]) -> list[tuple[str, tuple[Any, ...]]]:
        return [(res.spec.username, ("username",))]

    @classmethod
    def make_client(cls, ctx: RunContext) -> BestProxyClient:
        return make_client(ctx)

    def check(self, resources: list[Resource[ProxyAccountSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        problems = provider_problem(ctx, resources or scopes)
        for r in resources:
            value = ctx.resolve_secret(r.doc, ("spec", "password"), r.spec.password, resource=r.ref)
            if value is None:
                continue
            if not 6 <= len(value) <= 16:
                problems.append(r.problem(("password",), f"the password behind {r.spec.password} must be 6-16 characters"))
            elif not ALNUM.match(value):
                problems.append(
                    r.problem(("password",), f"the password behind {r.spec.password} must contain only letters and digits")
                )
        return problems

    # -- plan ------------------------------------------------------------------------------
    def _live_view(self, a: LiveAccount, ctx: RunContext) -> dict[str, Any]:
        # a live password only under the precondition key: never comparable with a desired one's fingerprint
        return {"password": ctx.precondition_fingerprint(self.vendor)(a.password), **self._live_fields(a)}

    @staticmethod
    def _live_fields(a: LiveAccount) -> dict[str, Any]:
        """The live view but its password (which is compared by value, shown by fingerprint)."""
        view: dict[str, Any] = {
            "remark": a.remark,
            "productType": a.product_type,
            "trafficLimitGb": a.limit_gb,
            "enabled": a.enabled,
        }
        # write-only fields become comparable if the API ever returns them
        if "daily_limit" in a.raw:
            view["dailyLimitGb"] = int(a.raw["daily_limit"] or 0)
        if "udp" in a.raw:
            view["udp"] = bool(a.raw["udp"])
        return view

    def plan(self, resources: list[Resource[ProxyAccountSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client: BestProxyClient = ctx.client(type(self))
        live = {a.username: a for a in client.list_accounts()}
        kp = KindPlan()
        unseen: Counter[str] = Counter()  # declared write-only fields of existing accounts
        declared = {r.spec.username for r in resources}
        not_compared: list[str] = []
        for r in resources:
            spec: ProxyAccountSpec = r.spec
            desired_pw = ctx.secret(r.doc, spec.password)
            a = live.get(spec.username)
            if a is None:
                kp.changes.append(self._create(r, spec, desired_pw, ctx))
                continue
            kp.existing_in_scope += 1
            compare = not (ctx.config.review and spec.password.startswith("file:"))
            if not compare:
                not_compared.append(spec.username)
            unseen.update(k for k in WRITE_ONLY if k in self._desired_fields(spec) and k not in self._live_fields(a))
            change = self._update(r, spec, desired_pw, a, ctx, compare_password=compare)
            if change is None:
                kp.noops += 1
            else:
                kp.changes.append(change)
        for username, a in sorted(live.items()):
            if username not in declared:
                self._undeclared(a, scopes, ctx, kp)
        if not_compared:
            kp.warnings.append(
                f"{self.kind}: {len(not_compared)} password(s) named by file: references were not compared "
                f"with the live ones: {NOT_COMPARED} (a pull request could commit a guess; a trusted plan "
                "compares them)"
            )
        kp.uncompared += [
            Gap(
                self.kind,
                "the account list does not return it (write-only): a change made outside the product cannot be seen",
                field=k,
                resources=n,
            )
            for k, n in sorted(unseen.items())
        ]
        return kp

    def _undeclared(self, a: LiveAccount, scopes: list[ScopeDecl], ctx: RunContext, kp: KindPlan) -> None:
        """A live account no manifest declares: deleted inside a prune scope that does not protect it."""

        def delete(scope: ScopeDecl) -> Change:
            return Change(
                kind=self.kind,
                vendor=self.vendor,
                key=a.username,
                action=Action.DELETE,
                resource="",
                source=scope.ref,
                diffs=[FieldDiff(k, v, None, k == "password") for k, v in self._display(self._live_view(a, ctx)).items()],
                precondition={"fingerprint": ctx.live_fingerprint(self._live_view(a, ctx))},
                calls=["POST /gateway/whitelist-account/delete (batched)"],
                notes=[f"not declared; inside {scope.ref}"],
                data={"product_type": a.product_type},
            )

        decision = undeclared(scopes, holds=lambda s: self._in_scope(s, a), protects=lambda s: a.username in s.protect)
        decision.record(kp, kind=self.kind, vendor=self.vendor, key=a.username, change=delete)

    @staticmethod
    def _in_scope(scope: ScopeDecl, a: LiveAccount) -> bool:
        s: ProxyAccountScope = scope.spec
        return a.username.startswith(s.usernamePrefix) and (s.productType is None or s.productType == a.product_type)

    @staticmethod
    def _display(view: dict[str, Any]) -> dict[str, Any]:
        return {k: (SENSITIVE if k == "password" else v) for k, v in view.items()}

    def _desired_view(self, spec: ProxyAccountSpec, pw: str, ctx: RunContext) -> dict[str, Any]:
        return {"password": ctx.fingerprint_for(self.vendor)(pw), **self._desired_fields(spec)}

    @staticmethod
    def _desired_fields(spec: ProxyAccountSpec) -> dict[str, Any]:
        view: dict[str, Any] = {
            "remark": spec.remark,
            "productType": spec.productType,
            "trafficLimitGb": spec.trafficLimitGb,
            "enabled": spec.enabled,
        }
        if spec.dailyLimitGb is not None:
            view["dailyLimitGb"] = spec.dailyLimitGb
        if spec.udp is not None:
            view["udp"] = spec.udp
        return view

    def _create(self, r: Resource[ProxyAccountSpec], spec: ProxyAccountSpec, pw: str, ctx: RunContext) -> Change:
        view = self._desired_view(spec, pw, ctx)
        follow = self._follow_ups(spec)
        calls = ["POST /gateway/whitelist-account/add (batched)"]
        if follow:
            calls.append("POST /gateway/proxy-account/change")
        if not spec.enabled:
            calls.append("POST /gateway/whitelist-account/disable (batched)")
        return Change(
            kind=self.kind,
            vendor=self.vendor,
            key=spec.username,
            action=Action.CREATE,
            resource=r.ref,
            source=r.source,
            diffs=[FieldDiff(k, None, v, k == "password") for k, v in self._display(view).items()],
            precondition={"exists": False},
            calls=calls,
            data={"desired": self._data(spec), "password_fingerprint": view["password"]},
        )

    @staticmethod
    def _data(spec: ProxyAccountSpec) -> dict[str, Any]:
        # secret *reference*, never the value
        return spec.model_dump()

    @staticmethod
    def _follow_ups(spec: ProxyAccountSpec) -> dict[str, int]:
        """``proxy-account/change`` fields needed after ``add`` (which only sets name, password,
        remark and product type)."""
        out: dict[str, int] = {}
        if spec.trafficLimitGb:
            out["limit"] = spec.trafficLimitGb
        if spec.dailyLimitGb is not None:
            out["daily_limit"] = spec.dailyLimitGb
        if spec.udp is not None:
            out["udp"] = int(spec.udp)
        return out

    def _update(
        self,
        r: Resource[ProxyAccountSpec],
        spec: ProxyAccountSpec,
        pw: str,
        a: LiveAccount,
        ctx: RunContext,
        *,
        compare_password: bool = True,
    ) -> Change | None:
        want, have = self._desired_fields(spec), self._live_fields(a)
        diffs = []
        if compare_password and pw != a.password:
            diffs.append(FieldDiff("password", SENSITIVE, SENSITIVE, True))
        for k in (*COMPARED, "dailyLimitGb", "udp"):
            if k in want and k in have and want[k] != have[k]:
                diffs.append(FieldDiff(k, have[k], want[k]))
        if not diffs:  # the common case of a plan: no fingerprint to compute
            return None
        want = {"password": ctx.fingerprint_for(self.vendor)(pw), **want}
        have = {"password": ctx.precondition_fingerprint(self.vendor)(a.password), **have}
        pre = {"fingerprint": ctx.live_fingerprint(have)}
        notes = [] if compare_password else [f"password: {NOT_COMPARED}"]
        write_only = [k for k in ("dailyLimitGb", "udp") if k in want and k not in have]
        data: dict[str, Any] = {"desired": self._data(spec), "password_fingerprint": want["password"]}
        if any(d.path == "productType" for d in diffs):
            note = "product type cannot be changed in place: the account is deleted and re-created (usage history is lost)"
            window = (
                "BestProxy completes a delete up to 5 minutes later: if it still holds the username, the add "
                "is reported 'pending: retry after 5 minutes' (exit 4) and the next apply creates it"
            )
            change = Change(
                kind=self.kind,
                vendor=self.vendor,
                key=spec.username,
                action=Action.REPLACE,
                resource=r.ref,
                source=r.source,
                diffs=diffs,
                precondition=pre,
                notes=[note, window],
                calls=["POST /gateway/whitelist-account/delete (batched)", "POST /gateway/whitelist-account/add (batched)"],
                data=data,
            )
            if r.protected:
                data["blocked"] = "the resource is marked metadata.protected; it is never deleted or replaced"
            elif not ctx.options.allow_replace:
                data["blocked"] = "replacing needs --allow-replace"
            return change
        calls = []
        if any(d.path == "enabled" for d in diffs):
            calls.append(f"POST /gateway/whitelist-account/{'enable' if spec.enabled else 'disable'} (batched)")
        fields = self._change_fields(spec, pw, diffs)
        if fields:
            calls.append("POST /gateway/proxy-account/change")
            if write_only:
                notes.append(f"write-only field(s) re-sent with the change: {', '.join(write_only)}")
        finishing = _finishes_create(spec, pw, a, diffs, ctx)
        if finishing:
            notes.append(UNFINISHED_CREATE_NOTE)
        return Change(
            kind=self.kind,
            vendor=self.vendor,
            key=spec.username,
            action=Action.UPDATE,
            resource=r.ref,
            source=r.source,
            diffs=diffs,
            precondition=pre,
            calls=calls,
            notes=notes,
            data=data,
            impact=0 if finishing else 1,
        )

    @staticmethod
    def _change_fields(spec: ProxyAccountSpec, pw: str | None, diffs: list[FieldDiff]) -> dict[str, Any]:
        changed = {d.path for d in diffs}
        fields: dict[str, Any] = {}
        if "password" in changed and pw is not None:
            fields["password"] = pw
        if "remark" in changed:
            fields["remark"] = spec.remark
        if "trafficLimitGb" in changed:
            fields["limit"] = spec.trafficLimitGb
        if "dailyLimitGb" in changed:
            fields["daily_limit"] = spec.dailyLimitGb
        if "udp" in changed:
            fields["udp"] = int(bool(spec.udp))
        if fields:
            # write-only fields ride along so they converge whenever the account is touched
            if spec.dailyLimitGb is not None:
                fields.setdefault("daily_limit", spec.dailyLimitGb)
            if spec.udp is not None:
                fields.setdefault("udp", int(spec.udp))
        return fields

    # -- apply -----------------------------------------------------------------------------
    ordered_units = True
    UPDATE_CHUNK = 100

    def apply_units(self, changes: list[Change]) -> list[list[Change]]:
        """Deletes (and replaces: delete + add) first, then one unit per product type of creates
        (one ``add`` call each), then updates in chunks (each chunk's enable/disable batched)."""
        deletes = [c for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
        by_type: dict[int, list[Change]] = {}
        for c in changes:
            if c.action is Action.CREATE:
                by_type.setdefault(c.data["desired"]["productType"], []).append(c)
        updates = [c for c in changes if c.action is Action.UPDATE]
        units = [deletes] if deletes else []
        units += [by_type[t] for t in sorted(by_type)]
        units += [updates[i : i + self.UPDATE_CHUNK] for i in range(0, len(updates), self.UPDATE_CHUNK)]
        return units

    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        client: BestProxyClient = ctx.client(type(self))
        concurrency = ctx.config.providers.bestproxy.concurrency if ctx.config.providers.bestproxy else 1
        results: dict[str, Outcome] = {}

        def live() -> dict[str, LiveAccount]:
            return {a.username: a for a in client.list_accounts()}

        deletes = [c for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
        if deletes:
            self._batched(
                results,
                deletes,
                write_each(
                    [c.key for c in deletes],
                    client.delete_accounts,
                    lambda ks: set(ks) - set(live()),
                    what="whitelist-account/delete",
                ),
                final={c.key for c in deletes if c.action is Action.DELETE},
            )

        creates = [c for c in changes if c.action is Action.CREATE and c.key not in results]
        self._create_all(client, creates, ctx, results, concurrency, live)
        self._explain_window(client, creates, results, replaced=False)
        self._create_replaced(
            client, [c for c in changes if c.action is Action.REPLACE and c.key not in results], ctx, results, concurrency, live
        )

        updates = [c for c in changes if c.action is Action.UPDATE]

        def set_enabled(batch: list[Change], write: Callable[[list[str]], None], flag: bool) -> dict[str, str]:
            def done(keys: list[str]) -> set[str]:
                return {k for k, a in live().items() if k in keys and a.enabled is flag}

            return write_each([c.key for c in batch], write, done, what=f"whitelist-account/{'enable' if flag else 'disable'}")

        for flag, fn in ((True, client.enable_accounts), (False, client.disable_accounts)):
            batch = [c for c in updates if any(d.path == "enabled" for d in c.diffs) and c.data["desired"]["enabled"] is flag]
            if batch:
                self._batched(results, batch, set_enabled(batch, fn, flag), final=set())

        def change_one(c: Change) -> Outcome:
            if c.key in results:
                return results[c.key]
            if ctx.stop.is_set():
                return Outcome(c, "interrupted", "not started: the run was stopped")
            spec = ProxyAccountSpec.model_validate(c.data["desired"])
            fields = self._change_fields(spec, self._password(c, ctx), c.diffs)
            try:
                if fields:
                    self._change(client, c.key, fields, live)
            except ReconcilerError as exc:
                return Outcome(c, "failed", str(exc))
            return Outcome(c, "applied")

        for o in RunContext.map(change_one, updates, concurrency=concurrency):
            results[o.change.key] = o
        return [results[c.key] for c in changes]

    def _create_replaced(
        self,
        client: BestProxyClient,
        replaced: list[Change],
        ctx: RunContext,
        results: dict[str, Outcome],
        concurrency: int,
        live: Any,
    ) -> None:
        """The add half of a replace, in its own batches (an add refused in BestProxy's 5-minute
        delete window must not fail plain creates). A refused add whose username is gone from the
        list is the window, not an error: reported ``pending: retry after 5 minutes``."""
        if not replaced:
            return
        self._create_all(client, replaced, ctx, results, concurrency, live)
        self._explain_window(client, replaced, results, replaced=True)

    @staticmethod
    def _explain_window(client: BestProxyClient, adds: list[Change], results: dict[str, Outcome], *, replaced: bool) -> None:
        """An add refused while its username is not in the list: BestProxy's 5-minute delete
        window (certain for a replace, which just deleted it; possible for a create)."""
        failed = [c for c in adds if results.get(c.key) is not None and results[c.key].status == "failed"]
        if not failed:
            return
        try:
            present = {a.username for a in client.list_accounts()}
        except ReconcilerError:
            return
        for c in failed:
            if c.key in present:
                continue
            if replaced:
                results[c.key] = Outcome(
                    c,
                    "failed",
                    "pending: retry after 5 minutes — the old account is deleted, but BestProxy completes a "
                    "delete up to 5 minutes later and does not take the username back yet; the next apply creates it",
                )
            else:
                o = results[c.key]
                results[c.key] = Outcome(
                    c,
                    "failed",
                    f"{o.message} (the account is not in the list: if it was deleted in the "
                    "last 5 minutes BestProxy may still hold the username — retry after 5 minutes)",
                    o.details,
                )

    @staticmethod
    def _change(client: BestProxyClient, username: str, fields: dict[str, Any], live: Any) -> None:
        """``proxy-account/change``; an unknown outcome is settled by reading the account back
        (fields the list does not return cannot be confirmed: the call is repeated, harmlessly)."""
        visible = {"password": "password", "remark": "remark", "limit": "limit_gb"}

        def done() -> bool:
            if set(fields) - set(visible):
                return False
            a = live().get(username)
            return a is not None and all(getattr(a, visible[k]) == v for k, v in fields.items())

        settle_one(lambda: client.change_account(username, **fields), done, what="proxy-account/change")

    @staticmethod
    def _password(c: Change, ctx: RunContext) -> str | None:
        if not any(d.path == "password" for d in c.diffs) and c.action is Action.UPDATE:
            return None
        return ctx.secret_for_change(c.source, c.data["desired"]["password"])

    @staticmethod
    def _batched(results: dict[str, Outcome], batch: list[Change], failed: dict[str, str], *, final: set[str]) -> None:
        """Each change's outcome of a batch call (``failed``: :func:`write_each`'s refused items)."""
        for c in batch:
            if c.key in failed:
                results[c.key] = Outcome(c, "failed", failed[c.key])
            elif c.key in final:
                results[c.key] = Outcome(c, "applied")

    @staticmethod
    def _add_batches(creates: list[Change]) -> list[tuple[int, str, list[Change]]]:
        by_type: dict[int, list[Change]] = {}
        for c in creates:
            by_type.setdefault(c.data["desired"]["productType"], []).append(c)
        out: list[tuple[int, str, list[Change]]] = []
        for ptype, group in sorted(by_type.items()):
            counts = Counter(c.data["desired"]["remark"] for c in group)
            common, n_common = counts.most_common(1)[0]
            if len(counts) < 1 + len(group) - n_common:
                for remark in sorted(counts):
                    out.append((ptype, remark, [c for c in group if c.data["desired"]["remark"] == remark]))
            else:
                out.append((ptype, common, group))
        return out

    @staticmethod
    def _unlisted(client: BestProxyClient, refused: list[Change]) -> dict[str, Outcome]:
        """Accounts whose ``add`` was refused (each alone, :func:`write_each`) that exist all the
        same. BestProxy may not list a new account for up to its 5-minute window (emulator knob
        ``list_delay_seconds``), so a re-apply right after a create plans it again and its ``add``
        is refused as existing. Each is asked for with a ``proxy-account/change`` that changes
        nothing: answered, the account exists though unlisted — ``pending``, no failure, nothing
        written; refused, it does not (e.g. a username a delete in the last 5 minutes still holds)
        and the add's refusal stands (not in the answer). Any other failure (the key, the network)
        ends the probing: it would fail the same for every account of a batch refused for it."""
        out: dict[str, Outcome] = {}
        for c in refused:
            try:
                client.change_account(c.key)  # no field: changes nothing; refused if no such account
            except BestProxyParameterError:
                continue
            except ReconcilerError:
                break
            out[c.key] = Outcome(c, "pending", PENDING_NOTE)
        return out

    def _create_all(
        self,
        client: BestProxyClient,
        creates: list[Change],
        ctx: RunContext,
        results: dict[str, Outcome],
        concurrency: int,
        live: Any,
    ) -> None:
        # ``add`` takes one remark per call: either one call per (product type, remark), or one
        # call per product type carrying the most common remark with the others set by the
        # per-account follow-up call — whichever makes fewer calls
        created: list[tuple[Change, str]] = []
        for ptype, remark, batch in self._add_batches(creates):
            if ctx.stop.is_set():
                for c in batch:
                    results[c.key] = Outcome(c, "interrupted", "not started: the run was stopped")
                continue
            passwords = {c.key: self._password(c, ctx) or "" for c in batch}

            def add(keys: list[str], pt: int = ptype, rm: str = remark, pw: dict[str, str] = passwords) -> None:
                client.add_accounts([(k, pw[k]) for k in keys], product_type=pt, remark=rm)

            def present(keys: list[str]) -> set[str]:
                return set(keys) & set(live())

            # unknown outcome: look the accounts up, add only the missing ones (no blind retry);
            # a refused batch: each account's own outcome (write_each); a refused account the
            # list does not show may exist all the same (pending, see _unlisted)
            refused = write_each([c.key for c in batch], add, present, what="whitelist-account/add")
            unlisted = self._unlisted(client, [c for c in batch if c.key in refused])
            for c in batch:
                if c.key in unlisted:
                    results[c.key] = unlisted[c.key]
                elif c.key in refused:
                    results[c.key] = Outcome(c, "failed", refused[c.key])
                else:
                    created.append((c, remark))
        disable = [c for c, _ in created if not c.data["desired"]["enabled"]]

        def follow(item: tuple[Change, str]) -> Outcome:
            c, batch_remark = item
            spec = ProxyAccountSpec.model_validate(c.data["desired"])
            fields: dict[str, Any] = self._follow_ups(spec)
            if spec.remark != batch_remark:
                fields["remark"] = spec.remark
            if fields and ctx.stop.is_set():
                return Outcome(
                    c,
                    "interrupted",
                    f"created; {', '.join(sorted(fields))} not set yet: the run was "
                    "stopped (apply again, or --resume, finishes it)",
                )
            try:
                if fields:
                    self._change(client, c.key, fields, live)
            except ReconcilerError as exc:
                return Outcome(c, "failed", f"created, but setting {', '.join(sorted(fields))} failed: {exc}")
            return Outcome(c, "applied")

        for o in RunContext.map(follow, created, concurrency=concurrency):
            results[o.change.key] = o
        if disable:
            refused = write_each(
                [c.key for c in disable],
                client.disable_accounts,
                lambda ks: {k for k, a in live().items() if k in ks and not a.enabled},
                what="whitelist-account/disable",
            )
            for c in disable:
                if c.key in refused:
                    results[c.key] = Outcome(c, "failed", f"created, but disabling failed: {refused[c.key]}")

    # -- export (DR, adoption) -----------------------------------------------------------------
    def export(
        self, resources: list[Resource[ProxyAccountSpec]], scopes: list[ScopeDecl], ctx: RunContext, request: ExportRequest
    ) -> KindExport:
        """Every live account (one list call) as a document of ``bestproxy/accounts.yaml``.

        The password the list returns becomes a reference (``request.secret_ref``); ``dailyLimitGb``
        and ``udp`` are write-only, so they are carried over from a declaring manifest or left as a
        comment; usage and creation time are server-owned and only shown as comments."""
        path = "bestproxy/accounts.yaml"
        client: BestProxyClient = ctx.client(type(self))
        declared = {r.spec.username: r for r in resources}
        docs = []
        for a in sorted(client.list_accounts(), key=lambda x: x.username):
            r = declared.get(a.username)
            if request.unmanaged and r is not None:
                continue
            spec: dict[str, Any] = {
                "username": a.username,
                "password": request.secret_ref(path, f"proxy-password-{a.username}", a.password),
                "productType": a.product_type,
            }
            if a.remark:
                spec["remark"] = a.remark
            if a.limit_gb:
                spec["trafficLimitGb"] = a.limit_gb
            if not a.enabled:
                spec["enabled"] = False
            doc = ExportDoc(self.kind, r.name if r else a.username, spec, protected=bool(r and r.protected))
            for key, raw_key in (("dailyLimitGb", "daily_limit"), ("udp", "udp")):
                if raw_key in a.raw:
                    value = a.raw[raw_key]
                    if key == "udp" and a.product_type in UDP_PRODUCT_TYPES:
                        spec[key] = bool(value)
                    elif key == "dailyLimitGb" and value:
                        spec[key] = int(value)
                elif r is not None:
                    if getattr(r.spec, key) is not None:
                        spec[key] = getattr(r.spec, key)
                        doc.field_comments[key] = f"write-only (not returned by the API): taken from {r.source}"
                elif key == "dailyLimitGb" or a.product_type in UDP_PRODUCT_TYPES:
                    doc.missing[key] = "write-only: the API does not return it; add it if the account has one set"
            server = [f"{k} {a.raw[k]}" for k in ("created_at", "usage_flow") if a.raw.get(k) not in (None, "")]
            if server:
                doc.comments.append(f"server-owned, not restored: {', '.join(server)}")
            docs.append(doc)
        header = [
            "BestProxy proxy accounts, exported from live state (whitelist-account/list).",
            "Passwords are references; the values are never written into manifests.",
        ]
        return KindExport(groups=[ExportGroup(path, docs, header)])
