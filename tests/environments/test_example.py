"""The staging + production example (examples/environments/) as a user runs it: its README commands
and the `run:` scripts of its GitHub workflow, job by job, against the sandbox — which serves one
set of emulators per named connection, so staging and production are two accounts per vendor."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.sandbox.serve import Sandbox
from tests.support import nothing_to_apply

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "environments"
RECONCILER = Path(sys.executable).with_name("reconciler")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLE, work)
    return work


def sandbox_shim(tmp_path: Path) -> Path:
    """A `reconciler` on PATH that runs the real one against the sandbox (state kept in one folder)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "reconciler"
    shim.write_text(
        f'#!/bin/sh\nsub="$1"; shift\nexec "{RECONCILER}" "$sub" --sandbox --sandbox-state "{tmp_path / "state"}" "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def environ(tmp_path: Path, bin_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAGING_", "PRODUCTION_"))}
    (tmp_path / "runner-temp").mkdir(exist_ok=True)
    env.update(
        STAGING_OPS_PASSWORD="StagingPw123",
        PRODUCTION_OPS_PASSWORD="ProductionPw456",
        GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
        RUNNER_TEMP=str(tmp_path / "runner-temp"),
    )
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def accounts(state: Path, connection: str) -> dict[str, dict[str, Any]]:
    with Sandbox(state / "connections" / connection) as sbx:
        emu = sbx.servers["bestproxy"].emulator
        with emu.lock:
            return {r["username"]: dict(r) for r in emu.db.execute("SELECT * FROM accounts")}


def items(state: Path, connection: str, tables: dict[str, Path]) -> dict[int, dict[str, Any]]:
    with Sandbox(state / "connections" / connection, tcaplus_tables=tables) as sbx:
        return {r["item_id"]: r for _, r in sbx.servers["tcaplus"].emulator.records("item_catalog")}


def workflow_scripts(job: str) -> list[str]:
    wf = yaml.safe_load((EXAMPLE / "github-workflow.yml").read_text())
    steps = wf["jobs"][job]["steps"]
    return [s["run"] for s in steps if "run" in s and "reconciler " in s["run"]]


def test_the_workflow_plans_both_environments_then_applies_staging_then_production(site: Path, tmp_path: Path) -> None:
    env = environ(tmp_path, sandbox_shim(tmp_path))
    wf = yaml.safe_load((EXAMPLE / "github-workflow.yml").read_text())
    assert wf["jobs"]["apply-production"]["needs"] == "apply-staging"
    assert wf["jobs"]["apply-production"]["environment"] == "production"
    for job in ("plan", "apply-staging", "apply-production"):
        scripts = workflow_scripts(job)
        assert scripts, job
        for script in scripts:
            done = subprocess.run(["bash", "-c", script], cwd=site, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"{job}: {script}\n{done.stdout}\n{done.stderr}"
        if job == "plan":
            summary = (tmp_path / "summary.md").read_text()
            assert "Environment: staging; connections: bestproxy/staging, jdb/staging, tcaplus/staging." in summary
            assert "Environment: production; connections: bestproxy/production, jdb/production, tcaplus/production." in summary
            # written under the runner's temporary folder, nothing in the checkout
            assert sorted(p.name for p in (tmp_path / "runner-temp").glob("plan-*.json")) == [
                "plan-production.json",
                "plan-staging.json",
            ]
            assert not list(site.glob("plan-*"))
            assert accounts(tmp_path / "state", "staging") == {}  # planning wrote nothing
    assert "Apply: 5 applied, 0 failed" in (tmp_path / "runner-temp" / "apply-production.log").read_text()

    state = tmp_path / "state"
    staging, production = accounts(state, "staging"), accounts(state, "production")
    assert list(staging) == ["stgops01"] and list(production) == ["prdops01"]
    assert staging["stgops01"]["password"] == "StagingPw123" and staging["stgops01"]["limit_flow"] == 10
    assert production["prdops01"]["password"] == "ProductionPw456" and production["prdops01"]["limit_flow"] == 200
    tables = {"item_catalog": site / "tables" / "item_catalog.proto"}
    assert items(state, "staging", tables)[1001]["price"] == 1 and items(state, "production", tables)[1001]["price"] == 50

    for name in ("staging", "production"):
        again = subprocess.run(
            ["reconciler", "plan", "--env", name, "--detailed-exitcode"],
            cwd=site,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert nothing_to_apply(again.stdout), again.stdout


def _readme_blocks() -> list[str]:
    text = (EXAMPLE / "README.md").read_text()
    return [part.split("```", 1)[0] for part in text.split("```sh")[1:]]


def test_the_readme_commands_run(site: Path, tmp_path: Path) -> None:
    env = environ(tmp_path)
    block = _readme_blocks()[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands[0] == "reconciler plan --env staging"
    for command in commands:
        args = command.split()[1:]
        assert "--sandbox" not in args  # they need real credentials: run them on the sandbox here
        args = [args[0], "--sandbox", *args[1:]]
        done = subprocess.run([str(RECONCILER), *args], cwd=site, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, command + "\n" + done.stdout + done.stderr


def test_the_readme_sandbox_commands_run_as_printed_on_a_fresh_copy(site: Path, tmp_path: Path) -> None:
    """Issue 23: the README's sandbox try-out needed a variable it did not mention. Run as printed,
    in a fresh copy, with none of the example's variables set beforehand."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAGING_", "PRODUCTION_"))}
    env["PATH"] = f"{RECONCILER.parent}{os.pathsep}{env['PATH']}"
    [block] = [b for b in _readme_blocks() if "--sandbox" in b]
    done = subprocess.run(["bash", "-euc", block], cwd=site, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, block + "\n" + done.stdout + done.stderr
    assert "Apply: 5 applied, 0 failed" in done.stdout
    assert list(accounts(site / ".reconciler" / "sandbox", "staging")) == ["stgops01"]
    assert accounts(site / ".reconciler" / "sandbox", "production") == {}
    # without the line the README now shows, the same apply stops before any call and names the variable
    fresh = tmp_path / "fresh"
    shutil.copytree(EXAMPLE, fresh)
    bare = subprocess.run(
        ["bash", "-euc", block.replace("export STAGING_OPS_PASSWORD", "# ")],
        cwd=fresh,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bare.returncode == 1 and "STAGING_OPS_PASSWORD" in bare.stderr, bare.stdout + bare.stderr
