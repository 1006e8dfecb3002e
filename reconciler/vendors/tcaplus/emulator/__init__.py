"""Emulator of the TcaplusDB RESTful API v1.0 (protobuf tables).

Written from ``reference/seeds/tcaplus-restful-api-v1.txt`` (the contract) and
``reference/tcaplus.md``, independently of the client. One app and one zone (table group) per
emulator; tables come from ``.proto`` files (:mod:`reconciler.vendors.tcaplus.protoschema`)::

    GET    /ver1.0/apps/{AppId}/zones/{ZoneId}/tables/{TableName}/records?keys=..&select=..
           Tcaplus.GetRecord | Tcaplus.FieldGetRecord | Tcaplus.PartkeyGetRecord
    POST   .../records   Tcaplus.AddRecord
    PUT    .../records   Tcaplus.SetRecord | Tcaplus.FieldSetRecord | Tcaplus.FieldIncRecord
    DELETE .../records   Tcaplus.DeleteRecord (JSON body)

Wire format
-----------
- The operation is the ``x-tcaplus-target`` header; its HTTP method must match the table above,
  else ``-2067`` (operation type mismatch). Required headers: ``x-tcaplus-target``,
  ``x-tcaplus-version`` (``Tcaplus<digits and dots>``), ``x-tcaplus-pwd-md5`` and
  ``x-tcaplus-idl-type`` (``protobuf`` or ``pb``, any case); a missing or malformed one is
  ``-11539`` (invalid request).
- Authentication: ``x-tcaplus-pwd-md5`` must be the hex MD5 of the app password (any case) and the
  AppId in the path must be this emulator's, else ``-279`` / HTTP 401. Checked right after the path.
- Query values are percent-decoded. The manual asks for ``%20`` for a space and says nothing of
  ``+``: by default ``+`` stays a literal plus (so a client that sends ``+`` for a space is caught);
  the knob ``plus_as_space=True`` decodes it as a space (form-style), the other possible answer. ``keys`` is a JSON
  object, ``select`` a JSON array of (dotted) field paths. Bodies are ``{"ReturnValues": ..,
  "Record": {..}}`` (+ ``"FieldPath": [..]``); ``ReturnValues`` is echoed verbatim, also on errors.
- Success: ``{"ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": n, ["ReturnValues"],
  ["Record"]}``; PartkeyGetRecord: ``MultiRecords: [{RecordVersion, Record}]``, ``RemainNum``,
  ``TotalNum``. DeleteRecord answers exactly like the manual's sample: ``{"ErrorCode": 0,
  "Record": {}, "RecordVersion": -1, ["ReturnValues"]}`` (no ``ErrorMsg``).
- Errors: ``{"ErrorCode": code, "ErrorMsg": text, ["ReturnValues"]}`` with the manual's HTTP
  status: 400 for -2579 -11539 -2067 -1811 -5395 -2323 -7949 -1293, 401 for -279, 404 for 261 and
  -34565, 500 for internal errors.

Semantic decisions where the manual is silent
---------------------------------------------
- Unknown zone or table: ``-12819`` (``API_ERR_TABLE_IS_NOT_EXIST``, reference/tcaplus.md §1.4) with
  HTTP 404; unknown path: ``-11539`` with HTTP 404.
- Record problems: a missing primary-key field is ``-5395``; an unknown field, a wrong JSON type or
  an out-of-range integer is ``-2579`` (the JSON cannot be turned into the protobuf message); a
  whole-record write (Add/Set) missing a proto2 ``required`` field is ``-2323`` (the message cannot
  be serialised). Bad header values, bad ``select``/``FieldPath`` paths, bad ``limit``/``offset``
  and FieldIncRecord on a non-integer field or beyond the type's range are ``-1811``.
- Version check (``x-tcaplus-data-version-check`` 1/2/3 with ``x-tcaplus-data-version``): applied
  to AddRecord and SetRecord only, as the manual states ("These tags are only applicable to
  Tcaplus.AddRecord and Tcaplus.SetRecord"); other writes ignore them. A version ``<= 0`` or no
  policy header: the stored version goes up by 1. Policy 1 on an existing record: the versions must
  match (else ``-7949``), then +1; on a missing record (SetRecord inserting) there is nothing to
  compare and the new record gets version 1. Policy 2 stores the client's version. Policy 3: +1.
  New records start at version 1. FieldSet/FieldInc add 1.
- ``x-tcaplus-result-flag`` (default 0): 0 = no ``Record``; 1 = the request's ``Record`` (FieldInc:
  the keys and the incremented fields' new values); 2 = the whole record after the write; 3 = the
  whole record before it (``{}`` when there was none). DeleteRecord returns ``{}`` for 1 and 2.
- Reads: GetRecord returns the record as stored (fields never written are absent), or only the
  key fields plus the ``select`` paths when ``select`` is given; FieldGetRecord requires a non-empty
  ``select``. A missing record is 261 / HTTP 404.
- PartkeyGetRecord: ``x-tcaplus-index-name`` names a ``tcaplus_index`` of the table (missing:
  ``-1811``, unknown: ``-34565``); ``keys`` must hold exactly that index's fields. Matches come in
  insertion order; ``offset`` (default 0) skips, ``limit`` (default and cap 1024, the documented
  batch limit) bounds one answer, and so does its size: records are added while the answer's
  records stay within 256 KB (the Python SDK manual's cap; the first record always comes back);
  ``RemainNum = TotalNum - offset - returned``. No match at all is 261 / HTTP 404. Matches are
  found through an index of the stored records, so a page costs what it returns.
- FieldSetRecord needs ``FieldPath`` (``-1811`` "Missing FieldPath when call FieldOperate Target."),
  every path must have a value in ``Record`` and may not be a primary-key field; the record must
  exist (261). FieldIncRecord increments the ``FieldPath`` fields, or without ``FieldPath`` every
  non-key leaf of ``Record``; the record must exist (261); an absent stored field counts as 0.
- The ``error_rate``/``fail_next`` fault answers HTTP 500 ``{"ErrorCode": -1037, "ErrorMsg":
  "Internal system error: system busy"}`` (-1037 is ``SVR_ERR_FAIL_SYSTEM_BUSY``).

Modules: :mod:`.protocol` (codes, limits, header forms, one routed call), :mod:`.paths` (dotted
field paths in a record), :mod:`.store` (tables, records, index keys in SQLite), :mod:`.requests`
(reading one request), :mod:`.reads`, :mod:`.writes` (the operations), :mod:`.api` (the HTTP side:
:class:`TcaplusEmulator`).
"""

