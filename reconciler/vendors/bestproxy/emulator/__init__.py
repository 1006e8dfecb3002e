"""Emulator of the BestProxy OpenAPI (proxy accounts and IP allowlists).

Written from ``reference/seeds/bestproxy-openapi.txt`` (the contract), independently of the
client. Endpoints::

    GET  /gateway/whitelist-account/list
    POST /gateway/whitelist-account/{add,delete,enable,disable,change-password,change-remark,change-limit}
    POST /gateway/proxy-account/change
    GET  /gateway/proxy-ip/list
    POST /gateway/proxy-ip/{add,delete}

Wire format
-----------
- ``app_key`` is read from the POST body (JSON or form-encoded) or from the query string; a body
  value wins over a query value. A missing or wrong key answers ``{"code": 3, "msg": ..., "data":
  null}``. The bearer scheme the document also names is *not* accepted (unverified upstream).
- POST bodies: ``application/json`` (an object) or ``application/x-www-form-urlencoded``; without a
  content type a body starting with ``{`` is read as JSON, anything else as a form.
- Success: ``{"code": 200, "msg": "success", "data": null}`` (lists: ``data = {"list": [...]}``).
- A request that breaks a validation rule — missing/ill-typed/out-of-range field, unknown or already
  existing account, bad IP, wrong verification code — answers the document's ``ErrorResponse``:
  ``{"code": 400, "message": "Parameter error", "errors": {field: [text, ...]}}`` (note: ``message``,
  not ``msg``, and no ``data``), listing every failing field at once.
- Other failures use the envelope ``{"code": N, "msg": text, "data": null}``: ``3`` invalid app_key,
  ``156`` account not verified (whitelist-account writes only, when :attr:`verified` is False),
  ``404`` unknown path, ``405`` wrong method, ``500`` injected fault.
- Every vendor answer is HTTP 200 (the document lists no other status); only unknown paths (404),
  wrong methods (405) and injected faults (500) use another HTTP status.
- Integers are accepted as JSON integers or as decimal strings (form bodies carry only strings);
  booleans and floats are rejected. String fields must be JSON strings. ``null`` = not provided.
  Unknown fields are ignored.
- Order of checks: route (404/405) → body parse (a body that cannot be parsed is an ErrorResponse
  on ``body``, before authentication, since the key may be inside it) → app_key (3) → field
  validation (400) → 156 → state checks (unknown/existing account, verification code; 400).

Semantic decisions where the document is silent
-----------------------------------------------
- Usernames and passwords: letters and digits only (``[A-Za-z0-9]``). Passwords are 6–16 characters
  on ``/gateway/proxy-account/change``, the only endpoint whose text states a length. Knob
  ``password_length``: ``"documented"`` (default) checks it there only; ``"everywhere"`` also on
  add and change-password (a guess the document does not make). Usernames: 1–64 characters (the cap is the emulator's own). Usernames are
  case-sensitive and unique across all product types.
- Remark: at most 64 characters, or at most 32 when it contains any CJK character (see
  :func:`has_cjk` for the ranges). Empty is allowed (clears the remark).
- ``limit`` / ``daily_limit``: integer GB in 0..102400, 0 = no limit.
- Knobs (:data:`KNOBS`, set with :meth:`BestProxyEmulator.set_knobs` or as constructor keywords;
  the first answer is the default) give each answer where the document is silent.
- Batches (``accounts`` in add/delete/enable/disable, ``ips`` in proxy-ip add/delete): knob
  ``batches``. ``"whole"`` (default): every entry is validated first; a malformed entry, a
  duplicate username in the batch, an unknown account (delete/enable/disable), an already existing
  account (add), an invalid IP, or an IP held by another product type (``ip_product_types=one``)
  rejects the whole batch with an ErrorResponse naming the offending items (malformed account
  entries by position only: they are never echoed, as they may hold a password), and nothing
  changes. ``"partial"``: the good entries are applied and the answer is the same ErrorResponse
  naming only the entries that were not (a batch with no good entry changes nothing). A problem
  with another field (remark, product_type, verification) refuses the whole request either way. Entries are separated by ``,``
  with no surrounding spaces; empty entries are malformed. Enabling an enabled account or disabling
  a disabled one succeeds and changes nothing.
- add: ``product_type`` is optional in the document ("Required: No"; 9/11/14/25 when given). Knob
  ``add_product_type``: ``"optional"`` (default; an account added without one is stored as type 9,
  the first plan type the document lists — a guess) or ``"required"`` (ErrorResponse without it).
  New accounts: status 1, limit_flow 0,
  daily_limit 0, udp 0, usage_flow 0.
- change-remark requires the ``remark`` field (an empty string clears it); change-limit requires
  ``limit``; change-password requires ``password``.
- proxy-account/change: ``account`` required; ``password``, ``remark``, ``limit``, ``daily_limit``,
  ``status`` (0/1), ``udp`` (0/1) optional — absent or ``null`` fields (and an empty ``password``
  or empty integer field) are unchanged; an empty ``remark`` clears it. ``udp: 0`` is accepted for
  every account (the document's own example sends it); ``udp: 1`` for a product type other than
  14, 16, 21 or 25 (where the document says the switch applies) is knob ``udp_other_types``:
  ``"refused"`` (ErrorResponse, default) or ``"ignored"`` (accepted, not stored). A call changing nothing succeeds. Unknown account →
  ErrorResponse. ``daily_limit`` is not checked against ``limit``. This endpoint never answers 156
  (the document lists only 200 for it).
- The document's 5-minute window (deletes, disables and password changes "take about 5 minutes";
  the old password keeps working; charges may continue) is behind the knob ``settle_seconds``
  (default 0: everything takes effect at once). With it, a deleted account leaves the list at once
  but its username stays taken until the window has passed: an add of it in the meantime is refused
  like an existing account (a guess: the document does not say what an add in the window answers).
  Disables and password changes show in the list at once; their effect on proxy traffic, which the
  window is about, is not observable through the API.
- New accounts in the list: knob ``list_delay_seconds`` (default 0: listed at once). The document
  gives account changes a window of up to 5 minutes but does not say whether the list shows a new
  account at once; with the knob, an added account exists at once (an add of it again is refused
  as existing; change, enable, disable and delete act on it) but the list leaves it out until that
  many seconds (by :attr:`clock`) have passed. Kept in memory, not in the state folder.
- ``daily_limit`` and ``udp`` are stored but, as in the document, not returned by the list:
  they are write-only through the API (:meth:`BestProxyEmulator.account_record` shows them to tests).
- ``usage_flow`` (KB) is server-owned and moves: every list call adds ``128 * (1 + id % 5)`` KB to
  every account before answering, so the first read is already non-zero and each read differs.
- ``created_at``: ``"YYYY-MM-DD HH:MM:SS"`` in UTC+8 (the vendor's time zone).
- IP allowlist entries are keyed by ``(ip, product_type)``. Knob ``ip_product_types``: ``"many"``
  (default; the same IP may be allowlisted for several product types) or ``"one"`` (an add of an IP
  another product type holds is refused for that IP). Knob ``ip_forms``: ``"ipv4"`` (default; IPv4
  dotted quads in canonical form: no IPv6, no CIDR, no leading zeros) or ``"any"`` (also IPv6
  addresses and IPv4/IPv6 CIDR blocks, stored and listed as sent). Entries made in the back office
  (:meth:`BestProxyEmulator.back_office_add_ip`) may take any form whatever the knob.
- proxy-ip/list: optional ``product_type`` filter (0/9/11/14/25; absent or empty = all); ordered by
  product_type then insertion.
- proxy-ip/add: ``ips`` split on commas and line breaks; whitespace around each IP is stripped and
  empty items skipped; at least one IP required. ``product_type`` is "Required: No" in the
  document: knob ``ip_add_product_type``: ``"optional"`` (default; absent or 0 — the value the
  document's add and list examples show — stores the entry under product type 0) or
  ``"required"`` (9/11/14/25 only).
  ``user_product_id`` is required for type 11 — it must be one of ``user_product_ids[11]`` when the
  emulator was given that mapping, any positive integer otherwise — and ignored for other types.
  Adding an IP that is already allowlisted for that product type is a no-op for that IP (its remark,
  created_at and user_product_id are kept: *add does not update remarks*); duplicates inside one
  batch collapse. An invalid IP rejects the whole batch.
- proxy-ip/delete: ``ips`` split on commas only (whitespace stripped); no product_type, so each IP
  is removed from **every** product type. IPs not on the allowlist are ignored (delete succeeds).
  ``verify_type`` ∈ phone/email/wechat/totp and ``verify_code`` are required and checked before
  anything is deleted: for ``totp`` the code must verify with pyotp against ``totp_secret`` with
  ``valid_window=1`` (without a secret, ``totp`` is refused: not bound); for phone/email/wechat the
  code is the fixed sandbox code :data:`SANDBOX_VERIFY_CODE` (``"000000"``). Knob ``totp_reuse``:
  ``"accepted"`` (default; a code may be used again within its window) or ``"refused"`` (a code's
  time step is used once: a code of that step or an earlier one is refused after it, RFC 6238
  §5.2). Phone/email/wechat codes are not single-use.

Modules
-------
:mod:`.params` (value rules, the parameter reader, :data:`KNOBS`), :mod:`.store` (knobs, SQLite
state, test helpers, the answer envelope), :mod:`.accounts` (whitelist-account/*,
proxy-account/change), :mod:`.allowlist` (proxy-ip/*), :mod:`.api` (the HTTP side:
:class:`BestProxyEmulator`).
"""

from __future__ import annotations

from reconciler.vendors.bestproxy.emulator.api import BestProxyEmulator
from reconciler.vendors.bestproxy.emulator.params import (
    KNOBS,
    PRODUCT_TYPES,
    SANDBOX_VERIFY_CODE,
    UDP_PRODUCT_TYPES,
    VERIFY_TYPES,
    has_cjk,
    parse_ipv4,
    password_problem,
    remark_problem,
    username_problem,
)

# the emulator's import path stays reconciler.vendors.bestproxy.emulator (tests, the sandbox hook, bench)
__all__ = [
    "KNOBS",
    "PRODUCT_TYPES",
    "SANDBOX_VERIFY_CODE",
    "UDP_PRODUCT_TYPES",
    "VERIFY_TYPES",
    "BestProxyEmulator",
    "has_cjk",
    "parse_ipv4",
    "password_problem",
    "remark_problem",
    "username_problem",
]
