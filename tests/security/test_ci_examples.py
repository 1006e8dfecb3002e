"""The CI examples install this product (pinned commit of its repository, or a wheel built from it),
never a bare name from a public index; keep exit codes through pipes; export the env names the
shipped config reads; and plan pull requests with the target branch's connection settings.

Hardening (issue 21, items 1, 2, 4 and 7): zizmor (offline) and actionlint run over action.yml and
every example workflow; secrets only in the env of the steps that run reconciler; actions pinned by
commit; checkouts without credentials; no expression expanded inside a script; plans, reports and
logs under the runner's temporary folder, never in the checkout; the trusted settings from the target
branch by default (RECONCILER_CONNECTIONS_FROM); error comments fenced so nothing inside can close
the fence."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / "examples" / "github" / "reconciler.yml"
GITLAB = REPO / "examples" / "gitlab" / "gitlab-ci.yml"
ENVIRONMENTS = REPO / "examples" / "environments" / "github-workflow.yml"
ACTION_EXAMPLE = REPO / "examples" / "github" / "reconciler-action.yml"
WORKFLOWS = [GITHUB, ENVIRONMENTS, ACTION_EXAMPLE]
ACTION = REPO / "action.yml"
ACTION_SCRIPT = REPO / "scripts" / "github-action.sh"
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
DIST = PYPROJECT["project"]["name"]


def github() -> dict:
    return yaml.safe_load(GITHUB.read_text(encoding="utf-8"))


def gitlab() -> dict:
    return yaml.safe_load(GITLAB.read_text(encoding="utf-8"))


def github_scripts() -> dict[str, list[str]]:
    return {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in github()["jobs"].items()}


def gitlab_scripts() -> dict[str, list[str]]:
    ci = gitlab()
    out = {}
    for name, job in ci.items():
        if not isinstance(job, dict) or "script" not in job:
            continue
        base = ci.get(job.get("extends", ""), {}) if isinstance(job.get("extends"), str) else {}
        out[name] = [*base.get("before_script", []), *job.get("before_script", []), *job["script"]]
    return out


def all_scripts() -> list[str]:
    return [s for scripts in (*github_scripts().values(), *gitlab_scripts().values()) for s in scripts]


def test_the_distribution_name_is_not_the_taken_one_and_the_command_stays() -> None:
    assert DIST != "reconciler" and DIST == "gameops-reconciler"
    assert PYPROJECT["project"]["scripts"] == {"reconciler": "reconciler.cli:main"}
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["reconciler*"]


def _install_specs(text: str) -> list[str]:
    return re.findall(r'RECONCILER_(?:INSTALL|SOURCE):\s*"([^"]+)"', text)


@pytest.mark.parametrize("path", [GITHUB, GITLAB, ENVIRONMENTS], ids=["github", "gitlab", "environments"])
def test_examples_install_a_pinned_commit_of_this_product_never_a_bare_name(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    specs = _install_specs(text)
    assert len(specs) == 1, specs
    spec = specs[0]
    # a direct reference to a commit (40 hex digits) of the product's repository, or a wheel file
    assert re.fullmatch(rf"{re.escape(DIST)} @ git\+https://\S+@[0-9a-f]{{40}}", spec) or spec.endswith(".whl"), spec
    installs = [line.strip() for line in text.splitlines() if re.search(r"\bpip3? install\b", line)]
    assert installs and all(re.search(r'"\$RECONCILER_(INSTALL|SOURCE)"', line) for line in installs), installs
    assert "reconciler==" not in text and "RECONCILER_PACKAGE" not in text


def test_every_script_item_is_a_string() -> None:
    """GitLab refuses a script item that YAML reads as a mapping (an unquoted ``: ``)."""
    for name, scripts in gitlab_scripts().items():
        assert all(isinstance(s, str) for s in scripts), name


def test_every_piped_script_keeps_the_exit_code() -> None:
    for wf in (GITHUB, ENVIRONMENTS):  # GitHub runs `shell: bash` steps as bash -eo pipefail
        assert yaml.safe_load(wf.read_text(encoding="utf-8"))["defaults"]["run"]["shell"] == "bash"
    for name, scripts in gitlab_scripts().items():
        joined = "\n".join(scripts)
        first_pipe = re.search(r"(?<![|])\|(?![|])", joined)
        if first_pipe:
            assert "set -o pipefail" in joined[: first_pipe.start()], name
    for scripts in github_scripts().values():  # each GitHub step is a shell of its own
        for script in scripts:
            pipe = re.search(r"(?<![|])\|(?![|])\s*tee", script)
            if pipe:
                assert re.search(r"set -[eu]*o pipefail", script[: pipe.start()]), script


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("code", [3, 4])
def test_the_apply_step_fails_when_reconciler_exits_non_zero(tmp_path: Path, code: int) -> None:
    """Run the GitHub apply step's script as GitHub does (bash -e, without pipefail from the shell
    options) with a stand-in `reconciler` that exits 3 or 4: the step must fail."""
    [script] = [s for s in github_scripts()["apply"] if "reconciler apply" in s]
    stub = tmp_path / "bin" / "reconciler"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\necho applied-something\nexit {code}\n", encoding="utf-8")
    stub.chmod(0o755)
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}", "RUNNER_TEMP": str(temp),
           "RECONCILER_OUT": str(temp)}
    r = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout
    assert (temp / "apply.log").read_text() == "applied-something\n"
    [gl] = [s for s in gitlab_scripts()["reconciler-apply"] if "reconciler apply" in s]
    setup = [s for s in gitlab_scripts()["reconciler-apply"] if s.startswith("set -o pipefail")]
    r = subprocess.run(["bash", "-e", "-c", "\n".join([*setup, gl])], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0


def _config_env_names() -> set[str]:
    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    config = yaml.safe_load((REPO / "reconciler.yaml").read_text(encoding="utf-8"))
    return {s[4:] for s in strings(config) if s.startswith("env:")}


def test_examples_export_the_env_names_the_shipped_config_reads() -> None:
    """... in the env of each step that runs reconciler against the vendors (and nowhere else)."""
    names = _config_env_names()
    assert names == {"BESTPROXY_APP_KEY", "BESTPROXY_TOTP_SECRET", "TCAPLUS_APP_KEY", "JDB_KEY", "JDB_IV"}
    steps = [s for job in github()["jobs"].values() for s in job["steps"]
             if re.search(r"^\s*reconciler (plan|apply)", s.get("run", ""), re.M)]
    assert len(steps) == 3  # plan, apply, drift
    for step in steps:
        assert names <= set(step.get("env", {})), (step["name"], names - set(step.get("env", {})))
    gitlab_comment = GITLAB.read_text(encoding="utf-8")
    assert all(re.search(rf"\b{n}\b", gitlab_comment) for n in names)
    for text in (GITHUB.read_text(encoding="utf-8"), gitlab_comment):
        assert "TCAPLUS_PASSWORD" not in text


def environments_scripts() -> dict[str, list[str]]:
    wf = yaml.safe_load(ENVIRONMENTS.read_text(encoding="utf-8"))
    return {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in wf["jobs"].items()}


def test_gitlab_merge_requests_are_planned_with_the_target_branch_connections() -> None:
    joined = "\n".join(gitlab_scripts()["reconciler-plan"])
    before = joined[:joined.index("reconciler plan")]
    assert "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" in before and "git show FETCH_HEAD:reconciler.yaml" in before
    assert 'export RECONCILER_CONNECTIONS_FROM="$RECONCILER_OUT/target-reconciler.yaml"' in before


@pytest.mark.parametrize("path", [GITHUB, ENVIRONMENTS], ids=["github", "environments"])
def test_github_pull_requests_are_planned_with_the_target_branch_connections(path: Path) -> None:
    """The step before the plan reads reconciler.yaml at the target branch through the API (the
    checkout keeps no credential to fetch with) into the runner's temporary folder; the plan step
    takes its trusted settings from there (no GITHUB_ENV: the setting is in the plan step's own env)."""
    steps = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]["plan"]["steps"]
    at = next(i for i, s in enumerate(steps) if re.search(r"^\s*(for .*\n\s*)?reconciler plan", s.get("run", ""), re.M))
    [fetch] = [s for s in steps[:at] if "contents/reconciler.yaml" in s.get("run", "")]
    assert fetch["env"]["BASE_REF"] == "${{ github.base_ref }}" and '-f ref="$BASE_REF"' in fetch["run"]
    assert '> "$RUNNER_TEMP/target-reconciler.yaml"' in fetch["run"]
    assert steps[at]["env"]["RECONCILER_CONNECTIONS_FROM"] == "${{ runner.temp }}/target-reconciler.yaml"
    assert "GITHUB_ENV" not in path.read_text(encoding="utf-8")


def test_the_quickstart_config_works_in_the_sandbox_and_a_real_run_needs_approved_hosts(tmp_path: Path) -> None:
    """The shipped config uses example hosts for TcaplusDB/JDB: `--sandbox` replaces them (loopback),
    a real run refuses them until they are approved outside the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(TCAPLUS_APP_KEY="x" * 8, JDB_KEY="k" * 16, JDB_IV="i" * 16, BESTPROXY_APP_KEY="a" * 8,
               BESTPROXY_TOTP_SECRET="JBSWY3DPEHPK3PXP")
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "tables", tmp_path / "tables")
    shutil.copytree(REPO / "data", tmp_path / "data")
    shutil.copy(REPO / "reconciler.yaml", tmp_path / "reconciler.yaml")
    cmd = [sys.executable, "-m", "reconciler.cli", "plan", "manifests/tcaplus"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "providers.tcaplus.base_url: host tcaplus-rest.example.internal is not an approved tcaplus endpoint" in r.stderr
    sandbox = subprocess.run([*cmd, "--sandbox"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert sandbox.returncode == 0, sandbox.stdout + sandbox.stderr
