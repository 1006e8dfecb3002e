"""docs/disaster-recovery.md is drilled: its backup and restore commands are parsed out of the
page and run in order against the sandbox (backup of the quickstart state, a wiped sandbox, the
restore), then the emulators' stored state is compared through their admin endpoint."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from tests.export.conftest import ROOT, DrWorkspace, vendor_state
from tests.support import nothing_to_apply

DOC = ROOT / "docs" / "disaster-recovery.md"


def _block(marker: str | None, lang: str, text: str) -> str:
    pattern = (re.escape(marker) + r"[^\n]*\n\s*" if marker else "") + rf"```{lang}\n(.*?)```"
    found = re.search(pattern, text, re.S)
    assert found, f"{marker or lang} block not found in {DOC.name}"
    return found.group(1)


def _commands(marker: str, text: str) -> list[list[str]]:
    # `shell` blocks: this drill runs them (backup, wipe, restore need an order the generic docs test cannot give)
    lines = [ln.strip() for ln in _block(marker, "shell", text).splitlines() if ln.strip()]
    assert lines and all(ln.startswith("reconciler ") for ln in lines)
    return [shlex.split(ln)[1:] for ln in lines]


def _adoption(text: str) -> list[list[str]]:
    section = text.split("## Adoption", 1)[1]
    return [shlex.split(ln)[1:] for ln in _block(None, "shell", section).splitlines() if ln.strip()]


def test_the_runbook_restores_a_backup_into_a_wiped_sandbox(dr: DrWorkspace) -> None:
    text = DOC.read_text(encoding="utf-8")
    backup, restore = _commands("<!-- dr-backup", text), _commands("<!-- dr-restore", text)
    assert [c[0] for c in restore] == ["validate", "plan", "apply", "plan"]
    # the CI example runs exactly the backup commands
    ci = yaml.safe_load(_block("In GitHub Actions", "yml", text))  # a workflow, not a manifest
    runs = [shlex.split(s["run"]) for s in ci["jobs"]["backup"]["steps"] if "run" in s]
    assert runs[0] == ["pip", "install", "$RECONCILER_SOURCE"] and ci["env"]["RECONCILER_SOURCE"].startswith("git+https://")
    assert [r[1:] for r in runs[1:]] == backup
    # the credentials reconciler.yaml refers to are all provided
    config = yaml.safe_load((ROOT / "reconciler.yaml").read_text())
    refs = re.findall(r"env:([A-Z0-9_]+)", json.dumps(config))
    assert refs and set(refs) <= set(ci["env"])

    dr.run("apply", "--auto-approve")
    before = vendor_state(dr.root / dr.state)
    for args in backup:
        dr.run(*args)
    fresh = ".reconciler/wiped"
    for args in restore:
        res = dr.run(*args, state=fresh)
    assert nothing_to_apply(res.output), res.output
    assert vendor_state(dr.root / fresh) == before


def test_the_adoption_commands_adopt_console_objects(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    dr.write("console/pw", "ConsolePw77")
    dr.write(
        "console/a.yaml",
        """
        apiVersion: reconciler/v1
        kind: ProxyAccount
        metadata: {name: ops01}
        spec: {username: ops01, password: "file:pw", productType: 11, remark: made in the console}
        """,
    )
    dr.run("apply", "console", "--auto-approve")
    assert "ProxyAccount/ops01" in dr.run("plan").output
    export, plan = _adoption(DOC.read_text(encoding="utf-8"))
    dr.run(*export)
    res = dr.run(*plan, "--detailed-exitcode")
    assert nothing_to_apply(res.output) and " 0 unmanaged" in res.output
    assert Path(dr.root / "manifests/adopted/bestproxy/accounts.yaml").is_file()
