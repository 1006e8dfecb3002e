"""The TcaplusDB emulator as the sandbox server sees it (:class:`~reconciler.sandbox.base.Emulator`):
the path and ``x-tcaplus-*`` header checks, the AppId and password check, the dispatch by
``x-tcaplus-target``, error answers and injected faults. The operations are in :mod:`.reads` and
:mod:`.writes`, the state in :mod:`.store`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import cached_property
from typing import Any

from reconciler.sandbox.base import Request, Response
from reconciler.vendors.tcaplus.emulator.protocol import (
    _IDL_TYPES,
    _NO_VALUES,
    _PATH,
    _VERSION,
    AUTH_FAILED,
    ERRORS,
    INVALID_REQUEST,
    OPERATION_MISMATCH,
    SYSTEM_BUSY,
    TABLE_NOT_FOUND,
    _Call,
    _Failure,
)
from reconciler.vendors.tcaplus.emulator.reads import ReadOperations
from reconciler.vendors.tcaplus.emulator.writes import WriteOperations


class TcaplusEmulator(ReadOperations, WriteOperations):
    """TcaplusDB RESTful API v1.0 for one app and zone; ``tables`` maps table names to their
    ``.proto`` (see :data:`TableSource`). Records persist in SQLite."""

    name = "tcaplus"

    @cached_property
    def _operations(self) -> dict[str, tuple[str, Callable[[_Call], Response]]]:
        return {
            "Tcaplus.GetRecord": ("GET", self._get_record),
            "Tcaplus.FieldGetRecord": ("GET", self._field_get_record),
            "Tcaplus.PartkeyGetRecord": ("GET", self._partkey_get_record),
            "Tcaplus.AddRecord": ("POST", self._add_record),
            "Tcaplus.SetRecord": ("PUT", self._set_record),
            "Tcaplus.FieldSetRecord": ("PUT", self._field_set_record),
            "Tcaplus.FieldIncRecord": ("PUT", self._field_inc_record),
            "Tcaplus.DeleteRecord": ("DELETE", self._delete_record),
        }

    # -- routing ------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        call: _Call | None = None
        try:
            call = self._route(req)
            _, operation = self._operations[req.header("x-tcaplus-target", "") or ""]
            return operation(call)
        except _Failure as failure:
            return self._error(failure, call)

    def operation(self, req: Request) -> str:
        target = req.header("x-tcaplus-target", "") or ""
        return target.removeprefix("Tcaplus.") or super().operation(req)

    def injected_error(self, req: Request) -> Response:
        return self._error(_Failure(SYSTEM_BUSY, "system busy"), None)

    def _route(self, req: Request) -> _Call:
        match = _PATH.match(req.path)
        if match is None:
            raise _Failure(
                INVALID_REQUEST,
                "unknown path (use /ver1.0/apps/{AppId}/zones/{ZoneId}/tables/{TableName}/records)",
                status=404,
            )
        app, zone, table_name = match.groups()
        self._authenticate(req, app)
        self._check_headers(req)
        table = self.tables.get(table_name)
        if zone != str(self.zone_id) or table is None:
            raise _Failure(TABLE_NOT_FOUND, f"no table {table_name!r} in zone {zone}")
        return _Call(req, table)

    def _authenticate(self, req: Request, app: str) -> None:
        given = (req.header("x-tcaplus-pwd-md5") or "").strip().lower()
        if app != str(self.app_id) or not hmac.compare_digest(given.encode(), self._password_md5.encode()):
            raise _Failure(AUTH_FAILED, "the AppId or the password MD5 is wrong")

    def _check_headers(self, req: Request) -> None:
        target = req.header("x-tcaplus-target")
        if target is None:
            raise _Failure(INVALID_REQUEST, "x-tcaplus-target is required")
        if target not in self._operations:
            raise _Failure(INVALID_REQUEST, f"unknown x-tcaplus-target {target!r}")
        method, _ = self._operations[target]
        if req.method != method:
            raise _Failure(OPERATION_MISMATCH, f"{target} is sent with {method}, not {req.method}")
        if not _VERSION.match((req.header("x-tcaplus-version") or "").strip()):
            raise _Failure(INVALID_REQUEST, "x-tcaplus-version is required (e.g. Tcaplus3.32.0)")
        if (req.header("x-tcaplus-idl-type") or "").strip().lower() not in _IDL_TYPES:
            raise _Failure(INVALID_REQUEST, "x-tcaplus-idl-type must be protobuf")

    def _error(self, failure: _Failure, call: _Call | None) -> Response:
        text = ERRORS[failure.code][1]
        body: dict[str, Any] = {"ErrorCode": failure.code, "ErrorMsg": f"{text}: {failure.detail}" if failure.detail else text}
        if call is not None and call.return_values is not _NO_VALUES:
            body["ReturnValues"] = call.return_values
        return Response.json(body, status=failure.status)
