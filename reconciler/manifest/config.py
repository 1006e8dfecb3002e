"""``reconciler.yaml``: provider connections (base URL, credential references, timeouts,
concurrency), TcaplusDB table schemas, and safety settings."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from reconciler.errors import InputError, Problem
from reconciler.manifest.secrets import SecretRef
from reconciler.manifest.validate import validate_model
from reconciler.manifest.yamlload import Document, Path_, load_file


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
    """The default connection of each vendor (named ``default``)."""

    bestproxy: BestProxyProvider | None = None
    tcaplus: TcaplusProvider | None = None
    jdb: JdbProvider | None = None


VENDORS = ("bestproxy", "tcaplus", "jdb")
DEFAULT_CONNECTION = "default"
CONNECTION_NAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
ConnectionName = Annotated[StrictStr, Field(pattern=CONNECTION_NAME)]
Vendor = Literal["bestproxy", "tcaplus", "jdb"]


class Connections(_Strict):
    """More connections per vendor, by name (several BestProxy accounts, JDB agents with their own
    ``dc``/key/IV, TcaplusDB zones, or staging and production). A manifest names the one it
    targets with ``metadata.connection``; otherwise the environment's default, else ``default``
    (``providers.<vendor>``)."""

    bestproxy: dict[ConnectionName, BestProxyProvider] = Field(default_factory=dict)
    tcaplus: dict[ConnectionName, TcaplusProvider] = Field(default_factory=dict)
    jdb: dict[ConnectionName, JdbProvider] = Field(default_factory=dict)


VarValue = StrictStr | StrictInt | StrictBool | float


class Environment(_Strict):
    """What differs in one environment: the connection each vendor's manifests target unless they
    name one, and the values of ``${var.NAME}`` in manifests."""

    connections: dict[Vendor, ConnectionName] = Field(default_factory=dict)
    vars: dict[Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], VarValue] = Field(default_factory=dict)


class Settings(_Strict):
    fingerprint_key: SecretRef | None = None
    max_change_ratio: float = Field(default=0.3, gt=0, le=1)
    threshold_min_existing: int = Field(default=10, ge=1)


class Config(_Strict):
    apiVersion: Literal["reconciler/v1"] = "reconciler/v1"
    kind: Literal["Config"] = "Config"
    providers: Providers = Field(default_factory=Providers)
    connections: Connections = Field(default_factory=Connections)
    environments: dict[Annotated[StrictStr, Field(pattern=CONNECTION_NAME)], Environment] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)

    def connection(self, vendor: str, name: str) -> Connection | None:
        if name == DEFAULT_CONNECTION:
            return getattr(self.providers, vendor)  # type: ignore[no-any-return]
        return getattr(self.connections, vendor).get(name)  # type: ignore[no-any-return]

    def connection_names(self, vendor: str) -> list[str]:
        named = sorted(getattr(self.connections, vendor))
        return ([DEFAULT_CONNECTION] if getattr(self.providers, vendor) is not None else []) + named


class LoadedConfig:
    """A validated config plus where it came from (relative paths resolve against ``base_dir``).

    ``env`` is the selected environment (``--env``). :meth:`bound` gives the view a kind sees
    for one named connection: ``providers.<vendor>`` is that connection, and problems reported at
    ``providers.<vendor>...`` point at ``connections.<vendor>.<name>...`` where it is written.
    """

    def __init__(self, config: Config, *, path: Path | None, doc: Document | None, env: str | None = None,
                 connection: tuple[str, str] | None = None):
        self.config = config
        self.path = path
        self.doc = doc
        self.env = env
        self.connection = connection  # (vendor, name) of a bound view

    @property
    def environment(self) -> Environment | None:
        return self.config.environments.get(self.env) if self.env else None

    def default_connection(self, vendor: str) -> str:
        env = self.environment
        return env.connections.get(vendor, DEFAULT_CONNECTION) if env else DEFAULT_CONNECTION  # type: ignore[arg-type]

    def bound(self, vendor: str, name: str) -> "LoadedConfig":
        """This config as seen by the kinds of ``vendor`` working on connection ``name``."""
        if name == DEFAULT_CONNECTION:
            return LoadedConfig(self.config, path=self.path, doc=self.doc, env=self.env, connection=(vendor, name))
        providers = self.config.providers.model_copy(update={vendor: self.config.connection(vendor, name)})
        config = self.config.model_copy(update={"providers": providers})
        doc = _ConnectionDocument.of(self.doc, vendor, name) if self.doc is not None else None
        return LoadedConfig(config, path=self.path, doc=doc, env=self.env, connection=(vendor, name))

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def providers(self) -> Providers:
        return self.config.providers

    @property
    def settings(self) -> Settings:
        return self.config.settings


class _ConnectionDocument(Document):
    """The config document, with ``providers.<vendor>`` paths pointing at a named connection."""

    vendor: str = ""
    name: str = ""

    @classmethod
    def of(cls, doc: Document, vendor: str, name: str) -> "_ConnectionDocument":
        view = cls(file=doc.file, index=doc.index, data=doc.data, marks=doc.marks, key_marks=doc.key_marks, start=doc.start)
        view.vendor, view.name = vendor, name
        return view

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        p = tuple(path)
        if p[:2] == ("providers", self.vendor):
            p = ("connections", self.vendor, self.name) + p[2:]
        return super().position(p, key=key)


def load_config(path: Path | None, *, required: bool = True, env: str | None = None) -> LoadedConfig:
    """Load and validate ``reconciler.yaml``; all problems at once as :class:`InputError`."""
    if path is None or not path.exists():
        if required and path is not None:
            raise InputError([Problem(str(path), 1, 1, "Config", "", "config file not found (use --config FILE, or --sandbox)")])
        if env is not None:
            raise InputError([Problem(str(path or "reconciler.yaml"), 1, 1, "Config", "environments",
                                      f"--env {env}: no config file declares environments")])
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
    problems = connection_problems(model, docs[0], env)
    if problems:
        raise InputError(problems)
    return LoadedConfig(model, path=path, doc=docs[0], env=env)


def connection_problems(config: Config, doc: Document, env: str | None) -> list[Problem]:
    """Environments name connections that exist; ``--env`` names a declared environment."""
    out = []
    for vendor in VENDORS:
        if DEFAULT_CONNECTION in getattr(config.connections, vendor):
            out.append(doc.problem(("connections", vendor, DEFAULT_CONNECTION),
                                   f"'{DEFAULT_CONNECTION}' is providers.{vendor}; give this connection another name",
                                   resource="Config", key=True))
    for name, environment in config.environments.items():
        for vendor, conn in environment.connections.items():
            if config.connection(vendor, conn) is None:
                known = ", ".join(config.connection_names(vendor)) or "none"
                where: Path_ = ("environments", name, "connections", vendor)
                out.append(doc.problem(where, f"no {vendor} connection named '{conn}' (known: {known})", resource="Config"))
    if env is not None and env not in config.environments:
        known = ", ".join(sorted(config.environments)) or "none declared"
        out.append(doc.problem(("environments",), f"--env {env}: no such environment (known: {known})",
                               resource="Config", key=True))
    return out