from __future__ import annotations

from reconciler.vendors.tcaplus.emulator.api import TcaplusEmulator
from reconciler.vendors.tcaplus.emulator.protocol import (
    AUTH_FAILED,
    DESERIALIZATION_ERROR,
    ERRORS,
    INDEX_NOT_FOUND,
    INVALID_PARAMETER,
    INVALID_REQUEST,
    INVALID_VERSION,
    MAX_BATCH_RECORDS,
    NO_PRIMARY_KEY,
    OPERATION_MISMATCH,
    PARTKEY_MAX_BYTES,
    RECORD_EXISTS,
    RECORD_NOT_FOUND,
    SERIALIZATION_ERROR,
    SUCCEED,
    SYSTEM_BUSY,
    TABLE_NOT_FOUND,
    TableSource,
)

# the emulator's import path stays reconciler.vendors.tcaplus.emulator (tests, the sandbox hook, bench)
__all__ = [
    "AUTH_FAILED",
    "DESERIALIZATION_ERROR",
    "ERRORS",
    "INDEX_NOT_FOUND",
    "INVALID_PARAMETER",
    "INVALID_REQUEST",
    "INVALID_VERSION",
    "MAX_BATCH_RECORDS",
    "NO_PRIMARY_KEY",
    "OPERATION_MISMATCH",
    "PARTKEY_MAX_BYTES",
    "RECORD_EXISTS",
    "RECORD_NOT_FOUND",
    "SERIALIZATION_ERROR",
    "SUCCEED",
    "SYSTEM_BUSY",
    "TABLE_NOT_FOUND",
    "TableSource",
    "TcaplusEmulator",
]
