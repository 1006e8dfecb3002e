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
    env = {
        **os.environ,
        "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}",
        "RUNNER_TEMP": str(temp),
        "RECONCILER_OUT": str(temp),
    }
    r = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout
    assert (temp / "apply.log").read_text() == "applied-something\n"
    [gl] = [s for s in gitlab_scripts()["reconciler-apply"] if "reconciler apply" in s]
    setup = [s for s in gitlab_scripts()["reconciler-apply"] if s.startswith("set -o pipefail")]
    r = subprocess.run(
        ["bash", "-e", "-c", "\n".join([*setup, gl])], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
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
    steps = [
        s
        for job in github()["jobs"].values()
        for s in job["steps"]
        if re.search(r"^\s*reconciler (plan|apply)", s.get("run", ""), re.M)
    ]
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
    before = joined[: joined.index("reconciler plan")]
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
    env.update(
        TCAPLUS_APP_KEY="x" * 8,
        JDB_KEY="k" * 16,
        JDB_IV="i" * 16,
        BESTPROXY_APP_KEY="a" * 8,
        BESTPROXY_TOTP_SECRET="JBSWY3DPEHPK3PXP",
    )
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


# -- zizmor and actionlint ------------------------------------------------------------------------
BAD_WORKFLOW = """\
name: bad
on: pull_request_target
env:
  TOKEN: ${{ secrets.VENDOR_KEY }}
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}" && echo "${{ matrix.nope }}"
"""


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is not installed: pip install -e '.[test]'"
    return path


def zizmor(*paths: Path) -> list[dict[str, Any]]:
    """zizmor's findings, offline (no request leaves the machine) and without any config file (a
    pull request could add one that silences findings)."""
    r = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-config", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.stdout.strip(), r.stderr
    return json.loads(r.stdout)


def actionlint(cwd: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck off: its findings would depend on whether a shellcheck binary is on PATH
    return subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_zizmor_finds_no_high_or_medium_finding_in_the_action_and_the_examples(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW, encoding="utf-8")
    control = {(f["ident"], f["determinations"]["severity"]) for f in zizmor(bad)}
    assert ("template-injection", "High") in control and ("unpinned-uses", "High") in control, control  # it can fail
    findings = zizmor(ACTION, *WORKFLOWS)
    serious = [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["concrete"]["feature"])
        for f in findings
        if f["determinations"]["severity"] in ("High", "Medium")
    ]
    assert serious == []
    for path in (ACTION, *WORKFLOWS):
        assert "zizmor:" not in path.read_text(encoding="utf-8"), path  # no finding silenced inline


def test_actionlint_is_clean_over_the_examples_and_the_action(tmp_path: Path) -> None:
    """The workflows as they are, and action.yml through a workflow that uses it as a local action
    with each of its inputs (actionlint reads an action's metadata where a workflow uses it)."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ACTION, project / "action.yml")
    inputs = yaml.safe_load(ACTION.read_text(encoding="utf-8"))["inputs"]
    use = {
        "name": "use",
        "on": "push",
        "permissions": {},
        "jobs": {"a": {"runs-on": "ubuntu-latest", "steps": [{"uses": "./", "with": {name: "x" for name in inputs}}]}},
    }
    (project / ".github" / "workflows" / "use.yml").write_text(yaml.safe_dump(use), encoding="utf-8")
    bad = project / ".github" / "workflows" / "bad.yml"
    bad.write_text(BAD_WORKFLOW.replace("@v4", "@v4\n        with: {bogus: 1}"), encoding="utf-8")
    assert actionlint(project, bad).returncode == 1  # it can fail
    bad.unlink()
    r = actionlint(project, project / ".github" / "workflows" / "use.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    (project / "action.yml").write_text(ACTION.read_text(encoding="utf-8").replace("\ninputs:", "\ninputz:"))
    assert actionlint(project, project / ".github" / "workflows" / "use.yml").returncode == 1  # the action is read
    r = actionlint(REPO, *WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr


# -- secrets, pins, credentials, expressions ---------------------------------------------------------
def _github_files() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, yaml.safe_load(p.read_text(encoding="utf-8"))) for p in (*WORKFLOWS, ACTION)]


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in doc:
        return list(doc["runs"]["steps"])
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_secrets_are_only_in_the_env_of_a_step() -> None:
    for path, doc in _github_files():
        assert "secrets." not in json.dumps(doc.get("env", {})), path
        for name, job in doc.get("jobs", {}).items():
            assert "secrets." not in json.dumps(job.get("env", {})), (path, name)
        for step in _steps(doc):
            if "uses" in step and "reconciler@" not in step["uses"]:  # a third-party action: no secret at all
                assert "secrets." not in json.dumps(step), (path, step)
            assert "secrets." not in step.get("run", ""), (path, step)


def test_every_action_is_pinned_by_commit_and_checkouts_keep_no_credential() -> None:
    for path, doc in _github_files():
        for step in _steps(doc):
            if "uses" not in step:
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), (path, step["uses"])
            if step["uses"].startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, path
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():  # each third-party pin names the release it is, for updates
            if re.search(r"uses: (actions|marocchino)/", line):
                assert re.search(r"@[0-9a-f]{40}\s+# v\d+\.\d+\.\d+$", line), line


def test_no_expression_is_expanded_inside_a_script() -> None:
    for path, doc in _github_files():
        for step in _steps(doc):
            assert "${{" not in step.get("run", ""), (path, step.get("name"))
    for scripts in gitlab_scripts().values():
        assert all("${{" not in s for s in scripts)


def test_permissions_are_read_only_unless_a_job_needs_more() -> None:
    for path, doc in _github_files():
        if "jobs" not in doc:
            continue
        assert doc["permissions"] == {"contents": "read"}, path
        for name, job in doc["jobs"].items():
            writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
            assert writes <= {"pull-requests", "issues"}, (path, name, writes)


def test_installs_are_pinned() -> None:
    """pip installs name a pinned commit of this product, or (the Action) a hash-pinned list of its
    dependencies and build backend, then its own checkout without resolving anything else."""
    for path in (*WORKFLOWS, GITLAB):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"\bpip3? install\b", line):
                assert re.search(r'"\$RECONCILER_(INSTALL|SOURCE)"$', line.strip()), (path, line)
    [install] = [
        s["run"] for s in yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"] if "pip install" in s.get("run", "")
    ]
    commands = [c for c in install.replace("\\\n", " ").splitlines() if "pip install" in c]
    assert len(commands) == 2, commands
    assert "--require-hashes" in commands[0] and commands[0].rstrip().endswith(
        '-r "$GITHUB_ACTION_PATH/scripts/action-requirements.txt"'
    ), commands[0]
    assert "--no-deps" in commands[1] and "--no-build-isolation" in commands[1]
    assert commands[1].rstrip().endswith('"$GITHUB_ACTION_PATH"'), commands[1]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def _satisfies(version: str, spec: str) -> bool:
    ops = {
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "==": lambda a, b: a == b,
        ">": lambda a, b: a > b,
        "!=": lambda a, b: a != b,
    }
    return all(
        ops[op](_version(version), _version(bound)) for op, bound in re.findall(r"(>=|<=|==|!=|<|>)\s*([0-9][\w.]*)", spec)
    )


def test_the_action_lock_pins_every_dependency_by_hash_within_its_range() -> None:
    text = (REPO / "scripts" / "action-requirements.txt").read_text(encoding="utf-8")
    blocks = re.findall(r"^([A-Za-z0-9][\w.-]*)==([\w.]+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", text, re.M)
    pins = {name.lower().replace("_", "-"): version for name, version, _ in blocks}
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9][\w.-]*==", text, re.M)) > 10  # every pin carries hashes
    assert "--index-url" not in text and "--extra-index-url" not in text and "--trusted-host" not in text
    requirements = PYPROJECT["project"]["dependencies"] + PYPROJECT["build-system"]["requires"] + ["wheel"]
    for req in requirements:
        name = re.match(r"[A-Za-z0-9][\w.-]*", req).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        assert name in pins, f"{name} is not in scripts/action-requirements.txt"
        assert _satisfies(pins[name], req.split(";")[0][len(name) :]), (req, pins[name])
    assert _satisfies("2.12.1", ">=2.12,<2.13") and not _satisfies("2.13.0", ">=2.12,<2.13")  # the checker can fail


# -- files outside the checkout ------------------------------------------------------------------
def test_every_file_the_examples_write_is_under_the_runner_temp_folder() -> None:
    """Every redirect, tee and --out of a script names $RUNNER_TEMP (GitLab: $RECONCILER_OUT), or
    one of the runner's own files; uploads and comments read from there."""
    own = {"$GITHUB_STEP_SUMMARY", "$GITHUB_OUTPUT", "/dev/null", "&2"}
    scripts = [s for p, doc in _github_files() for st in _steps(doc) if (s := st.get("run"))]
    scripts += [s for job in gitlab_scripts().values() for s in job]
    seen = 0
    for script in (re.sub(r"(^|\s)#[^\n]*", r"\1", s) for s in scripts):  # comments off
        for target in re.findall(r'(?:>>?|\btee|--out|--dir|(?<!set )-o)\s+("?[^\s;|]+"?)', script):
            seen += 1
            t = target.strip('"')
            assert t in own or t.startswith(("$RUNNER_TEMP/", "$RECONCILER_OUT/")) or t in ("$RUNNER_TEMP", "$RECONCILER_OUT"), (
                target,
                script,
            )
    assert seen > 20
    for path, doc in _github_files():
        for step in _steps(doc):
            for key in ("path",):
                value = step.get("with", {}).get(key)
                if value and "uses" in step:
                    for entry in str(value).strip().splitlines():
                        assert entry.startswith(("${{ runner.temp }}/", "${{ steps.")), (path, entry)


def _fake_reconciler(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "reconciler"
    stub.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    stub.chmod(0o755)
    return bin_dir


ERRORS = (
    "error: manifests/a.yaml:3:1: ProxyAccount/x spec.remark: ```\n~~~~~~~~~~~~\n# Pwned\n"
    "![x](https://evil.example/x.png) @org/team\n~~~\n"
)


def _fenced_only(md: str, title: str) -> None:
    """The comment: the title heading, then one fenced block holding every error line, nothing else."""
    tokens = MarkdownIt("commonmark").parse(md)
    assert [t.type for t in tokens if t.type.endswith("_open") or t.type == "fence"] == ["heading_open", "fence"], md
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and fences[0].content.rstrip("\n") == ERRORS.rstrip("\n"), md
    assert [t for t in tokens if t.type == "heading_open"][1:] == [], md
    assert title in md


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("example", ["github", "gitlab"])
def test_a_failed_plan_comment_is_fenced_whatever_the_errors_hold(tmp_path: Path, example: str) -> None:
    """A run of ~ (or ```) in an error line cannot close the fence of the failure comment: the
    comment is the plan step's own output, run with a reconciler that fails with such lines."""
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    (tmp_path / "errors.txt").write_text(ERRORS, encoding="utf-8")
    bin_dir = _fake_reconciler(tmp_path, f'cat "{tmp_path / "errors.txt"}" >&2\nexit 1\n')
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RUNNER_TEMP": str(temp),
        "RECONCILER_OUT": str(temp),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    if example == "github":
        [script] = [s for s in github_scripts()["plan"] if "reconciler plan" in s]
    else:
        [script] = [s for s in gitlab_scripts()["reconciler-plan"] if "reconciler plan" in s]
    work = tmp_path / "checkout"
    work.mkdir()
    r = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    _fenced_only((temp / "plan.md").read_text(encoding="utf-8"), "reconciler plan failed (exit 1)")
    assert sorted(p.name for p in work.iterdir()) == ([] if example == "github" else ["reconciler-artifacts"])


# -- the Action's run step -----------------------------------------------------------------------
def _action_run(tmp_path: Path, **inputs: str) -> tuple[subprocess.CompletedProcess[str], Path, list[dict[str, Any]]]:
    """scripts/github-action.sh with a reconciler (and gh) that record how they were called."""
    temp, work = tmp_path / "runner-temp", tmp_path / "checkout"
    temp.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    record = (
        f"{sys.executable} -c \"import json,os,sys; print(json.dumps({{'argv': sys.argv[1:], "
        f'\'from\': os.environ.get(\'RECONCILER_CONNECTIONS_FROM\')}}))" "$0" "$@" >> "{calls}"\n'
    )
    bin_dir = _fake_reconciler(tmp_path, record + 'echo "### reconciler"\nexit 0\n')
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path / "gh-args"}"\necho "trusted: yes"\n', encoding="utf-8")
    gh.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RUNNER_TEMP": str(temp),
        "GITHUB_WORKSPACE": str(work),
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **{f"RECONCILER_{k.upper()}": v for k, v in inputs.items()},
    }
    r = subprocess.run(["bash", str(ACTION_SCRIPT)], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    runs = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return r, temp, runs


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_action_writes_its_plan_under_the_runner_temp_folder(tmp_path: Path) -> None:
    default = yaml.safe_load(ACTION.read_text(encoding="utf-8"))["inputs"]["plan-file"]["default"]
    r, temp, [run] = _action_run(tmp_path, command="plan", plan_file=default)
    assert r.returncode == 0, r.stderr
    out = Path(run["argv"][run["argv"].index("--out") + 1])
    assert out == temp / "reconciler" / default and not out.is_relative_to(tmp_path / "checkout")
    assert f"plan-file={out}" in (tmp_path / "output").read_text()
    assert f"report={temp / 'reconciler' / 'report.md'}" in (tmp_path / "output").read_text()
    # a plan file inside the checkout (absolute, or through a symlink) is refused before reconciler runs
    sub = tmp_path / "x"
    (sub / "runner-temp").mkdir(parents=True)
    (sub / "runner-temp" / "link").symlink_to(sub / "checkout", target_is_directory=True)
    for inside in (sub / "checkout" / "plan.json", sub / "runner-temp" / "link" / "p.json"):
        r, _, runs = _action_run(sub, command="plan", plan_file=str(inside))
        assert r.returncode == 1 and "inside the checkout" in r.stderr and runs == [], r.stderr
    r, _, runs = _action_run(tmp_path / "y", command="plan", plan_file="sub/plan.json")  # relative: under temp
    assert r.returncode == 0, r.stderr
    assert (
        Path(runs[0]["argv"][runs[0]["argv"].index("--out") + 1])
        == tmp_path / "y" / "runner-temp" / "reconciler" / "sub" / "plan.json"
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_action_takes_the_trusted_settings_from_the_target_branch_by_default(tmp_path: Path) -> None:
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert action["inputs"]["trusted-config-ref"]["default"] == "${{ github.base_ref }}"
    env = next(s for s in action["runs"]["steps"] if s.get("id") == "run")["env"]
    assert env["RECONCILER_TRUSTED_REF"] == "${{ inputs.trusted-config-ref }}"
    assert env["RECONCILER_TRUSTED_CONFIG"] == "${{ inputs.trusted-config }}"
    r, temp, [run] = _action_run(tmp_path, command="plan", plan_file="plan.json", trusted_ref="main")
    assert r.returncode == 0, r.stderr
    trusted = temp / "reconciler" / "trusted-reconciler.yaml"
    assert run["from"] == str(trusted) and trusted.read_text() == "trusted: yes\n"
    assert (tmp_path / "gh-args").read_text() == (
        "api -X GET -H Accept: application/vnd.github.raw+json repos/o/r/contents/reconciler.yaml -f ref=main\n"
    )
    r, _, [run] = _action_run(tmp_path / "b", command="plan", trusted_config="/etc/trusted.yaml", trusted_ref="main")
    assert run["from"] == "/etc/trusted.yaml"
    r, _, [run] = _action_run(tmp_path / "c", command="apply", plan_file="")  # a push: the checkout is trusted
    assert run["from"] is None


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_action_fences_error_lines_in_its_report(tmp_path: Path) -> None:
    (tmp_path / "errors.txt").write_text(ERRORS, encoding="utf-8")
    _fake_reconciler(tmp_path, f'cat "{tmp_path / "errors.txt"}" >&2\nexit 1\n')
    temp, work = tmp_path / "runner-temp", tmp_path / "checkout"
    temp.mkdir()
    work.mkdir()
    for command in ("validate", "plan"):
        env = {
            "PATH": f"{tmp_path / 'fake-bin'}:/usr/bin:/bin",
            "RUNNER_TEMP": str(temp),
            "GITHUB_WORKSPACE": str(work),
            "RECONCILER_COMMAND": command,
        }
        r = subprocess.run(["bash", str(ACTION_SCRIPT)], cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stderr
        _fenced_only((temp / "reconciler" / "report.md").read_text(encoding="utf-8"), f"reconciler {command}")
    assert list(work.iterdir()) == []
