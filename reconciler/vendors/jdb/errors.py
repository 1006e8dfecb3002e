"""The JDB client's typed errors: one class per family of the documented status codes
(:data:`CODES`), the hints a few codes get (:data:`HINTS`) and :func:`error_for`, which turns a
``status`` and ``err_text`` into one. They name the host and the action, never the key, IV or body.
"""

from __future__ import annotations

from reconciler.errors import ApiError, TransportError


# -- errors ------------------------------------------------------------------------------------
class JdbError(ApiError):
    """JDB answered with a status other than ``0000`` (``code`` holds it, as a string)."""

    vendor = "jdb"


class JdbTransportError(JdbError, TransportError):
    """No answer from JDB (connection refused, timeout, reply lost): the outcome is unknown."""


class JdbAuthError(JdbError):
    """The envelope was refused: IP not allowed, wrong ``dc``, or ``x`` not readable with the key/IV."""


class JdbClockError(JdbError):
    """9005: the request's ``ts`` is more than 30 seconds away from JDB's clock."""


class JdbParameterError(JdbError):
    """8000–8014: a parameter is missing or invalid."""


class JdbAgentError(JdbError):
    """7001–7004: the agent (``parent``) is unknown, suspended, locked or closed."""


class JdbPlayerError(JdbError):
    """7xxx: the player is unknown or not usable."""


class JdbEventNotFoundError(JdbError):
    """9015, or 9998 ``Event not exist.``: no such free-spin event under this agent."""


class JdbEventStateError(JdbError):
    """9998: the event's status does not allow the action (e.g. already TERMINATED)."""


class JdbUnavailableError(JdbError):
    """A transient failure on JDB's side (busy, maintenance, time-out, rate limit)."""

    retryable = True


CODES: dict[str, tuple[type[JdbError], str]] = {
    "9999": (JdbUnavailableError, "request failed"),
    "9998": (JdbEventStateError, "free-spin event error"),
    "9001": (JdbAuthError, "not authorised"),
    "9002": (JdbAuthError, "domain (dc) is empty or shorter than 2 characters"),
    "9003": (JdbAuthError, "domain (dc) validation failed"),
    "9004": (JdbAuthError, "encrypted data (x) is empty"),
    "9005": (JdbClockError, "timestamp rejected"),
    "9006": (JdbAuthError, "the encrypted data could not be read"),
    "9007": (JdbError, "unknown action"),
    "9008": (JdbError, "same value as before"),
    "9009": (JdbUnavailableError, "time out"),
    "9010": (JdbUnavailableError, "read time out"),
    "9011": (JdbError, "duplicate transaction"),
    "9012": (JdbUnavailableError, "try again later"),
    "9013": (JdbUnavailableError, "system under maintenance"),
    "9014": (JdbError, "multiple account login detected"),
    "9015": (JdbEventNotFoundError, "data does not exist"),
    "9016": (JdbError, "invalid token"),
    "9017": (JdbUnavailableError, "work in process, try again later"),
    "9019": (JdbUnavailableError, "request rate limit exceeded"),
    "9020": (JdbError, "one game ticket per login"),
    "9021": (JdbError, "one-time session policy violated"),
    "9022": (JdbUnavailableError, "game under maintenance"),
    "9023": (JdbError, "currency not supported"),
    "9024": (JdbError, "winning multiplier must be at least 10x"),
    "9025": (JdbError, "game does not support replay"),
    "9027": (JdbError, "demo not supported"),
    "8000": (JdbParameterError, "input parameter error"),
    "8001": (JdbParameterError, "parameter cannot be empty"),
    "8002": (JdbParameterError, "parameter must be a positive integer"),
    "8003": (JdbParameterError, "parameter cannot be negative"),
    "8005": (JdbParameterError, "wrong seconds in a date (must be 00)"),
    "8006": (JdbParameterError, "time does not meet the requirements"),
    "8007": (JdbParameterError, "digits only"),
    "8008": (JdbParameterError, "parameter not found"),
    "8009": (JdbParameterError, "time interval exceeds the allowed range"),
    "8010": (JdbParameterError, "parameter too long"),
    "8013": (JdbParameterError, "wrong minute format"),
    "8014": (JdbParameterError, "too many decimal places"),
    "7001": (JdbAgentError, "agent (parent) not found"),
    "7002": (JdbAgentError, "agent suspended"),
    "7003": (JdbAgentError, "agent locked"),
    "7004": (JdbAgentError, "agent closed"),
    "7405": (JdbPlayerError, "player logged out"),
    "7501": (JdbPlayerError, "player not found under this agent"),
    "7502": (JdbPlayerError, "player suspended"),
    "7503": (JdbPlayerError, "player locked"),
    "7504": (JdbPlayerError, "player closed"),
    "7505": (JdbPlayerError, "player not playing"),
    "7506": (JdbPlayerError, "demo accounts full"),
    "7601": (JdbPlayerError, "invalid player ID (only a-z and 0-9)"),
    "7602": (JdbPlayerError, "player already exists"),
    "7603": (JdbPlayerError, "invalid user name"),
    "7604": (JdbPlayerError, "password too weak"),
    "7605": (JdbPlayerError, "invalid operation code"),
    "6001": (JdbError, "balance too low to withdraw"),
    "6002": (JdbError, "zero balance"),
    "6003": (JdbError, "negative withdrawal"),
    "6004": (JdbError, "duplicate transfer"),
    "6005": (JdbError, "repeated serial number"),
    "6006": (JdbError, "cash balance not enough"),
    "6009": (JdbError, "deposit over limit"),
    "6010": (JdbError, "balance over limit"),
    "6011": (JdbError, "credit over limit"),
    "6012": (JdbError, "serial number in progress"),
    "6013": (JdbError, "bet limit reached"),
    "6101": (JdbError, "cannot cancel"),
    "6901": (JdbError, "player is in a game; transfer not allowed"),
}

HINTS = {
    "9001": "is this machine's IP allowlisted by JDB?",
    "9003": "check providers.jdb.dc",
    "9005": "JDB accepts a request only within 30 seconds of its own clock: this machine's clock is off "
    "(synchronise it, e.g. with NTP) or the request waited too long before it was sent",
    # JDB's code table says only "parameters could not be extracted from the encrypted data": a
    # wrong key or IV is the likely cause, not the only one (reference/jdb.md §1.2, §1.3, §5)
    "9006": "JDB could not decrypt the request or read its parameters. Likely: providers.jdb key or iv is not "
    "the 16-character pair JDB issued for this dc (or, when providers.jdb.parent is set, for that "
    "sub-account: the envelope parent selects which key and IV JDB decrypts with). Also possible: "
    "something between this machine and JDB (a proxy or gateway) altered the request",
}


def error_for(
    status: str, err_text: str, *, http_status: int | None = None, host: str | None = None, operation: str | None = None
) -> JdbError:
    """The typed error for a JDB ``status`` and ``err_text`` (JDB's text, else the code's meaning),
    naming ``host`` (``host:port``) and ``operation`` (``action 76``) when given."""
    cls, meaning = CODES.get(status, (JdbError, "error"))
    if status == "9998" and err_text.strip().rstrip(".").lower() == "event not exist":
        cls = JdbEventNotFoundError
    message = err_text.strip() or meaning
    if status in HINTS:
        message = f"{message} ({HINTS[status]})"
    return cls(message, code=status, http_status=http_status, host=host, operation=operation)
