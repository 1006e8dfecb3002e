"""What every end-to-end test folder needs: write files into it, run the CLI in it."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

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
