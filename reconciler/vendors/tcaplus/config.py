"""A TcaplusDB connection in ``reconciler.yaml`` (``providers.tcaplus``, ``connections.tcaplus.<name>``)."""

from __future__ import annotations

from pydantic import Field, StrictStr

from reconciler.manifest.config import Connection, Strict
from reconciler.manifest.secrets import SecretRef


class TcaplusTable(Strict):
    proto: StrictStr  # path of the .proto file, relative to the config file
    message: StrictStr | None = None  # defaults to the table name


class TcaplusProvider(Connection):
    app_id: int = Field(ge=1)
    zone_id: int = Field(ge=1)
    password: SecretRef
    concurrency: int = Field(default=8, ge=1, le=64)
    tables: dict[StrictStr, TcaplusTable] = Field(default_factory=dict)
