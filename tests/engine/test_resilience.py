"""Resilient apply against the BestProxy emulator's fault knobs and real, killed `reconciler apply`
processes: lost replies settled in the same run, streamed outcomes, the journal (no secret in it),
resume without --force after a kill between `add` and the follow-up `change`, SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import APP_KEY, PASSWORD, Workspace, account_doc, accounts_file

EXE = str(Path(sys.executable).with_name("reconciler"))
SCOPE = """
apiVersion: reconciler/v1
kind: PruneScope
metadata: {name: game-accounts}
spec:
  target: ProxyAccount
  match: {usernamePrefix: game}
"""
ALLOWLIST = """
apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {name: dc}
spec:
  productType: 14
  exclusive: true
  entries:
"""


def faults(ws: Workspace, **knobs: object) -> None:
    httpx.post(ws.url + "/_sandbox/faults", json=knobs).raise_for_status()


def allowlist(ws: Workspace, ips: list[str]) -> None:
    ws.write("manifests/ips.yaml", ALLOWLIST + "".join(f"    - {ip}\n" for ip in ips))


def start(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([EXE, *args], cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_calls(ws: Workspace, path: str, n: int, timeout: float = 60) -> None:
    """Until the emulator has received ``n`` requests to ``path`` (its stats are not delayed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ws.stats().get(path, 0) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"no {n} calls to {path} within {timeout} s: {ws.stats()}")


def journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- unknown outcomes ------------------------------------------------------------------------
@pytest.mark.parametrize("drops", [1, 2, 3, 5])
def test_lost_replies_of_account_writes_are_settled_in_the_same_run(bp: Workspace, drops: int) -> None:
    names = ["game01", "game02", "game03"]
    bp.write("manifests/a.yaml", "---\n".join(account_doc(n, trafficLimitGb=5, enabled=n != "game03") for n in names))
    bp.write("manifests/scope.yaml", SCOPE)
    # add, then the follow-up changes and the disable: the first `drops` write replies are lost
    faults(bp, drop_next_writes=drops)
    res = bp.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    accounts = bp.accounts()
    assert sorted(accounts) == names
    assert [accounts[n]["limit_flow"] for n in names] == [5, 5, 5] and accounts["game03"]["status"] != 1
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0

    # change (remark), enable and delete (prune) with lost replies
    bp.write(
        "manifests/a.yaml",
        account_doc("game01", remark="moved", trafficLimitGb=5) + "---\n" + account_doc("game03", trafficLimitGb=5),
    )
    faults(bp, drop_next_writes=drops)
    res = bp.cli("apply", "--auto-approve", "--force")
    assert res.exit_code == 0, res.stdout + res.stderr
    accounts = bp.accounts()
    assert sorted(accounts) == ["game01", "game03"]
    assert accounts["game01"]["remark"] == "moved" and accounts["game03"]["status"] == 1
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


def test_lost_replies_and_server_errors_of_ip_writes_are_settled_in_the_same_run(bp: Workspace) -> None:
    allowlist(bp, ["10.0.0.1", "10.0.0.2"])
    faults(bp, drop_next_writes=1)  # proxy-ip/add stored the addresses; its reply is lost
    res = bp.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    allowlist(bp, ["10.0.0.2", "10.0.0.3"])
    faults(bp, drop_next_writes=1)  # proxy-ip/delete: a repeat must not be needed to be right
    res = bp.cli("apply", "--auto-approve", "--force")
    assert res.exit_code == 0, res.stdout + res.stderr
    allowlist(bp, ["10.0.0.2", "10.0.0.3", "10.0.0.4"])
    res = bp.cli("plan")
    faults(bp, fail_next=1)  # a 5xx answer to the add: read back (not there) and written once
    res = bp.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert bp.ips(14) == {"10.0.0.2": "", "10.0.0.3": "", "10.0.0.4": ""}
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


