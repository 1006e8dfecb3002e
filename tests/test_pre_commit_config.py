"""The developer hooks are .ci/run's gates (issue 25): ``.pre-commit-config.yaml`` runs, as local
hooks with the environment's own tools, exactly the commands .ci/run runs besides the install and
the test suite, so the two cannot drift apart; CONTRIBUTING.md says how to use it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".pre-commit-config.yaml"
CI = ROOT / ".ci" / "run"


def ci_gates(ci_text: str) -> list[str]:
    """The commands of .ci/run's gate line, less the install and the test suite."""
    line = ci_text.strip().splitlines()[-1]
    commands = [c.strip() for c in line.split("&&")]
    assert commands[0].startswith("pip install -e") and commands[-1].startswith("python -m pytest"), line
    return commands[1:-1]


def hook_commands(config: dict[str, Any]) -> list[str]:
    """Each hook's command line as pre-commit runs it (entry, then args), after checking that the hook
    is local, runs the tool on PATH and runs over the whole tree as .ci/run does."""
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    commands = []
    for hook in repo["hooks"]:
        assert hook["language"] in ("unsupported", "system"), hook  # the tool on PATH, nothing installed
        assert "additional_dependencies" not in hook and "language_version" not in hook, hook
        assert hook["pass_filenames"] is False and hook["always_run"] is True, hook
        assert not {"files", "types", "exclude", "stages"} & set(hook), hook
        commands.append(shlex.join([*shlex.split(hook["entry"]), *hook.get("args", [])]))
    return commands


def drift(ci_text: str, config: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(gates of .ci/run with no hook, hooks that are no gate of .ci/run)."""
    gates = {shlex.join(shlex.split(c)) for c in ci_gates(ci_text)}
    hooks = hook_commands(config)
    assert len(hooks) == len(set(hooks)), hooks
    return gates - set(hooks), set(hooks) - gates


def _config() -> dict[str, Any]:
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_the_hooks_run_exactly_the_gates_of_ci() -> None:
    ci = CI.read_text(encoding="utf-8")
    # what the gate line holds today, at least
    assert {"mypy", "lint-imports", "ruff format --check reconciler bench tests examples scripts"} <= set(ci_gates(ci))
    assert drift(ci, _config()) == (set(), set())


def test_a_gate_added_to_ci_or_a_hook_changed_is_drift() -> None:
    ci = CI.read_text(encoding="utf-8")
    gate = ci.strip().splitlines()[-1]
    more = ci.replace(gate, gate.replace(" && mypy", " && pyright && mypy"))
    assert drift(more, _config()) == ({"pyright"}, set())
    changed = _config()
    changed["repos"][0]["hooks"][0]["entry"] = "ruff check reconciler"
    assert drift(ci, changed) == ({"ruff check reconciler bench tests"}, {"ruff check reconciler"})


def test_the_hooks_need_a_pre_commit_that_knows_their_language() -> None:
    config = _config()
    languages = {h["language"] for h in config["repos"][0]["hooks"]}
    if "unsupported" in languages:  # pre-commit 4.4 renamed `system` to `unsupported`
        version = tuple(int(x) for x in str(config["minimum_pre_commit_version"]).split("."))
        assert version >= (4, 4, 0)


def test_contributing_documents_the_hooks() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "`.pre-commit-config.yaml`" in text and "pre-commit install" in text
