"""The transport depends on nothing above it (issue 24 item 7): loading the HTTP transport and the
vendor clients loads no manifest model, pydantic or YAML, and the import-linter contracts of
pyproject.toml (layers, and the forbidden contract on ``reconciler.clients``) hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "module",
    [
        "reconciler.clients.http",
        "reconciler.vendors.bestproxy.client",
        "reconciler.vendors.jdb.client",
        "reconciler.vendors.tcaplus.client",
    ],
)
def test_the_transport_loads_no_manifest_pydantic_or_yaml(module: str) -> None:
    code = (
        f"import sys, json, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml') "
        "or m.startswith('reconciler.manifest'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    loaded = json.loads(out.stdout)
    assert loaded == [], f"{module} pulled in {loaded}"


def test_the_manifest_check_and_the_transport_share_one_url_parse() -> None:
    from reconciler import urls
    from reconciler.manifest import endpoints

    assert endpoints.split_base_url is urls.split_base_url
    assert urls.split_base_url("https://API.example.com.:8443/base/") == ("https", "api.example.com", 8443, True, "/base")


def test_the_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency"
    out = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "The transport and clients import no manifest, pydantic or YAML KEPT" in out.stdout
    assert "The core imports no vendor package KEPT" in out.stdout  # function-level imports count
    assert "No import cycles between sibling modules KEPT" in out.stdout
    assert "BROKEN" not in out.stdout


def import_cycles(package: str) -> list[list[str]]:
    """Each import ``a -> b`` inside ``package`` that ``b`` leads back from, as the loop it closes.

    Every module counts, a package's ``__init__`` and its own submodules included (import-linter's
    ``acyclic_siblings`` contract compares siblings only), function-level imports too; imports under
    ``if TYPE_CHECKING:`` never run and are left out, as pyproject.toml's import-linter settings do.
    """
    import grimp

    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append([importer, *back])
    return cycles


def test_no_module_of_reconciler_imports_itself_back() -> None:
    """Issue 25 item 5: no import cycle between any two modules of ``reconciler``."""
    cycles = import_cycles("reconciler")
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
