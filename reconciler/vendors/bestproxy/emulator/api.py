"""The BestProxy emulator as the sandbox server sees it (:class:`~reconciler.sandbox.base.Emulator`):
the routes, the body reading (JSON or form), the ``app_key`` check and injected faults. The
operations are in :mod:`.accounts` and :mod:`.allowlist`, the state in :mod:`.store`.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Callable

from reconciler.sandbox.base import Request, Response
from reconciler.vendors.bestproxy.emulator.accounts import AccountOperations
from reconciler.vendors.bestproxy.emulator.allowlist import IpAllowlistOperations
from reconciler.vendors.bestproxy.emulator.params import _BadBody


class BestProxyEmulator(AccountOperations, IpAllowlistOperations):
    """The BestProxy OpenAPI account and IP-allowlist endpoints, state in SQLite.

    ``user_product_ids`` maps a product type to the user-package ids the account owns; only type 11
    uses it (``user_product_id`` is required when adding IPs for type 11). Set :attr:`verified` to
    False to make whitelist-account writes answer code 156 (account not verified; not persisted).
    :attr:`clock` (seconds since the epoch) drives ``created_at`` and TOTP checks; tests may replace
    it. :meth:`account_record`, :meth:`ip_records` and :meth:`wipe` are test helpers, not vendor API.
    """

    name = "bestproxy"

    @cached_property
    def _routes(self) -> dict[str, tuple[str, Callable[[dict[str, Any]], Response]]]:
        return {
            "/gateway/whitelist-account/list": ("GET", self._account_list),
            "/gateway/whitelist-account/add": ("POST", self._account_add),
            "/gateway/whitelist-account/delete": ("POST", self._account_delete),
            "/gateway/whitelist-account/enable": ("POST", self._account_enable),
            "/gateway/whitelist-account/disable": ("POST", self._account_disable),
            "/gateway/whitelist-account/change-password": ("POST", self._account_change_password),
            "/gateway/whitelist-account/change-remark": ("POST", self._account_change_remark),
            "/gateway/whitelist-account/change-limit": ("POST", self._account_change_limit),
            "/gateway/proxy-account/change": ("POST", self._proxy_account_change),
            "/gateway/proxy-ip/list": ("GET", self._ip_list),
            "/gateway/proxy-ip/add": ("POST", self._ip_add),
            "/gateway/proxy-ip/delete": ("POST", self._ip_delete),
        }

    def is_write(self, req: Request) -> bool:
        return req.method == "POST"

    def injected_error(self, req: Request) -> Response:
        return self._fail(500, "Internal server error (injected fault)", status=500)

    # -- dispatch -----------------------------------------------------------------------------
    def _params(self, req: Request) -> dict[str, Any]:
        if req.method != "POST":
            return {}
        if not req.body.strip():
            return {}
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        is_json = ctype == "application/json" or ctype.endswith("+json")
        if not ctype:
            is_json = req.body.lstrip().startswith(b"{")
        try:
            if is_json:
                obj = json.loads(req.body.decode("utf-8"))
                if not isinstance(obj, dict):
                    raise _BadBody("the JSON body must be an object")
                return obj
            if ctype in ("", "application/x-www-form-urlencoded"):
                return req.form()
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _BadBody(f"the body cannot be parsed: {exc.__class__.__name__}") from None
        raise _BadBody(f"unsupported content type {ctype}")

    def handle(self, req: Request) -> Response:
        route = self._routes.get(req.path)
        if route is None:
            return self._fail(404, "Not Found", status=404)
        method, handler = route
        if req.method != method:
            return self._fail(405, "Method Not Allowed", status=405)
        try:
            params = self._params(req)
        except _BadBody as exc:
            return self._param_error({"body": [str(exc)]})
        key = params.get("app_key")
        if key is None or key == "":
            key = req.query.get("app_key")
        if key != self.app_key:
            return self._fail(3, "invalid app_key")
        return handler(params if req.method == "POST" else dict(req.query))
