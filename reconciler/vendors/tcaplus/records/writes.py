"""TcaplusRecords apply: each write under the version seen when planning; conflicts are stale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reconciler.vendors.tcaplus.client import (
    TcaplusClient,
    TcaplusRecordExistsError,
    TcaplusRecordNotFoundError,
    TcaplusVersionMismatchError,
)
from reconciler.vendors.tcaplus.wire import VersionCheck, VersionedRecord
from reconciler.model import Action, Change, Outcome
from reconciler.errors import ReconcilerError
from reconciler.kinds.context import RunContext
from reconciler.kinds.writes import ATTEMPTS, unknown_outcome

from reconciler.vendors.tcaplus.records.declared import table_schema
from reconciler.vendors.tcaplus.records.compare import _diffs, _merge


class _Writer:
    """Applies one change under its planned precondition (on the event loop); maps conflicts to ``stale``."""

    def __init__(self, client: TcaplusClient, ctx: RunContext):
        self.client = client
        self.ctx = ctx
        self._actions: dict[Action, Callable[[Change], Awaitable[Outcome]]] = {
            Action.CREATE: self._create,
            Action.UPDATE: self._update,
            Action.DELETE: self._delete,
        }

    async def apply(self, change: Change) -> Outcome:
        return await self._actions[change.action](change)

    def _matches(self, change: Change, live: VersionedRecord) -> bool:
        schema = table_schema(self.ctx, change.data["table"])
        return not _diffs(schema, change.data["record"], live.record, whole=change.data["mode"] == "whole")

    def _settle(self, change: Change, live: VersionedRecord | None, what: str) -> Outcome:
        """After an AddRecord that met an existing record or lost its reply: read back and decide."""
        if live is None:
            return Outcome(change, "failed", f"{what}, and the record is not there; re-run apply")
        if self._matches(change, live):
            return Outcome(change, "applied", "the record holds the declared values")
        return Outcome(change, "stale", f"{what}: the record exists with other values (version {live.version}); not overwritten")

    async def _create(self, change: Change) -> Outcome:
        table, record, keys = change.data["table"], change.data["record"], change.data["keys"]
        for _ in range(ATTEMPTS):
            try:
                await self.client.aadd(table, record)
                return Outcome(change, "applied")
            except TcaplusRecordExistsError:
                return self._settle(change, await self.client.aget(table, keys), "created by another writer since the plan")
            except ReconcilerError as exc:
                if not unknown_outcome(exc):
                    raise
                live = await self.client.aget(table, keys)  # read back before any retry
                if live is not None:
                    return self._settle(change, live, "AddRecord got no reply")
        return Outcome(change, "failed", f"AddRecord: no reply {ATTEMPTS} times and the record is not there; re-run apply")

    async def _current(self, change: Change) -> tuple[VersionedRecord | None, Outcome | None]:
        """The live record if it still has the planned version, else the stale outcome."""
        planned = change.precondition["record_version"]
        live = await self.client.aget(change.data["table"], change.data["keys"])
        if live is None:
            return None, Outcome(change, "stale", "the record was deleted since the plan")
        if live.version != planned:
            return None, Outcome(
                change, "stale", f"changed since the plan (version {planned} -> {live.version}); not overwritten"
            )
        return live, None

    async def _update(self, change: Change) -> Outcome:
        live, stale = await self._current(change)
        if live is None:
            assert stale is not None
            return stale
        table, planned = change.data["table"], change.precondition["record_version"]
        schema = table_schema(self.ctx, table)
        record = change.data["record"] if change.data["mode"] == "whole" else _merge(live.record, schema, change.data["record"])
        for _ in range(ATTEMPTS):
            try:
                await self.client.aset(table, record, check=VersionCheck.MATCH, version=planned)
                return Outcome(change, "applied")
            except TcaplusVersionMismatchError:
                return Outcome(change, "stale", "changed by another writer during apply (-7949); not overwritten")
            except ReconcilerError as exc:
                if not unknown_outcome(exc):
                    raise
            after = await self.client.aget(table, change.data["keys"])  # read back before any retry
            if after is not None and self._matches(change, after):
                return Outcome(change, "applied")
            if after is None or after.version != planned:
                return Outcome(
                    change,
                    "stale",
                    "SetRecord got no reply and the record was changed by another writer meanwhile; not overwritten",
                )
        return Outcome(
            change,
            "failed",
            f"SetRecord: no reply {ATTEMPTS} times and the record does not hold the declared values; re-run apply",
        )

    async def _delete(self, change: Change) -> Outcome:
        table, keys = change.data["table"], change.data["keys"]
        live = await self.client.aget(table, keys)
        if live is None:
            return Outcome(change, "applied", "already gone")
        if live.version != change.precondition["record_version"]:
            return Outcome(
                change,
                "stale",
                f"changed since the plan (version {change.precondition['record_version']} -> {live.version}); not deleted",
            )
        for _ in range(ATTEMPTS):
            try:
                await self.client.adelete(table, keys)
                return Outcome(change, "applied")
            except TcaplusRecordNotFoundError:
                return Outcome(change, "applied", "already gone")
            except ReconcilerError as exc:
                if not unknown_outcome(exc):
                    raise
            after = await self.client.aget(table, keys)  # read back before any retry
            if after is None:
                return Outcome(change, "applied")
            if after.version != change.precondition["record_version"]:
                return Outcome(change, "stale", "DeleteRecord got no reply and the record changed meanwhile; not deleted")
        return Outcome(change, "failed", f"DeleteRecord: no reply {ATTEMPTS} times and the record is still there; re-run apply")
