"""The attacker's view (issue #8): a pull request controls manifests, ``reconciler.yaml``, tables and
data files; CI holds the vendor secrets. Every test here runs the real CLI (a subprocess of
``python -m reconciler.cli``, or click's runner) in a workspace whose secrets are canary values,
against the three emulators served on 127.0.0.1, with a loopback listener playing the attacker's
host, and then searches every byte of output and every file the run wrote for the canaries.

The attacker's host is named ``attacker.test`` in configs. The subprocess runs with a
``sitecustomize`` that resolves every host name to 127.0.0.1 (a test-only DNS), so a request the
product would send there really arrives at the listener and is recorded — the positive control
proves it. The product itself judges hosts as written, never by what they resolve to.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, quote_plus

import pytest

from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import BestProxyEmulator
from reconciler.vendors.jdb.emulator import JdbEmulator
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator
from tests.support import QuietHTTPServer

REPO = Path(__file__).resolve().parents[2]
TCAPLUS_PROTOS = REPO / "tests" / "tcaplus" / "data"

# canaries: distinctive values searched for in every byte (and their derived/encoded forms)
BP_APP_KEY = "CanaryBpAppKey7f3e9a1c5d"
BP_TOTP = "CANARYTOTPSECRETQQQQQQQQQQQQQQQQ"  # base32
TC_PASSWORD = "CanaryTcaplusPw0001"
JDB_DC = "cnr"
JDB_KEY = "CanaryJdbKey0001"  # 16 ASCII
JDB_IV = "CanaryJdbIv00001"
MANIFEST_PW = "CanaryPw42"
OUTSIDE_TEXT = "CanaryOutsideTheWorkspace-41"  # the content of a file outside the repository
AGENT = "sandboxag"

SECRETS = [BP_APP_KEY, BP_TOTP, TC_PASSWORD, JDB_KEY, JDB_IV, MANIFEST_PW]


def canary_forms() -> list[str]:
    forms = set()
    for value in SECRETS:
        forms |= {value, quote(value, safe=""), quote_plus(value)}
    forms.add(hashlib.md5(TC_PASSWORD.encode()).hexdigest())  # the TcaplusDB password header
    forms.add(OUTSIDE_TEXT)
    return sorted(forms)


DNS_SHIM = """\
# test-only DNS: every host name resolves to 127.0.0.1 (the attacker's listener; and no request of a
# test can leave the machine even if a check failed)
import socket

_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if host is not None:
        host = "127.0.0.1" if not str(host).replace(".", "").replace(":", "").isdigit() and "::" not in str(host) else host
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
"""


@dataclass
class Attacker:
    """A loopback HTTP listener standing in for the attacker's host; records every request."""

    server: ThreadingHTTPServer
    requests: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]


