"""A sandbox workspace for sharded runs (issue 26): every vendor's emulator served on 127.0.0.1
(port 0, state persisted between runs under the workspace), a fleet of proxy accounts in a prune
scope, TcaplusDB records in a prune scope, the quickstart's allowlist and free-spin events."""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from reconciler.engine import run
from reconciler.engine.apply import SavedApplyRequest, apply_saved
from reconciler.engine.planfile import read_plan, write_plan
from reconciler.engine.planset import Merged, ShardPlan, merge_plans
from reconciler.engine.session import Session, open_session
from reconciler.engine.settings import RunSettings
from reconciler.engine.shard import plan_file_data
from reconciler.kinds.base import RunOptions
from reconciler.kinds.shard import Shard
from reconciler.model import Outcome, Plan

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-01-01T00:00:00+00:00"


def account_doc(name: str, remark: str = "fleet") -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {{name: {name}}}\n"
        f"spec: {{username: {name}, password: 'file:../secrets/sandbox-demo-password.txt', productType: 9, "
        f"remark: {json.dumps(remark)}}}\n"
    )


ACCOUNT_SCOPE = """apiVersion: reconciler/v1
kind: PruneScope
metadata: {name: fleet}
spec:
  target: ProxyAccount
  match: {usernamePrefix: fleet}
"""


def records_doc(items: list[int], *, price: int = 10) -> str:
    rows = "\n".join(f"    - {{region: 3, item_id: {i}, name: item {i}, price: {price + i}}}" for i in items)
    return (
        "apiVersion: reconciler/v1\nkind: TcaplusRecords\nmetadata: {name: region3}\nspec:\n  table: item_catalog\n"
        f"  mode: whole\n  records:\n{rows}\n  prune: {{index: by_region, keys: {{region: 3}}}}\n"
    )


class ShardWorkspace:
    def __init__(self, root: Path):
        self.root = root
        for name in ("reconciler.yaml", "tables"):
            src = REPO / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
        (root / "manifests").mkdir()
        shutil.copytree(REPO / "manifests" / "secrets", root / "manifests" / "secrets")
        shutil.copytree(REPO / "manifests" / "jdb", root / "manifests" / "jdb")
        shutil.copy(REPO / "manifests" / "bestproxy" / "allowlist.yaml", root / "manifests" / "allowlist.yaml")
        self.state = root / ".state"

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def fleet(self, accounts: list[str], records: list[int], *, remark: str = "fleet", price: int = 10) -> None:
        self.write("manifests/fleet/accounts.yaml", "---\n".join([ACCOUNT_SCOPE] + [account_doc(a, remark) for a in accounts]))
        self.write("manifests/fleet/records.yaml", records_doc(records, price=price))

    @contextlib.contextmanager
    def session(self, shard: Shard | None = None, *, force: bool = False) -> Iterator[Session]:
        s = open_session(
            paths=[Path("manifests")],
            config_path=Path("reconciler.yaml"),
            sandbox=True,
            options=RunOptions(shard=shard, force=force),
            state_dir=self.state,
        )
        try:
            yield s
        finally:
            s.close()

    def plan(self, shard: Shard | None = None) -> tuple[Path, Plan]:
        """Plan (as ``plan [--shard K/N] --out``) and read the saved file back."""
        name = f"plan-{shard.k}-of-{shard.n}.json" if shard else "plan.json"
        with self.session(shard) as s:
            s.load()
            p = run.make_plan(s.loaded, s.ctx)  # type: ignore[arg-type]
            assert not p.failed, p.failed
            path = self.root / name
            write_plan(plan_file_data(s, p, created_at=NOW), path)
        return path, read_plan(path)[1]

    def merge(self, paths: list[Path], *, force: bool = False) -> Merged:
        plans = [ShardPlan(p, *read_plan(p)) for p in paths]
        with self.session(force=force) as s:
            loaded = s.load()
            merged = merge_plans(plans, loaded=loaded, session=s, force=force, created_at=NOW)
        write_plan(merged.data, self.root / "planset.json")
        return merged

    def sharded_plan(self, n: int, *, force: bool = False) -> Merged:
        return self.merge([self.plan(Shard(k, n))[0] for k in range(1, n + 1)], force=force)

    def apply_shard(self, shard: Shard | None, planset: Path | None = None) -> list[Outcome]:
        """``apply PLANSET --shard K/N`` (the engine's saved-plan apply, as the CLI runs it)."""
        settings = RunSettings(config_path=Path("reconciler.yaml"), sandbox=True, sandbox_state=self.state)
        return apply_saved(settings, SavedApplyRequest(plan=planset or self.root / "planset.json", shard=shard)).outcomes

    def apply_all(self) -> list[Outcome]:
        """An unsharded apply from the manifests (the state the sharded runs start from)."""
        with self.session(force=True) as s:
            s.load()
            p = run.make_plan(s.loaded, s.ctx)  # type: ignore[arg-type]
            outcomes = run.apply_changes(p.changes, s.ctx)
        assert {o.status for o in outcomes} <= {"applied"}, [
            (o.change.address, o.status, o.message) for o in outcomes if o.status != "applied"
        ]
        return outcomes

    def live_accounts(self) -> set[str]:
        with self.session() as s:
            from reconciler.kinds import KINDS

            client: Any = s.ctx.bind("bestproxy", "default").client(KINDS["ProxyAccount"])
            return {a.username for a in client.list_accounts()}


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
