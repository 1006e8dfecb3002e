"""The declared input of kind ``IpAllowlist``: one product type's entries (address and remark)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator

from reconciler.vendors.bestproxy.common import ProductType, Remark
from reconciler.vendors.bestproxy.ip_allowlist.addresses import normalize_entry


class IpEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip: StrictStr
    remark: Remark = ""

    @field_validator("ip")
    @classmethod
    def _norm(cls, v: str) -> str:
        return normalize_entry(v)


def _entry(value: Any) -> Any:
    return {"ip": value} if isinstance(value, str) else value


class IpAllowlistSpec(BaseModel):
    """``entries`` items are either ``"1.2.3.4"`` or ``{ip: 1.2.3.4, remark: office}``."""

    model_config = ConfigDict(extra="forbid")
    productType: ProductType
    userProductId: int | None = Field(
        default=None, ge=1, strict=True, description="required for product type 11 (sent with additions)"
    )
    exclusive: StrictBool = Field(default=False, description="remove live addresses that are not declared")
    entries: list[Annotated[IpEntry, BeforeValidator(_entry, json_schema_input_type=IpEntry | str)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _upid(self) -> "IpAllowlistSpec":
        if self.productType == 11 and self.userProductId is None:
            raise ValueError("userProductId is required for product type 11")
        if self.productType != 11 and self.userProductId is not None:
            raise ValueError("userProductId is only used with product type 11")
        return self

    def entry_map(self) -> dict[str, str]:
        return {e.ip: e.remark for e in self.entries}
