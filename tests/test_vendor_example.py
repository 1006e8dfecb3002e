"""The fourth vendor (issue 25, "Proof with a fourth vendor"): ``examples/vendor-acme``, the
distribution ``reconciler-vendor-acme``, installed *beside* the product (``pip install --target``,
no network: ``--no-index --no-build-isolation``) and found through its entry point, runs validate,
plan, apply, drift, export and ``sandbox serve`` through the real CLI, while no core module names
it. The commands and YAML of ``docs/dev/adding-a-vendor.md`` are the ones run here.

The client is tested against the emulator in this process (the package imported from a copy of
its folder, which holds no distribution metadata, so this process's vendor registry never sees it).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.support import nothing_to_apply

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "vendor-acme"
GUIDE = ROOT / "docs" / "dev" / "adding-a-vendor.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```", re.M | re.S)
GUIDE_SITE = "/tmp/acme-site"  # where the guide installs the example; the test's own folder stands in for it

# what the guide's "Try it" runs, in order (test_the_guide_shows_the_commands_this_test_runs)
INSTALL = [
    f"pip install --no-deps --no-build-isolation --target {GUIDE_SITE} examples/vendor-acme",
    f"export PYTHONPATH={GUIDE_SITE}",
    "cd examples/vendor-acme/demo",
]
WALKTHROUGH = [
    "reconciler validate",
    "reconciler plan --sandbox",
    "reconciler apply --sandbox --auto-approve",
    "reconciler plan --sandbox --detailed-exitcode",
    "reconciler sandbox serve --config-out served.yaml",
    "reconciler plan --sandbox --drift",
    "reconciler apply --sandbox --auto-approve",
    "reconciler export manifests --sandbox --out exported",
    "reconciler plan --sandbox --detailed-exitcode exported",
]


def guide_blocks(lang: str) -> list[str]:
    return [m.group("body") for m in FENCE.finditer(GUIDE.read_text(encoding="utf-8")) if m.group("lang") == lang]


def test_the_guide_shows_the_commands_this_test_runs() -> None:
    commands = [line.strip() for body in guide_blocks("sh") for line in body.splitlines() if line.strip()]
    assert commands == INSTALL + WALKTHROUGH


# -- the core names no vendor it does not ship -------------------------------------------------------
def _names(tree: ast.AST) -> Iterator[str]:
    """Identifiers and string values of a module, docstrings and comments left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value
        elif isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.alias):
            yield node.name
        elif isinstance(node, (ast.ImportFrom,)) and node.module:
            yield node.module


def test_no_core_module_names_the_example_vendor() -> None:
    """Nothing in ``reconciler/`` (code and strings; comments and docstrings aside) names the
    example's vendor, package, kind or host: it works through the registry alone."""
    words = ("acme", "cacherule")
    found = []
    for path in sorted((ROOT / "reconciler").rglob("*.py")):
        for name in _names(ast.parse(path.read_text(encoding="utf-8"))):
            if any(w in name.lower().replace("_", "") for w in words):
                found.append(f"{path.relative_to(ROOT)}: {name!r}")
    assert not found, found


# what a vendor package may use of the product: the contract and the layers below the engine
VENDOR_MAY_IMPORT = (
    "reconciler.vendor",
    "reconciler.kinds",
    "reconciler.model",
    "reconciler.errors",
    "reconciler.clients",
    "reconciler.manifest",
    "reconciler.sandbox",
)


