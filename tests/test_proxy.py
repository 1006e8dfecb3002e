"""Proxies from the environment (issue 24 item 2): ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY``
are honoured, ``reconciler.yaml`` cannot name a proxy, and the endpoint approval still judges the
vendor host, never the proxy.

A real forwarding proxy on loopback (tests/proxy_support.py) carries the requests: plain-HTTP
targets as absolute-form requests, HTTPS targets through ``CONNECT`` tunnels. The whole sandbox
plan/apply runs through it both ways, as the real CLI against ``reconciler sandbox serve``.
Loopback is not special: ``127.0.0.1`` goes through the proxy unless ``NO_PROXY`` names it (the
reading of ``urllib.request.getproxies``/``proxy_bypass``, which aiohttp's ``trust_env`` uses).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.clients.http import HttpTransport, RetryPolicy, env_proxy
from reconciler.errors import TransportError
from tests.proxy_support import LoopbackProxy
from tests.support import nothing_to_apply
from tests.test_http_transport import Peer

ROOT = Path(__file__).resolve().parents[1]
ONCE = RetryPolicy(attempts=1, wait_initial=0, wait_max=0, wait_jitter=0)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy")
VENDOR_NAMES = {"bestproxy": "bestproxy.test", "tcaplus": "tcaplus.test", "jdb": "jdb.test"}


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy_target() -> Iterator[Peer]:
    server = Peer()
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    yield server
    server.shutdown()
    server.server_close()


def make_certificate(folder: Path, *names: str) -> Path:
    """A self-signed certificate (and key) for ``names`` (DNS names, or IP:...): the trust anchor
    a test hands the client through ``SSL_CERT_FILE``."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    san = ",".join(n if n.startswith("IP:") else f"DNS:{n}" for n in names)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=reconciler-test",
            "-addext",
            f"subjectAltName={san}",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder / "cert.pem"


