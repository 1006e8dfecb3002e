"""README promises that `.ci/run` runs its test command: the same command, word for word."""

from __future__ import annotations

import re
import subprocess
import sys
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


def test_the_quick_loop_leaves_out_exactly_the_slow_tests_and_ci_runs_them() -> None:
    """CONTRIBUTING.md's quick loop deselects the tests marked slow (wheel, venv, bench); the full
    gate (.ci/run, the README command) has no marker filter, so it runs them."""
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert 'python -m pytest -n 2 -m "not slow"' in contributing
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    gate = ci.strip().splitlines()[-1]
    assert gate.endswith("python -m pytest -n 2") and "not slow" not in gate

    def collected(*args: str) -> set[str]:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return {line for line in r.stdout.splitlines() if "::" in line}

    everything = collected("-o", "addopts=")
    quick = collected("-o", "addopts=", "-m", "not slow")
    slow = everything - quick
    assert quick < everything
    assert "tests/test_packaging.py::test_the_wheel_builds_installs_and_runs" in slow
    assert "tests/test_packaging.py::test_readme_first_command_sets_everything_up_on_a_fresh_copy" in slow
    assert {t.split("::")[0] for t in slow} == {
        "tests/test_packaging.py",
        "tests/test_bench_fleet.py",
        "tests/test_vendor_example.py",
    }
    assert all(
        t.startswith(("tests/test_bench_fleet.py::", "tests/test_vendor_example.py::"))
        for t in slow
        - {
            "tests/test_packaging.py::test_the_wheel_builds_installs_and_runs",
            "tests/test_packaging.py::test_readme_first_command_sets_everything_up_on_a_fresh_copy",
        }
    )
    assert "tests/test_packaging.py::test_every_dependency_has_a_lower_and_an_upper_bound" in quick
