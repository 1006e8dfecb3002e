"""One typed error tree for the whole product.

The CLI catches :class:`ReconcilerError`, prints one line per problem and maps the error to an exit
code. No error message may carry a secret value: clients build their messages from vendor codes and
texts, never from request bodies.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Root of every error the product raises on purpose."""

    exit_code = 1

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One problem in the user's input, pointing at the manifest."""

    file: str
    line: int
    col: int
    resource: str  # "KIND/NAME" or "" when the document has no identity yet
    field: str  # dotted path inside the document, or ""
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        who = " ".join(p for p in (self.resource, self.field) if p)
        return f"{where}: {who}: {self.message}" if who else f"{where}: {self.message}"


class InputError(ReconcilerError):
    """Invalid manifests or config: every problem of the run at once; no API was called."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.message))
        super().__init__(f"{len(self.problems)} problem(s) in the input")

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(ReconcilerError):
    """A command used in a way that cannot work (bad flag combination, unsafe plan without --force)."""


class SecretError(ReconcilerError):
    """A secret reference that cannot be resolved. The message names the reference, never a value."""


class ApiError(ReconcilerError):
    """A vendor API answered with an error (or could not be reached)."""

    vendor = "api"
    retryable = False

    def __init__(self, message: str, *, code: object = None, http_status: int | None = None):
        self.code = code
        self.http_status = http_status
        self.vendor_message = message
        super().__init__(self._format(message))

    def _format(self, message: str) -> str:
        parts = [self.vendor]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        return f"{' '.join(parts)}: {message}"


class TransportError(ApiError):
    """The request did not produce an answer (connection refused, timeout, reply lost).

    Whether the write took effect is unknown: callers resolve that by looking the key up before
    any retry of a non-idempotent write.
    """

    retryable = True


class StaleError(ReconcilerError):
    """The live object changed since the plan was made; the write was not done."""

    exit_code = 3