def test_the_example_uses_only_the_vendor_contract_and_the_layers_below_the_engine() -> None:
    """No other vendor (vendors are independent) and nothing the engine, CLI or export own."""
    used = set()
    for path in sorted((EXAMPLE / "reconciler_acme").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                used.add(node.module)
            elif isinstance(node, ast.Import):
                used.update(a.name for a in node.names)
    ours = {m for m in used if m.split(".")[0] == "reconciler"}
    outside = sorted(m for m in ours if not any(m == p or m.startswith(p + ".") for p in VENDOR_MAY_IMPORT))
    assert ours and not outside, outside
    # its third-party imports are what its pyproject.toml declares (the product, and pydantic)
    third = {m.split(".")[0] for m in used} - set(sys.stdlib_module_names) - {"__future__", "reconciler_acme"}
    declared = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert third == {"reconciler", "pydantic"}
    assert sorted(re.split(r"[<>=]", d)[0] for d in declared) == ["gameops-reconciler", "pydantic"]


# -- installed beside the product ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed into a folder of its own, from a copy of its source (the build
    writes nothing into the repository): no dependency resolved, no index, no build isolation."""
    tmp = tmp_path_factory.mktemp("acme")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("demo", "__pycache__"))
    target = tmp / "site"
    # the guide's command, with this test's folders, and --no-index: no package index is asked
    args = [str(target) if a == GUIDE_SITE else str(src) if a == "examples/vendor-acme" else a for a in shlex.split(INSTALL[0])]
    assert args[:2] == ["pip", "install"]
    r = subprocess.run([sys.executable, "-m", *args, "-q", "--no-index"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (dist,) = target.glob("reconciler_vendor_acme-*.dist-info")
    entry_points = (dist / "entry_points.txt").read_text(encoding="utf-8")
    assert re.search(r"^\[reconciler\.vendors\]\nacme ?= ?reconciler_acme\.spec:VENDOR$", entry_points, re.M), entry_points
    return target


def _env(*paths: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACME_", "BESTPROXY_", "TCAPLUS_", "JDB_", "RECONCILER_")) and k != "PYTHONPATH"
    }
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _cli(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = shlex.split(command)
    assert args[0] == "reconciler"
    return subprocess.run([str(BIN / "reconciler"), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _state(work: Path) -> dict[str, tuple[str, int, bool]]:
    """The emulator's stored rules, read from its state file (not through our client)."""
    db = sqlite3.connect(work / ".reconciler" / "sandbox" / "acme.sqlite")
    try:
        rows = db.execute("SELECT zone, name, path, ttl_seconds, enabled FROM rules ORDER BY name").fetchall()
    finally:
        db.close()
    assert {z for z, *_ in rows} <= {"shop-example"}
    return {name: (path, ttl, bool(enabled)) for _z, name, path, ttl, enabled in rows}


