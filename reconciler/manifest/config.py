"""``reconciler.yaml``: provider connections (base URL, credential references, timeouts,
concurrency), TcaplusDB table schemas, and safety settings."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from reconciler.errors import InputError, Problem
from reconciler.manifest.secrets import SecretRef
from reconciler.manifest.validate import validate_model
from reconciler.manifest.yamlload import Document, load_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Connection(_Strict):
    base_url: StrictStr = Field(pattern=r"^https?://[^\s]+$")
    timeout: float = Field(default=30.0, gt=0, le=600)
    concurrency: int = Field(default=4, ge=1, le=64)
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_wait_initial: float = Field(default=0.2, ge=0, le=60)


class IpDeleteVerification(_Strict):
    """How removals from an IP allowlist are verified (``/gateway/proxy-ip/delete``).

    ``totp``: the code is computed at apply time from the base32 secret behind ``totp_secret``.
    ``phone``/``email``/``wechat``: a one-time code must be supplied through ``code`` (a reference,
    typically ``env:NAME`` set just before the run).
    """

    type: Literal["totp", "phone", "email", "wechat"]
    totp_secret: SecretRef | None = None
    code: SecretRef | None = None


class BestProxyProvider(Connection):
    app_key: SecretRef
    concurrency: int = Field(default=2, ge=1, le=16)
    ip_delete_verification: IpDeleteVerification | None = None


class TcaplusTable(_Strict):
    proto: StrictStr  # path of the .proto file, relative to the config file
    message: StrictStr | None = None  # defaults to the table name


class TcaplusProvider(Connection):
    app_id: int = Field(ge=1)
    zone_id: int = Field(ge=1)
    password: SecretRef
    concurrency: int = Field(default=8, ge=1, le=64)
    tables: dict[StrictStr, TcaplusTable] = Field(default_factory=dict)


class JdbProvider(Connection):
    """JDB ``apiRequest.do``: ``dc`` and the agent's 16-character key and IV (references)."""

    dc: StrictStr = Field(min_length=2, max_length=50)
    key: SecretRef
    iv: SecretRef
    parent: StrictStr | None = None  # envelope-level parent (sub-account keys)
    concurrency: int = Field(default=2, ge=1, le=16)
    report_utc_offset: StrictStr = Field(
        default="-04:00", pattern=r"^[+-](0\d|1[0-4]):[0-5]\d$",
        description="UTC offset of JDB's report times (Action 29 dd-MM-yyyy HH:mm:ss); GMT-4 by default",
    )

    @property
    def report_timezone(self) -> timezone:
        sign = -1 if self.report_utc_offset.startswith("-") else 1
        hours, minutes = (int(part) for part in self.report_utc_offset[1:].split(":"))
        return timezone(sign * timedelta(hours=hours, minutes=minutes))


class Providers(_Strict):
    bestproxy: BestProxyProvider | None = None
    tcaplus: TcaplusProvider | None = None
    jdb: JdbProvider | None = None


class Settings(_Strict):
    fingerprint_key: SecretRef | None = None
    max_change_ratio: float = Field(default=0.3, gt=0, le=1)
    threshold_min_existing: int = Field(default=10, ge=1)


class Config(_Strict):
    apiVersion: Literal["reconciler/v1"] = "reconciler/v1"
    kind: Literal["Config"] = "Config"
    providers: Providers = Field(default_factory=Providers)
    settings: Settings = Field(default_factory=Settings)


class LoadedConfig:
    """A validated config plus where it came from (relative paths resolve against ``base_dir``)."""

    def __init__(self, config: Config, *, path: Path | None, doc: Document | None):
        self.config = config
        self.path = path
        self.doc = doc

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def providers(self) -> Providers:
        return self.config.providers

    @property
    def settings(self) -> Settings:
        return self.config.settings


def load_config(path: Path | None, *, required: bool = True) -> LoadedConfig:
    """Load and validate ``reconciler.yaml``; all problems at once as :class:`InputError`."""
    if path is None or not path.exists():
        if required and path is not None:
            raise InputError([Problem(str(path), 1, 1, "Config", "", "config file not found (use --config FILE, or --sandbox)")])
        return LoadedConfig(Config(), path=None, doc=None)
    docs, problems = load_file(path)
    if problems:
        raise InputError(problems)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise InputError([Problem(str(path), 1, 1, "Config", "", "the config must be one YAML mapping")])
    model, problems = validate_model(Config, docs[0].data, docs[0], resource="Config")
    if problems:
        raise InputError(problems)
    assert isinstance(model, Config)
    return LoadedConfig(model, path=path, doc=docs[0])
