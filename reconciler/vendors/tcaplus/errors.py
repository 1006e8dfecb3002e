"""The TcaplusDB client's typed errors: one class per family of the documented ``ErrorCode`` values
and :func:`error_class`, which picks one for a code (unknown codes: by HTTP status).
"""

from __future__ import annotations

from reconciler.errors import ApiError, StaleError, TransportError


class TcaplusError(ApiError):
    """A TcaplusDB answer with a non-zero ``ErrorCode`` (or an answer that is not TcaplusDB JSON)."""

    vendor = "tcaplus"


class TcaplusTransportError(TcaplusError, TransportError):
    """No answer (connection refused, timeout, reply lost): the outcome of a write is unknown."""

    retryable = True


class TcaplusAuthError(TcaplusError):
    """-279 (HTTP 401): wrong AppId or password."""


class TcaplusRecordNotFoundError(TcaplusError):
    """261 (HTTP 404): the record does not exist (writes that need one: FieldSet, FieldInc, Delete)."""


class TcaplusRecordExistsError(TcaplusError):
    """-1293: AddRecord on a key that already exists."""


class TcaplusVersionMismatchError(TcaplusError, StaleError):
    """-7949: the stored record's version is not the one the write was checked against."""


class TcaplusTableNotFoundError(TcaplusError):
    """-12819: no such table in the zone."""


class TcaplusIndexNotFoundError(TcaplusError):
    """-34565 / -9235: no such index on the table (PartkeyGetRecord)."""


class TcaplusInvalidRequestError(TcaplusError):
    """The request was malformed: -11539 invalid request, -2067 operation type mismatch, -5395 no
    primary key, -2579 / -2323 the record does not (de)serialise against the table's schema."""


class TcaplusInvalidParameterError(TcaplusInvalidRequestError):
    """-1811: a parameter was rejected (header value, field path, limit, FieldInc on a bad field)."""


class TcaplusServerError(TcaplusError):
    """HTTP 5xx or a transient server code (-525 timeout, -1037 busy, -12307 / -13843 network,
    -1792 read-only / RCU exhausted); worth retrying later."""

    retryable = True


_BY_CODE: dict[int, type[TcaplusError]] = {
    -279: TcaplusAuthError,
    261: TcaplusRecordNotFoundError,
    -1293: TcaplusRecordExistsError,
    -7949: TcaplusVersionMismatchError,
    -12819: TcaplusTableNotFoundError,
    -34565: TcaplusIndexNotFoundError,
    -9235: TcaplusIndexNotFoundError,
    -11539: TcaplusInvalidRequestError,
    -2067: TcaplusInvalidRequestError,
    -5395: TcaplusInvalidRequestError,
    -2579: TcaplusInvalidRequestError,
    -2323: TcaplusInvalidRequestError,
    -1811: TcaplusInvalidParameterError,
    -525: TcaplusServerError,
    -1037: TcaplusServerError,
    -1792: TcaplusServerError,
    -12307: TcaplusServerError,
    -13843: TcaplusServerError,
}


def error_class(code: int, http_status: int) -> type[TcaplusError]:
    """The error class for a TcaplusDB ``ErrorCode`` (unknown codes: by HTTP status)."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if http_status == 401:
        return TcaplusAuthError
    if http_status >= 500:
        return TcaplusServerError
    return TcaplusError