# -- streaming, JSON lines, journal ----------------------------------------------------------
def test_json_outcomes_one_per_line_and_a_journal_without_secrets(bp: Workspace) -> None:
    canary = "CanaryPw7QzX41"
    bp.write("manifests/secrets/pw", canary)
    accounts_file(bp, ["game01", "game02"], trafficLimitGb=3)
    allowlist(bp, ["10.0.0.1"])
    res = bp.cli("apply", "--auto-approve", "--format", "json", "--journal", "run.jsonl")
    assert res.exit_code == 0, res.stdout + res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["plan", "outcome", "outcome", "outcome", "summary"]
    assert {x["address"] for x in lines if x["type"] == "outcome"} == {
        "ProxyAccount/game01",
        "ProxyAccount/game02",
        "IpAllowlist/14",
    }
    assert lines[-1]["counts"] == {"applied": 3} and lines[-1]["exit_code"] == 0
    text = (bp.root / "run.jsonl").read_text(encoding="utf-8")
    recs = journal(bp.root / "run.jsonl")
    assert recs[0]["type"] == "run" and recs[-1] == {**recs[-1], "type": "end", "status": "finished", "exit_code": 0}
    for address in ("ProxyAccount/game01", "IpAllowlist/14"):
        kinds = [r["type"] for r in recs if r.get("address") == address]
        assert kinds == ["intent", "outcome"]
    for secret in (canary, APP_KEY, PASSWORD):
        assert secret not in text and secret not in res.stdout + res.stderr
    # a finished journal may be reused; an unfinished one is never overwritten
    (bp.root / "cut.jsonl").write_text(text.split('{"type":"end"')[0][:-40], encoding="utf-8")
    accounts_file(bp, ["game01", "game02", "game03"], trafficLimitGb=3)
    res = bp.cli("apply", "--auto-approve", "--journal", "cut.jsonl")
    assert res.exit_code == 1 and "did not finish" in res.stderr and "--resume cut.jsonl" in res.stderr


def test_a_connections_requests_per_second_spaces_its_requests(bp: Workspace) -> None:
    """``requests_per_second`` in the config: the vendor sees no more than that, plan and apply."""
    config = (bp.root / "reconciler.yaml").read_text()
    bp.write(
        "reconciler.yaml",
        config.replace("    retry_wait_initial: 0\n", "    retry_wait_initial: 0\n    requests_per_second: 5\n"),
    )
    assert "requests_per_second: 5" in (bp.root / "reconciler.yaml").read_text()
    allowlist(bp, ["10.0.0.1"])
    accounts_file(bp, [f"game{i:02d}" for i in range(3)], trafficLimitGb=3)
    res = bp.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    span = httpx.get(bp.url + "/_sandbox/stats/span").json()
    calls = sum(bp.stats().values())
    assert calls >= 5
    assert span["last"] - span["first"] >= (calls - 1) * 0.2 * 0.9, (calls, span)  # 200 ms apart at least


def test_outcomes_stream_while_the_apply_runs(bp: Workspace) -> None:
    allowlist(bp, ["10.0.0.1"])
    accounts_file(bp, [f"game{i:02d}" for i in range(6)], trafficLimitGb=3)
    # the allowlist's add is answered only when the test releases it (no race against a clock)
    faults(bp, hold_replies=["/gateway/proxy-ip/add"])
    proc = start(bp, "apply", "--auto-approve")
    # a run that printed nothing until the end would wait forever: released after 60 s, it fails below
    watchdog = threading.Timer(60, faults, (bp,), {"hold_replies": []})
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ok "):
                # the first outcome is printed while a later write is still outstanding
                still_running = proc.poll() is None
                calls_then = bp.answered().get("POST /gateway/proxy-ip/add", 0)
                break
        else:
            raise AssertionError("no outcome line")
    finally:
        watchdog.cancel()
        faults(bp, hold_replies=[])
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0
    assert still_running and calls_then == 0 and "ok      create IpAllowlist/14" in rest


