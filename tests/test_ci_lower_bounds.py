"""The lower bounds run in a documented CI job (issue 25): ``.github/workflows/lower-bounds.yml``
runs ``scripts/check_lower_bounds.py`` whenever the bounds or the script change, pinned and without
credentials, clean under actionlint and zizmor (both offline); CONTRIBUTING.md names it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "lower-bounds.yml"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is not installed: pip install -e '.[test]'"
    return path


def _workflow() -> dict[Any, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_the_job_runs_the_lower_bounds_check_when_the_bounds_change() -> None:
    doc = _workflow()
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    for event in ("pull_request", "push"):
        assert {"pyproject.toml", "scripts/check_lower_bounds.py"} <= set(triggers[event]["paths"])
    assert "workflow_dispatch" in triggers
    (job,) = doc["jobs"].values()
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs == ["python scripts/check_lower_bounds.py"]
    assert (ROOT / "scripts" / "check_lower_bounds.py").is_file()
    # the lowest Python the project declares
    python = [s["with"]["python-version"] for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert python == ["3.11"]
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_the_job_is_pinned_and_holds_no_credential() -> None:
    doc = _workflow()
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets." not in text and "${{" not in "".join(s.get("run", "") for job in doc["jobs"].values() for s in job["steps"])
    assert doc["permissions"] == {}
    for job in doc["jobs"].values():
        assert job["permissions"] == {"contents": "read"} and job["timeout-minutes"] <= 60
        uses = [s["uses"] for s in job["steps"] if "uses" in s]
        assert uses and all(PINNED.match(u) for u in uses), uses
        checkout = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert checkout and all(s["with"]["persist-credentials"] is False for s in checkout)


def test_actionlint_and_zizmor_find_nothing(tmp_path: Path) -> None:
    lint = [_tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes="]
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
        "        with: {bogus: 1}\n",
        encoding="utf-8",
    )
    assert subprocess.run([*lint, str(bad)], capture_output=True, cwd=ROOT, timeout=120).returncode == 1  # it can fail
    r = subprocess.run([*lint, str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    def zizmor(path: Path) -> list[dict[str, Any]]:
        # offline, no config file, the pedantic persona: every finding, code smells included
        z = subprocess.run(
            [_tool("zizmor"), "--offline", "--no-config", "--persona", "pedantic", "--format", "json", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert z.stdout.strip(), z.stderr
        findings = json.loads(z.stdout)
        assert isinstance(findings, list)
        return findings

    assert {f["ident"] for f in zizmor(bad)} >= {"unpinned-uses"}  # it can fail
    assert zizmor(WORKFLOW) == []
    assert "zizmor:" not in WORKFLOW.read_text(encoding="utf-8")  # nothing silenced inline


def test_contributing_documents_the_job() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert ".github/workflows/lower-bounds.yml" in text and "python scripts/check_lower_bounds.py" in text
