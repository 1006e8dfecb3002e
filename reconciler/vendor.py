"""The vendor contract and the registry of installed vendors.

A vendor is a package (``reconciler/vendors/<name>/`` in this distribution, or a distribution of its
own) that declares one :class:`VendorSpec` and exposes it through the entry-point group
``reconciler.vendors``::

    [project.entry-points."reconciler.vendors"]
    acme = "acme_reconciler:VENDOR"

The core (engine, CLI, manifest loading, plan files, export, sandbox serving, redaction) loops over
:func:`vendors` and names no vendor. What a vendor declares here is everything the core used to
list per vendor: its connection model, documented hosts, which connection fields are credentials
(and which key fingerprints and plan signatures), the vendor codes that mean "refused, nothing was
written", files a plan depends on, its kinds, its emulator for the sandbox, and
extra CLI commands and ``export manifests`` options.

This module imports nothing of the package at run time but the error tree (the specs are loaded
lazily, on first use, so a vendor package may import any core module): it sits at the bottom of
the layers, just above ``reconciler.errors``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import click

    from reconciler.kinds.base import Kind
    from reconciler.sandbox.base import Emulator

ENTRY_POINT_GROUP = "reconciler.vendors"
VENDOR_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


class VendorSandbox:
    """How a vendor joins the embedded sandbox (``--sandbox``, ``reconciler sandbox serve``).

    ``credentials``: name -> maker of each credential the emulator needs (made once, kept in the
    sandbox's state folder, referenced from the served config as ``file:`` references).
    ``options``: keyword options :class:`reconciler.sandbox.serve.Sandbox` forwards to this vendor
    (for example the tables of a table store)."""

    credentials: Mapping[str, Callable[[], str]] = {}
    options: tuple[str, ...] = ()

    def emulator(self, state_dir: Path, creds: Mapping[str, str], options: Mapping[str, Any]) -> "Emulator":
        raise NotImplementedError

    def connection(self, url: str, ref: Callable[[str], str], options: Mapping[str, Any]) -> dict[str, Any]:
        """The config section (``providers.<vendor>``) of a connection to the running emulator;
        ``ref(name)`` is the reference of credential ``name``."""
        raise NotImplementedError

    def options_from_config(self, section: Any, base_dir: Path) -> dict[str, Any]:
        """The sandbox options a user's connection section implies (e.g. its tables)."""
        return {}

    def placeholder(self, url: str, ref: str, section: Any) -> dict[str, Any]:
        """A connection section for an offline sandbox config (nothing started, secrets never resolved):
        ``ref`` stands for every credential."""
        return self.connection(url, lambda _name: ref, self.options_from_config(section, Path(".")) if section else {})


@dataclass(frozen=True, kw_only=True)
class CliServices:
    """What the command line lends a vendor's commands (:attr:`VendorSpec.export_commands`), so
    that a vendor package never imports the CLI layer above it. The CLI builds it."""

    # decorators: the global options (``--config``, ``--sandbox``, ...; accepted after the
    # subcommand too), and the error mapping (one line per problem, the documented exit code)
    with_globals: Callable[[Callable[..., Any]], Callable[..., Any]]
    handle_errors: Callable[[Callable[..., Any]], Callable[..., Any]]
    # a run's session (a reconciler.engine.session.Session, with progress) over the manifests under
    # the given paths; the caller closes it
    open_session: Callable[[tuple[Path, ...]], Any]
    check_writable: Callable[[Path], None]  # fail before any work when an output file cannot be written
    refuse_targets: Callable[[str, str], None]  # (command, why): --target given to a command it does not limit
    err: Callable[[str], None]  # one escaped line on stderr
    echo: Callable[[str], None]  # one line on stdout


@dataclass(frozen=True, kw_only=True)
class ExportOption:
    """A repeatable option a vendor adds to ``reconciler export manifests`` (e.g. extra keys or
    accounts to read besides those the manifests name). Its values reach the vendor's kinds as
    ``ExportRequest.extra[key]`` (reconciler.kinds.base), each as ``parse`` made it."""

    flag: str  # "--name"
    key: str  # the ExportRequest.extra key the vendor's kinds read
    help: str
    metavar: str | None = None
    # one given value -> what the kinds read; raises reconciler.errors.UsageError for a bad one
    parse: Callable[[str], Any] | None = None


@dataclass(frozen=True, kw_only=True)
class VendorSpec:
    """Everything the core needs to know of one vendor."""

    name: str  # the config key: providers.<name>, connections.<name>, "<name>/<connection>"
    title: str  # as people write it, in messages
    connection: type[Any]  # pydantic model of one connection (a reconciler.manifest.config.Connection)
    kinds: Callable[[], tuple[type["Kind[Any, Any]"], ...]]  # imported explicitly by the vendor: a typo fails at import
    order: int = 100  # where it comes in listings and sandbox ports (first port + its index)
    documented_hosts: frozenset[str] = frozenset()  # hosts the vendor's documents name (approved by default)
    # dotted paths of every secret reference on a connection (all credentials: never a resource value,
    # never exported)
    credential_fields: tuple[str, ...] = ()
    # the credentials that key fingerprints and plan signatures when settings.fingerprint_key is unset
    key_fields: tuple[str, ...] = ()
    # shell-style patterns of the job's variables that hold this vendor's credentials by convention
    secret_env_patterns: tuple[str, ...] = ()
    # vendor codes a 5xx answer carries when the request was refused, not executed (safe to retry)
    refused_codes: frozenset[object] = frozenset()
    # files a connection's settings name (paths in the section, and the file): confined to the
    # workspace and digested into the plan's config sections
    config_files: Callable[[Any, Path], list[tuple[tuple[str, ...], Path]]] | None = None
    sandbox: VendorSandbox | None = None
    # extra commands: called with the CLI's ``export`` group and the CLI's services (e.g. a vendor
    # report exporter)
    export_commands: Callable[["click.Group", CliServices], None] | None = None
    # options this vendor adds to ``export manifests``
    export_options: tuple[ExportOption, ...] = ()

    def credentials_of(self, conn: Any) -> list[str]:
        return [r for path in self.credential_fields for r in _values(conn, path)]

    def keys_of(self, conn: Any) -> list[str]:
        return [r for path in self.key_fields for r in _values(conn, path)]


def _values(obj: Any, path: str) -> Iterator[str]:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return
    if isinstance(obj, str):
        yield obj


class RegistryError(ReconcilerError):
    """An installed vendor that cannot be used (a distribution of its own may be broken or wrong):
    the CLI prints this one line, naming the entry point, instead of an internal error."""


_REGISTRY: dict[str, VendorSpec] | None = None


def vendors() -> dict[str, VendorSpec]:
    """Installed vendors by name, in their declared order (loaded once from the entry points)."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, VendorSpec] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                spec = ep.load()
            except Exception as exc:  # noqa: BLE001 - any failure of a vendor's import: named, one line
                raise RegistryError(f"entry point {ep.name} = {ep.value}: cannot be loaded: {type(exc).__name__}: {exc}") from exc
            if not isinstance(spec, VendorSpec):
                raise RegistryError(f"entry point {ep.name} = {ep.value}: not a reconciler.vendor.VendorSpec")
            if spec.name != ep.name or not VENDOR_NAME.match(spec.name):
                raise RegistryError(
                    f"entry point {ep.name} = {ep.value}: names vendor {spec.name!r} "
                    "(the entry point's name must be the vendor's, lower case)"
                )
            if spec.name in found and found[spec.name] is not spec:
                raise RegistryError(f"two installed vendors are named {spec.name!r}")
            found[spec.name] = spec
        if not found:
            raise RegistryError(
                "no vendor is installed (entry-point group reconciler.vendors is empty: "
                "is the package installed, e.g. pip install -e .?)"
            )
        _REGISTRY = dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))
    return _REGISTRY


def vendor(name: str) -> VendorSpec | None:
    return vendors().get(name)


def names() -> tuple[str, ...]:
    return tuple(vendors())


def title(name: str) -> str:
    spec = vendors().get(name)
    return spec.title if spec is not None else name
