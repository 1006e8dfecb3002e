"""``reconciler.yaml``: provider connections (base URL, credential references, timeouts,
concurrency, and each vendor's own settings: its connection model comes from the vendor registry),
environments and safety settings. Which parts a real run takes from a trusted file instead
(``RECONCILER_CONNECTIONS_FROM``): :mod:`reconciler.manifest.trusted`."""

from __future__ import annotations

from pathlib import Path
import functools
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, create_model

from reconciler.errors import InputError, Problem
from reconciler.manifest.secrets import SecretRef
from reconciler.manifest.validate import validate_model
from reconciler.manifest.yamlload import Document, Path_, load_file


class Strict(BaseModel):
    """A config model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


_Strict = Strict


class Connection(_Strict):
    base_url: StrictStr = Field(pattern=r"^https?://[^\s]+$")
    timeout: float = Field(default=30.0, gt=0, le=600)
    concurrency: int = Field(default=4, ge=1, le=64)
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_wait_initial: float = Field(default=0.2, ge=0, le=60)
    # at most this many requests per second on this connection, retries included (vendors
    # throttle); requests are spaced 1/N seconds apart. None: only ``concurrency`` bounds them
    requests_per_second: float | None = Field(default=None, gt=0, le=10_000)


class Providers(_Strict):
    """The default connection of each vendor (named ``default``): one optional field per installed
    vendor, of the vendor's connection model (:func:`config_model` adds them from the registry)."""

    if TYPE_CHECKING:  # the fields are the installed vendors'

        def __getattr__(self, name: str) -> Any: ...


DEFAULT_MANIFEST_SECRET_ENV = ["RECONCILER_*"]
# the tool's own variables: never a manifest's secret, whatever the patterns say
RESERVED_ENV = frozenset({"RECONCILER_FINGERPRINT_KEY", "RECONCILER_ALLOWED_ENDPOINTS", "RECONCILER_CONNECTIONS_FROM"})
# the CI platform's, cloud SDKs' and other providers' credential variables: never a manifest's
# secret, whatever settings.manifest_secret_env says (GH_TOKEN, NPM_TOKEN, *_APP_KEY, ...)
DENIED_ENV_PATTERNS = (
    "GITHUB_*",
    "ACTIONS_*",
    "RUNNER_*",
    "CI_*",
    "GITLAB_*",
    "AWS_*",
    "AZURE_*",
    "GOOGLE_*",
    "GCP_*",
    "CLOUDSDK_*",
    "ARM_*",
    "NPM_*",
    "PYPI_*",
    "TWINE_*",
    "DOCKER_*",
    "VAULT_*",
    "SSH_*",
    "KUBECONFIG",
    "HOME",
    "PATH",
)
# credential variables of the job beyond what the trusted config references: CI tokens, other
# providers' keys, and the names the docs and examples give vendor credentials. Never a manifest's
# secret by name, and a manifest's secret whose *value* equals one of them is refused too.
# (each vendor adds the names its documents and examples give its credentials: VendorSpec.secret_env_patterns)
GENERIC_SECRET_ENV_PATTERNS = ("GH_*", "*_TOKEN", "*_APP_KEY", "*_API_KEY", "*_SECRET_KEY", "*_TOTP_SECRET")


def provider_secret_env_patterns() -> tuple[str, ...]:
    from reconciler.vendor import vendors

    return GENERIC_SECRET_ENV_PATTERNS + tuple(p for spec in vendors().values() for p in spec.secret_env_patterns)


DEFAULT_CONNECTION = "default"
CONNECTION_NAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
ConnectionName = Annotated[StrictStr, Field(pattern=CONNECTION_NAME)]


def vendor_names() -> tuple[str, ...]:
    """The installed vendors (the registry's order)."""
    from reconciler.vendor import names

    return names()


def is_vendor(name: str) -> bool:
    return name in vendor_names()


class Connections(_Strict):
    """More connections per vendor, by name (several accounts or agents of one vendor, or staging
    and production): one mapping per installed vendor. A manifest names the one it targets with
    ``metadata.connection``; otherwise the environment's default, else ``default``
    (``providers.<vendor>``)."""

    if TYPE_CHECKING:  # the fields are the installed vendors'

        def __getattr__(self, name: str) -> Any: ...


VarValue = StrictStr | StrictInt | StrictBool | float


class Environment(_Strict):
    """What differs in one environment: the connection each vendor's manifests target unless they
    name one, and the values of ``${var.NAME}`` in manifests."""

    connections: dict[StrictStr, ConnectionName] = Field(default_factory=dict)  # vendor -> connection
    vars: dict[Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], VarValue] = Field(default_factory=dict)


