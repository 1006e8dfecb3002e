"""examples/sharded/ is exercised (issue 26): the GitHub Actions workflow passes actionlint and
zizmor and its matrices agree with its N; the GitLab pipeline's and the Kubernetes Jobs' own
``reconciler`` command lines are run as those engines run them — N processes at once, told their
shard only by the engine's variables — against emulators on loopback; the Jobs load into the
official Kubernetes client's models without losing a field."""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.test_kill_recovery import EXE, Fleet, duplicates
from tests.security.test_ci_examples import actionlint, zizmor

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "sharded"
GITHUB = EXAMPLES / "github-workflow.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
JOBS = EXAMPLES / "indexed-job.yaml"
SHARD_VARS = ("RECONCILER_SHARD", "RECONCILER_SHARD_TOTAL", "JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL")


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.chdir(tmp_path)
    f = Fleet(tmp_path).start()
    f.manifests()
    (tmp_path / "out").mkdir()
    yield f
    f.sbx.stop()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SHARD_VARS}
    env["PATH"] = f"{Path(EXE).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _run_at_once(root: Path, commands: list[tuple[str, dict[str, str]]]) -> list[subprocess.CompletedProcess[str]]:
    """Each command line through a shell, all started at once (the engine's parallel jobs)."""
    procs = [
        subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", cmd], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for cmd, env in commands
    ]
    out = []
    for (cmd, _), p in zip(commands, procs, strict=True):
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr))
    return out


# -- GitHub Actions ---------------------------------------------------------------------------------
def test_the_github_workflow_passes_actionlint_and_zizmor() -> None:
    r = actionlint(REPO, GITHUB)
    assert r.returncode == 0, r.stdout + r.stderr
    serious = [
        (f["ident"], f["determinations"]["severity"])
        for f in zizmor(GITHUB)
        if f["determinations"]["severity"] in ("High", "Medium")
    ]
    assert serious == []
    assert "zizmor:" not in GITHUB.read_text(encoding="utf-8")


def test_the_github_matrices_match_n_and_force_is_nowhere_but_merge() -> None:
    wf = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    n = int(wf["env"]["SHARDS"])
    assert wf["jobs"]["plan"]["strategy"]["matrix"]["shard"] == list(range(1, n + 1))
    assert wf["jobs"]["apply"]["strategy"]["matrix"]["shard"] == list(range(1, n + 1))
    assert wf["jobs"]["merge"]["needs"] == "plan" and wf["jobs"]["report"]["needs"] == "apply"
    runs = {name: " ".join(s.get("run", "") for s in job["steps"]) for name, job in wf["jobs"].items()}
    assert 'reconciler plan --shard "$SHARD/$SHARDS"' in runs["plan"]
    assert "reconciler plan merge" in runs["merge"]
    assert 'reconciler apply "$RUNNER_TEMP/planset.json" --shard "$SHARD/$SHARDS"' in runs["apply"]
    assert "reconciler apply merge-report" in runs["report"]
    assert "--force" not in GITHUB.read_text(encoding="utf-8").split("\njobs:")[1]
    for job in wf["jobs"].values():  # actions pinned by commit, as in the other examples
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


# -- GitLab CI ---------------------------------------------------------------------------------------
def _gitlab_lines(job: dict[str, Any]) -> list[str]:
    return [line for line in job["script"] if line.startswith("reconciler ")]


def test_the_gitlab_pipeline_runs_as_gitlab_runs_it(fleet: Fleet) -> None:
    ci = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    n = ci["reconciler-plan"]["parallel"]
    assert ci["reconciler-apply"]["parallel"] == n
    assert ci["reconciler-merge"]["needs"] == ["reconciler-plan"] and ci["reconciler-apply"]["needs"] == ["reconciler-merge"]
    out = str(fleet.root / "out")
    for stage in ("reconciler-plan", "reconciler-merge", "reconciler-apply", "reconciler-report"):
        job = ci[stage]
        lines = _gitlab_lines(job)
        assert lines, stage
        assert all("--shard" not in line for line in lines)  # the shard comes from GitLab's variables
        nodes = range(1, job["parallel"] + 1) if "parallel" in job else [None]
        for line in lines:
            runs = _run_at_once(
                fleet.root,
                [
                    (
                        line,
                        _env(RECONCILER_OUT=out, **({"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": str(n)} if k is not None else {})),
                    )
                    for k in nodes
                ],
            )
            for r in runs:
                assert r.returncode == 0, (stage, r.args, r.stderr)
        if stage == "reconciler-merge":
            md = (fleet.root / "out" / "plan.md").read_text(encoding="utf-8")
            assert f"_Merged from {n} shard plan(s)" in md
        if stage == "reconciler-report":
            assert runs[0].stdout.splitlines()[-1].startswith(f"Apply of {n} shard(s): complete: ")
    assert duplicates(fleet.state()) == {}
    after = subprocess.run(
        [EXE, "plan", "--detailed-exitcode"], cwd=fleet.root, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert after.returncode == 0, after.stdout + after.stderr


# -- Kubernetes Indexed Jobs -------------------------------------------------------------------------
def _jobs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(JOBS.read_text(encoding="utf-8")) if d]