# -- crash and resume ------------------------------------------------------------------------
def test_kill_between_add_and_change_is_finished_by_resume_without_force(bp: Workspace) -> None:
    names = [f"game{i:02d}" for i in range(12)]
    accounts_file(bp, names, trafficLimitGb=7)
    faults(bp, latency_ms=150)
    proc = start(bp, "apply", "--auto-approve", "--journal", "run.jsonl")
    wait_for_calls(bp, "POST /gateway/proxy-account/change", 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    faults(bp, latency_ms=0)
    accounts = bp.accounts()
    assert sorted(accounts) == names  # created by the add ...
    unfinished = [n for n in names if accounts[n]["limit_flow"] != 7]
    assert len(unfinished) >= 4  # ... but most follow-up changes were never made
    recs = journal(bp.root / "run.jsonl")
    assert recs[0]["type"] == "run" and not any(r["type"] == "end" for r in recs)

    # a plain re-run would not be refused either: the updates finish creates made minutes ago
    # (tests/engine/test_kill_recovery.py); its plan says so and shows nothing unsafe
    plan = bp.cli("plan")
    assert "unsafe:" not in plan.stdout and "finishes a create made less than an hour ago" in plan.stdout
    # resuming the journal judges them against the original plan: no --force needed
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert {a["limit_flow"] for a in bp.accounts().values()} == {7}
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0
    recs = journal(bp.root / "run.jsonl")
    assert [r.get("resumed") for r in recs if r["type"] == "run"] == [False, True]
    assert recs[-1]["type"] == "end" and recs[-1]["exit_code"] == 0


def test_resume_refuses_changed_manifests(bp: Workspace) -> None:
    accounts_file(bp, ["game01"])
    (bp.root / "run.jsonl").write_text("", encoding="utf-8")
    res = bp.cli("apply", "--auto-approve", "--journal", "run.jsonl")
    assert res.exit_code == 0
    accounts_file(bp, ["game01", "game02"])
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 1 and "changed since the interrupted run" in res.stderr


def _forge(path: Path, **root: object) -> None:
    """Edit a journal as someone with the file but not the credentials could: its run record's
    fields changed and its end record dropped (an interrupted run to resume)."""
    recs = [r for r in journal(path) if r["type"] != "end"]
    recs[0].update(root)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")


@pytest.mark.parametrize("how", ["edited", "unsigned"])
def test_resume_refuses_a_run_record_edited_to_approve_a_mass_update(bp: Workspace, how: str) -> None:
    """The changes a journal's run record holds are not counted again by the resumed run's
    thresholds. A record edited to name today's manifests (their digest is not secret) would let
    a resume update 12 of 12 accounts without --force; its signature does not match, so nothing
    is written."""
    names = [f"game{i:02d}" for i in range(12)]
    accounts_file(bp, names, trafficLimitGb=7)
    assert bp.cli("apply", "--auto-approve", "--journal", "run.jsonl").exit_code == 0
    assert journal(bp.root / "run.jsonl")[0]["signature"]
    accounts_file(bp, names, trafficLimitGb=9)
    refused = bp.cli("apply", "--auto-approve")
    assert refused.exit_code != 0 and "12 of 12 existing objects" in refused.stdout + refused.stderr
    assert bp.cli("plan", "--out", "now.json").exit_code == 0
    digest = json.loads((bp.root / "now.json").read_text())["digest"]
    forged: dict[str, object] = {"digest": digest}
    if how == "unsigned":
        forged["signature"] = None
    _forge(bp.root / "run.jsonl", **forged)
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 1, res.stdout + res.stderr
    why = "it has no signature" if how == "unsigned" else "it was changed after it was written"
    assert "run.jsonl: its run record does not match its signature: " + why in res.stderr
    assert {a["limit_flow"] for a in bp.accounts().values()} == {7}  # nothing written


def test_resume_uses_the_operators_config_never_one_the_journal_names(bp: Workspace) -> None:
    """The run record's signature is keyed from the config, so it cannot vouch for the config it
    names: a resume runs with the config the operator gives (as a saved plan), and a record naming
    another is refused. The resume hint carries --config, so it works as printed."""
    names = [f"game{i:02d}" for i in range(3)]
    accounts_file(bp, names, trafficLimitGb=7)
    (bp.root / "alt.yaml").write_text((bp.root / "reconciler.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert bp.cli("apply", "--config", "alt.yaml", "--auto-approve", "--journal", "run.jsonl").exit_code == 0
    _forge(bp.root / "run.jsonl")  # its end record lost: a run to finish (signature untouched)
    refused = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "run.jsonl recorded a run with --config alt.yaml; resume it with the same --config" in refused.stderr
    res = bp.cli("apply", "--config", "alt.yaml", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    # a record pointed at another config by someone without the credentials: refused on its config
    # before its signature is even checked, and nothing is written
    accounts_file(bp, names, trafficLimitGb=9)
    _forge(bp.root / "run.jsonl", config_path="reconciler.yaml")
    forged = bp.cli("apply", "--config", "alt.yaml", "--resume", "run.jsonl", "--auto-approve")
    assert forged.exit_code == 1 and "recorded a run with --config reconciler.yaml" in forged.stderr
    assert {a["limit_flow"] for a in bp.accounts().values()} == {7}


# -- signals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_new_writes_reports_and_journals_what_was_done(bp: Workspace, sig: int, code: int) -> None:
    names = [f"game{i:02d}" for i in range(16)]
    accounts_file(bp, names[:4])
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    bp.write(
        "manifests/accounts.yaml",
        "---\n".join(account_doc(n, remark="new" if i < 4 else "", trafficLimitGb=2) for i, n in enumerate(names)),
    )
    faults(bp, latency_ms=200)
    proc = start(bp, "apply", "--auto-approve", "--force", "--journal", "run.jsonl")
    wait_for_calls(bp, "POST /gateway/proxy-account/change", 2)
    proc.send_signal(sig)
    at_signal = bp.stats().get("POST /gateway/proxy-account/change", 0)
    out, err = proc.communicate(timeout=60)
    after = bp.stats().get("POST /gateway/proxy-account/change", 0)
    assert proc.returncode == code, out + err
    assert after - at_signal <= 2  # only the calls in flight (concurrency 2) finished
    assert "Stopped:" in out and "Apply:" in out and "--resume run.jsonl" in err
    recs = journal(bp.root / "run.jsonl")
    assert recs[-1]["type"] == "end" and recs[-1]["status"] == "interrupted" and recs[-1]["exit_code"] == code
    ok_lines = [line for line in out.splitlines() if line.startswith("ok ")]
    assert len(ok_lines) == sum(r["type"] == "outcome" and r["status"] == "applied" for r in recs)
    faults(bp, latency_ms=0)
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_second_ctrl_c_exits_at_once(bp: Workspace) -> None:
    accounts_file(bp, [f"game{i:02d}" for i in range(4)], trafficLimitGb=2)
    faults(bp, latency_ms=1500)
    proc = start(bp, "apply", "--auto-approve")
    wait_for_calls(bp, "POST /gateway/whitelist-account/add", 1)
    time.sleep(0.3)  # the follow-up changes are in flight (1.5 s each)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted again" in err
    faults(bp, latency_ms=0)


# -- messages --------------------------------------------------------------------------------
def test_unreachable_api_names_vendor_host_operation_and_cause(bp: Workspace) -> None:
    cfg = (bp.root / "reconciler.yaml").read_text(encoding="utf-8")
    port = bp.url.rsplit(":", 1)[1]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # bound, not listening: connections are refused
        (bp.root / "reconciler.yaml").write_text(cfg.replace(f":{port}", f":{free}"), encoding="utf-8")
        bp.write("manifests/a.yaml", account_doc("game01"))
        res = bp.cli("plan")
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [
        "error: ProxyAccount: live state could not be read, so it was not planned: "
        f"bestproxy: 127.0.0.1:{free}: GET /gateway/whitelist-account/list: connection refused"
    ]
    assert "unknown" not in res.stderr and APP_KEY not in res.stderr


def test_retry_chatter_only_with_debug(bp: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    bp.write("manifests/a.yaml", account_doc("game01"))
    faults(bp, fail_next=2)
    proc = subprocess.run([EXE, "plan"], cwd=bp.root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    faults(bp, fail_next=2)
    proc = subprocess.run([EXE, "--debug", "plan"], cwd=bp.root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert (
        "bestproxy 127.0.0.1:" in proc.stderr and "GET /gateway/whitelist-account/list: attempt 2 after HTTP 500" in proc.stderr
    )
    assert APP_KEY not in proc.stderr  # the debug log is redacted (query strings carry the app_key)


def test_transport_causes_are_named() -> None:
    import http.client
    import socket
    import ssl

    from reconciler.clients.http import describe_connect_error, describe_reply_error

    assert describe_connect_error(socket.gaierror(-2, "Name or service not known")) == "DNS lookup failed"
    assert describe_connect_error(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert describe_connect_error(socket.timeout("timed out")) == "timed out connecting"
    assert describe_connect_error(ssl.SSLCertVerificationError("bad cert")) == "TLS certificate verification failed"
    assert describe_reply_error(socket.timeout("timed out")) == "timed out waiting for the reply"
    assert describe_reply_error(http.client.RemoteDisconnected("x")) == "the connection closed without a reply"
    assert describe_reply_error(ConnectionResetError(104, "reset")) == "the connection closed without a reply"


def test_transport_causes_on_real_sockets() -> None:
    """Refused, silent and hanging-up peers on loopback: each named, and only a write is "unknown"."""
    import socket
    import threading

    from reconciler.clients.http import HttpTransport, RetryPolicy
    from reconciler.errors import TransportError

    once = RetryPolicy(attempts=1, wait_initial=0, wait_max=0, wait_jitter=0)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    t = HttpTransport(f"http://127.0.0.1:{port}", vendor="tcaplus", retry=once, timeout=2)
    with pytest.raises(TransportError, match=rf"^api: 127\.0\.0\.1:{port}: POST /x: connection refused$"):
        t.send("POST", "/x", idempotent=False, json={"a": 1})

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (in the kernel) and never answers
    t = HttpTransport(f"http://127.0.0.1:{silent.getsockname()[1]}", vendor="tcaplus", retry=once, timeout=0.3)
    with pytest.raises(TransportError, match=r": GET /r: timed out waiting for the reply$"):
        t.send("GET", "/r", idempotent=True)
    with pytest.raises(TransportError, match=r": POST /w: timed out waiting for the reply; the outcome is unknown$"):
        t.send("POST", "/w", idempotent=False, content=b"{}")
    silent.close()

    hangup = socket.socket()
    hangup.bind(("127.0.0.1", 0))
    hangup.listen(8)

    def serve() -> None:
        for _ in range(2):
            conn, _ = hangup.accept()
            conn.recv(65536)
            conn.close()  # reads the request, closes without a reply

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    t = HttpTransport(f"http://127.0.0.1:{hangup.getsockname()[1]}", vendor="jdb", retry=once, timeout=2)
    with pytest.raises(TransportError, match=r": POST /apiRequest.do: the connection closed without a reply$"):
        t.send("POST", "/apiRequest.do", idempotent=True, data={"a": "1"}, write=False)
    with pytest.raises(TransportError, match=r"closed without a reply; the outcome is unknown$"):
        t.send("POST", "/apiRequest.do", idempotent=False, data={"a": "1"})
    th.join(5)
    hangup.close()


def test_a_saved_plan_applied_with_markdown_output_keeps_a_readable_journal(bp: Workspace) -> None:
    from reconciler.engine.journal import read_journal

    accounts_file(bp, ["game01", "game02"])
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    res = bp.cli("apply", "plan.json", "--format", "markdown", "--journal", "run.jsonl")
    assert res.exit_code == 0, res.stdout + res.stderr
    recs = journal(bp.root / "run.jsonl")
    assert [r["type"] for r in recs][0] == "run" and recs[-1]["type"] == "end"
    state = read_journal(bp.root / "run.jsonl")
    assert state.complete and state.approved == {"ProxyAccount/game01", "ProxyAccount/game02"}
    accounts_file(bp, ["game01", "game02", "game03"])
    again = bp.cli("apply", "--auto-approve", "--journal", "run.jsonl")  # a finished journal may be reused
    assert again.exit_code == 0, again.stdout + again.stderr
