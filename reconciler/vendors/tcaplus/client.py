"""TcaplusDB RESTful API v1.0 client (protobuf tables, ``x-tcaplus-*`` headers, JSON records).

Every operation of the v1.0 manual (reference/seeds/tcaplus-restful-api-v1.txt): GetRecord,
FieldGetRecord, PartkeyGetRecord (with a limit/offset paging helper), AddRecord, SetRecord,
FieldSetRecord, FieldIncRecord, DeleteRecord — on
``/ver1.0/apps/{AppId}/zones/{ZoneId}/tables/{TableName}/records``.

Wire details (:mod:`.wire` builds the queries and write headers and reads the answers): ``keys``/``select``
are compact JSON percent-encoded by hand (spaces as ``%20``, never ``+``, as the manual demands — a form
encoder would write ``+``); DeleteRecord carries a JSON
body; ``x-tcaplus-pwd-md5`` is the lowercase hex MD5 of the password, which is kept only as that
hash and never appears in an exception or ``repr``.

Errors: a non-zero ``ErrorCode`` raises a :class:`TcaplusError` subclass per documented code family.
"Record not found" is not an error for reads: :meth:`TcaplusClient.get` returns ``None`` and
:meth:`TcaplusClient.partkey_get` an empty page.

Retries (one policy, :mod:`reconciler.clients.http`): reads, SetRecord without a version match and
FieldSetRecord are safe to repeat and are retried after a lost reply, a timeout or an HTTP 5xx (the
manual's "internal system error", e.g. -1037 system busy). AddRecord, DeleteRecord, FieldIncRecord
and a version-matched SetRecord are not repeated after the request may have arrived: a repeat would
answer -1293 / 261 / increment twice / -7949. They raise :class:`TcaplusTransportError` and the
caller resolves the unknown outcome by reading the record.
"""

from __future__ import annotations

import hashlib
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar
from urllib.parse import quote


from reconciler.clients import redact
from reconciler.clients.http import HttpTransport, RetryPolicy
from reconciler.vendors.tcaplus.errors import (  # re-exported: callers import the errors from the client
    TcaplusAuthError as TcaplusAuthError,
    TcaplusError as TcaplusError,
    TcaplusIndexNotFoundError as TcaplusIndexNotFoundError,
    TcaplusInvalidParameterError as TcaplusInvalidParameterError,
    TcaplusInvalidRequestError as TcaplusInvalidRequestError,
    TcaplusRecordExistsError as TcaplusRecordExistsError,
    TcaplusRecordNotFoundError as TcaplusRecordNotFoundError,
    TcaplusServerError as TcaplusServerError,
    TcaplusTableNotFoundError as TcaplusTableNotFoundError,
    TcaplusTransportError as TcaplusTransportError,
    TcaplusVersionMismatchError as TcaplusVersionMismatchError,
    error_class as error_class,
)
from reconciler.vendors.tcaplus.paging import aread_all, read_all
from reconciler.vendors.tcaplus.wire import PartkeyPage, ResultFlag, VersionCheck, VersionedRecord, WriteResult
from reconciler.vendors.tcaplus.wire import (
    _answer_shape,
    _encoded_list,
    _json,
    _page,
    _partkey_request,
    _payload,
    _percent,
    _query,
    _versioned,
    _write_request,
    _written,
)

T = TypeVar("T")

API_VERSION = "Tcaplus3.32.0"
IDL_TYPE = "protobuf"
DEFAULT_PAGE_SIZE = 1024
"""Records asked for per PartkeyGetRecord page: the documented batch-read cap (1,024 records). The
Python SDK manual also caps one answer at 256 KB — a size in bytes, not a record count — so a page
may come back shorter than asked; paging advances by what each page returned."""


