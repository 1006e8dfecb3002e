"""Docs that run (issue #12): every YAML example in docs/ validates (offline, as an operator's
``reconciler validate`` would check it), every command in docs/ and the README runs against the
sandbox, and docs cite no file that is not in the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
# pages whose examples need the example vendor (examples/vendor-acme) installed: tests/test_vendor_example.py
# runs their YAML and commands with it installed beside the product
NEEDS_EXAMPLE_VENDOR = {ROOT / "docs" / "dev" / "adding-a-vendor.md"}
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[a-z]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def _config_keys() -> set[str]:
    from reconciler.manifest.config import Config

    return set(Config.model_fields) - {"apiVersion", "kind"}


CONFIG_KEYS = _config_keys()

# files the examples name (proto schemas, data files), made from the test fixtures
TB_EXAMPLE = ROOT / "tests" / "tcaplus" / "data" / "tb_example.proto"
GAME_PLAYERS = ROOT / "tests" / "tcaplus" / "data" / "game_players.proto"


def blocks(path: Path, *langs: str) -> list[tuple[int, str]]:
    """``(line, text)`` of the fenced blocks of these languages (indented fences too)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if m.group("lang") in langs:
            indent = len(m.group("indent"))
            body = "".join(
                line[indent:] if line[:indent].strip() == "" else line for line in m.group("body").splitlines(keepends=True)
            )
            out.append((text.count("\n", 0, m.start()) + 1, body))
    return out


def yaml_examples() -> list[Any]:
    return [
        pytest.param(p, line, body, id=f"{p.relative_to(ROOT)}:{line}")
        for p in DOCS
        if p not in NEEDS_EXAMPLE_VENDOR
        for line, body in blocks(p, "yaml")
    ]


def _workspace(tmp: Path) -> None:
    """A folder like the repository's: the shipped config, tables and data, plus the files the
    docs' examples name (``tables/tb_example.proto``, ``tables/game.proto``, ``data/players.jsonl``)."""
    shutil.copy(ROOT / "reconciler.yaml", tmp / "reconciler.yaml")
    shutil.copytree(ROOT / "tables", tmp / "tables")
    shutil.copytree(ROOT / "data", tmp / "data")
    shutil.copy(TB_EXAMPLE, tmp / "tables" / "tb_example.proto")
    shutil.copy(GAME_PLAYERS, tmp / "tables" / "game.proto")
    (tmp / "data" / "players.jsonl").write_text(
        '{"player_id": 1, "player_name": "p1", "player_email": "p1@example.com", "game_server_id": 1}\n', encoding="utf-8"
    )
    (tmp / "manifests").mkdir()


