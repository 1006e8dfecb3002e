"""A JDB connection in ``reconciler.yaml`` (``providers.jdb``, ``connections.jdb.<name>``)."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Annotated

from pydantic import Field, StrictStr

from reconciler.manifest.config import Connection
from reconciler.manifest.secrets import SecretRef


class JdbProvider(Connection):
    """JDB ``apiRequest.do``: ``dc`` and the agent's 16-character key and IV (references)."""

    dc: StrictStr = Field(min_length=2, max_length=50)
    key: SecretRef
    iv: SecretRef
    parent: StrictStr | None = None  # envelope-level parent (sub-account keys)
    # the JDB currency code free-spin events must pay in (JDB sets it per agent; Action 72 has none)
    currency: StrictStr | None = Field(default=None, min_length=1, max_length=10)
    # the bet ladder of each machine type for this agent and currency (Action 72: JDB locks the largest
    # ladder value not above the declared bet; the bet must reach every chosen game's smallest one).
    # No JDB action in the documents returns it (Action 71/76 rows carry no bet ladder): it is configured
    bet_ladders: dict[Annotated[int, Field(ge=1)], list[Annotated[StrictStr, Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")]]] = Field(
        default_factory=dict
    )
    concurrency: int = Field(default=2, ge=1, le=16)
    report_utc_offset: StrictStr = Field(
        default="-04:00",
        pattern=r"^[+-](0\d|1[0-4]):[0-5]\d$",
        description="UTC offset of JDB's report times (Action 29 dd-MM-yyyy HH:mm:ss); GMT-4 by default",
    )

    @property
    def report_timezone(self) -> timezone:
        sign = -1 if self.report_utc_offset.startswith("-") else 1
        hours, minutes = (int(part) for part in self.report_utc_offset[1:].split(":"))
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
