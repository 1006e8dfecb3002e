"""The apply workflow as an engine API, driven without click (issue 25 item 4).

``reconciler.engine.apply`` is called the way a program would call it: a ``RunSettings``, a
request, hooks that hear the plan and each outcome; it returns the outcomes and the exit code with
its reason. The emulators are the product's own sandbox (``reconciler.sandbox.serve.Sandbox``),
real HTTP servers on 127.0.0.1 port 0, with the config its ``providers()`` writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from reconciler.engine import run
from reconciler.engine.apply import (
    ApplyHooks,
    ApplyRequest,
    ExitReason,
    SavedApplyRequest,
    apply_manifests,
    apply_saved,
)
from reconciler.engine.planfile import write_plan
from reconciler.engine.saved import plan_data
from reconciler.engine.settings import RunSettings, open_run
from reconciler.errors import UsageError
from reconciler.model import Outcome, Plan
from reconciler.sandbox.serve import Sandbox

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "PwApiTest4471"


class Api:
    """A workspace (cwd) whose reconciler.yaml points at a running sandbox."""

    def __init__(self, root: Path, sandbox: Sandbox):
        self.root = root
        self.sandbox = sandbox
        self.settings = RunSettings(config_path=Path("reconciler.yaml"))

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def account(self, name: str, remark: str, rel: str = "manifests/accounts.yaml") -> None:
        self.write(
            rel,
            f"""
            apiVersion: reconciler/v1
            kind: ProxyAccount
            metadata: {{name: {name}}}
            spec: {{username: {name}, password: "file:secrets/pw", productType: 9, remark: {remark}}}
            """,
        )
        self.write(str(Path(rel).parent / "secrets/pw"), PASSWORD)

    def allowlist(self, ip: str) -> None:
        self.write(
            "manifests/ips.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: IpAllowlist
            metadata: {{name: office}}
            spec: {{productType: 14, entries: [{ip}]}}
            """,
        )

    def plan(self, *paths: str) -> Plan:
        s = open_run(self.settings, paths=tuple(Path(p) for p in paths))
        try:
            return run.make_plan(s.load(), s.ctx)
        finally:
            s.close()

    def save_plan(self, out: str, *paths: str) -> Path:
        s = open_run(self.settings, paths=tuple(Path(p) for p in paths))
        try:
            p = run.make_plan(s.load(), s.ctx)
            write_plan(plan_data(s, p), self.root / out)
        finally:
            s.close()
        return self.root / out


@pytest.fixture
def apply_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    with Sandbox(tmp_path / "sbx") as sbx:
        ws = Api(tmp_path, sbx)
        ws.write(
            "reconciler.yaml",
            yaml.safe_dump({"apiVersion": "reconciler/v1", "kind": "Config", "providers": sbx.providers()}, sort_keys=False),
        )
        yield ws


def _statuses(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    return sorted((o.change.address, o.status) for o in outcomes)


def test_a_saved_plan_is_applied_and_its_outcomes_are_returned(apply_api: Api) -> None:
    apply_api.account("game01", "reviewed")
    plan_file = apply_api.save_plan("plan.json")
    heard: list[Outcome] = []
    result = apply_saved(apply_api.settings, SavedApplyRequest(plan=plan_file), ApplyHooks(on_outcome=heard.append))
    assert (result.exit_code, result.reason) == (0, ExitReason.OK)
    assert _statuses(result.outcomes) == [("ProxyAccount/game01", "applied")]
    assert heard == result.outcomes  # streamed as it happened
    assert result.approved and not result.stopped and not result.saved_plan_empty
    assert not apply_api.plan().has_changes  # live state is what was reviewed


def test_a_saved_plan_stale_for_a_resource_is_not_written_exit_3(apply_api: Api) -> None:
    apply_api.account("game01", "first")
    assert apply_manifests(apply_api.settings, ApplyRequest(auto_approve=True)).exit_code == 0
    apply_api.account("game01", "reviewed")
    plan_file = apply_api.save_plan("plan.json")
    # another writer changes the account after the review (its own manifests, elsewhere)
    apply_api.account("game01", "meanwhile", rel="other/accounts.yaml")
    assert apply_manifests(apply_api.settings, ApplyRequest(paths=(Path("other"),), auto_approve=True)).exit_code == 0
    journal = apply_api.root / "saved.jsonl"
    result = apply_saved(apply_api.settings, SavedApplyRequest(plan=plan_file, journal=journal))
    assert (result.exit_code, result.reason) == (3, ExitReason.STALE)
    assert _statuses(result.outcomes) == [("ProxyAccount/game01", "stale")]
    # the journal records the stale outcome and the exit code, whatever the caller renders
    records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in records if r["type"] == "outcome"] == ["stale"]
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == 3
    assert not apply_api.plan("other").has_changes  # the other writer's change stands: nothing was written