def server_tls(folder: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return ctx


# -- the transport ---------------------------------------------------------------------------------


def test_the_environment_names_the_proxy_and_no_proxy_lifts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:s3cret@proxy.test:8080")
    url, headers = env_proxy("http", "127.0.0.1")
    assert str(url) == "http://127.0.0.1:3128" and headers is None  # loopback is proxied like any host
    url, headers = env_proxy("https", "api.bestproxy.com")
    assert str(url) == "http://proxy.test:8080" and headers is not None  # credentials leave the URL for a header
    assert headers["Proxy-Authorization"].startswith("Basic ")
    for no_proxy in ("127.0.0.1", "localhost, 127.0.0.1", "*"):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        assert env_proxy("http", "127.0.0.1") == (None, None), no_proxy
    monkeypatch.setenv("NO_PROXY", "bestproxy.com")  # a domain covers its subdomains
    assert env_proxy("https", "api.bestproxy.com") == (None, None)
    assert env_proxy("http", "127.0.0.1")[0] is not None
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # lower case, as curl and urllib read it
    assert env_proxy("http", "127.0.0.1") == (None, None)


@pytest.mark.parametrize("way", ["threads", "event loop"])
def test_plain_http_goes_through_http_proxy(proxy_target: Peer, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    port = proxy_target.server_address[1]
    with LoopbackProxy({f"127.0.0.1:{port}": port}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        t = HttpTransport(proxy_target.url + "/base", vendor="tcaplus", retry=ONCE)
        assert t.proxy == f"127.0.0.1:{proxy.port}" and t.host == f"127.0.0.1:{port}"
        if way == "threads":
            answers = [
                t.send("GET", "/r", idempotent=True, params={"a": "1 2"}),
                t.send("POST", "/w", idempotent=False, json={"x": 1}),
            ]
        else:

            async def main() -> list[Any]:
                return [
                    await t.asend("GET", "/r", idempotent=True, params={"a": "1 2"}),
                    await t.asend("POST", "/w", idempotent=False, json={"x": 1}),
                ]

            answers = t.run(main)
        t.close()
    assert [a.json()["path"] for a in answers] == ["/base/r?a=1+2", "/base/w"]
    assert [s["path"] for s in proxy_target.seen] == ["/base/r?a=1+2", "/base/w"]  # forwarded in origin form
    assert proxy_target.seen[1]["body"] == b'{"x":1}'
    assert proxy.targets == {f"GET 127.0.0.1:{port}": 1, f"POST 127.0.0.1:{port}": 1}
    assert proxy.connections == 1  # kept alive through the proxy


def test_no_proxy_sends_straight_to_the_host(proxy_target: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = proxy_target.server_address[1]
    with LoopbackProxy({f"127.0.0.1:{port}": port}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        t = HttpTransport(proxy_target.url, vendor="tcaplus", retry=ONCE)
        assert t.proxy is None
        assert t.send("GET", "/r", idempotent=True).json()["ok"]
        t.close()
    assert proxy.connections == 0 and [s["path"] for s in proxy_target.seen] == ["/r"]


@pytest.mark.parametrize("way", ["threads", "event loop"])
def test_https_goes_through_a_connect_tunnel_to_the_verified_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The proxy sees only ``CONNECT host:port``; TLS runs end to end with the host, verified
    against ``SSL_CERT_FILE`` (the proxy never sees a request or a credential)."""
    cert = make_certificate(tmp_path, "IP:127.0.0.1")
    server = Peer()
    server.socket = server_tls(tmp_path).wrap_socket(server.socket, server_side=True)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    port = server.server_address[1]
    try:
        with LoopbackProxy({f"127.0.0.1:{port}": port}) as proxy:
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            t = HttpTransport(f"https://127.0.0.1:{port}", vendor="bestproxy", retry=ONCE, timeout=10)
            if way == "threads":
                got = [
                    t.send("GET", "/r", idempotent=True, params={"app_key": "CanaryKey"}),
                    t.send("POST", "/w", idempotent=False, json={"app_key": "CanaryKey"}),
                ]
            else:

                async def main() -> list[Any]:
                    return [
                        await t.asend("GET", "/r", idempotent=True, params={"app_key": "CanaryKey"}),
                        await t.asend("POST", "/w", idempotent=False, json={"app_key": "CanaryKey"}),
                    ]

                got = t.run(main)
            t.close()
        assert [g.status_code for g in got] == [200, 200]
        assert [s["path"] for s in server.seen] == ["/r?app_key=CanaryKey", "/w"]
        assert proxy.targets == {f"CONNECT 127.0.0.1:{port}": 1}  # one tunnel, kept alive; nothing else seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_that_refuses_or_is_down_is_named_and_nothing_is_sent(
    proxy_target: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackProxy({}) as proxy:  # maps nothing: every CONNECT is refused (403)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        t = HttpTransport("https://api.bestproxy.com", vendor="bestproxy", retry=ONCE)
        with pytest.raises(
            TransportError,
            match=rf": POST /w: the proxy 127\.0\.0\.1:{proxy.port} refused the "
            r"connection \(HTTP 403\)$",
        ):  # nothing sent: not "unknown"
            t.send("POST", "/w", idempotent=False, json={"a": 1})
        t.close()
    assert proxy.refused == ["CONNECT api.bestproxy.com:443"]  # the vendor host, resolved by the proxy
    monkeypatch.setenv("HTTP_PROXY", proxy.url)  # stopped: nothing listens there any more
    t = HttpTransport(proxy_target.url, vendor="tcaplus", retry=ONCE)
    with pytest.raises(TransportError, match=rf": POST /w: connection refused \(proxy 127\.0\.0\.1:{proxy.port}\)$"):
        t.send("POST", "/w", idempotent=False, json={"a": 1})
    t.close()
    assert proxy_target.seen == []


def test_reconciler_yaml_cannot_name_a_proxy(tmp_path: Path) -> None:
    """Only the environment (the trusted side) names a proxy: a pull request's reconciler.yaml
    cannot route the requests, and their credentials, through a host of its choosing."""
    for folder in ("manifests", "tables", "data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shipped = (ROOT / "reconciler.yaml").read_text()
    assert "    base_url: https://api.bestproxy.com\n" in shipped
    (tmp_path / "reconciler.yaml").write_text(
        shipped.replace(
            "    base_url: https://api.bestproxy.com\n",
            "    base_url: https://api.bestproxy.com\n    proxy: http://attacker.test:3128\n",
        )
    )
    exe = Path(sys.executable).with_name("reconciler")
    r = subprocess.run([str(exe), "plan"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=clean_env())
    assert r.returncode == 1
    assert r.stderr.strip() == "error: reconciler.yaml:8:5: Config providers.bestproxy.proxy: unknown field"


# -- the whole CLI ---------------------------------------------------------------------------------


class Sandbox:
    """``reconciler sandbox serve`` in its own process, and a workspace with the shipped manifests
    whose reconciler.yaml points at it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("manifests", "tables", "data"):
            shutil.copytree(ROOT / folder, root / folder)
        shutil.copy(ROOT / "reconciler.yaml", root / "shipped.yaml")
        exe = Path(sys.executable).with_name("reconciler")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "sandbox",
                "serve",
                "--state",
                str(root / "state"),
                "--config-out",
                str(root / "reconciler.yaml"),
                "--config",
                str(root / "shipped.yaml"),
            ],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=clean_env(),
        )
        self.urls: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("Serving"):
                break
            name, _, url = line.partition(" ")
            if name in VENDOR_NAMES:
                self.urls[name] = url.strip()
        assert set(self.urls) == set(VENDOR_NAMES), self.urls

    def port(self, vendor: str) -> int:
        return int(self.urls[vendor].rsplit(":", 1)[1])

    def requests(self) -> int:
        return sum(sum(httpx.get(f"{url}/_sandbox/stats").json().values()) for url in self.urls.values())

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).with_name("reconciler")
        return subprocess.run(
            [str(exe), *args], cwd=self.root, capture_output=True, text=True, timeout=300, env={**clean_env(), **env}
        )

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PROXY_VARS}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sbx = Sandbox(tmp_path)
    try:
        yield sbx
    finally:
        sbx.close()


def test_plan_and_apply_of_the_sandbox_manifests_through_http_proxy(sandbox: Sandbox) -> None:
    routes = {f"127.0.0.1:{sandbox.port(v)}": sandbox.port(v) for v in VENDOR_NAMES}
    with LoopbackProxy(routes) as proxy:
        applied = sandbox.run("apply", "--auto-approve", HTTP_PROXY=proxy.url)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Apply:" in applied.stdout and " 0 failed" in applied.stdout
        planned = sandbox.run("plan", "--detailed-exitcode", HTTP_PROXY=proxy.url)
        assert planned.returncode == 0 and nothing_to_apply(planned.stdout), planned.stdout + planned.stderr
        through = sum(proxy.targets.values())
        # every vendor reached, every request through the proxy
        assert {t.split(" ")[1] for t in proxy.targets} == set(routes) and proxy.refused == []
        assert proxy.connections > 0 and through == sandbox.requests(), (proxy.targets, sandbox.requests())

        # NO_PROXY: the same plan straight to the hosts; the proxy sees nothing more
        before = proxy.connections, sum(proxy.targets.values())
        direct = sandbox.run("plan", "--detailed-exitcode", HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")
        assert direct.returncode == 0 and nothing_to_apply(direct.stdout), direct.stdout + direct.stderr
        assert (proxy.connections, sum(proxy.targets.values())) == before
        assert sandbox.requests() > through


def test_plan_and_apply_of_the_sandbox_manifests_through_a_connect_proxy(sandbox: Sandbox, tmp_path: Path) -> None:
    """The vendors as ``https://NAME.test`` (approved by the trusted side's variable), reachable only
    through the proxy: it resolves the names (the client never does), answers ``CONNECT`` and ends
    TLS with a certificate the run trusts through ``SSL_CERT_FILE``, then forwards to the emulators."""
    certs = tmp_path / "certs"
    certs.mkdir()
    cert = make_certificate(certs, *VENDOR_NAMES.values())
    config = sandbox.root / "reconciler.yaml"
    text = config.read_text()
    for vendor, name in VENDOR_NAMES.items():
        text = text.replace(f"base_url: {sandbox.urls[vendor]}", f"base_url: https://{name}")
    config.write_text(text)
    allowed = ",".join(f"{v}=https://{name}" for v, name in VENDOR_NAMES.items())
    routes = {f"{name}:443": sandbox.port(v) for v, name in VENDOR_NAMES.items()}
    with LoopbackProxy(routes, tls=server_tls(certs)) as proxy:
        env = {"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": str(cert)}
        # not approved: refused before anything is sent, the proxy (approved or not) sees nothing
        refused = sandbox.run("plan", **env)
        assert refused.returncode == 1 and "bestproxy.test" in refused.stderr, refused.stdout + refused.stderr
        assert proxy.connections == 0
        applied = sandbox.run("apply", "--auto-approve", RECONCILER_ALLOWED_ENDPOINTS=allowed, **env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Apply:" in applied.stdout and " 0 failed" in applied.stdout
        planned = sandbox.run("plan", "--detailed-exitcode", RECONCILER_ALLOWED_ENDPOINTS=allowed, **env)
        assert planned.returncode == 0 and nothing_to_apply(planned.stdout), planned.stdout + planned.stderr
    assert set(proxy.targets) == {f"CONNECT {name}:443" for name in VENDOR_NAMES.values()}, proxy.targets
    assert proxy.connections == sum(proxy.targets.values()) > 0 and proxy.refused == []
    assert sandbox.requests() > 0
    # without the proxy the names do not even resolve: the proxy carried every request
    no_proxy = sandbox.run("plan", RECONCILER_ALLOWED_ENDPOINTS=allowed, SSL_CERT_FILE=str(cert))
    assert no_proxy.returncode != 0 and "DNS lookup failed" in no_proxy.stderr + no_proxy.stdout, no_proxy.stderr