BUDGET_AMOUNT = r"^\d{1,15}(\.\d{1,3})?$"
BudgetAmount = Annotated[StrictStr, Field(pattern=BUDGET_AMOUNT)] | Annotated[StrictInt, Field(ge=0)]
CURRENCY_KEY = r"^(\*|[A-Za-z0-9]{1,10})$"


class ExposureBudget(_Strict):
    """What one apply may grant on one connection in one currency (docs/configuration.md,
    "Exposure budgets"). Amounts are decimal strings (or whole numbers), never floats: money."""

    max_stake_per_apply: BudgetAmount | None = Field(
        default=None, description="the most stake (players x spins x bet) one apply may add, summed over its events"
    )
    max_stake_per_event: BudgetAmount | None = Field(
        default=None, description="the most stake one event may grant after the apply"
    )
    allow_unbounded_withdrawal: StrictBool = Field(
        default=False, description='whether an event may be left with no withdrawal cap (maxWithdrawal: "-1")'
    )


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
    exposure_budgets: dict[ConnectionName, dict[Annotated[StrictStr, Field(pattern=CURRENCY_KEY)], ExposureBudget]] = Field(
        default_factory=dict,
        description="promotional exposure budgets (free spins) per connection name and currency code ('*': any other "
        "currency); a plan over one is refused like a threshold unless approved (--approve-exposure "
        "or --force). A trusted setting",
    )


class Config(_Strict):
    apiVersion: Literal["reconciler/v1"] = "reconciler/v1"
    kind: Literal["Config"] = "Config"
    providers: Providers = Field(default_factory=Providers)
    connections: Connections = Field(default_factory=Connections)
    environments: dict[Annotated[StrictStr, Field(pattern=CONNECTION_NAME)], Environment] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)

    def connection(self, vendor: str, name: str) -> Connection | None:
        if not is_vendor(vendor):
            return None
        found: Connection | None = (
            getattr(self.providers, vendor) if name == DEFAULT_CONNECTION else getattr(self.connections, vendor).get(name)
        )
        return found

    def connection_names(self, vendor: str) -> list[str]:
        if not is_vendor(vendor):
            return []
        named = sorted(getattr(self.connections, vendor))
        return ([DEFAULT_CONNECTION] if getattr(self.providers, vendor) is not None else []) + named

    def all_connections(self) -> list[tuple[str, str, Connection]]:
        """(vendor, name, connection) of every configured connection, default ones first."""
        out: list[tuple[str, str, Connection]] = []
        for vendor in vendor_names():
            for name in self.connection_names(vendor):
                conn = self.connection(vendor, name)
                if conn is not None:
                    out.append((vendor, name, conn))
        return out


@functools.cache
def config_model() -> type[Config]:
    """The ``reconciler.yaml`` model of the installed vendors: ``providers.<vendor>`` and
    ``connections.<vendor>`` of each registered vendor's connection model."""
    from reconciler.vendor import vendors

    specs = vendors()
    conn_types: dict[str, Any] = {name: spec.connection for name, spec in specs.items()}
    providers: Any = create_model(  # type: ignore[call-overload]
        "Providers", __base__=Providers, **{name: (conn | None, None) for name, conn in conn_types.items()}
    )
    connections: Any = create_model(  # type: ignore[call-overload]
        "Connections",
        __base__=Connections,
        **{name: (dict[ConnectionName, conn], Field(default_factory=dict)) for name, conn in conn_types.items()},  # type: ignore[valid-type]
    )
    model: type[Config] = create_model(
        "Config",
        __base__=Config,
        providers=(providers, Field(default_factory=providers)),
        connections=(connections, Field(default_factory=connections)),
    )
    return model


def credential_refs(config: Config) -> list[str]:
    """Every secret reference of the config: each vendor's credentials (VendorSpec.credential_fields)
    and the fingerprint key. None of them may ever be used as a resource value."""
    from reconciler.vendor import vendors

    specs = vendors()
    refs: list[str | None] = [config.settings.fingerprint_key]
    for vendor, _name, conn in config.all_connections():
        refs += specs[vendor].credentials_of(conn)
    return list(dict.fromkeys(r for r in refs if r))