def test_a_saved_plan_whose_manifests_changed_is_refused_before_any_read(apply_api: Api) -> None:
    apply_api.account("game01", "reviewed")
    plan_file = apply_api.save_plan("plan.json")
    apply_api.account("game01", "edited after the review")
    with pytest.raises(UsageError, match="changed since this plan was made"):
        apply_saved(apply_api.settings, SavedApplyRequest(plan=plan_file))
    assert [c.address for c in apply_api.plan().changes] == ["ProxyAccount/game01"]  # still not created


def test_a_partial_apply_returns_what_failed_and_what_succeeded_exit_4(apply_api: Api, tmp_path: Path) -> None:
    apply_api.account("game01", "one")
    apply_api.allowlist("10.0.0.1")
    apply_api.sandbox.servers["bestproxy"].emulator.verified = False  # the vendor refuses account writes (code 156)
    journal = tmp_path / "run.jsonl"
    result = apply_manifests(apply_api.settings, ApplyRequest(auto_approve=True, journal=journal))
    assert (result.exit_code, result.reason) == (4, ExitReason.PARTIAL)
    assert _statuses(result.outcomes) == [("IpAllowlist/14", "applied"), ("ProxyAccount/game01", "failed")]
    records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == 4
    assert [c.address for c in apply_api.plan().changes] == ["ProxyAccount/game01"]  # what failed is still to do


def test_a_stopped_run_is_resumed_from_its_journal(apply_api: Api, tmp_path: Path) -> None:
    apply_api.account("game01", "one")
    apply_api.allowlist("10.0.0.1")
    stop = threading.Event()
    journal = tmp_path / "run.jsonl"
    planned: list[Plan] = []
    asked: list[Plan] = []

    def confirm(p: Plan) -> bool:
        asked.append(p)
        return True

    # the first outcome stops the run (as a first SIGINT does): the second change never starts
    first = apply_manifests(
        apply_api.settings,
        ApplyRequest(journal=journal, stop=stop),
        ApplyHooks(on_plan=lambda p, safety: planned.append(p), confirm=confirm, on_outcome=lambda o: stop.set()),
    )
    assert len(planned) == 1 and asked == planned
    assert first.reason is ExitReason.INTERRUPTED and first.stopped and first.exit_code == 4
    assert sorted(o.status for o in first.outcomes) == ["applied", "interrupted"]
    end = json.loads(journal.read_text(encoding="utf-8").splitlines()[-1])
    assert (end["type"], end["status"]) == ("end", "interrupted")

    second = apply_manifests(apply_api.settings, ApplyRequest(resume=journal, auto_approve=True))
    assert second.resumed and (second.exit_code, second.reason) == (0, ExitReason.OK)
    left = [o for o in first.outcomes if o.status == "interrupted"]
    assert _statuses(second.outcomes) == [(left[0].change.address, "applied")]
    assert not apply_api.plan().has_changes

    third = apply_manifests(apply_api.settings, ApplyRequest(resume=journal, auto_approve=True))
    assert third.nothing_to_do and third.resumed and third.exit_code == 0 and third.outcomes == []


def test_no_one_to_confirm_refuses_before_any_write(apply_api: Api) -> None:
    apply_api.account("game01", "one")
    with pytest.raises(UsageError, match="apply needs confirmation"):
        apply_manifests(apply_api.settings, ApplyRequest())  # no confirm hook, no auto_approve
    with pytest.raises(UsageError, match="apply cancelled"):
        apply_manifests(apply_api.settings, ApplyRequest(), ApplyHooks(confirm=lambda p: False))
    assert [c.address for c in apply_api.plan().changes] == ["ProxyAccount/game01"]


def test_the_engine_apply_api_loads_no_click() -> None:
    code = (
        "import sys, reconciler.engine.apply, reconciler.vendor as v; v.vendors(); "
        "[spec.kinds() for spec in v.vendors().values()]; print('click' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    assert out.stdout.strip() == "False"
