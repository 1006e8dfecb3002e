"""Kind ``IpAllowlist``: the addresses (IPv4, IPv6, CIDR blocks) allowed to use one BestProxy product type.

Identity = product type. ``/gateway/proxy-ip/list`` filters by product type only (it cannot tell
two type-11 user products apart), so one allowlist per product type; ``userProductId`` is what
additions to type 11 are sent with. Live entries are compared by canonical address text and kept
as BestProxy wrote them (a delete sends them verbatim); an entry that is no address is still
shown and pruned. The diff is element-level ("+3 -1 ~1 of 2,041").

Writes: the removals of every allowlist go in one verified ``proxy-ip/delete`` (it takes no
product type) before any ``proxy-ip/add``; additions are batched per remark, IPv4 apart from other
forms. Entries the delete takes from other product types are added back there in the same run.
Every delete call gets a TOTP code of its own time step (:func:`.totp.next_totp_code`). A refused batch
is resolved item by item (:func:`~reconciler.vendors.bestproxy.common.write_each`).

Removals need BestProxy's verification (``verify_type``/``verify_code``): configure
``providers.bestproxy.ip_delete_verification`` (TOTP computed from a secret reference, or a one-time
code reference). A plan that would remove addresses without a usable verification is refused at
plan time. A remark change has no update call: that entry is replaced (delete + add).
Without ``exclusive: true`` live addresses that are not declared are listed as unmanaged.

The package, one idea a module: :mod:`.addresses` (address text: parsing, canonical form, order),
:mod:`.spec` (the declared input), :mod:`.totp` (the TOTP codes of ``proxy-ip/delete``) and
:mod:`.kind` (plan, apply and export).
"""

from reconciler.vendors.bestproxy.ip_allowlist.kind import IpAllowlistKind

__all__ = ["IpAllowlistKind"]
