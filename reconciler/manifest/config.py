"""``reconciler.yaml``: provider connections (base URL, credential references, timeouts,
concurrency), TcaplusDB table schemas, and safety settings."""

from __future__ import annotations

import os
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, Literal

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


DEFAULT_MANIFEST_SECRET_ENV = ["RECONCILER_*"]
# the tool's own variables: never a manifest's secret, whatever the patterns say
RESERVED_ENV = frozenset({"RECONCILER_FINGERPRINT_KEY", "RECONCILER_ALLOWED_ENDPOINTS", "RECONCILER_CONNECTIONS_FROM"})


class Settings(_Strict):
    fingerprint_key: SecretRef | None = None
    manifest_secret_env: list[StrictStr] = Field(
        default_factory=lambda: list(DEFAULT_MANIFEST_SECRET_ENV),
        description="shell-style patterns of the environment variables manifests may reference "
                    "(env:NAME); provider credentials, the fingerprint key and RECONCILER_ALLOWED_ENDPOINTS / "
                    "RECONCILER_CONNECTIONS_FROM are never allowed",
    )
    max_change_ratio: float = Field(default=0.3, gt=0, le=1)
    threshold_min_existing: int = Field(default=10, ge=1)


class Config(_Strict):
    apiVersion: Literal["reconciler/v1"] = "reconciler/v1"
    kind: Literal["Config"] = "Config"
    providers: Providers = Field(default_factory=Providers)
    settings: Settings = Field(default_factory=Settings)


def credential_refs(config: Config) -> list[str]:
    """Every secret reference of the config: provider credentials, verification secrets and the
    fingerprint key. None of them may ever be used as a resource value."""
    p = config.providers
    refs: list[str | None] = [config.settings.fingerprint_key]
    if p.bestproxy:
        refs.append(p.bestproxy.app_key)
        v = p.bestproxy.ip_delete_verification
        if v:
            refs += [v.totp_secret, v.code]
    if p.tcaplus:
        refs.append(p.tcaplus.password)
    if p.jdb:
        refs += [p.jdb.key, p.jdb.iv]
    return [r for r in refs if r]


class LoadedConfig:
    """A validated config plus where it came from (relative paths resolve against ``base_dir``)."""

    def __init__(self, config: Config, *, path: Path | None, doc: Document | None,
                 connection_doc: Document | None = None):
        self.config = config
        self.path = path
        self.doc = doc
        # where the provider connections were read (RECONCILER_CONNECTIONS_FROM, else the config)
        self.connection_doc = connection_doc if connection_doc is not None else doc

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def providers(self) -> Providers:
        return self.config.providers

    @property
    def settings(self) -> Settings:
        return self.config.settings


def load_config(path: Path | None, *, required: bool = True, confine: bool = True) -> LoadedConfig:
    """Load and validate ``reconciler.yaml``; all problems at once as :class:`InputError`.
    The file itself must resolve inside the workspace root (``confine``)."""
    if path is None or not (path.exists() or path.is_symlink()):
        if required and path is not None:
            raise InputError([Problem(str(path), 1, 1, "Config", "", "config file not found (use --config FILE, or --sandbox)")])
        return LoadedConfig(Config(), path=None, doc=None)
    docs, problems = load_file(path, what="config", confine=confine)
    if problems:
        raise InputError(problems)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise InputError([Problem(str(path), 1, 1, "Config", "", "the config must be one YAML mapping")])
    model, problems = validate_model(Config, docs[0].data, docs[0], resource="Config")
    if problems:
        raise InputError(problems)
    assert isinstance(model, Config)
    return LoadedConfig(model, path=path, doc=docs[0])


TRUSTED_ENV = "RECONCILER_CONNECTIONS_FROM"
_CONNECTION_SETTINGS = ("fingerprint_key", "manifest_secret_env")


def apply_trusted_connections(cfg: LoadedConfig, trusted_path: str | None = None) -> LoadedConfig:
    """Take the provider connections from a trusted config file outside the change under review.

    With ``RECONCILER_CONNECTIONS_FROM=FILE`` (e.g. ``reconciler.yaml`` of the pull request's target
    branch, written by the pipeline), everything that decides where credentials go and which
    secrets exist — each provider's connection (URL, credential references, ids), the fingerprint
    key and ``settings.manifest_secret_env`` — comes from FILE; the workspace config contributes only
    the rest (TcaplusDB ``tables``, thresholds). A provider FILE does not configure is dropped.
    Relative ``file:`` references in FILE are relative to FILE's folder.
    """
    path_text = trusted_path if trusted_path is not None else os.environ.get(TRUSTED_ENV)
    if not path_text:
        return cfg
    trusted_path_ = Path(path_text)
    trusted = load_config(trusted_path_, required=True, confine=False)
    data = trusted.config.model_dump(exclude_none=True)
    _absolute_file_refs(data, trusted_path_.parent)
    providers: dict[str, Any] = {}
    for name, conn in (data.get("providers") or {}).items():
        if name == "tcaplus":
            conn.pop("tables", None)
            own = cfg.providers.tcaplus
            if own is not None:
                conn["tables"] = {k: v.model_dump(exclude_none=True) for k, v in own.tables.items()}
        providers[name] = conn
    merged = cfg.config.model_dump(exclude_none=True)
    merged["providers"] = providers
    settings = merged.setdefault("settings", {})
    for key in _CONNECTION_SETTINGS:
        settings.pop(key, None)
        if key in data.get("settings", {}):
            settings[key] = data["settings"][key]
    return LoadedConfig(Config.model_validate(merged), path=cfg.path, doc=cfg.doc, connection_doc=trusted.doc)


def _absolute_file_refs(data: Any, base: Path) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str) and v.startswith("file:") and not Path(v[5:]).expanduser().is_absolute():
                data[k] = "file:" + str((base / v[5:]).absolute())
            else:
                _absolute_file_refs(v, base)
