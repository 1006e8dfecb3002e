"""README promises that `.ci/run` runs its test command: the same command, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("run the whole test suite", 1)[1]
    command = re.search(r"```sh\n(.+?)\n```", block, re.S).group(1).strip()  # type: ignore[union-attr]
    setup, _, rest = command.partition(". .venv/bin/activate && ")
    assert setup.startswith("python3 -m venv .venv") and rest
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == rest
    for tool in ("ruff check", "mypy", "lint-imports", "python -m pytest"):
        assert tool in rest