class TcaplusClient:
    """Client of one TcaplusDB app (cluster) and zone (table group) over the REST API v1.0."""

    def __init__(
        self,
        base_url: str,
        *,
        app_id: int,
        zone_id: int,
        password: str,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        max_connections: int = 8,
        requests_per_second: float | None = None,
    ):
        self.app_id = app_id
        self.zone_id = zone_id
        self.transport = HttpTransport(
            base_url,
            vendor="tcaplus",
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            error_cls=TcaplusError,
            transport_error_cls=TcaplusTransportError,
            requests_per_second=requests_per_second,
        )
        pwd_md5 = hashlib.md5(password.encode("utf-8")).hexdigest()
        redact.register(password)
        redact.register(pwd_md5)  # the header value is as good as the password: never logged
        self._headers = {
            "x-tcaplus-version": API_VERSION,
            "x-tcaplus-pwd-md5": pwd_md5,
            "x-tcaplus-idl-type": IDL_TYPE,
        }
        # built once per operation and per table (the request path stays lean)
        self._target_headers: dict[str, dict[str, str]] = {}
        self._paths: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"TcaplusClient(app_id={self.app_id}, zone_id={self.zone_id})"

    def close(self) -> None:
        self.transport.close()

    # -- reads --------------------------------------------------------------------------------
    def get(self, table: str, keys: Mapping[str, Any], *, select: Sequence[str] | None = None) -> VersionedRecord | None:
        """GetRecord: the record (only key fields + ``select`` paths when given), or ``None``."""
        return self._read_one("GetRecord", table, keys, select)

    def field_get(self, table: str, keys: Mapping[str, Any], select: Sequence[str]) -> VersionedRecord | None:
        """FieldGetRecord: the key fields and the ``select`` paths (dotted), or ``None``."""
        return self._read_one("FieldGetRecord", table, keys, select)

    def partkey_get(
        self,
        table: str,
        index: str,
        keys: Mapping[str, Any],
        *,
        select: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> PartkeyPage:
        """PartkeyGetRecord: one page of the records whose ``index`` fields equal ``keys``."""
        try:
            return _page(self._call(*_partkey_request(table, index, keys, select, limit, offset)))
        except TcaplusRecordNotFoundError:
            return PartkeyPage()

    async def apartkey_get(
        self,
        table: str,
        index: str,
        keys: Mapping[str, Any],
        *,
        select: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> PartkeyPage:
        """:meth:`partkey_get` on the running event loop (see :meth:`run`)."""
        try:
            return _page(await self._acall(*_partkey_request(table, index, keys, select, limit, offset)))
        except TcaplusRecordNotFoundError:
            return PartkeyPage()

    def partkey_get_all(
        self,
        table: str,
        index: str,
        keys: Mapping[str, Any],
        *,
        select: Sequence[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        concurrency: int = 1,
    ) -> list[VersionedRecord]:
        """Every record under an index key, read page by page (``limit``/``offset``; up to
        ``concurrency`` pages at a time, the gaps of short pages read again: :mod:`.paging`)."""
        return read_all(
            lambda limit, offset: self.partkey_get(table, index, keys, select=select, limit=limit, offset=offset),
            page_size,
            concurrency,
        )

    async def apartkey_get_all(
        self,
        table: str,
        index: str,
        keys: Mapping[str, Any],
        *,
        select: Sequence[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        concurrency: int = 1,
    ) -> list[VersionedRecord]:
        """:meth:`partkey_get_all` on the running event loop: the same pages, the same gap rounds."""
        return await aread_all(
            lambda limit, offset: self.apartkey_get(table, index, keys, select=select, limit=limit, offset=offset),
            page_size,
            concurrency,
        )

    # -- writes -------------------------------------------------------------------------------
    def add(
        self,
        table: str,
        record: Mapping[str, Any],
        *,
        check: VersionCheck | None = None,
        version: int | None = None,
        result_flag: ResultFlag = ResultFlag.STATUS_ONLY,
        return_values: Any = None,
    ) -> WriteResult:
        """AddRecord: insert; :class:`TcaplusRecordExistsError` if the key exists. Not repeated."""
        return self._write(
            "AddRecord",
            table,
            "POST",
            {"Record": dict(record)},
            idempotent=False,
            flag=result_flag,
            return_values=return_values,
            check=check,
            version=version,
        )

    def set(
        self,
        table: str,
        record: Mapping[str, Any],
        *,
        check: VersionCheck | None = None,
        version: int | None = None,
        result_flag: ResultFlag = ResultFlag.STATUS_ONLY,
        return_values: Any = None,
    ) -> WriteResult:
        """SetRecord: insert or overwrite the whole record.

        With ``check=VersionCheck.MATCH, version=n`` the write happens only if the stored version is
        ``n`` (:class:`TcaplusVersionMismatchError` otherwise); such a write is not repeated after
        a lost reply, since a repeat would fail against its own success.
        """
        matched = check is VersionCheck.MATCH and version is not None and version > 0
        return self._write(
            "SetRecord",
            table,
            "PUT",
            {"Record": dict(record)},
            idempotent=not matched,
            flag=result_flag,
            return_values=return_values,
            check=check,
            version=version,
        )

    def field_set(
        self,
        table: str,
        record: Mapping[str, Any],
        field_paths: Sequence[str],
        *,
        result_flag: ResultFlag = ResultFlag.STATUS_ONLY,
        return_values: Any = None,
    ) -> WriteResult:
        """FieldSetRecord: set only ``field_paths`` (dotted) of an existing record to their values in
        ``record`` (which also holds the key). The manual gives it no version check."""
        body = {"FieldPath": list(field_paths), "Record": dict(record)}
        return self._write("FieldSetRecord", table, "PUT", body, idempotent=True, flag=result_flag, return_values=return_values)

    def field_inc(
        self,
        table: str,
        record: Mapping[str, Any],
        *,
        field_paths: Sequence[str] | None = None,
        result_flag: ResultFlag = ResultFlag.REQUEST,
        return_values: Any = None,
    ) -> WriteResult:
        """FieldIncRecord: add the (signed) values in ``record`` to int32/int64/uint32/uint64 fields.
        Not repeated after a lost reply (it would increment twice)."""
        body: dict[str, Any] = {"Record": dict(record)}
        if field_paths:
            body["FieldPath"] = list(field_paths)
        return self._write("FieldIncRecord", table, "PUT", body, idempotent=False, flag=result_flag, return_values=return_values)

    def delete(
        self,
        table: str,
        keys: Mapping[str, Any],
        *,
        result_flag: ResultFlag = ResultFlag.STATUS_ONLY,
        return_values: Any = None,
    ) -> WriteResult:
        """DeleteRecord: :class:`TcaplusRecordNotFoundError` if there is no such record."""
        return self._write(
            "DeleteRecord",
            table,
            "DELETE",
            {"Record": dict(keys)},
            idempotent=False,
            flag=result_flag,
            return_values=return_values,
        )

    async def aadd(self, table: str, record: Mapping[str, Any]) -> WriteResult:
        """:meth:`add` (status only, no version check) on the running event loop."""
        return await self._awrite(
            "AddRecord",
            table,
            "POST",
            {"Record": dict(record)},
            idempotent=False,
            flag=ResultFlag.STATUS_ONLY,
            return_values=None,
        )

    async def aset(
        self, table: str, record: Mapping[str, Any], *, check: VersionCheck | None = None, version: int | None = None
    ) -> WriteResult:
        """:meth:`set` (status only) on the running event loop; a version-matched write is not repeated."""
        matched = check is VersionCheck.MATCH and version is not None and version > 0
        return await self._awrite(
            "SetRecord",
            table,
            "PUT",
            {"Record": dict(record)},
            idempotent=not matched,
            flag=ResultFlag.STATUS_ONLY,
            return_values=None,
            check=check,
            version=version,
        )

    async def adelete(self, table: str, keys: Mapping[str, Any]) -> WriteResult:
        """:meth:`delete` (status only) on the running event loop."""
        return await self._awrite(
            "DeleteRecord",
            table,
            "DELETE",
            {"Record": dict(keys)},
            idempotent=False,
            flag=ResultFlag.STATUS_ONLY,
            return_values=None,
        )

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main()`` (which awaits this client's ``a*`` methods) on a new event loop in this
        thread; the loop's connections are closed after (:meth:`HttpTransport.run`)."""
        return self.transport.run(main)

    # -- plumbing -----------------------------------------------------------------------------
    def _read_one(self, target: str, table: str, keys: Mapping[str, Any], select: Sequence[str] | None) -> VersionedRecord | None:
        query = _query(keys=dict(keys), select=list(select) if select else None)
        try:
            return _versioned(self._call(target, table, "GET", True, query))
        except TcaplusRecordNotFoundError:
            return None

    async def aget(self, table: str, keys: Mapping[str, Any], *, select: Sequence[str] | None = None) -> VersionedRecord | None:
        """:meth:`get` on the running event loop (see :meth:`run`)."""
        # _query's text, built directly (one GetRecord per record of a table without an index)
        keys = keys if type(keys) is dict else dict(keys)
        query = f"keys={_percent(_json(keys))}&select={_encoded_list(tuple(select))}" if select else _query(keys=keys)
        try:
            return _versioned(await self._acall("GetRecord", table, "GET", True, query))
        except TcaplusRecordNotFoundError:
            return None

    def _write(
        self,
        target: str,
        table: str,
        method: str,
        body: dict[str, Any],
        *,
        idempotent: bool,
        flag: ResultFlag,
        return_values: Any,
        check: VersionCheck | None = None,
        version: int | None = None,
    ) -> WriteResult:
        return _written(self._call(*_write_request(target, table, method, body, idempotent, flag, return_values, check, version)))

    async def _awrite(
        self,
        target: str,
        table: str,
        method: str,
        body: dict[str, Any],
        *,
        idempotent: bool,
        flag: ResultFlag,
        return_values: Any,
        check: VersionCheck | None = None,
        version: int | None = None,
    ) -> WriteResult:
        return _written(
            await self._acall(*_write_request(target, table, method, body, idempotent, flag, return_values, check, version))
        )

    def _call(
        self,
        target: str,
        table: str,
        method: str,
        idempotent: bool,
        query: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        path, content, all_headers = self._request(target, table, body, headers)
        resp = self.transport.send(
            method,
            path,
            idempotent=idempotent,
            raw_query=query or None,
            content=content,
            headers=all_headers,
            shape=_answer_shape,
        )
        return _payload(resp, self.transport, target, table)

    async def _acall(
        self,
        target: str,
        table: str,
        method: str,
        idempotent: bool,
        query: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        path, content, all_headers = self._request(target, table, body, headers)
        resp = await self.transport.asend(
            method,
            path,
            idempotent=idempotent,
            raw_query=query or None,
            content=content,
            headers=all_headers,
            shape=_answer_shape,
        )
        return _payload(resp, self.transport, target, table)

    def _request(
        self, target: str, table: str, body: Any, headers: Mapping[str, str] | None
    ) -> tuple[str, bytes | None, dict[str, str]]:
        """Path, body and headers of one operation on ``table`` (per-operation headers and per-table
        paths are built once: the request path stays lean)."""
        all_headers = self._target_headers.get(target)
        if all_headers is None:
            all_headers = self._target_headers.setdefault(target, {**self._headers, "x-tcaplus-target": f"Tcaplus.{target}"})
        content = None
        if body is not None or headers:
            all_headers = {**all_headers, **(headers or {})}
        if body is not None:
            content = _json(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        path = self._paths.get(table)
        if path is None:
            path = self._paths.setdefault(
                table, f"/ver1.0/apps/{self.app_id}/zones/{self.zone_id}/tables/{quote(table, safe='')}/records"
            )
        return path, content, all_headers
