"""The CI examples are executable: the `reconciler ...` lines of the GitHub Actions workflow and of
the GitLab CI pipeline are extracted from their YAML and run, job by job and in order, against
emulators: pull request plan -> merge -> apply of the saved plan -> nightly drift; then a second
pull request whose plan goes stale before it is applied.

Two ways to run them: against a BestProxy emulator with a real reconciler.yaml (the commands exactly
as written), and with ``--sandbox`` (which starts all three vendor emulators; skipped while the
TcaplusDB and JDB emulators are not importable yet)."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
import httpx
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.engine.planfile import plan_schema
from tests.engine.conftest import PASSWORD, Workspace, account_doc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GITHUB = EXAMPLES / "github" / "reconciler.yml"
GITLAB = EXAMPLES / "gitlab" / "gitlab-ci.yml"
OPERATORS = {">", "2>", "|"}


# -- extracting the commands -----------------------------------------------------------------
def reconciler_lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip().startswith("reconciler ")]


def github_jobs() -> dict[str, list[str]]:
    wf = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    return {
        name: [cmd for step in job["steps"] for cmd in reconciler_lines(step.get("run", ""))] for name, job in wf["jobs"].items()
    }


def gitlab_jobs() -> dict[str, list[str]]:
    ci = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    return {
        name: [cmd for item in job["script"] for cmd in reconciler_lines(item)]
        for name, job in ci.items()
        if isinstance(job, dict) and "script" in job and not name.startswith(".")
    }


PIPELINES = {
    "github": (github_jobs, ("plan", "apply", "drift")),
    "gitlab": (gitlab_jobs, ("reconciler-plan", "reconciler-apply", "reconciler-drift")),
}


@dataclass
class Line:
    """One extracted command line: reconciler arguments plus where stdout/stderr go."""

    text: str
    args: list[str]
    stdout_to: str | None = None
    stderr_to: str | None = None


def parse_line(text: str) -> Line:
    tokens = [os.path.expandvars(t) for t in shlex.split(text)]  # "$RUNNER_TEMP/plan.json" as the shell reads it
    assert tokens[0] == "reconciler"
    cut = next((i for i, t in enumerate(tokens) if t in OPERATORS or t in ("||", "&&", ";")), len(tokens))
    line = Line(text, tokens[1:cut])
    rest = tokens[cut:]
    while rest:
        op, *rest = rest
        if op == ">":
            line.stdout_to, *rest = rest
        elif op == "2>":
            line.stderr_to, *rest = rest
        elif op == "|" and rest[0] == "tee":
            line.stdout_to, *rest = rest[1:]
        else:
            raise AssertionError(f"unsupported shell syntax in an example command: {text!r}")
    return line


def run_line(line: Line, extra: list[str]) -> tuple[int, str, str]:
    args = [line.args[0], *extra, *line.args[1:]] if line.args[0] in ("plan", "apply", "validate") else line.args
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    if line.stdout_to:
        Path(line.stdout_to).write_text(r.stdout, encoding="utf-8")
    if line.stderr_to:
        Path(line.stderr_to).write_text(r.stderr, encoding="utf-8")
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(autouse=True)
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runner's temporary folder (GitHub's $RUNNER_TEMP, the GitLab example's $RECONCILER_OUT):
    where the examples write plans, reports and logs, outside the checkout."""
    folder = tmp_path / "runner-temp"
    folder.mkdir()
    monkeypatch.setenv("RUNNER_TEMP", str(folder))
    monkeypatch.setenv("RECONCILER_OUT", str(folder))
    return folder


