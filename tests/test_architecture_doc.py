"""docs/architecture.md names the layers and the import contracts that pyproject.toml declares
(issue 25): every layer and contract the page lists exists there, and every one there is on the
page, so the page cannot drift from what ``lint-imports`` enforces. README.md and CONTRIBUTING.md
link to it."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`]+)`")


def contracts() -> list[dict[str, Any]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found = data["tool"]["importlinter"]["contracts"]
    assert isinstance(found, list) and found
    return found


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of level 2."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"docs/architecture.md has no section '## {heading}'"
    return m.group(1)


def tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text``: rows of cells, header and rule left out."""
    found: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            found.append([r for r in rows[2:]])
            rows = []
    return found


def doc_layers(text: str) -> list[set[str]]:
    layers, _ = tables(section(text, "Layers"))
    return [set(TICKED.findall(row[0])) for row in layers]


def doc_contracts(text: str) -> dict[str, tuple[str, set[str]]]:
    _, table = tables(section(text, "Layers"))
    return {row[0]: (row[1], set(TICKED.findall(row[2]))) for row in table}


def modules_of(contract: dict[str, Any]) -> set[str]:
    if contract["type"] == "layers":
        return {m.strip() for layer in contract["layers"] for m in layer.split("|")}
    if contract["type"] == "independence":
        return set(contract["modules"])
    if contract["type"] == "forbidden":
        return set(contract["source_modules"]) | set(contract["forbidden_modules"])
    if contract["type"] == "acyclic_siblings":
        return set(contract["ancestors"])
    return set()


def test_the_layers_on_the_page_are_the_layers_contract() -> None:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    declared = [{m.strip() for m in layer.split("|")} for layer in layers["layers"]]
    assert doc_layers(DOC.read_text(encoding="utf-8")) == declared
    for module in set().union(*declared):
        assert importlib.util.find_spec(module) is not None, module


def test_every_contract_is_on_the_page_and_every_one_on_the_page_exists() -> None:
    on_page = doc_contracts(DOC.read_text(encoding="utf-8"))
    declared = {c["name"]: c for c in contracts()}
    assert set(on_page) == set(declared)
    for name, (kind, named) in on_page.items():
        assert kind == declared[name]["type"], name
        if kind != "layers":  # the layers are the table above; the others name their modules
            assert named == modules_of(declared[name]), name


def test_the_check_sees_a_missing_layer_and_an_unknown_contract() -> None:
    text = DOC.read_text(encoding="utf-8")
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    declared = [{m.strip() for m in layer.split("|")} for layer in layers["layers"]]
    fewer = "\n".join(line for line in text.splitlines() if not line.startswith("| `reconciler.model` |"))
    assert doc_layers(fewer) != declared
    more = text.replace(
        "| Vendors are independent", "| Kinds are independent of each other | independence | |\n| Vendors are independent", 1
    )
    assert set(doc_contracts(more)) != {c["name"] for c in contracts()}


def test_the_page_is_linked_from_the_readme_and_contributing() -> None:
    for name in ("README.md", "CONTRIBUTING.md"):
        assert "docs/architecture.md" in (ROOT / name).read_text(encoding="utf-8"), name
