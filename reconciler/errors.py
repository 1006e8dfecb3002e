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


MAX_PROBLEMS_PER_FILE = 100
"""Problems kept and printed per file; the rest are counted ("... and N more problems in FILE").
A 2 MiB data file of ``{}`` lines made 2.8 million error lines (and 1.6 GB of them in memory)."""


@dataclass(frozen=True)
class MoreProblems(Problem):
    """Stands for ``count`` problems of ``file`` that were counted, not kept (see
    :data:`MAX_PROBLEMS_PER_FILE`)."""

    count: int = 0

    def __str__(self) -> str:
        return f"... and {self.count:,} more problem{'s' if self.count != 1 else ''} in {self.file}"


def more_problems(file: str, count: int, resource: str = "") -> MoreProblems:
    return MoreProblems(file, 0, 0, resource, "", "", count)


class ProblemCounter:
    """Keeps the first :data:`MAX_PROBLEMS_PER_FILE` problems added and counts the rest, for
    readers that find a problem per line or per value: memory stays bounded whatever the input."""

    def __init__(self, cap: int = MAX_PROBLEMS_PER_FILE):
        self.kept: list[Problem] = []
        self.more = 0
        self.cap = cap

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.cap

    def add(self, problem: Problem) -> None:
        if isinstance(problem, MoreProblems):
            self.more += problem.count
        elif len(self.kept) < self.cap:
            self.kept.append(problem)
        else:
            self.more += 1

    append = add

    def result(self, file: str, resource: str = "") -> list[Problem]:
        return self.kept + ([more_problems(file, self.more, resource)] if self.more else [])


class InputError(ReconcilerError):
    """Invalid manifests or config: every problem of the run at once; no API was called.
    At most :data:`MAX_PROBLEMS_PER_FILE` lines per file are printed, then the count of the rest."""

    def __init__(self, problems: list[Problem]):
        # a count of problems not kept ("... and N more") last among those at its place
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.message.startswith("... and "), p.message))
        super().__init__(f"{len(self.problems)} problem(s) in the input")

    def lines(self) -> list[str]:
        shown: dict[str, int] = {}
        more: dict[str, int] = {}
        out = []
        for p in self.problems:
            if isinstance(p, MoreProblems):
                more[p.file] = more.get(p.file, 0) + p.count
            elif shown.get(p.file, 0) < MAX_PROBLEMS_PER_FILE or p.message.startswith("... and "):  # a count: shown
                shown[p.file] = shown.get(p.file, 0) + 1
                out.append(str(p))
            else:
                more[p.file] = more.get(p.file, 0) + 1
        out += [str(more_problems(file, n)) for file, n in sorted(more.items())]
        return out


class UsageError(ReconcilerError):
    """A command used in a way that cannot work (bad flag combination, unsafe plan without --force)."""


class SecretError(ReconcilerError):
    """A secret reference that cannot be resolved. The message names the reference, never a value."""


class ApiError(ReconcilerError):
    """A vendor API answered with an error (or could not be reached).

    The text names the vendor, the host (``host:port``: never a URL or a query string, which may
    carry a credential), the operation, the vendor code and HTTP status, and the message:
    ``tcaplus: 127.0.0.1:8080: AddRecord game_players: code -1037 HTTP 500: system busy``.
    A transport error has no code and carries host and operation in its message already.
    """

    vendor = "api"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: object = None,
        http_status: int | None = None,
        host: str | None = None,
        operation: str | None = None,
    ):
        self.code = code
        self.http_status = http_status
        self.host = host
        self.operation = operation
        self.vendor_message = message
        super().__init__(self._format(message))

    def _format(self, message: str) -> str:
        status = []
        if self.code is not None:
            status.append(f"code {self.code}")
        if self.http_status is not None:
            status.append(f"HTTP {self.http_status}")
        parts = [self.vendor, self.host, self.operation, " ".join(status), message]
        return ": ".join(p for p in parts if p)


class TransportError(ApiError):
    """The request did not produce an answer (connection refused, timeout, reply lost).

    Whether the write took effect is unknown: callers resolve that by looking the key up before
    any retry of a non-idempotent write.
    """

    retryable = True


class StaleError(ReconcilerError):
    """The live object changed since the plan was made; the write was not done."""

    exit_code = 3