# -- structure (no emulator needed) -----------------------------------------------------------
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_every_example_command_is_a_valid_invocation(
    pipeline: str, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (out / "plan.json").write_text("{}")  # --baseline must name an existing file
    jobs_of, (plan_job, apply_job, drift_job) = PIPELINES[pipeline]
    jobs = jobs_of()
    plan = f"{out}/plan.json"  # under the runner's temporary folder, never in the checkout
    assert [parse_line(t).args for t in jobs[plan_job]] == [["plan", "--out", plan, "--format", "markdown"]]
    assert [parse_line(t).stdout_to for t in jobs[plan_job]] == [f"{out}/plan.md"]
    assert [parse_line(t).args for t in jobs[apply_job]] == [["apply", plan]]
    drift = [parse_line(t).args for t in jobs[drift_job]]
    assert drift == [["plan", "--drift", "--baseline", plan, "--format", "markdown"], ["plan", "--drift", "--format", "markdown"]]
    for text in (t for lines in jobs.values() for t in lines):  # every file a command names
        line = parse_line(text)
        for name in [*line.args[1:], line.stdout_to or "", line.stderr_to or ""]:
            if name.endswith((".json", ".md", ".err", ".log")):
                assert Path(name).is_relative_to(out), text
    for text in (t for lines in jobs.values() for t in lines):
        args = parse_line(text).args
        with click.Context(cli) as ctx:
            cmd = cli.get_command(ctx, args[0])
            assert cmd is not None, text
            cmd.make_context(args[0], list(args[1:]), parent=ctx)  # raises on an unknown option


def test_github_workflow_wiring() -> None:
    wf = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    jobs = wf["jobs"]
    uses = lambda job, action: [s for s in jobs[job]["steps"] if s.get("uses", "").startswith(action)]  # noqa: E731
    sticky = uses("plan", "marocchino/sticky-pull-request-comment")
    assert len(sticky) == 1 and sticky[0]["with"]["path"] == "${{ runner.temp }}/plan.md" and sticky[0]["with"]["header"]
    [upload] = uses("plan", "actions/upload-artifact")
    assert upload["with"]["name"] == "reconciler-plan" and "plan.json" in upload["with"]["path"]
    fetch = " ".join(s.get("run", "") for s in jobs["apply"]["steps"])
    assert "gh run download" in fetch and '--name reconciler-plan --dir "$RUNNER_TEMP"' in fetch
    applied = [s for s in uses("apply", "actions/upload-artifact") if s["with"]["name"] == "reconciler-applied-plan"]
    assert len(applied) == 1 and "plan.json" in applied[0]["with"]["path"]
    assert "--name reconciler-applied-plan" in " ".join(s.get("run", "") for s in jobs["drift"]["steps"])
    assert jobs["apply"]["concurrency"]["cancel-in-progress"] is False
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "push", "schedule"} <= set(triggers)


def test_gitlab_pipeline_wiring() -> None:
    ci = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    assert "reconciler-artifacts/plan.json" in ci["reconciler-plan"]["artifacts"]["paths"]
    note_script = "\n".join(ci["reconciler-plan"]["script"])
    assert note_script.count("marker='<!-- reconciler-plan -->'") == 1 and "-X PUT" in note_script
    assert "reconciler-plan" in "\n".join(ci["reconciler-apply"]["script"])
    assert "reconciler-artifacts/plan.json" in ci["reconciler-apply"]["artifacts"]["paths"]
    assert "reconciler-apply" in "\n".join(ci["reconciler-drift"]["script"])
    assert ci["reconciler-apply"]["resource_group"]


# -- running them ------------------------------------------------------------------------------
MANIFESTS = {
    "manifests/accounts.yaml": "---\n".join(account_doc(n, remark="v1") for n in ("game01", "game02", "game03")),
    "manifests/ips.yaml": (
        "apiVersion: reconciler/v1\nkind: IpAllowlist\nmetadata: {name: datacenter}\n"
        "spec: {productType: 14, entries: [10.0.0.1, 10.0.0.2]}\n"
    ),
    "manifests/scope.yaml": (
        "apiVersion: reconciler/v1\nkind: PruneScope\nmetadata: {name: games}\n"
        "spec: {target: ProxyAccount, match: {usernamePrefix: game}}\n"
    ),
}


@dataclass
class Target:
    """Where the pipeline commands run: extra CLI flags and a way to act on live state by hand."""

    extra: list[str]
    out_of_band: Callable[[str, dict[str, Any]], None]
    accounts: Callable[[], dict[str, dict[str, Any]]]


@pytest.fixture(params=["config", "sandbox"])
def target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    if request.param == "config":
        bp: Workspace = request.getfixturevalue("bp")
        return Target([], lambda path, body: bp.api(path, **body) and None, bp.accounts)
    pytest.importorskip("reconciler.vendors.tcaplus.emulator", reason="the TcaplusDB emulator is not written yet")
    pytest.importorskip("reconciler.vendors.jdb.emulator", reason="the JDB emulator is not written yet")
    from reconciler.sandbox.serve import Sandbox

    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests/secrets").mkdir(parents=True)
    (tmp_path / "manifests/secrets/pw").write_text(PASSWORD)
    state = tmp_path / ".reconciler/sandbox"

    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        with Sandbox(state) as sbx:  # the same persisted state the commands use
            key = sbx.cred["bestproxy_app_key"].read_text().strip()
            url = sbx.urls()["bestproxy"] + path
            if path.endswith("/list"):
                return httpx.get(url, params={"app_key": key, **body}).json()
            return httpx.post(url, json={"app_key": key, **body}).json()

    def accounts() -> dict[str, dict[str, Any]]:
        return {a["username"]: a for a in call("/gateway/whitelist-account/list", {})["data"]["list"]}

    return Target(["--sandbox", "--sandbox-state", str(state)], lambda p, b: call(p, b) and None, accounts)


