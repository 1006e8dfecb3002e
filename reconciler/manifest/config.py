"""``reconciler.yaml``: provider connections (base URL, credential references, timeouts,
concurrency, and each vendor's own settings: its connection model comes from the vendor registry),
environments and safety settings."""

from __future__ import annotations

import json
import os
import re
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
        **{name: (dict[ConnectionName, conn], Field(default_factory=dict)) for name, conn in conn_types.items()},
    )  # type: ignore[valid-type]
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
        # the change under review (pull-request mode: see TRUSTED_PARTS)
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


TRUSTED_ENV = "RECONCILER_CONNECTIONS_FROM"
FINGERPRINT_ENV = "RECONCILER_FINGERPRINT_KEY"
FINGERPRINT_REF = f"env:{FINGERPRINT_ENV}"
# What the job trusts (docs/security.md, "A trusted configuration"). With RECONCILER_CONNECTIONS_FROM
# every part listed here comes from that file; the config under review contributes only the rest
# (the values of environments.<name>.vars). A part the config under review writes differently is
# reported (warning) and its trusted value is used.
TRUSTED_PARTS = (
    "providers",  # every default connection: base_url, credential references, ids, vendor settings (tables)
    "connections",  # every named connection, the same
    "environments.<name>.connections",  # which connection an environment targets
    "settings.fingerprint_key",
    "settings.manifest_secret_env",
    "settings.max_change_ratio",
    "settings.threshold_min_existing",
    "settings.exposure_budgets",  # promotional exposure budgets (issue 27)
)
TRUSTED_SETTINGS = ("fingerprint_key", "manifest_secret_env", "max_change_ratio", "threshold_min_existing", "exposure_budgets")
MAX_TRUSTED_WARNINGS = 20


