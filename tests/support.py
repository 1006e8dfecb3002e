"""What every end-to-end test folder needs: write files into it, run the CLI in it."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from reconciler.cli import cli


@dataclass
class CliWorkspace:
    """A working folder (the test's cwd) holding manifests, config and secret files."""

    root: Path

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def cli(self, *args: str, input: str | None = None) -> Result:  # noqa: A002 - click's name
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


EMPTY_COMPLETE = "No changes. Live state matches the manifests."
EMPTY_INCOMPLETE = "Nothing to apply in what could be read and compared, but the comparison is incomplete"


def nothing_to_apply(out: str, *, unseen: tuple[str, ...] = ("FreeSpinEvent", "ProxyAccount")) -> bool:
    """The words of an empty plan, earned (issue 23): "No changes ... matches" when every field
    could be compared; otherwise "Nothing to apply ... incomplete", never "matches", and only
    fields of the ``unseen`` kinds listed as not compared (JDB's documented Action 76 reply
    carries no bet, withdrawals or bonus chips; a plan checks at most 100 players; BestProxy's
    account list carries no dailyLimitGb or udp)."""
    if "Not read or not compared" not in out:
        return EMPTY_COMPLETE in out
    listed = [line.strip() for line in out.splitlines() if line.startswith("    ! ")]
    return (
        EMPTY_INCOMPLETE in out
        and "matches" not in out
        and bool(listed)
        and all(line.startswith(tuple(f"! {k}" for k in unseen)) and " not compared " in line for line in listed)
    )


class QuietHTTPServer(ThreadingHTTPServer):
    """A loopback test peer that does not print a traceback when the client leaves first (a
    client that closes a connection it no longer needs is not an error of the test's peer);
    any other handler error is still printed."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
