"""Kind ``IpAllowlist``: the contract's hooks (check, plan, apply, export); the package docstring
says what the kind does."""

from __future__ import annotations

from typing import Any

from reconciler.clients import redact
from reconciler.vendors.bestproxy.client import BestProxyClient, LiveIp
from reconciler.model import Action, Change, FieldDiff, KindPlan, Outcome, Unmanaged
from reconciler.errors import InputError, Problem
from reconciler.kinds.base import ExportDoc, ExportGroup, ExportRequest, Kind, KindExport, Resource, ScopeDecl
from reconciler.kinds.context import RunContext
from reconciler.kinds.prune import undeclared
from reconciler.vendors.bestproxy.common import PRODUCT_TYPES, make_client, provider_problem, write_each
from reconciler.vendors.bestproxy.ip_allowlist.addresses import canonical, is_plain_ipv4, normalize_entry, sort_key
from reconciler.vendors.bestproxy.ip_allowlist.spec import IpAllowlistSpec
from reconciler.vendors.bestproxy.ip_allowlist.totp import next_totp_code


class IpAllowlistKind(Kind[IpAllowlistSpec, BestProxyClient]):
    kind = "IpAllowlist"
    vendor = "bestproxy"
    Spec = IpAllowlistSpec
    apply_order = 20

    def keys(self, res: Resource[IpAllowlistSpec]) -> list[tuple[str, tuple[Any, ...]]]:
        return [(str(res.spec.productType), ("productType",))]

    @classmethod
    def shard_unit(cls, key: str) -> str:
        # an allowlist is one unit (one vendor object): its entries, listed as "14/1.2.3.4", stay with it
        return key.split("/", 1)[0]

    @classmethod
    def make_client(cls, ctx: RunContext) -> BestProxyClient:
        return make_client(ctx)

    def check(self, resources: list[Resource[IpAllowlistSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
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
                problems.append(
                    doc.problem(
                        path,
                        f"verification type {v.type} needs {'totp_secret' if v.type == 'totp' else 'code'} (a secret reference)",
                        resource="Config",
                    )
                )
            else:
                secret = ctx.resolve_secret(doc, path, ref, resource="Config")
                if secret is not None and v.type == "totp":
                    import pyotp  # loaded only when a TOTP secret is resolved

                    try:
                        pyotp.TOTP(secret).now()
                    except Exception:  # noqa: BLE001 - binascii/TypeError from a bad base32 secret
                        problems.append(
                            doc.problem(
                                path + ("totp_secret",), f"the value behind {ref} is not a base32 TOTP secret", resource="Config"
                            )
                        )
        return problems

    # -- plan ------------------------------------------------------------------------------
    def _read_all(self, client: BestProxyClient) -> dict[int, list[LiveIp]]:
        """Every allowlist: one filtered list per documented product type, and the whole list for
        entries under any other (an add without a product type lists them under 0)."""
        by_type = {pt: client.list_ips(pt) for pt in PRODUCT_TYPES}
        for i in client.list_ips(None):
            if i.product_type not in PRODUCT_TYPES:
                by_type.setdefault(i.product_type, []).append(i)
        return by_type

    def plan(self, resources: list[Resource[IpAllowlistSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client: BestProxyClient = ctx.client(type(self))
        kp = KindPlan()
        by_type = self._read_all(client)
        declared: dict[int, Resource[IpAllowlistSpec]] = {r.spec.productType: r for r in resources}
        where: dict[str, list[tuple[int, LiveIp]]] = {}  # canonical address -> every (type, entry) holding it
        for pt, items in by_type.items():
            for i in items:
                where.setdefault(canonical(i.ip), []).append((pt, i))
        needs_verification: list[Problem] = []
        for r in resources:
            spec: IpAllowlistSpec = r.spec
            live = self._live_map(by_type[spec.productType], spec.productType, kp)
            change = self._diff(r, spec, live, kp, where, declared, ctx)
            kp.existing_in_scope += len(live) if spec.exclusive else len(set(live) & set(spec.entry_map()))
            if change is None:
                kp.noops += 1
                continue
            if change.data["remove"] and not self._verification_usable(ctx):
                needs_verification.append(
                    r.problem(
                        ("entries",),
                        f"removing {len(change.data['remove'])} address(es) needs BestProxy's verification: set "
                        "providers.bestproxy.ip_delete_verification (type totp with totp_secret, or phone/email/wechat with code)",
                        key=True,
                    )
                )
            kp.changes.append(change)
        if needs_verification:
            raise InputError(needs_verification)
        for ptype in sorted(t for t in by_type if t not in declared):  # allowlists no manifest declares
            why = (
                "no manifest declares this product type's allowlist"
                if ptype in PRODUCT_TYPES
                else "listed under product type 0 (added without one); no manifest can declare it"
            )
            kp.unmanaged.extend(
                Unmanaged(self.kind, self.vendor, f"{ptype}/{i.ip}", why)
                for i in sorted(by_type[ptype], key=lambda i: sort_key(i.ip))
            )
        return kp

    def _live_map(self, items: list[LiveIp], ptype: int, kp: KindPlan) -> dict[str, LiveIp]:
        """One product type's entries by canonical address; a second entry for the same address
        (written another way) is listed as unmanaged and left alone."""
        live: dict[str, LiveIp] = {}
        for i in items:
            key = canonical(i.ip)
            if key in live:
                kp.unmanaged.append(
                    Unmanaged(
                        self.kind, self.vendor, f"{ptype}/{i.ip}", f"the same address as the entry {live[key].ip}; left alone"
                    )
                )
            else:
                live[key] = i
        return live

    def _diff(
        self,
        r: Resource[IpAllowlistSpec],
        spec: IpAllowlistSpec,
        live: dict[str, LiveIp],
        kp: KindPlan,
        where: dict[str, list[tuple[int, LiveIp]]],
        declared: dict[int, Resource[IpAllowlistSpec]],
        ctx: RunContext,
    ) -> Change | None:
        want = spec.entry_map()
        add = sorted(set(want) - set(live), key=sort_key)
        extra = sorted(set(live) - set(want), key=sort_key)
        remark = sorted((ip for ip in set(want) & set(live) if want[ip] != live[ip].remark), key=sort_key)
        remove = []
        for ip in extra:  # an exclusive allowlist owns every address of its product type
            decision = undeclared(
                [r] if spec.exclusive else [], holds=_owns, outside="address not declared; the allowlist is not exclusive"
            )
            if decision.delete:
                remove.append(ip)
            else:
                kp.unmanaged.append(
                    decision.unmanaged(kind=self.kind, vendor=self.vendor, key=f"{spec.productType}/{live[ip].ip}")
                )
        if not (add or remove or remark):
            return None
        diffs = [FieldDiff(f"entries[{ip}]", None, {"remark": want[ip]}) for ip in add]
        diffs += [FieldDiff(f"entries[{live[ip].ip}]", {"remark": live[ip].remark}, None) for ip in remove]
        diffs += [FieldDiff(f"entries[{ip}].remark", live[ip].remark, want[ip]) for ip in remark]
        notes = [f"{ip}: remark change has no update call; the entry is replaced (delete + add)" for ip in remark[:20]]
        if len(remark) > 20:
            notes.append(f"... and {len(remark) - 20} more remark replacements")
        restore, lost = self._restores(spec.productType, [live[ip] for ip in remove + remark], where, declared)
        if restore:
            notes.append(
                "proxy-ip/delete takes no product type: it removes these addresses from other product types "
                "too, where they are added back right after: " + _listed([f"{x['ip']} ({x['product_type']})" for x in restore])
            )
        if lost:
            notes.append(
                "proxy-ip/delete takes no product type: it also removes these addresses from product type 11, "
                "and no IpAllowlist of type 11 gives the userProductId to add them back: " + _listed(lost)
            )
        elsewhere = [f"{ip} ({', '.join(str(pt) for pt, _ in where[ip])})" for ip in add if ip in where]
        if elsewhere:
            notes.append(
                "already allowlisted for another product type (if BestProxy holds an address under one "
                "product type only, adding it here is refused): " + _listed(elsewhere)
            )
        other_forms = [ip for ip in add + remark if not is_plain_ipv4(ip)]
        if other_forms:
            notes.append(
                "BestProxy's document shows IPv4 addresses only; if it refuses IPv6 or CIDR entries, these fail "
                "(the rest is applied): " + _listed(other_forms)
            )
        calls = []
        if remove or remark:
            calls.append("POST /gateway/proxy-ip/delete (batched, verified)")
        if add or remark:
            n = len({(want[ip], is_plain_ipv4(ip)) for ip in add + remark})
            calls.append(f"POST /gateway/proxy-ip/add x{n} (one per remark; IPv4 apart from other forms)")
        if restore:
            calls.append("POST /gateway/proxy-ip/add (adds back, per product type and remark)")
        summary = f"+{len(add)} -{len(remove)} ~{len(remark)} of {len(live):,}"
        seen = sorted((i.ip, i.remark) for i in live.values())
        return Change(
            kind=self.kind,
            vendor=self.vendor,
            key=str(spec.productType),
            action=Action.CREATE if not live else Action.UPDATE,
            resource=r.ref,
            source=r.source,
            diffs=diffs,
            summary=summary,
            notes=notes,
            calls=calls,
            impact=len(remove) + len(remark),
            precondition={"fingerprint": ctx.live_fingerprint([seen, restore])},
            data={
                "add": {ip: want[ip] for ip in add + remark},
                "remove": [live[ip].ip for ip in remove + remark],
                "product_type": spec.productType,
                "user_product_id": spec.userProductId,
                "restore": restore,
            },
        )

    @staticmethod
    def _restores(
        ptype: int,
        deleted: list[LiveIp],
        where: dict[str, list[tuple[int, LiveIp]]],
        declared: dict[int, Resource[IpAllowlistSpec]],
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """What ``proxy-ip/delete`` (which takes no product type) would also take from other product
        types and must be added back there: entries the other type declares with the same remark
        (otherwise that type's own change re-adds them), or does not declare and does not prune. An
        entry of type 11 needs that type's userProductId: without a manifest giving it, it is lost."""
        restore: list[dict[str, Any]] = []
        lost: list[str] = []
        for entry in deleted:
            for pt, i in where.get(canonical(entry.ip), []):
                if pt == ptype:
                    continue
                other = declared.get(pt)
                upid = None
                if other is not None:
                    wanted = other.spec.entry_map()
                    key = canonical(i.ip)
                    if (key in wanted and wanted[key] != i.remark) or (key not in wanted and other.spec.exclusive):
                        continue
                    upid = other.spec.userProductId
                if pt == 11 and upid is None:
                    lost.append(i.ip)
                    continue
                restore.append({"ip": i.ip, "product_type": pt, "remark": i.remark, "user_product_id": upid})
        return restore, lost

    @staticmethod
    def _verification_usable(ctx: RunContext) -> bool:
        p = ctx.config.providers.bestproxy
        v = p.ip_delete_verification if p else None
        return v is not None and (v.totp_secret if v.type == "totp" else v.code) is not None

    # -- apply -----------------------------------------------------------------------------
    def _verification(self, ctx: RunContext, client: BestProxyClient) -> tuple[str, str]:
        p = ctx.config.providers.bestproxy
        assert p is not None and p.ip_delete_verification is not None
        v = p.ip_delete_verification
        if v.type == "totp":
            assert v.totp_secret is not None
            code = next_totp_code(ctx.config_secret(v.totp_secret), client)  # fresh, right before the call
            redact.register(code)
            return "totp", code
        assert v.code is not None
        return v.type, ctx.config_secret(v.code)

    def apply_units(self, changes: list[Change]) -> list[list[Change]]:
        """One unit: every allowlist's removals go in one verified delete before any add (a delete
        takes no product type, so an add made before it could be undone by it)."""
        return [list(changes)] if changes else []

    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        client: BestProxyClient = ctx.client(type(self))

        def present(pt: int) -> dict[str, str]:
            return {canonical(i.ip): i.remark for i in client.list_ips(pt or None) if pt or i.product_type == 0}

        failed: dict[str, dict[str, str]] = {c.key: {} for c in changes}  # change -> entry -> reason
        done: dict[str, list[str]] = {c.key: [] for c in changes}
        removals = list(dict.fromkeys(ip for c in changes for ip in c.data["remove"]))
        if removals and ctx.stop.is_set():
            return [Outcome(c, "interrupted", "not started: the run was stopped") for c in changes]
        if removals:

            def delete(ips: list[str]) -> None:
                vtype, code = self._verification(ctx, client)  # a code of its own for every call
                client.delete_ips(ips, verify_type=vtype, verify_code=code)

            removed_from: dict[str, set[int]] = {}  # address -> the allowlists it is to leave
            for c in changes:
                for ip in c.data["remove"]:
                    removed_from.setdefault(ip, set()).add(c.data["product_type"])

            def gone(ips: list[str]) -> set[str]:
                held = {pt: present(pt) for pt in sorted({pt for ip in ips for pt in removed_from[ip]})}
                return {ip for ip in ips if all(canonical(ip) not in held[pt] for pt in removed_from[ip])}

            refused = write_each(removals, delete, gone, what="proxy-ip/delete", budget=4)
            for c in changes:
                failed[c.key].update((ip, refused[ip]) for ip in c.data["remove"] if ip in refused)
                if n := sum(ip not in refused for ip in c.data["remove"]):
                    done[c.key].append(f"removed {n}")
        restored: set[tuple[str, int]] = set()
        outcomes = []
        for c in changes:
            if ctx.stop.is_set():
                outcomes.append(
                    Outcome(
                        c,
                        "interrupted",
                        "stopped before all addresses were added",
                        details=[f"done before the stop: {', '.join(done[c.key])}"] if done[c.key] else [],
                    )
                )
                continue
            d = c.data
            groups: dict[tuple[int, int | None, str, bool], list[str]] = {}
            for ip, remark in d["add"].items():
                groups.setdefault((d["product_type"], d["user_product_id"], remark, is_plain_ipv4(ip)), []).append(ip)
            n_added = sum(len(v) for v in groups.values())
            for x in d.get("restore", []):
                if (x["ip"], x["product_type"]) not in restored:
                    restored.add((x["ip"], x["product_type"]))
                    groups.setdefault((x["product_type"], x["user_product_id"], x["remark"], is_plain_ipv4(x["ip"])), []).append(
                        x["ip"]
                    )
            for (pt, upid, remark, _), ips in sorted(groups.items(), key=lambda g: (g[0][0], str(g[0][1]), g[0][2], g[0][3])):

                def add(batch: list[str], pt: int = pt, upid: int | None = upid, remark: str = remark) -> None:
                    client.add_ips(batch, product_type=pt or None, remark=remark, user_product_id=upid)

                def added(batch: list[str], pt: int = pt, remark: str = remark) -> set[str]:
                    have = present(pt)
                    return {ip for ip in batch if have.get(canonical(ip)) == remark}

                refused = write_each(ips, add, added, what="proxy-ip/add")
                failed[c.key].update((ip if pt == d["product_type"] else f"{ip} ({pt})", why) for ip, why in refused.items())
            n_back = sum(len(v) for k, v in groups.items() if k[0] != d["product_type"])
            if n := n_added - sum(1 for ip in d["add"] if ip in failed[c.key]):
                done[c.key].append(f"added {n}")
            if n_back:
                done[c.key].append(f"added back {n_back} to other product types")
            outcomes.append(self._outcome(c, failed[c.key], done[c.key]))
        return outcomes

    @staticmethod
    def _outcome(c: Change, failed: dict[str, str], done: list[str]) -> Outcome:
        if not failed:
            return Outcome(c, "applied", ", ".join(done))
        names = sorted(failed, key=sort_key)
        first = failed[names[0]]
        return Outcome(
            c,
            "failed",
            f"{len(names)} address(es) not done ({_listed(names)}): {first}",
            details=[f"{ip}: {failed[ip]}" for ip in names[:50]] + ([f"done: {', '.join(done)}"] if done else []),
        )

    # -- export (DR, adoption) -----------------------------------------------------------------
    def export(
        self, resources: list[Resource[IpAllowlistSpec]], scopes: list[ScopeDecl], ctx: RunContext, request: ExportRequest
    ) -> KindExport:
        """The allowlist of every product type that has addresses, as ``bestproxy/allowlists.yaml``.

        ``proxy-ip/list`` does not return ``userProductId`` (type 11) or whether the list is meant
        to be exclusive: both come from a declaring manifest, else a comment says what to fill in.
        With ``request.unmanaged`` a declared allowlist's undeclared addresses are written as a
        comment listing what to add to that manifest (one document per product type)."""
        path = "bestproxy/allowlists.yaml"
        client: BestProxyClient = ctx.client(type(self))
        declared: dict[int, Resource[IpAllowlistSpec]] = {r.spec.productType: r for r in resources}
        docs: list[ExportDoc] = []
        keep = False
        header = ["BestProxy IP allowlists, exported from live state (proxy-ip/list, one per product type)."]
        for ptype in PRODUCT_TYPES:
            live = sorted(client.list_ips(ptype), key=lambda i: sort_key(i.ip))
            if not live:
                continue
            r = declared.get(ptype)
            if request.unmanaged and r is not None:
                extra = [i for i in live if canonical(i.ip) not in r.spec.entry_map()]
                if extra:
                    keep = True
                    header += [
                        f"{r.ref} ({r.source}) does not list these live addresses; add them to its entries:",
                        *(f"  - {{ip: {i.ip}, remark: {i.remark!r}}}" if i.remark else f"  - {i.ip}" for i in extra),
                    ]
                continue
            entries: list[Any] = []
            left_out: list[str] = []
            for i in live:
                try:
                    ip = normalize_entry(i.ip)
                except ValueError as exc:
                    left_out.append(f"{i.ip} ({exc})")
                    continue
                entries.append({"ip": ip, "remark": i.remark} if i.remark else ip)
            spec: dict[str, Any] = {"productType": ptype}
            doc = ExportDoc(self.kind, r.name if r else f"allowlist-{ptype}", spec, protected=bool(r and r.protected))
            if left_out:
                # a live entry no manifest can declare would make the whole file fail validation
                doc.comments.append(
                    "live entries left out (not an address or CIDR block a manifest can declare): " + "; ".join(left_out)
                )
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


def _listed(items: list[str], shown: int = 10) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _owns(allowlist: Resource[IpAllowlistSpec]) -> bool:
    """An exclusive allowlist holds every live address of its product type."""
    return True
