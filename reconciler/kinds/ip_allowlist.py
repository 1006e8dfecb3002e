"""Kind ``IpAllowlist``: the set of IPv4 addresses allowed to use one BestProxy product type.

Identity = product type. ``/gateway/proxy-ip/list`` filters by product type only (it cannot tell
two type-11 user products apart), so one allowlist per product type; ``userProductId`` is what
additions to type 11 are sent with. The diff is element-level ("+3 -1 ~1 of 2,041"); additions are
batched into one ``proxy-ip/add`` call per distinct remark; removals into one ``proxy-ip/delete``.

Removals need BestProxy's verification (``verify_type``/``verify_code``): configure
``providers.bestproxy.ip_delete_verification`` (TOTP computed from a secret reference, or a one-time
code reference). A plan that would remove addresses without a usable verification is refused at
plan time. A remark change has no update call: that entry is replaced (delete + add).
Without ``exclusive: true`` live addresses that are not declared are listed as unmanaged.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator

from reconciler.clients import redact
from reconciler.clients.bestproxy import BestProxyClient, LiveIp
from reconciler.model import Action, Change, FieldDiff, KindPlan, Outcome, Unmanaged
from reconciler.errors import InputError, Problem, ReconcilerError
from reconciler.kinds import register
from reconciler.kinds.base import ExportDoc, ExportGroup, ExportRequest, Kind, KindExport, Resource, RunContext, ScopeDecl
from reconciler.kinds.bestproxy_common import PRODUCT_TYPES, ProductType, Remark, make_client, provider_problem
from reconciler.kinds.writes import settle_batch


def normalize_ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ipaddress.AddressValueError:
        raise ValueError("not an IPv4 address (dotted quad, no leading zeros)") from None


class IpEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip: StrictStr
    remark: Remark = ""

    @field_validator("ip")
    @classmethod
    def _norm(cls, v: str) -> str:
        return normalize_ipv4(v)


def _entry(value: Any) -> Any:
    return {"ip": value} if isinstance(value, str) else value


class IpAllowlistSpec(BaseModel):
    """``entries`` items are either ``"1.2.3.4"`` or ``{ip: 1.2.3.4, remark: office}``."""

    model_config = ConfigDict(extra="forbid")
    productType: ProductType
    userProductId: int | None = Field(default=None, ge=1, strict=True,
                                      description="required for product type 11 (sent with additions)")
    exclusive: StrictBool = Field(default=False, description="remove live addresses that are not declared")
    entries: list[Annotated[IpEntry, BeforeValidator(_entry, json_schema_input_type=IpEntry | str)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _upid(self) -> "IpAllowlistSpec":
        if self.productType == 11 and self.userProductId is None:
            raise ValueError("userProductId is required for product type 11")
        if self.productType != 11 and self.userProductId is not None:
            raise ValueError("userProductId is only used with product type 11")
        return self

    def entry_map(self) -> dict[str, str]:
        return {e.ip: e.remark for e in self.entries}


@register
class IpAllowlistKind(Kind):
    kind = "IpAllowlist"
    vendor = "bestproxy"
    Spec = IpAllowlistSpec
    apply_order = 20

    def keys(self, res: Resource) -> list[tuple[str, tuple[Any, ...]]]:
        return [(str(res.spec.productType), ("productType",))]

    @classmethod
    def make_client(cls, ctx: RunContext) -> BestProxyClient:
        return make_client(ctx)

    def check(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        problems = provider_problem(ctx, resources)
        for r in resources:
            seen: dict[str, int] = {}
            for i, e in enumerate(r.spec.entries):
                if e.ip in seen:
                    problems.append(r.problem(("entries", i), f"duplicate address {e.ip} (also entry {seen[e.ip]})"))
                else:
                    seen[e.ip] = i
        v = ctx.config.providers.bestproxy.ip_delete_verification if ctx.config.providers.bestproxy else None
        doc = ctx.config.doc
        if v is not None and resources and doc is not None:
            path = ("providers", "bestproxy", "ip_delete_verification")
            ref = v.totp_secret if v.type == "totp" else v.code
            if ref is None:
                problems.append(doc.problem(path, f"verification type {v.type} needs "
                                            f"{'totp_secret' if v.type == 'totp' else 'code'} (a secret reference)", resource="Config"))
            else:
                secret = ctx.resolve_secret(doc, path, ref, resource="Config")
                if secret is not None and v.type == "totp":
                    import pyotp  # loaded only when a TOTP secret is resolved

                    try:
                        pyotp.TOTP(secret).now()
                    except Exception:  # noqa: BLE001 - binascii/TypeError from a bad base32 secret
                        problems.append(doc.problem(path + ("totp_secret",), f"the value behind {ref} is not a base32 TOTP secret", resource="Config"))
        return problems

    # -- plan ------------------------------------------------------------------------------
    def plan(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client: BestProxyClient = ctx.client(type(self))
        kp = KindPlan()
        lives: dict[int, list[LiveIp]] = {}
        for r in resources:
            lives[r.spec.productType] = client.list_ips(r.spec.productType)
        needs_verification: list[Problem] = []
        for r in resources:
            spec: IpAllowlistSpec = r.spec
            live = {i.ip: i.remark for i in lives[spec.productType]}
            change = self._diff(r, spec, live, kp, lives, ctx)
            kp.existing_in_scope += len(live) if spec.exclusive else len(set(live) & set(spec.entry_map()))
            if change is None:
                kp.noops += 1
                continue
            if change.data["remove"] and not self._verification_usable(ctx):
                needs_verification.append(r.problem(
                    ("entries",), f"removing {len(change.data['remove'])} address(es) needs BestProxy's verification: set "
                    "providers.bestproxy.ip_delete_verification (type totp with totp_secret, or phone/email/wechat with code)",
                    key=True))
            kp.changes.append(change)
        if needs_verification:
            raise InputError(needs_verification)
        for ptype in (t for t in PRODUCT_TYPES if t not in lives):  # allowlists no manifest declares
            kp.unmanaged.extend(Unmanaged(self.kind, self.vendor, f"{ptype}/{i.ip}", "no manifest declares this product type's allowlist")
                                for i in sorted(client.list_ips(ptype), key=lambda i: ipaddress.IPv4Address(i.ip)))
        return kp

    def _diff(self, r: Resource, spec: IpAllowlistSpec, live: dict[str, str], kp: KindPlan,
              lives: dict[int, list[LiveIp]], ctx: RunContext) -> Change | None:
        want = spec.entry_map()
        add = sorted(set(want) - set(live), key=ipaddress.IPv4Address)
        extra = sorted(set(live) - set(want), key=ipaddress.IPv4Address)
        remark = sorted((ip for ip in set(want) & set(live) if want[ip] != live[ip]), key=ipaddress.IPv4Address)
        remove = extra if spec.exclusive else []
        if not spec.exclusive:
            kp.unmanaged.extend(Unmanaged(self.kind, self.vendor, f"{spec.productType}/{ip}",
                                          "address not declared; the allowlist is not exclusive") for ip in extra)
        if not (add or remove or remark):
            return None
        diffs = [FieldDiff(f"entries[{ip}]", None, {"remark": want[ip]}) for ip in add]
        diffs += [FieldDiff(f"entries[{ip}]", {"remark": live[ip]}, None) for ip in remove]
        diffs += [FieldDiff(f"entries[{ip}].remark", live[ip], want[ip]) for ip in remark]
        notes = [f"{ip}: remark change has no update call; the entry is replaced (delete + add)" for ip in remark[:20]]
        if len(remark) > 20:
            notes.append(f"... and {len(remark) - 20} more remark replacements")
        others = {ip for pt, items in lives.items() if pt != spec.productType for ip in (i.ip for i in items)}
        shared = sorted(set(remove + remark) & others)
        if shared:
            notes.append("proxy-ip/delete takes no product type; these addresses are also allowed for another "
                         f"product type and may be removed there too: {', '.join(shared[:10])}")
        calls = []
        if remove or remark:
            calls.append("POST /gateway/proxy-ip/delete (batched, verified)")
        if add or remark:
            n = len({want[ip] for ip in add + remark})
            calls.append(f"POST /gateway/proxy-ip/add x{n} (one per remark)")
        summary = f"+{len(add)} -{len(remove)} ~{len(remark)} of {len(live):,}"
        return Change(
            kind=self.kind, vendor=self.vendor, key=str(spec.productType),
            action=Action.CREATE if not live else Action.UPDATE, resource=r.ref, source=r.source,
            diffs=diffs, summary=summary, notes=notes, calls=calls, impact=len(remove) + len(remark),
            precondition={"fingerprint": ctx.live_fingerprint(sorted(live.items()))},
            data={"add": {ip: want[ip] for ip in add + remark}, "remove": remove + remark,
                  "product_type": spec.productType, "user_product_id": spec.userProductId},
        )

    @staticmethod
    def _verification_usable(ctx: RunContext) -> bool:
        p = ctx.config.providers.bestproxy
        v = p.ip_delete_verification if p else None
        return v is not None and (v.totp_secret if v.type == "totp" else v.code) is not None

    # -- apply -----------------------------------------------------------------------------
    def _verification(self, ctx: RunContext) -> tuple[str, str]:
        p = ctx.config.providers.bestproxy
        assert p is not None and p.ip_delete_verification is not None
        v = p.ip_delete_verification
        if v.type == "totp":
            import pyotp  # loaded only when a TOTP code is computed

            assert v.totp_secret is not None
            code = pyotp.TOTP(ctx.config_secret(v.totp_secret)).now()  # fresh, right before the call
            redact.register(code)
            return "totp", code
        assert v.code is not None
        return v.type, ctx.config_secret(v.code)

    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        client: BestProxyClient = ctx.client(type(self))
        return [self._apply_one(client, c, ctx) for c in changes]

    def _apply_one(self, client: BestProxyClient, c: Change, ctx: RunContext) -> Outcome:
        d = c.data
        pt = d["product_type"]
        done: list[str] = []

        def present() -> dict[str, str]:
            return {i.ip: i.remark for i in client.list_ips(pt)}

        def delete(ips: list[str]) -> None:
            vtype, code = self._verification(ctx)  # fresh for every attempt
            client.delete_ips(ips, verify_type=vtype, verify_code=code)

        try:
            if d["remove"]:
                # an unknown outcome is settled by listing: only addresses still there are sent again
                settle_batch(d["remove"], delete, lambda ks: set(ks) - set(present()), what="proxy-ip/delete")
                done.append(f"removed {len(d['remove'])}")
            by_remark: dict[str, list[str]] = {}
            for ip, remark in d["add"].items():
                by_remark.setdefault(remark, []).append(ip)
            for remark, ips in sorted(by_remark.items()):
                if ctx.stop.is_set():
                    return Outcome(c, "interrupted", "stopped before all addresses were added",
                                   details=[f"done before the stop: {', '.join(done)}"] if done else [])

                def add(ips: list[str], rm: str = remark) -> None:
                    client.add_ips(ips, product_type=pt, remark=rm, user_product_id=d["user_product_id"])

                def added(ips: list[str], rm: str = remark) -> set[str]:
                    return {ip for ip, r in present().items() if ip in ips and r == rm}

                settle_batch(ips, add, added, what="proxy-ip/add")
                done.append(f"added {len(ips)}")
        except ReconcilerError as exc:
            return Outcome(c, "failed", str(exc), details=[f"done before the failure: {', '.join(done)}"] if done else [])
        return Outcome(c, "applied", ", ".join(done))

    # -- export (DR, adoption) -----------------------------------------------------------------
    def export(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext,
               request: ExportRequest) -> KindExport:
        """The allowlist of every product type that has addresses, as ``bestproxy/allowlists.yaml``.

        ``proxy-ip/list`` does not return ``userProductId`` (type 11) or whether the list is meant
        to be exclusive: both come from a declaring manifest, else a comment says what to fill in.
        With ``request.unmanaged`` a declared allowlist's undeclared addresses are written as a
        comment listing what to add to that manifest (one document per product type)."""
        path = "bestproxy/allowlists.yaml"
        client: BestProxyClient = ctx.client(type(self))
        declared = {r.spec.productType: r for r in resources}
        docs: list[ExportDoc] = []
        keep = False
        header = ["BestProxy IP allowlists, exported from live state (proxy-ip/list, one per product type)."]
        for ptype in PRODUCT_TYPES:
            live = sorted(client.list_ips(ptype), key=lambda i: ipaddress.IPv4Address(i.ip))
            if not live:
                continue
            r = declared.get(ptype)
            if request.unmanaged and r is not None:
                extra = [i for i in live if i.ip not in r.spec.entry_map()]
                if extra:
                    keep = True
                    header += [f"{r.ref} ({r.source}) does not list these live addresses; add them to its entries:",
                               *(f"  - {{ip: {i.ip}, remark: {i.remark!r}}}" if i.remark else f"  - {i.ip}" for i in extra)]
                continue
            entries: list[Any] = [{"ip": i.ip, "remark": i.remark} if i.remark else i.ip for i in live]
            spec: dict[str, Any] = {"productType": ptype}
            doc = ExportDoc(self.kind, r.name if r else f"allowlist-{ptype}", spec, protected=bool(r and r.protected))
            if ptype == 11:
                if r is not None and r.spec.userProductId is not None:
                    spec["userProductId"] = r.spec.userProductId
                    doc.field_comments["userProductId"] = f"not returned by proxy-ip/list: taken from {r.source}"
                else:
                    doc.missing["userProductId"] = "required for product type 11; proxy-ip/list does not return it: fill it in"
            spec["exclusive"] = bool(r.spec.exclusive) if r is not None else False
            if r is None:
                doc.field_comments["exclusive"] = "true removes live addresses not listed here"
            spec["entries"] = entries
            docs.append(doc)
        return KindExport(groups=[ExportGroup(path, docs, header, keep=keep)])