class LoadedConfig:
    """A validated config plus where it came from (relative paths resolve against ``base_dir``).

    ``env`` is the selected environment (``--env``). :meth:`bound` gives the view a kind sees
    for one named connection: ``providers.<vendor>`` is that connection, and problems reported at
    ``providers.<vendor>...`` point at ``connections.<vendor>.<name>...`` where it is written.
    """

    def __init__(
        self,
        config: Config,
        *,
        path: Path | None,
        doc: Document | None,
        env: str | None = None,
        connection: tuple[str, str] | None = None,
        connection_doc: Document | None = None,
        review: bool = False,
        warnings: list[str] | None = None,
    ):
        self.config = config
        # True when the trusted parts came from RECONCILER_CONNECTIONS_FROM: the workspace config is
        # the change under review (pull-request mode: see trusted.TRUSTED_PARTS)
        self.review = review
        # what the run says about the config (a trusted part the config under review changes)
        self.warnings = list(warnings or [])
        self.path = path
        self.doc = doc
        self.env = env
        self.connection = connection  # (vendor, name) of a bound view
        # where the provider connections were read (RECONCILER_CONNECTIONS_FROM, else the config)
        self.connection_doc = connection_doc if connection_doc is not None else doc

    @property
    def environment(self) -> Environment | None:
        return self.config.environments.get(self.env) if self.env else None

    def default_connection(self, vendor: str) -> str:
        env = self.environment
        return env.connections.get(vendor, DEFAULT_CONNECTION) if env and is_vendor(vendor) else DEFAULT_CONNECTION

    def bound(self, vendor: str, name: str) -> "LoadedConfig":
        """This config as seen by the kinds of ``vendor`` working on connection ``name``."""
        trusted = self.connection_doc if self.connection_doc is not self.doc else None
        if name == DEFAULT_CONNECTION:
            return LoadedConfig(
                self.config,
                path=self.path,
                doc=self.doc,
                env=self.env,
                connection=(vendor, name),
                connection_doc=trusted,
                review=self.review,
            )
        providers = self.config.providers.model_copy(update={vendor: self.config.connection(vendor, name)})
        config = self.config.model_copy(update={"providers": providers})
        doc = _ConnectionDocument.of(self.doc, vendor, name) if self.doc is not None else None
        trusted_view = _ConnectionDocument.of(trusted, vendor, name) if trusted is not None else None
        return LoadedConfig(
            config,
            path=self.path,
            doc=doc,
            env=self.env,
            connection=(vendor, name),
            connection_doc=trusted_view,
            review=self.review,
        )

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


def load_config(path: Path | None, *, required: bool = True, env: str | None = None, confine: bool = True) -> LoadedConfig:
    """Load and validate ``reconciler.yaml``; all problems at once as :class:`InputError`.
    The file itself must resolve inside the workspace root (``confine``)."""
    if path is None or not (path.exists() or path.is_symlink()):
        if required and path is not None:
            raise InputError([Problem(str(path), 1, 1, "Config", "", "config file not found (use --config FILE, or --sandbox)")])
        if env is not None:
            raise InputError(
                [
                    Problem(
                        str(path or "reconciler.yaml"),
                        1,
                        1,
                        "Config",
                        "environments",
                        f"--env {env}: no config file declares environments",
                    )
                ]
            )
        return LoadedConfig(config_model()(), path=None, doc=None)
    docs, problems = load_file(path, what="config", confine=confine)
    if problems:
        raise InputError(problems)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise InputError([Problem(str(path), 1, 1, "Config", "", "the config must be one YAML mapping")])
    model, problems = validate_model(config_model(), docs[0].data, docs[0], resource="Config")
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
    for vendor in vendor_names():
        if DEFAULT_CONNECTION in getattr(config.connections, vendor):
            out.append(
                doc.problem(
                    ("connections", vendor, DEFAULT_CONNECTION),
                    f"'{DEFAULT_CONNECTION}' is providers.{vendor}; give this connection another name",
                    resource="Config",
                    key=True,
                )
            )
    for name, environment in config.environments.items():
        for vendor, conn in environment.connections.items():
            if not is_vendor(vendor):
                out.append(
                    doc.problem(
                        ("environments", name, "connections", vendor),
                        f"unknown vendor '{vendor}' (installed: {', '.join(vendor_names())})",
                        resource="Config",
                        key=True,
                    )
                )
            elif config.connection(vendor, conn) is None:
                known = ", ".join(config.connection_names(vendor)) or "none"
                where: Path_ = ("environments", name, "connections", vendor)
                out.append(doc.problem(where, f"no {vendor} connection named '{conn}' (known: {known})", resource="Config"))
    if env is not None and env not in config.environments:
        known = ", ".join(sorted(config.environments)) or "none declared"
        out.append(
            doc.problem(("environments",), f"--env {env}: no such environment (known: {known})", resource="Config", key=True)
        )
    return out