def test_the_jobs_load_into_the_official_kubernetes_models() -> None:
    from kubernetes.client import ApiClient, V1Job

    api = ApiClient()

    class _Reply:  # what ApiClient.deserialize reads: the body of an API answer
        def __init__(self, doc: dict[str, Any]):
            self.data = json.dumps(doc)

    # newer clients' deserialize takes the answer's text and content type; older ones the answer
    takes_text = "content_type" in inspect.signature(api.deserialize).parameters

    def load(doc: dict[str, Any]) -> Any:
        if takes_text:
            return api.deserialize(json.dumps(doc), "V1Job", "application/json")
        return api.deserialize(_Reply(doc), "V1Job")

    jobs = _jobs()
    assert [j["metadata"]["name"] for j in jobs] == [
        "reconciler-restore-plan",
        "reconciler-restore-merge",
        "reconciler-restore-apply",
    ]
    misspelled = json.loads(json.dumps(jobs[2]).replace('"backoffLimitPerIndex"', '"backoffLimitPerIndx"'))
    assert api.sanitize_for_serialization(load(misspelled)) != misspelled  # the check can fail
    for doc in jobs:
        job = load(doc)
        assert isinstance(job, V1Job)
        # nothing was dropped: every field of the file is a field of the models, spelled right
        assert api.sanitize_for_serialization(job) == doc
    for name in ("reconciler-restore-plan", "reconciler-restore-apply"):
        spec = load(next(j for j in jobs if j["metadata"]["name"] == name)).spec
        assert spec.completion_mode == "Indexed" and spec.backoff_limit_per_index >= 1
        assert spec.template.spec.restart_policy == "Never"  # what backoffLimitPerIndex and podFailurePolicy need
        fail_index = [r for r in spec.pod_failure_policy.rules if r.action == "FailIndex"]
        assert any(
            3 in r.on_exit_codes.values and r.on_exit_codes.operator == "In" and r.on_exit_codes.container_name == "reconciler"
            for r in fail_index
        )
        container = spec.template.spec.containers[0]
        total = {e.name: e.value for e in container.env}["RECONCILER_SHARD_TOTAL"]
        assert int(total) == spec.completions == spec.parallelism


def test_the_jobs_run_as_an_indexed_job_runs_them(fleet: Fleet) -> None:
    out = fleet.root / "out"

    def command(job: dict[str, Any], index: int | None) -> str:
        c = job["spec"]["template"]["spec"]["containers"][0]["command"]
        if c[:2] == ["sh", "-c"]:
            line = c[2]
        else:
            line = shlex.join(c)
        if index is not None:  # Kubernetes expands $(VAR) from the container's env
            line = line.replace("$(JOB_COMPLETION_INDEX)", str(index))
        return line.replace("/work/out", str(out)).replace("'", "")

    for job in _jobs():
        spec = job["spec"]
        indexes: list[int | None] = list(range(spec["completions"])) if spec.get("completionMode") == "Indexed" else [None]
        env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0].get("env", [])}
        runs = _run_at_once(
            fleet.root,
            [(command(job, i), _env(**env, **({"JOB_COMPLETION_INDEX": str(i)} if i is not None else {}))) for i in indexes],
        )
        for r in runs:
            assert r.returncode == 0, (job["metadata"]["name"], r.args, r.stderr)
    report = subprocess.run(
        [EXE, "apply", "merge-report", *sorted(map(str, out.glob("shard-*.jsonl")))],
        cwd=fleet.root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.splitlines()[-1].startswith("Apply of 4 shard(s): complete: ")
    assert duplicates(fleet.state()) == {}
