"""The test harness itself (issue 25): every fixture name in tests/ means one thing, shared
fixtures come from conftest.py files (pytest finds them; nothing imports them), and no test module
silences the linter to import or redefine one (ruff's F401 and F811 notes)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MODULES = sorted(TESTS.rglob("*.py"))


def _fixture_name(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            if isinstance(deco, ast.Call):
                for kw in deco.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        return str(kw.value.value)
            return node.name
    return None


def fixtures() -> dict[str, list[tuple[Path, str]]]:
    """Fixture name -> where it is defined (module, return annotation)."""
    found: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = _fixture_name(node)
                if name:
                    found[name].append((path, ast.unparse(node.returns) if node.returns else ""))
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def test_the_fixtures_are_found() -> None:
    found = fixtures()
    # one per kind of place: the root conftest, a folder's conftest, a module
    assert TESTS / "conftest.py" in [p for p, _ in found["bestproxy_ws"]]
    assert TESTS / "jdb" / "conftest.py" in [p for p, _ in found["jdb_emulator"]]
    assert [p for p, _ in found["peer"]] == [TESTS / "test_http_transport.py"]
    assert len(found) > 50


def test_every_fixture_name_means_one_thing() -> None:
    """A name is defined once, or a module overrides its own folder's conftest fixture with one of the
    same type (pytest's override: the same thing, set up for that module)."""
    clashes = []
    for name, places in sorted(fixtures().items()):
        conftests = [(p, ret) for p, ret in places if p.name == "conftest.py"]
        for path, ret in places:
            if len(places) == 1:
                continue
            override = path.name != "conftest.py" and any(c.parent in path.parents and c_ret == ret for c, c_ret in conftests)
            if not override and not (path.name == "conftest.py" and len(conftests) == 1):
                clashes.append(f"{name}: {path.relative_to(TESTS)} -> {ret}")
    assert not clashes, "fixture names defined in several places with different meanings:\n" + "\n".join(clashes)


def test_no_module_imports_a_fixture() -> None:
    """pytest provides fixtures from conftest.py files; importing one into a module redefines it
    there (the linter's F401/F811 notes that used to mark it)."""
    by_module: dict[str, set[str]] = defaultdict(set)
    for name, places in fixtures().items():
        for path, _ in places:
            by_module[_module_name(path)].add(name)
    imported = []
    for path in MODULES:
        package = _module_name(path).rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                source = f"{package}.{node.module}" if node.level == 1 else node.module
                for alias in node.names:
                    if alias.name in by_module.get(source, set()):
                        imported.append(f"{path.relative_to(TESTS)}: {alias.name} from {source}")
    assert not imported, "\n".join(imported)


def test_no_test_module_silences_an_unused_or_redefined_import() -> None:
    marker = re.compile(r"noqa:[^\n]*\bF(401|811)\b")
    silenced = [
        f"{p.relative_to(TESTS)}:{n}"
        for p in MODULES
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if marker.search(line)
    ]
    assert not silenced, silenced