def _serve(command: str, work: Path, env: dict[str, str]) -> tuple[list[str], dict[str, Any], subprocess.Popen[str]]:
    """Start ``sandbox serve``; its lines up to "Serving" and the config it wrote."""
    args = shlex.split(command)
    proc = subprocess.Popen(
        [str(BIN / "reconciler"), *args[1:]], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: the server prints a few lines, then "Serving"
            lines.append(line)
            if line.startswith("Serving") or len(lines) > 50:
                break
        assert lines and lines[-1].startswith("Serving"), lines
        return lines, yaml.safe_load((work / "served.yaml").read_text(encoding="utf-8")), proc
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    """Stop the server with ``sig``; one that does not stop within 30 s is killed and it is an error."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise


@pytest.mark.slow  # an install and a dozen CLI runs
def test_the_fourth_vendor_runs_validate_plan_apply_drift_export_and_serve(acme_site: Path, tmp_path: Path) -> None:
    work = tmp_path / "demo"
    shutil.copytree(EXAMPLE / "demo", work)
    env = _env(acme_site)
    outputs: list[str] = []

    def cli(step: int) -> subprocess.CompletedProcess[str]:
        r = _cli(WALKTHROUGH[step], work, env)
        outputs.append(r.stdout + r.stderr)
        return r

    r = cli(0)  # validate (offline: the token behind env:ACME_API_TOKEN is not read)
    assert r.returncode == 0 and "Valid: 2 resource(s), 1 prune scope(s)" in r.stdout, r.stdout + r.stderr
    r = cli(1)  # plan
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 to create" in r.stdout and "acme    CacheRule" in r.stdout and "create CacheRule/site-static" in r.stdout
    assert not (work / ".reconciler" / "sandbox" / "acme.sqlite").exists() or _state(work) == {}  # a plan writes nothing
    r = cli(2)  # apply
    assert r.returncode == 0 and "2 applied, 0 failed" in r.stdout, r.stdout + r.stderr
    applied = {"site-api": ("/api/*", 0, False), "site-static": ("/static/*", 86400, True)}
    assert _state(work) == applied
    r = cli(3)  # a second plan: nothing to change
    assert r.returncode == 0 and nothing_to_apply(r.stdout), r.stdout + r.stderr

    lines, served, proc = _serve(WALKTHROUGH[4], work, env)  # sandbox serve: the fourth emulator among them
    try:
        urls = dict(line.split() for line in lines[:-1] if line.split()[0] in ("bestproxy", "jdb", "tcaplus", "acme"))
        assert set(urls) == {"bestproxy", "jdb", "tcaplus", "acme"}, lines
        assert lines[len(urls) - 1].startswith("acme "), lines  # VendorSpec.order 40: after the shipped vendors
        acme = served["providers"]["acme"]
        token_file = work / ".reconciler" / "sandbox" / "credentials" / "acme_api_token"
        assert acme == {"base_url": urls["acme"], "api_token": f"file:{token_file}", "zone": "shop-example"}
        token = token_file.read_text(encoding="utf-8").strip()
        # a change behind the product's back, through the vendor's API (the emulator)
        rules = f"{urls['acme']}/v1/zones/shop-example/cache-rules"
        auth = {"Authorization": f"Bearer {token}"}
        listed = httpx.get(rules, headers=auth, timeout=30).json()["rules"]
        assert {x["name"]: (x["path"], x["ttl_seconds"], x["enabled"]) for x in listed} == applied
        for name, ttl in (("site-static", 60), ("site-old", 60), ("site-legacy", 60), ("other", 60)):
            answer = httpx.put(
                f"{rules}/{name}", json={"path": f"/{name}/*", "ttl_seconds": ttl, "enabled": True}, headers=auth, timeout=30
            )
            assert answer.status_code in (200, 201), answer.text
    finally:
        _stop(proc, signal.SIGINT)  # Ctrl-C, as the guide says
    outputs.append("".join(lines))

    r = cli(5)  # plan --drift
    assert r.returncode == 2, r.stdout + r.stderr
    assert "~ update CacheRule/site-static" in r.stdout and "ttlSeconds: 60 -> 86400" in r.stdout
    assert 'path: "/site-static/*" -> "/static/*"' in r.stdout
    assert "- delete CacheRule/site-old" in r.stdout and "inside PruneScope/site-rules" in r.stdout
    assert "CacheRule/site-legacy: protected by PruneScope/site-rules" in r.stdout
    assert "CacheRule/other: not declared; outside every prune scope" in r.stdout
    assert "Drift: 2 resource(s) differ" in r.stderr
    r = cli(6)  # apply puts the zone back; the pruned rule goes, the protected and unmanaged stay
    assert r.returncode == 0 and "2 applied, 0 failed" in r.stdout, r.stdout + r.stderr
    final = {**applied, "site-legacy": ("/site-legacy/*", 60, True), "other": ("/other/*", 60, True)}
    assert _state(work) == final

    r = cli(7)  # export manifests
    assert r.returncode == 0 and "Exported 4 CacheRule" in r.stdout, r.stdout + r.stderr
    docs = [d for d in yaml.safe_load_all((work / "exported" / "acme" / "cache-rules.yaml").read_text(encoding="utf-8")) if d]
    assert {d["metadata"]["name"]: (d["spec"]["path"], d["spec"]["ttlSeconds"], d["spec"]["enabled"]) for d in docs} == final
    assert all(d["kind"] == "CacheRule" for d in docs)
    r = cli(8)  # the export plans as no change: it round-trips
    assert r.returncode == 0 and nothing_to_apply(r.stdout), r.stdout + r.stderr
    assert "4 unchanged" in r.stdout
    assert _state(work) == final

    debug = _cli("reconciler plan --sandbox --debug", work, env)  # the token is in every request's header
    assert debug.returncode == 0, debug.stdout + debug.stderr
    assert "GET http://127.0.0.1:" in debug.stderr and "/v1/zones/shop-example/cache-rules" in debug.stderr  # logging on
    outputs.append(debug.stdout + debug.stderr)
    written = [p.read_text(encoding="utf-8") for p in (work / "exported").rglob("*") if p.is_file()]
    for text in outputs + written + [(work / "served.yaml").read_text(encoding="utf-8")]:
        assert token not in text


@pytest.mark.slow  # an install and a server
def test_a_write_the_vendor_refused_as_overloaded_is_tried_again_in_a_later_pass(acme_site: Path, tmp_path: Path) -> None:
    """``refused_codes`` of a vendor the core does not ship: a 503 ``overloaded`` says nothing was
    written, so the engine tries the change again in a later pass instead of failing it as an
    unknown outcome (exit 4)."""
    work = tmp_path / "demo"
    shutil.copytree(EXAMPLE / "demo", work)
    env = _env(acme_site)
    _lines, served, proc = _serve("reconciler sandbox serve --config-out served.yaml", work, env)
    try:
        url = served["providers"]["acme"]["base_url"]
        # both PUTs refused on every one of their 4 attempts (providers.acme.retry_attempts)
        assert httpx.post(f"{url}/_sandbox/faults", json={"fail_next_writes": 8}, timeout=30).status_code == 200
        r = _cli("reconciler apply --config served.yaml --auto-approve", work, env)
        assert r.returncode == 0 and "2 applied, 0 failed" in r.stdout, r.stdout + r.stderr
        puts = sum(n for op, n in httpx.get(f"{url}/_sandbox/stats", timeout=30).json().items() if op.startswith("PUT "))
        assert puts == 10  # 8 refused, then one each in the next pass
    finally:
        _stop(proc)
    assert _state(work) == {"site-api": ("/api/*", 0, False), "site-static": ("/static/*", 86400, True)}


@pytest.mark.slow  # an install and four CLI runs
def test_a_saved_plan_is_signed_with_the_fourth_vendor_s_key(acme_site: Path, tmp_path: Path) -> None:
    """``key_fields``: the plan signature is keyed with Acme's token; a saved plan applies with it,
    and with another token (the same plan, other credentials) it is refused before any write."""
    work = tmp_path / "demo"
    shutil.copytree(EXAMPLE / "demo", work)
    env = _env(acme_site)
    r = _cli("reconciler plan --sandbox --out saved.json", work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    saved = json.loads((work / "saved.json").read_text(encoding="utf-8"))
    assert saved["connections"] == ["acme/default"] and saved["signature"].startswith("hmac-sha256:")
    token_file = work / ".reconciler" / "sandbox" / "credentials" / "acme_api_token"
    token = token_file.read_text(encoding="utf-8")
    assert token.strip() not in (work / "saved.json").read_text(encoding="utf-8")
    token_file.write_text("t" * 40 + "\n", encoding="utf-8")
    r = _cli("reconciler apply --sandbox --auto-approve saved.json", work, env)
    assert r.returncode == 1 and "its signature does not match" in r.stderr, r.stdout + r.stderr
    assert _state(work) == {}
    token_file.write_text(token, encoding="utf-8")
    r = _cli("reconciler apply --sandbox --auto-approve saved.json", work, env)
    assert r.returncode == 0 and "2 applied, 0 failed" in r.stdout, r.stdout + r.stderr
    assert _state(work) == {"site-api": ("/api/*", 0, False), "site-static": ("/static/*", 86400, True)}


GUARDED_CONFIG = """apiVersion: reconciler/v1
kind: Config
providers:
  acme: {base_url: ACME_URL, api_token: env:ACME_API_TOKEN, zone: shop-example}
  bestproxy: {base_url: https://api.bestproxy.com, app_key: env:BESTPROXY_APP_KEY}
settings:
  manifest_secret_env: ["ACME_*", "RECONCILER_*"]
"""
ACCOUNT = """apiVersion: reconciler/v1
kind: ProxyAccount
metadata: {name: shop}
spec: {username: shop01, password: PASSWORD, productType: 9}
"""


@pytest.mark.slow  # the install
def test_the_core_guards_the_fourth_vendor_s_credentials_from_its_spec(acme_site: Path, tmp_path: Path) -> None:
    """What ``spec.py`` declares is what the core enforces for a vendor it does not ship:
    ``secret_env_patterns`` (a manifest may not read ``ACME_*``, even where
    ``settings.manifest_secret_env`` allows it), ``credential_fields`` (no resource value may be
    the token) and ``documented_hosts`` (the token goes to no other host)."""
    canary = "acme-canary-" + "7" * 24
    env = {**_env(acme_site), "ACME_API_TOKEN": canary, "BESTPROXY_APP_KEY": "k" * 32, "RECONCILER_SHOP_PW": canary}
    (tmp_path / "manifests").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "reconciler.yaml").write_text(
        GUARDED_CONFIG.replace("ACME_URL", "https://api.acme-edge.example"), encoding="utf-8"
    )
    account = tmp_path / "manifests" / "account.yaml"
    account.write_text(ACCOUNT.replace("PASSWORD", "env:ACME_SHOP_PASSWORD"), encoding="utf-8")
    r = _cli("reconciler validate", tmp_path, env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ACME_SHOP_PASSWORD is named like a credential of the job" in r.stderr
    account.write_text(ACCOUNT.replace("PASSWORD", "env:RECONCILER_SHOP_PW"), encoding="utf-8")
    r = _cli("reconciler validate --resolve-secrets", tmp_path, env)
    assert r.returncode == 1 and "its value is a provider credential" in r.stderr, r.stdout + r.stderr
    shutil.copy(EXAMPLE / "demo" / "manifests" / "cache-rules.yaml", tmp_path / "rules" / "cache-rules.yaml")
    (tmp_path / "reconciler.yaml").write_text(
        GUARDED_CONFIG.replace("ACME_URL", "https://acme-edge.attacker.example"), encoding="utf-8"
    )
    r = _cli("reconciler plan rules", tmp_path, env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "host acme-edge.attacker.example is not an approved acme endpoint" in r.stderr
    assert "documented host (api.acme-edge.example)" in r.stderr
    for out in (r.stdout, r.stderr):
        assert canary not in out


@pytest.mark.slow  # the install
def test_the_guide_s_yaml_validates_with_the_example_installed(acme_site: Path, tmp_path: Path) -> None:
    blocks = guide_blocks("yaml")
    assert len(blocks) == 2
    config, manifests = blocks
    (tmp_path / "reconciler.yaml").write_text(config, encoding="utf-8")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "rules.yaml").write_text(manifests, encoding="utf-8")
    r = _cli("reconciler validate", tmp_path, _env(acme_site))
    assert r.returncode == 0 and "Valid: 1 resource(s), 1 prune scope(s)" in r.stdout, r.stdout + r.stderr
    # and the model is the vendor's: a field it does not know is an input error, pointing at the file
    (tmp_path / "manifests" / "rules.yaml").write_text(manifests.replace("ttlSeconds: 86400", "ttlSeconds: -1"), encoding="utf-8")
    r = _cli("reconciler validate", tmp_path, _env(acme_site))
    assert r.returncode == 1 and "manifests/rules.yaml:" in r.stderr and "ttlSeconds" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # the connection model is the vendor's, for named connections too (connections.acme.<name>)
    (tmp_path / "manifests" / "rules.yaml").write_text(
        manifests.replace("metadata: {name: site-static}", "metadata: {name: site-static, connection: staging}"), encoding="utf-8"
    )
    staging = "connections:\n  acme:\n    staging: {base_url: https://api.acme-edge.example, api_token: env:ACME_STAGING}\n"
    (tmp_path / "reconciler.yaml").write_text(config + staging, encoding="utf-8")
    r = _cli("reconciler validate", tmp_path, _env(acme_site))
    assert r.returncode == 1 and "reconciler.yaml:10:14:" in r.stderr and "connections.acme.staging.zone" in r.stderr, r.stderr
    (tmp_path / "reconciler.yaml").write_text(config + staging.replace("}", ", zone: shop-staging}"), encoding="utf-8")
    r = _cli("reconciler validate", tmp_path, _env(acme_site))
    assert r.returncode == 0 and "Valid: 1 resource(s)" in r.stdout, r.stdout + r.stderr


# -- a broken vendor install: one line naming the entry point ----------------------------------------
BROKEN = {
    "a wrong name": (
        "wrong = reconciler_acme.spec:VENDOR",
        "",
        "entry point wrong = reconciler_acme.spec:VENDOR: names "
        "vendor 'acme' (the entry point's name must be the vendor's, lower case)",
    ),
    "an import failure": (
        "broken = no_such_vendor_module:VENDOR",
        "",
        "entry point broken = no_such_vendor_module:VENDOR: "
        "cannot be loaded: ModuleNotFoundError: No module named 'no_such_vendor_module'",
    ),
    "two of one name": (
        "acme = twin_acme:VENDOR",
        "import dataclasses\nfrom reconciler_acme.spec import VENDOR as _V\nVENDOR = dataclasses.replace(_V)\n",
        "two installed vendors are named 'acme'",
    ),
}


@pytest.mark.slow  # the install
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_vendor_install_is_one_clear_line(acme_site: Path, tmp_path: Path, case: str) -> None:
    entry, module, message = BROKEN[case]
    other = tmp_path / "other"
    dist = other / "other_vendor-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: other-vendor\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(f"[reconciler.vendors]\n{entry}\n", encoding="utf-8")
    if module:
        (other / "twin_acme.py").write_text(module, encoding="utf-8")
    shutil.copytree(EXAMPLE / "demo", tmp_path / "demo")
    r = _cli("reconciler validate", tmp_path / "demo", _env(acme_site, other))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"error: {message}"], r.stderr


# -- the client against the emulator, over HTTP on loopback -------------------------------------------
TOKEN, OTHER_TOKEN = "tok-" + "a" * 36, "tok-" + "b" * 36


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The example's modules, imported from a copy of its package folder (no metadata: this
    process's registry never lists the vendor)."""
    folder = tmp_path_factory.mktemp("acme-src")
    shutil.copytree(EXAMPLE / "reconciler_acme", folder / "reconciler_acme", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(folder))
    try:
        client = importlib.import_module("reconciler_acme.client")
        emulator = importlib.import_module("reconciler_acme.emulator")
    finally:
        sys.path.remove(str(folder))
    return client, emulator


@pytest.fixture(params=["not_found", "no_content"])
def served(request: pytest.FixtureRequest, acme: Any, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The emulator (each answer of the knob ``delete_absent``) on 127.0.0.1, port 0."""
    from reconciler.sandbox.wire import EmulatorServer

    emu = acme[1].AcmeEmulator(tmp_path, zones={"shop": TOKEN, "blog": OTHER_TOKEN}, delete_absent=request.param)
    with EmulatorServer(emu) as server:
        yield emu, server.url
    emu.close()


def _client(acme: Any, url: str, *, token: str = TOKEN, zone: str = "shop") -> Any:
    from reconciler.clients.http import RetryPolicy

    return acme[0].AcmeClient(url, token=token, zone=zone, retry=RetryPolicy(attempts=3, wait_initial=0, wait_jitter=0))


def test_a_rule_already_gone_is_deleted_under_either_answer(acme: Any, served: tuple[Any, str]) -> None:
    emu, url = served
    client = _client(acme, url)
    client.put_rule("a", path="/a/*", ttl_seconds=10, enabled=True)
    client.put_rule("b", path="/b/*", ttl_seconds=10, enabled=True)
    client.delete_rule("a")
    client.delete_rule("a")  # gone already: done, whatever the vendor answers
    emu.set_faults({"drop_next_writes": 1})  # the delete happens, its reply is lost: the transport repeats it
    client.delete_rule("b")
    assert emu.rules("shop") == {}
    assert emu.faults.drop_next_writes == 0
    with pytest.raises(acme[0].AcmeNotFound) as caught:  # a missing zone is no "rule already gone"
        _client(acme, url, zone="nowhere").delete_rule("a")
    assert caught.value.code == "zone_not_found" and caught.value.http_status == 404
    client.close()


def test_the_client_reads_every_page_and_a_full_zone_refuses_a_rule(acme: Any, served: tuple[Any, str]) -> None:
    emu, url = served
    client = _client(acme, url)
    for i in range(500):
        client.put_rule(f"r{i:03}", path=f"/p/{i}", ttl_seconds=i, enabled=i % 2 == 0)
    rules = client.list_rules()  # five pages
    assert [r.name for r in rules] == sorted(emu.rules("shop")) and len(rules) == 500
    assert (rules[7].path, rules[7].ttl_seconds, rules[7].enabled, rules[7].version) == ("/p/7", 7, False, 1)
    with pytest.raises(acme[0].AcmeError) as caught:
        client.put_rule("r500", path="/p/500", ttl_seconds=1, enabled=True)
    assert caught.value.code == "quota_exceeded" and caught.value.http_status == 409
    assert client.put_rule("r000", path="/p/0", ttl_seconds=5, enabled=True).version == 2  # a replace still works
    client.close()


def test_errors_name_the_vendor_and_field_never_the_token(acme: Any, served: tuple[Any, str]) -> None:
    emu, url = served
    with pytest.raises(acme[0].AcmeError) as caught:
        _client(acme, url, token="tok-" + "c" * 36).list_rules()
    assert caught.value.code == "unauthorized" and caught.value.http_status == 401
    assert "c" * 36 not in str(caught.value)
    with pytest.raises(acme[0].AcmeNotFound) as caught:  # another zone's token
        _client(acme, url, zone="blog").list_rules()
    assert caught.value.code == "zone_not_found"
    with pytest.raises(acme[0].AcmeError) as caught:
        _client(acme, url).put_rule("x", path="no-slash", ttl_seconds=31_536_001, enabled=True)
    assert caught.value.code == "invalid_request" and "path" in str(caught.value) and "ttl_seconds" in str(caught.value)
    assert str(caught.value).startswith("acme: 127.0.0.1:") and TOKEN not in str(caught.value)
    assert emu.rules("shop") == {}
