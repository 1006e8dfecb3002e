"""The vendor registry (reconciler/vendor.py): what each installed vendor declares is consistent,
and a broken entry point is refused loudly instead of dropping a vendor or a kind."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import reconciler.kinds as kinds_module
import reconciler.vendor as registry
from reconciler.kinds.base import Kind
from reconciler.manifest.config import Connection, config_model
from reconciler.vendor import RegistryError, VendorSpec


def test_the_shipped_vendors_come_from_the_entry_points_in_their_order() -> None:
    eps = {ep.name for ep in metadata.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert {"bestproxy", "tcaplus", "jdb"} <= eps
    names = list(registry.vendors())
    assert names[:3] == ["bestproxy", "tcaplus", "jdb"]  # sandbox ports: first, +1, +2 (docs/configuration.md)
    assert set(names) == eps


@pytest.mark.parametrize("name", ["bestproxy", "tcaplus", "jdb"])
def test_each_vendor_declares_fields_its_connection_model_has(name: str) -> None:
    spec = registry.vendors()[name]
    assert issubclass(spec.connection, Connection)
    for path in spec.credential_fields + spec.key_fields:
        model: Any = spec.connection
        for part in path.split("."):
            assert part in model.model_fields, f"{name}: {path}"
            ann = model.model_fields[part].annotation
            inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
            model = inner[0] if inner else None
    assert set(spec.key_fields) <= set(spec.credential_fields)
    kinds = spec.kinds()
    assert kinds and all(issubclass(k, Kind) and k.vendor == name for k in kinds)


@pytest.mark.parametrize("name", ["bestproxy", "tcaplus", "jdb"])
def test_each_sandbox_hook_writes_a_connection_its_model_accepts(name: str, tmp_path: Path) -> None:
    spec = registry.vendors()[name]
    assert spec.sandbox is not None
    section = spec.sandbox.connection("http://127.0.0.1:1", lambda cred: f"env:SANDBOX_{cred.upper()}", {})
    conn = spec.connection.model_validate(section)
    creds = spec.credentials_of(conn)
    assert creds and all(c.startswith("env:SANDBOX_") for c in creds)
    offline = spec.sandbox.placeholder("http://127.0.0.1:1", "env:RECONCILER_SANDBOX", None)
    spec.connection.model_validate(offline)


def test_the_config_model_has_one_section_per_vendor() -> None:
    model = config_model()
    cfg = model.model_validate({"providers": {}, "connections": {}})
    for name in registry.vendors():
        assert getattr(cfg.providers, name) is None
        assert getattr(cfg.connections, name) == {}
    assert set(model.model_json_schema()["$defs"]["Providers"]["properties"]) == set(registry.vendors())


def test_kinds_are_the_union_of_the_vendors_kinds() -> None:
    expected = {k.kind: k for spec in registry.vendors().values() for k in spec.kinds()}
    assert dict(kinds_module.KINDS) == expected


class _EntryPoint:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value, self._value = name, f"fake:{name}", value

    def load(self) -> Any:
        return self._value


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace what importlib.metadata reports for the group (not our code: the installed metadata)."""
    installed: list[_EntryPoint] = []

    def entry_points(*, group: str) -> list[_EntryPoint]:
        assert group == registry.ENTRY_POINT_GROUP
        return installed

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_REGISTRY", None)
    yield installed  # monkeypatch puts the real registry back


def _spec(name: str, **kw: Any) -> VendorSpec:
    return VendorSpec(name=name, title=name.title(), connection=Connection, kinds=lambda: (), **kw)


def test_an_entry_point_that_is_not_a_spec_is_refused(fake_entry_points: list[_EntryPoint]) -> None:
    fake_entry_points.append(_EntryPoint("acme", object()))
    with pytest.raises(RegistryError, match="not a reconciler.vendor.VendorSpec"):
        registry.vendors()


def test_an_entry_point_named_unlike_its_vendor_is_refused(fake_entry_points: list[_EntryPoint]) -> None:
    fake_entry_points.append(_EntryPoint("acme", _spec("other")))
    with pytest.raises(RegistryError, match="must be the vendor's"):
        registry.vendors()


def test_two_vendors_of_one_name_are_refused(fake_entry_points: list[_EntryPoint]) -> None:
    fake_entry_points += [_EntryPoint("acme", _spec("acme")), _EntryPoint("acme", _spec("acme"))]
    with pytest.raises(RegistryError, match="two installed vendors"):
        registry.vendors()


def test_no_vendor_installed_is_an_error_not_an_empty_tool(fake_entry_points: list[_EntryPoint]) -> None:
    with pytest.raises(RegistryError, match="no vendor is installed"):
        registry.vendors()


def test_a_kind_claimed_by_another_vendor_is_refused(fake_entry_points: list[_EntryPoint]) -> None:
    from reconciler.vendors.jdb.free_spin_event import FreeSpinEventKind

    fake_entry_points.append(
        _EntryPoint("acme", VendorSpec(name="acme", title="Acme", connection=Connection, kinds=lambda: (FreeSpinEventKind,)))
    )
    fresh = kinds_module._Kinds()
    with pytest.raises(RegistryError, match="says its vendor is 'jdb'"):
        list(fresh)


def test_a_misspelled_kind_module_fails_at_first_use(fake_entry_points: list[_EntryPoint]) -> None:
    def kinds() -> tuple[type[Any], ...]:
        from reconciler.vendors.jdb import free_spin_evnet  # type: ignore[attr-defined]  # the typo

        return (free_spin_evnet,)

    fake_entry_points.append(_EntryPoint("acme", VendorSpec(name="acme", title="Acme", connection=Connection, kinds=kinds)))
    with pytest.raises(ImportError):
        list(kinds_module._Kinds())
