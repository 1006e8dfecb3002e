"""Every registered vendor's package has a README.md (issue 25): what the package holds (every
module, each of which exists), its documented hosts, credentials and refused codes as its VendorSpec declares them,
its emulator knobs (each one exists on the emulator, and none of the emulator's declared knobs is
missing) and links to the user docs of its kinds."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from reconciler.vendor import ENTRY_POINT_GROUP, VendorSpec, vendors

ROOT = Path(__file__).resolve().parents[1]
TICKED = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def packages() -> dict[str, str]:
    """Vendor name -> the package that holds its spec (from the entry point's module)."""
    return {ep.name: ep.value.split(":")[0].rsplit(".", 1)[0] for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def readme(name: str) -> tuple[Path, str]:
    spec = importlib.util.find_spec(packages()[name])
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "README.md"
    assert path.is_file(), f"vendor {name}: no {path}"
    return path, path.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no section '## {heading}'"
    return m.group(1)


def first_column(text: str) -> list[str]:
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [name for row in rows for name in TICKED.findall(row.strip("|").split("|")[0])]


def kind_page(kind: str) -> str:
    """``FreeSpinEvent`` -> ``free-spin-event.md`` (the docs/kinds/ naming)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() + ".md"


def emulator_of(spec: VendorSpec, tmp_path: Path) -> Any:
    assert spec.sandbox is not None, f"{spec.name}: no sandbox hook"
    creds = {name: make() for name, make in spec.sandbox.credentials.items()}
    return spec.sandbox.emulator(tmp_path, creds, {})


def knob_names(text: str) -> tuple[list[str], list[str]]:
    """(the vendor's knobs: the knobs table; the fault knobs: the sentence that starts with them)."""
    knobs = section(text, "Emulator knobs")
    faults = re.search(r"^Fault knobs.*?\.(?=\s)", knobs, re.M | re.S)  # its first sentence
    assert faults, "no 'Fault knobs' paragraph"
    named = [t for t in TICKED.findall(faults.group(0)) if re.fullmatch(r"[a-z_]+", t)]
    return first_column(knobs), named


VENDORS = sorted(vendors())


def test_every_registered_vendor_is_checked() -> None:
    assert set(VENDORS) >= {"bestproxy", "jdb", "tcaplus"} and set(VENDORS) == set(packages())


@pytest.mark.parametrize("name", VENDORS)
def test_the_readme_says_what_the_package_holds(name: str) -> None:
    _, text = readme(name)
    modules = first_column(section(text, "What the package holds"))
    assert "spec" in modules and "emulator" in modules
    for module in modules:
        assert importlib.util.find_spec(f"{packages()[name]}.{module}") is not None, f"{name}: {module}"
    folder = readme(name)[0].parent
    present = {p.stem for p in folder.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()} - {"__init__"}
    assert present <= set(modules), f"{name}: the README leaves out {sorted(present - set(modules))}"


@pytest.mark.parametrize("name", VENDORS)
def test_the_readme_states_hosts_credentials_and_refused_codes(name: str) -> None:
    spec = vendors()[name]
    _, text = readme(name)
    connection = section(text, "Connection")
    ticked = set(TICKED.findall(connection))
    hosts = re.search(r"^- Documented hosts:.*?(?=^- |\Z)", connection, re.M | re.S)
    codes = re.search(r"^- Refused codes.*?(?=^- |\Z)", connection, re.M | re.S)
    assert hosts and codes
    if spec.documented_hosts:
        assert spec.documented_hosts <= set(TICKED.findall(hosts.group(0)))
    else:
        assert hosts.group(0).startswith("- Documented hosts: none")
    assert set(spec.credential_fields) <= ticked and set(spec.key_fields) <= ticked
    if spec.refused_codes:
        assert {str(c) for c in spec.refused_codes} <= set(TICKED.findall(codes.group(0)))
    else:
        assert codes.group(0).startswith("- Refused codes: none")
    for pattern in spec.secret_env_patterns:
        assert f"`{pattern}`" in connection


@pytest.mark.parametrize("name", VENDORS)
def test_the_readme_links_the_user_docs_of_its_kinds(name: str) -> None:
    path, text = readme(name)
    targets = {(path.parent / link).resolve() for link in LINK.findall(text) if not link.startswith("http")}
    for target in targets:
        assert target.exists(), f"{path}: a link to {target}, which does not exist"
    for cls in vendors()[name].kinds():
        assert (ROOT / "docs" / "kinds" / kind_page(cls.kind)).resolve() in targets, f"{name}: {cls.kind}"


@pytest.mark.parametrize("name", VENDORS)
def test_every_knob_the_readme_lists_exists_on_the_emulator(name: str, tmp_path: Path) -> None:
    emulator = emulator_of(vendors()[name], tmp_path)
    try:
        knobs, faults = knob_names(readme(name)[1])
        keywords = set(inspect.signature(type(emulator)).parameters)
        declared = getattr(importlib.import_module(f"{packages()[name]}.emulator"), "KNOBS", {})
        assert knobs, f"{name}: no knob listed"
        for knob in knobs:
            assert knob in keywords or knob in declared or hasattr(emulator, knob), f"{name}: no knob {knob!r}"
        assert set(declared) <= set(knobs), f"{name}: knobs the emulator declares but the README leaves out"
        assert set(faults) == {f.name for f in dataclasses.fields(emulator.faults)}
    finally:
        emulator.close()


def test_the_knob_check_sees_a_knob_that_does_not_exist(tmp_path: Path) -> None:
    emulator = emulator_of(vendors()["tcaplus"], tmp_path)
    try:
        assert not hasattr(emulator, "plus_as_minus")
        assert "plus_as_minus" not in inspect.signature(type(emulator)).parameters
    finally:
        emulator.close()
    _, text = readme("tcaplus")
    knobs, _ = knob_names(text.replace("| `plus_as_space` |", "| `plus_as_minus` |"))
    assert "plus_as_minus" in knobs