def _write_manifests(files: dict[str, str]) -> None:
    for rel, text in files.items():
        Path(rel).parent.mkdir(parents=True, exist_ok=True)
        Path(rel).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_pipeline_commands_run_in_order(pipeline: str, target: Target, out: Path) -> None:
    temp = out
    jobs_of, (plan_job, apply_job, drift_job) = PIPELINES[pipeline]
    jobs = {name: [parse_line(t) for t in lines] for name, lines in jobs_of().items()}

    def job(name: str) -> list[tuple[Line, int, str, str]]:
        return [(line, *run_line(line, target.extra)) for line in jobs[name]]

    def drift_codes() -> dict[str, tuple[int, str]]:
        out = {}
        for line, code, _, err in job(drift_job):
            assert (temp / "drift.md").read_text().startswith("### reconciler drift report")
            out["baseline" if "--baseline" in line.args else "plain"] = (code, err.strip())
        return out

    # 1. pull request: plan, Markdown for the comment, plan.json for the artifact
    _write_manifests(MANIFESTS)
    [(_, code, _, err)] = job(plan_job)
    assert code == 0, err
    md = (temp / "plan.md").read_text()
    assert md.startswith("### reconciler plan") and "Plan: 4 to create, 0 to update" in md
    plan = json.loads((temp / "plan.json").read_text())
    jsonschema.validate(plan, plan_schema(), cls=jsonschema.Draft202012Validator)
    assert target.accounts() == {}

    # 2. merged: apply exactly the reviewed plan
    [(_, code, out, err)] = job(apply_job)
    assert code == 0, out + err
    assert "Apply: 4 applied, 0 failed, 0 stale, 0 skipped." in (temp / "apply.log").read_text()
    assert sorted(target.accounts()) == ["game01", "game02", "game03"]

    # 3. nightly: nothing drifted
    assert drift_codes() == {"baseline": (0, "Drift: none."), "plain": (0, "Drift: none.")}

    # 4. a second pull request (game01, game03 edited) is merged but not applied yet: pending for
    #    the run with the baseline, drift for the run without
    edited = MANIFESTS["manifests/accounts.yaml"].split("---\n")
    edited = [doc.replace('"v1"', '"v2"') if i != 1 else doc for i, doc in enumerate(edited)]
    _write_manifests(dict(MANIFESTS, **{"manifests/accounts.yaml": "---\n".join(edited)}))
    codes = drift_codes()
    assert codes["baseline"] == (0, "Drift: none. 2 pending change(s) from edited manifests not counted.")
    assert codes["plain"] == (2, "Drift: 2 resource(s) differ from the manifests (no baseline) (ProxyAccount).")

    # 5. someone disables game02 by hand: drift for both runs
    target.out_of_band("/gateway/whitelist-account/disable", {"accounts": "game02"})
    codes = drift_codes()
    assert codes["baseline"] == (
        2,
        "Drift: 1 resource(s) differ from unchanged manifests (ProxyAccount). "
        "2 pending change(s) from edited manifests not counted.",
    )
    assert codes["plain"][0] == 2

    # 6. the second pull request's plan (3 updates) applied after another hand change: stale, exit 3
    [(_, code, _, err)] = job(plan_job)
    assert code == 0, err
    assert "Plan: 0 to create, 3 to update" in (temp / "plan.md").read_text()
    target.out_of_band("/gateway/whitelist-account/change-remark", {"account": "game03", "remark": "by hand"})
    [(_, code, out, _)] = job(apply_job)
    assert code == 3, out
    assert re.findall(r"^STALE +update ProxyAccount/(\w+)", out, re.M) == ["game03"]
    live = target.accounts()
    assert live["game01"]["remark"] == "v2" and live["game02"]["status"] == 1
    assert live["game03"]["remark"] == "by hand"