def _run(args: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESTPROXY_", "TCAPLUS_", "JDB_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def _is_config(data: list[Any]) -> bool:
    return all(isinstance(d, dict) and (d.get("kind") == "Config" or (set(d) <= CONFIG_KEYS and "kind" not in d)) for d in data)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        base[k] = _merge(base.get(k) or {}, v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def _config_for(doc: Path, body: str | None = None) -> dict[str, Any]:
    """The shipped config with every config example of the page merged over it (a page's manifest
    examples are written against the config it shows), or only ``body`` when given."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "reconciler.yaml").read_text(encoding="utf-8"))
    parts = [body] if body is not None else [b for _, b in blocks(doc, "yaml")]
    for part in parts:
        data = [d for d in yaml.safe_load_all(part) if d is not None]
        if _is_config(data):
            _merge(config, {k: v for k, v in data[0].items() if k in CONFIG_KEYS})
    return config


@pytest.mark.parametrize(("doc", "line", "body"), yaml_examples())
def test_every_yaml_example_in_the_docs_validates(tmp_path: Path, doc: Path, line: int, body: str) -> None:
    _workspace(tmp_path)
    data = [d for d in yaml.safe_load_all(body) if d is not None]
    assert data, f"{doc}:{line}: empty example"
    if isinstance(data[0], dict) and "repos" in data[0]:  # a pre-commit config using our hook
        ours = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
        used = {h["id"] for repo in data[0]["repos"] for h in repo["hooks"]}
        assert used and used <= ours
        return
    if _is_config(data):
        # a whole config, or a part of one (providers/settings), merged over the shipped config:
        # `validate` checks it with a manifest that uses every provider it configures
        assert len(data) == 1
        config = _config_for(doc, body)
        (tmp_path / "manifests" / "empty.yaml").write_text("", encoding="utf-8")
    else:
        config = _config_for(doc)
        (tmp_path / "manifests" / "example.yaml").write_text(body, encoding="utf-8")
    (tmp_path / "reconciler.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    r = _run([str(BIN / "reconciler"), "validate"], tmp_path)
    assert r.returncode == 0, f"{doc.relative_to(ROOT)}:{line}:\n{r.stderr}"


def commands(path: Path) -> list[str]:
    """Shell commands of ``sh``/``console`` blocks (console: the ``$ `` lines), continuations joined."""
    out: list[str] = []
    for _, body in blocks(path, "sh", "console"):
        console = any(line.startswith("$ ") for line in body.splitlines())
        current = ""
        for raw in body.splitlines():
            if console and not current and not raw.startswith("$ "):
                continue  # example output
            line = raw[2:] if console and not current else raw
            current += line.strip() if current else line
            if current.endswith("\\"):
                current = current[:-1].rstrip() + " "
                continue
            if current.strip():
                out.append(current.strip())
            current = ""
    return out


def test_the_docs_commands_are_found() -> None:
    found = {p.name: commands(p) for p in DOCS}
    assert found["ci-gitops.md"] and found["export-transactions.md"] and found["editors.md"]


@pytest.mark.parametrize(
    "doc", [p for p in DOCS if commands(p) and p not in NEEDS_EXAMPLE_VENDOR], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_command_in_the_docs_runs_against_the_sandbox(tmp_path: Path, doc: Path) -> None:
    """The commands of one page, in order, in a copy of the repository's quickstart folder."""
    for folder in ("manifests", "tables", "data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    for cmd in commands(doc):
        bench = re.match(r"python (bench/\S+\.py)", cmd)
        if bench:
            # benchmark campaigns take minutes: each script has a smoke test that runs it small
            script = bench.group(1)
            assert (ROOT / script).is_file(), cmd
            smoke = [t for t in (ROOT / "tests").rglob("test_*.py") if Path(script).name in t.read_text(encoding="utf-8")]
            assert smoke, f"{doc.relative_to(ROOT)}: {cmd}: no test runs {script}"
            continue
        r = _run(["bash", "-o", "pipefail", "-ec", cmd], tmp_path)
        assert r.returncode == 0, f"{doc.relative_to(ROOT)}: {cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


def test_docs_cite_no_file_missing_from_the_repository() -> None:
    cited = re.compile(r"`((?:reference|docs|examples|bench|tables|manifests|reconciler|tests|scripts)/[^`\s]*)`")
    for doc in [*DOCS, ROOT / "README.md", *sorted((ROOT / "examples").rglob("*.md"))]:
        for m in cited.finditer(doc.read_text(encoding="utf-8")):
            target = m.group(1).split("::")[0].rstrip("/").rstrip(".,")
            if any(ch in target for ch in "*{<"):
                continue
            assert (ROOT / target).exists(), f"{doc.relative_to(ROOT)} cites {target}, which is not in the repository"


def test_relative_links_in_the_docs_resolve() -> None:
    """A Markdown link to a file of the repository (``[text](path)``, anchors aside) points at a file
    that exists, in docs/, the README, CONTRIBUTING.md, examples/ and the vendor packages' READMEs."""
    link = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
    pages = [
        *DOCS,
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        *sorted((ROOT / "examples").rglob("*.md")),
        *sorted((ROOT / "reconciler" / "vendors").glob("*/README.md")),
    ]
    checked = 0
    for page in pages:
        for target in link.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            checked += 1
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links {target}, which does not exist"
    assert checked >= 10  # it found the links (docs/performance.md -> docs/dev/, the vendor READMEs -> docs/kinds/)
