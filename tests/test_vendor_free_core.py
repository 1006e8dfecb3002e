"""The core names no vendor (issue 25 item 1): every module of the core packages is tokenized, and
a vendor's name or title from the registry (``reconciler.vendor.vendors()``), case-insensitive, in a
NAME or STRING token that is not a docstring is a failure. Comments and docstrings may mention a
vendor as an example; code, messages, help texts and keys may not (they loop over the registry).
The import-linter contract "The core imports no vendor package" (pyproject.toml) keeps the imports
off ``reconciler.vendors``; this test keeps the words off."""

from __future__ import annotations

import ast
import io
import re
import token
import tokenize
from pathlib import Path

import pytest

from reconciler.vendor import vendors

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"
# every package and module of the core (DESIGN.md's layers) — all of reconciler/ but reconciler/vendors/
CORE = [
    "__init__.py",
    "cli",
    "engine",
    "export",
    "manifest",
    "kinds",
    "model.py",
    "clients",
    "sandbox",
    "schema.py",
    "safeio.py",
    "urls.py",
    "errors.py",
    "vendor.py",
]
STRINGS = {token.STRING} | {getattr(token, n) for n in ("FSTRING_MIDDLE", "TSTRING_MIDDLE") if hasattr(token, n)}


def core_modules() -> list[Path]:
    out: list[Path] = []
    for entry in CORE:
        path = PACKAGE / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def vendor_words() -> re.Pattern[str]:
    words = {w.lower() for spec in vendors().values() for w in (spec.name, spec.title)}
    assert {"bestproxy", "jdb", "tcaplus", "tcaplusdb"} <= words  # the registry this test was written against
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)


def docstring_lines(source: str) -> set[int]:
    """Lines of string literals that stand as statements of their own (docstrings, and strings
    used as comments): they are prose."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def vendor_names_in(path: Path, pattern: re.Pattern[str]) -> list[str]:
    source = path.read_text(encoding="utf-8")
    prose = docstring_lines(source)
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == token.NAME or (tok.type in STRINGS and tok.start[0] not in prose):
            match = pattern.search(tok.string)
            if match:
                rel = path.relative_to(PACKAGE.parent)
                found.append(f"{rel}:{tok.start[0]}:{tok.start[1] + 1}: {match.group(0)!r} in {tok.string[:60]!r}")
    return found


def test_the_core_modules_are_all_found() -> None:
    modules = core_modules()
    assert PACKAGE / "cli" / "base.py" in modules and PACKAGE / "engine" / "apply.py" in modules
    assert not [m for m in modules if "vendors" in m.relative_to(PACKAGE).parts]
    # nothing of reconciler/ is left out of the list but the vendor packages
    listed = {m.relative_to(PACKAGE).parts[0] for m in modules}
    assert {p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()} - listed == {"vendors"}


def test_a_vendor_name_in_code_or_a_message_is_found() -> None:
    pattern = vendor_words()
    sample = 'def f() -> str:\n    """Mentions JDB in prose."""\n    # and TcaplusDB in a comment\n    return "BestProxy"\n'
    assert [
        t.string
        for t in tokenize.generate_tokens(io.StringIO(sample).readline)
        if t.type in STRINGS and t.start[0] not in docstring_lines(sample) and pattern.search(t.string)
    ] == ['"BestProxy"']


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_names_no_vendor(path: Path) -> None:
    found = vendor_names_in(path, vendor_words())
    assert not found, "\n".join(found)