def _attacker_handler(seen: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append(f"{self.command} {self.path}\n{self.headers}\n{body.decode('utf-8', 'replace')}")
            out = json.dumps({"code": 200, "msg": "ok", "data": {"list": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815

    return Handler


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    seen: list[str] = []
    server = QuietHTTPServer(("127.0.0.1", 0), _attacker_handler(seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Attacker(server, seen)
    server.shutdown()
    server.server_close()


@dataclass
class Emulators:
    bestproxy: EmulatorServer
    tcaplus: EmulatorServer
    jdb: EmulatorServer


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    bp = EmulatorServer(BestProxyEmulator(None, app_key=BP_APP_KEY, totp_secret=BP_TOTP)).start()
    tc = EmulatorServer(
        TcaplusEmulator(app_id=2, zone_id=1, password=TC_PASSWORD, tables={"game_players": TCAPLUS_PROTOS / "game_players.proto"})
    ).start()
    jdb = EmulatorServer(JdbEmulator(dc=JDB_DC, key=JDB_KEY, iv=JDB_IV, agents=[AGENT], clock=time.time)).start()
    yield Emulators(bp, tc, jdb)
    for s in (bp, tc, jdb):
        s.stop()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Repo:
    """The pull request's checkout (cwd of the run) plus CI's secrets outside it."""

    root: Path
    ci: Path  # CI's secret mount, outside the repository
    inputs: set[Path] = field(default_factory=set)  # files the test wrote (not searched)

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        self.inputs.add(path)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "HTTP", "http", "NO_PROXY", "no_proxy"))}
        env.update(
            {
                "BESTPROXY_APP_KEY": BP_APP_KEY,
                "BESTPROXY_TOTP_SECRET": BP_TOTP,
                "TCAPLUS_APP_KEY": TC_PASSWORD,
                "JDB_KEY": JDB_KEY,
                "JDB_IV": JDB_IV,
                "RECONCILER_SECRET_PW": MANIFEST_PW,
                "PYTHONPATH": os.pathsep.join([str(self.ci.parent / "dns-shim"), str(REPO)]),
            }
        )
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 120, **env: str) -> Run:
        """The real CLI through click's runner in this process (cwd = the repository)."""
        from click.testing import CliRunner

        from reconciler.cli import cli

        values: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RECONCILER_")}
        values.update({k: v for k, v in self.env(**env).items() if k not in ("PYTHONPATH",)})
        old = os.getcwd()
        os.chdir(self.root)
        try:
            r = CliRunner().invoke(cli, list(args), env=values, catch_exceptions=False)
        finally:
            os.chdir(old)
        return Run(r.exit_code, r.stdout, r.stderr)

    def run_process(self, *args: str, attacker: Attacker | None = None, timeout: float = 120, **env: str) -> Run:
        """The real CLI in a subprocess (``python -m reconciler.cli``), bounded in time."""
        p = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *args],
            cwd=self.root,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(p.returncode, p.stdout, p.stderr)

    def written_bytes(self) -> bytes:
        """Every file under the workspace the test did not write itself (plans, reports, logs, state)."""
        out = b""
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path not in self.inputs:
                out += path.read_bytes()
        return out

    def assert_no_secret(self, *runs: Run) -> None:
        blob = "".join(r.output for r in runs).encode() + self.written_bytes()
        leaked = [form for form in canary_forms() if form.encode() in blob]
        assert not leaked, f"leaked: {leaked}"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "repo"
    ci = tmp_path / "ci-secrets"
    root.mkdir()
    ci.mkdir()
    shim = tmp_path / "dns-shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(DNS_SHIM, encoding="utf-8")
    (tmp_path / "outside.txt").write_text(OUTSIDE_TEXT + "\n", encoding="utf-8")
    (ci / "app_key").write_text(BP_APP_KEY, encoding="utf-8")
    return Repo(root, ci)


def config_text(
    em: Emulators | None,
    *,
    bestproxy: str | None = None,
    tcaplus: str | None = None,
    jdb: str | None = None,
    tables: str = "game_players: {proto: tables/game_players.proto}",
    extra: str = "",
) -> str:
    """A ``reconciler.yaml`` with env: credentials; base URLs default to the emulators."""
    bp_url = bestproxy or (em.bestproxy.url if em else "http://127.0.0.1:9")
    tc_url = tcaplus or (em.tcaplus.url if em else "http://127.0.0.1:9")
    jdb_url = jdb or (em.jdb.url if em else "http://127.0.0.1:9")
    return f"""\
apiVersion: reconciler/v1
kind: Config
providers:
  bestproxy:
    base_url: {bp_url}
    app_key: env:BESTPROXY_APP_KEY
    retry_attempts: 1
    ip_delete_verification: {{type: totp, totp_secret: env:BESTPROXY_TOTP_SECRET}}
  tcaplus:
    base_url: {tc_url}
    app_id: 2
    zone_id: 1
    password: env:TCAPLUS_APP_KEY
    retry_attempts: 1
    tables:
      {tables}
  jdb:
    base_url: {jdb_url}
    dc: {JDB_DC}
    key: env:JDB_KEY
    iv: env:JDB_IV
    retry_attempts: 1
{extra}"""


@pytest.fixture
def configured_repo(repo: Repo, emulators: Emulators) -> Repo:
    """The repository with the TcaplusDB table ``game_players`` and a config whose base URLs are
    the emulators'."""
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(emulators))
    return repo


def account(name: str = "pr01", password: str = "env:RECONCILER_SECRET_PW", remark: str = "from a PR") -> str:
    return f"""\
apiVersion: reconciler/v1
kind: ProxyAccount
metadata: {{name: {name}}}
spec:
  username: {name}
  password: {password}
  productType: 9
  remark: {json.dumps(remark)}
"""


def players_record(player_id: int, **extra: object) -> dict[str, object]:
    return {
        "player_id": player_id,
        "player_name": f"p{player_id}",
        "player_email": f"p{player_id}@example.com",
        "game_server_id": 1,
        **extra,
    }


def records_doc(
    name: str, records: list[dict[str, object]] | None = None, *, file: str | None = None, prune: dict[str, object] | None = None
) -> str:
    spec: dict[str, object] = {"table": "game_players", "mode": "whole"}
    if file:
        spec["file"] = file
    else:
        spec["records"] = records or []
    if prune:
        spec["prune"] = prune
    return json.dumps({"apiVersion": "reconciler/v1", "kind": "TcaplusRecords", "metadata": {"name": name}, "spec": spec})


def event_doc(name: str = "pr-event", *, players_file: str | None = None) -> str:
    who = f"playersFile: {players_file}" if players_file else "players: [player00001]"
    return f"""\
apiVersion: reconciler/v1
kind: FreeSpinEvent
metadata: {{name: {name}}}
spec:
  name: PR event
  agent: {AGENT}
  startTime: "2035-06-01T00:00:00+08:00"
  endTime: "2035-06-08T00:00:00+08:00"
  machineTypes: [14077]
  bet: "1"
  type: NORMAL
  times: 10
  minWithdrawal: "-1"
  maxWithdrawal: "100"
  {who}
"""