def in_ci() -> bool:
    """Whether the run is a CI job (``CI`` set to a true value: GitHub Actions, GitLab CI and most
    others set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def apply_trusted_connections(cfg: LoadedConfig, trusted_path: str | None = None) -> LoadedConfig:
    """The config a real run uses: its trusted parts from outside the change under review.

    With ``RECONCILER_CONNECTIONS_FROM=FILE`` (e.g. ``reconciler.yaml`` of the pull request's target
    branch, written by the pipeline outside the checkout), every part of :data:`TRUSTED_PARTS` comes
    from FILE — connections (URL, credential references, ids, vendor settings such as tables), which connection
    each environment targets, the fingerprint key, ``manifest_secret_env`` and the safety thresholds;
    the workspace config contributes only ``environments.<name>.vars``. Where the workspace config
    writes a trusted part differently, the run warns ("reconciler.yaml changes trusted setting X;
    the trusted value is used"). Relative ``file:`` references in FILE are relative to FILE's folder;
    a table's ``proto`` is relative to the workspace config (the schema file is part of the change).

    The fingerprint key: ``RECONCILER_FINGERPRINT_KEY``, when set, is the key whatever any config
    says; else FILE's ``settings.fingerprint_key``. Without FILE, a CI run (``CI`` set) refuses a
    ``settings.fingerprint_key`` other than ``env:RECONCILER_FINGERPRINT_KEY``: the config could be
    the change under review, and a key it chooses (a file it commits, a variable it can read) would
    let it test guesses of live secrets offline.
    """
    path_text = trusted_path if trusted_path is not None else os.environ.get(TRUSTED_ENV)
    if not path_text:
        return _untrusted_source(cfg)
    trusted_path_ = Path(path_text)
    trusted = load_config(trusted_path_, required=True, confine=False)
    data = trusted.config.model_dump(exclude_none=True)
    own = cfg.config.model_dump(exclude_none=True)
    name = Path(cfg.path).name if cfg.path else "reconciler.yaml"
    changed = _trusted_differences(own, data) if cfg.doc is not None else []
    warnings = [
        f"{name} changes trusted setting {path}; the trusted value is used ({TRUSTED_ENV})"
        for path in changed[:MAX_TRUSTED_WARNINGS]
    ]
    if len(changed) > MAX_TRUSTED_WARNINGS:
        warnings.append(
            f"{name} changes {len(changed) - MAX_TRUSTED_WARNINGS} more trusted setting(s); the trusted values are used"
        )
    _absolute_file_refs(data, trusted_path_.parent)
    merged = dict(own)
    merged["providers"] = data.get("providers") or {}
    merged["connections"] = data.get("connections") or {}
    environments: dict[str, Any] = {}
    own_envs, trusted_envs = own.get("environments") or {}, data.get("environments") or {}
    for env_name in sorted(set(own_envs) | set(trusted_envs)):
        mine, theirs = own_envs.get(env_name) or {}, trusted_envs.get(env_name) or {}
        environments[env_name] = {
            "connections": theirs.get("connections") or {},
            "vars": mine.get("vars") if env_name in own_envs else theirs.get("vars") or {},
        }
    merged["environments"] = environments
    settings = merged.setdefault("settings", {})
    for key in TRUSTED_SETTINGS:
        settings.pop(key, None)
        if key in (data.get("settings") or {}):
            settings[key] = data["settings"][key]
    if os.environ.get(FINGERPRINT_ENV):
        settings["fingerprint_key"] = FINGERPRINT_REF
    model = config_model().model_validate(merged)
    if cfg.doc is not None:  # the workspace's environments must name connections the trusted file has
        problems = connection_problems(model, cfg.doc, cfg.env)
        if problems:
            raise InputError(problems)
    return LoadedConfig(
        model, path=cfg.path, doc=cfg.doc, env=cfg.env, connection_doc=trusted.doc, review=True, warnings=warnings
    )


def _untrusted_source(cfg: LoadedConfig) -> LoadedConfig:
    """No trusted file: the config is used as written, but for the fingerprint key (above)."""
    written = cfg.settings.fingerprint_key
    if os.environ.get(FINGERPRINT_ENV):
        warnings = []
        if written and written != FINGERPRINT_REF:
            warnings.append(f"settings.fingerprint_key ({written}) is not used: {FINGERPRINT_ENV} is set and is the key")
        settings = cfg.config.settings.model_copy(update={"fingerprint_key": FINGERPRINT_REF})
        model = cfg.config.model_copy(update={"settings": settings})
        return LoadedConfig(model, path=cfg.path, doc=cfg.doc, env=cfg.env, warnings=warnings)
    if written and written != FINGERPRINT_REF and in_ci():
        message = (
            f"a fingerprint key the config chooses ({written}) is refused in CI: the config may be the change "
            f"under review, and a key it knows lets it test guesses of live secrets offline; set "
            f"{FINGERPRINT_ENV} (a CI secret), or take the trusted settings from {TRUSTED_ENV}"
        )
        where: Path_ = ("settings", "fingerprint_key")
        problem = (
            cfg.doc.problem(where, message, resource="Config")
            if cfg.doc is not None
            else Problem(str(cfg.path or "reconciler.yaml"), 1, 1, "Config", "settings.fingerprint_key", message)
        )
        raise InputError([problem])
    return cfg


def _trusted_differences(own: dict[str, Any], trusted: dict[str, Any]) -> list[str]:
    """The dotted paths of trusted parts the workspace config writes differently."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: tuple[str, ...], depth: int) -> None:
        if a == b:
            return
        if depth == 0 or not isinstance(a, dict) or not isinstance(b, dict):
            out.append(".".join(_shown_key(k) for k in path))
            return
        for k in sorted(set(a) | set(b), key=str):
            walk(a.get(k), b.get(k), path + (str(k),), depth - 1)

    walk(own.get("providers") or {}, trusted.get("providers") or {}, ("providers",), 3)
    walk(own.get("connections") or {}, trusted.get("connections") or {}, ("connections",), 3)
    own_envs, trusted_envs = own.get("environments") or {}, trusted.get("environments") or {}
    for env_name in sorted(set(own_envs) | set(trusted_envs)):
        walk(
            (own_envs.get(env_name) or {}).get("connections") or {},
            (trusted_envs.get(env_name) or {}).get("connections") or {},
            ("environments", env_name, "connections"),
            0,
        )
    for key in TRUSTED_SETTINGS:
        walk((own.get("settings") or {}).get(key), (trusted.get("settings") or {}).get(key), ("settings", key), 0)
    return out


def _shown_key(key: str) -> str:
    """A config key as one safe word (keys are the change's: any character may be in one)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key) else json.dumps(key[:64], ensure_ascii=True)


def _absolute_file_refs(data: Any, base: Path) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str) and v.startswith("file:") and not Path(v[5:]).expanduser().is_absolute():
                data[k] = "file:" + str((base / v[5:]).absolute())
            else:
                _absolute_file_refs(v, base)
