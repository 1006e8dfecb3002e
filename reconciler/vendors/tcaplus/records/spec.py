"""TcaplusRecords' declared input model: the spec and its ``prune`` scope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator


TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
JSON_LINES = (".jsonl", ".ndjson")
YAML_FILES = (".yaml", ".yml")


class PruneSpec(BaseModel):
    """Ownership scope: live records whose ``index`` fields equal ``keys`` and that no document
    declares are deleted."""

    model_config = ConfigDict(extra="forbid")
    index: StrictStr = Field(min_length=1, description="a tcaplus_index of the table")
    keys: dict[StrictStr, Any] = Field(min_length=1, description="a value for every field of the index")


class TcaplusRecordsSpec(BaseModel):
    """Records of one table, inline (``records``) or from a data file (``file``)."""

    model_config = ConfigDict(extra="forbid")
    table: StrictStr = Field(pattern=TABLE_NAME, description="a table of providers.tcaplus.tables")
    mode: Literal["declared", "whole"] = Field(
        default="declared", description="declared: manage only the declared fields; whole: the record is the whole record"
    )
    records: list[dict[StrictStr, Any]] | None = Field(default=None, description="records as mappings (JSON mapping of protobuf)")
    file: StrictStr | None = Field(
        default=None, min_length=1, description="JSON Lines (.jsonl) or YAML data file, relative to this manifest"
    )
    prune: PruneSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "TcaplusRecordsSpec":
        if (self.records is None) == (self.file is None):
            raise ValueError("give exactly one of records or file")
        return self
