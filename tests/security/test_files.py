"""File confinement, secret scoping and loader hardening, attacked through the real CLI.

Every file a pull request can name (manifest ``file:`` secrets, TcaplusDB data files, JDB
``playersFile``, ``.proto`` schemas) must resolve inside the workspace root, be a regular file and
stay under its size limit; errors point at ``file:line:col`` and never quote the target."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.security.conftest import (
    TCAPLUS_PROTOS,
    TC_PASSWORD,
    Emulators,
    Repo,
    Run,
    account,
    config_text,
    event_doc,
    players_record,
    records_doc,
)

PROTO = (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8")


def _error(r: Run, pattern: str) -> None:
    assert r.code == 1, r.output
    assert re.search(pattern, r.stderr, re.M), r.stderr
    assert "Traceback" not in r.stderr


def _symlink(configured_repo: Repo, rel: str, target: str | Path) -> Path:
    link = configured_repo.root / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


# -- confinement ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["file:../../outside.txt", "file:{abs}", "file:link.txt"])
def test_manifest_secret_file_outside_the_root_is_refused(configured_repo: Repo, ref: str) -> None:
    outside = configured_repo.root.parent / "outside.txt"
    _symlink(configured_repo, "manifests/link.txt", outside)
    configured_repo.write("manifests/a.yaml", account(password=ref.format(abs=outside)))
    r = configured_repo.run("plan", "--format", "markdown")
    _error(
        r,
        r"^error: manifests/a\.yaml:6:13: ProxyAccount/pr01 spec\.password: secret reference file:.*"
        r"resolves outside the workspace root",
    )
    configured_repo.assert_no_secret(r)


def test_players_file_outside_the_root_is_refused_and_never_quoted(configured_repo: Repo) -> None:
    configured_repo.write("manifests/e.yaml", event_doc(players_file="../../outside.txt"))
    r = configured_repo.run("plan", "--format", "markdown")
    _error(
        r,
        r"^error: manifests/e\.yaml:\d+:\d+: FreeSpinEvent/pr-event spec\.playersFile: cannot read players file "
        r"outside\.txt: resolves outside the workspace root",
    )
    configured_repo.assert_no_secret(r)


def test_players_file_symlinked_out_of_the_root_is_refused(configured_repo: Repo) -> None:
    _symlink(configured_repo, "manifests/players.txt", configured_repo.root.parent / "outside.txt")
    configured_repo.write("manifests/e.yaml", event_doc(players_file="players.txt"))
    r = configured_repo.run("validate")
    _error(r, r"spec\.playersFile: cannot read players file players\.txt: resolves outside the workspace root")
    configured_repo.assert_no_secret(r)


def test_data_file_outside_the_root_is_refused(configured_repo: Repo) -> None:
    configured_repo.write("manifests/r.yaml", records_doc("r", file="../../outside.txt"))
    r = configured_repo.run("plan")
    _error(
        r,
        r"^error: manifests/r\.yaml:1:\d+: TcaplusRecords/r spec\.file: data file .*outside\.txt: "
        r"resolves outside the workspace root",
    )
    configured_repo.assert_no_secret(r)


@pytest.mark.parametrize("proto", ["../outside.txt", "{abs}", "tables/evil.proto"])
def test_proto_outside_the_root_is_refused_and_never_quoted(configured_repo: Repo, emulators: Emulators, proto: str) -> None:
    outside = configured_repo.root.parent / "outside.txt"
    _symlink(configured_repo, "tables/evil.proto", outside)
    configured_repo.write(
        "reconciler.yaml", config_text(emulators, tables=f"game_players: {{proto: {proto.format(abs=outside)}}}")
    )
    configured_repo.write("manifests/r.yaml", records_doc("r", [players_record(1)]))
    r = configured_repo.run("plan", "--format", "markdown")
    _error(
        r,
        r"^error: reconciler\.yaml:\d+:\d+: Config providers\.tcaplus\.tables\.game_players\.proto: "
        r"resolves outside the workspace root",
    )
    configured_repo.assert_no_secret(r)


def test_the_sandbox_does_not_read_a_proto_outside_the_root(configured_repo: Repo, emulators: Emulators) -> None:
    configured_repo.write("reconciler.yaml", config_text(emulators, tables="game_players: {proto: ../outside.txt}"))
    configured_repo.write("manifests/r.yaml", records_doc("r", [players_record(1)]))
    r = configured_repo.run("plan", "--sandbox")
    assert r.code == 1 and "resolves outside the workspace root" in r.stderr, r.output
    configured_repo.assert_no_secret(r)


def test_root_flag_widens_or_narrows_the_root(configured_repo: Repo) -> None:
    (configured_repo.root.parent / "pw.txt").write_text("Shared1234\n", encoding="utf-8")
    configured_repo.write("manifests/a.yaml", account(password="file:../../pw.txt"))
    assert "resolves outside the workspace root" in configured_repo.run("validate").stderr
    wide = configured_repo.run("validate", "--root", str(configured_repo.root.parent))
    assert wide.code == 0, wide.output


def test_config_secret_may_be_a_mounted_ci_secret_outside_the_root(configured_repo: Repo, emulators: Emulators) -> None:
    configured_repo.write(
        "reconciler.yaml",
        config_text(emulators).replace("app_key: env:BESTPROXY_APP_KEY", f"app_key: file:{configured_repo.ci / 'app_key'}"),
    )
    configured_repo.write("manifests/a.yaml", account())
    r = configured_repo.run("plan", "--out", "plan.json")
    assert r.code == 0, r.output
    configured_repo.assert_no_secret(r)


@pytest.mark.parametrize("where", ["manifest", "config"])
def test_dev_zero_as_a_secret_is_refused_quickly(configured_repo: Repo, emulators: Emulators, where: str) -> None:
    if where == "manifest":
        configured_repo.write("manifests/a.yaml", account(password="file:/dev/zero"))
        args = ["validate", "--root", "/"]
    else:
        configured_repo.write(
            "reconciler.yaml", config_text(emulators).replace("password: env:TCAPLUS_APP_KEY", "password: file:/dev/zero")
        )
        configured_repo.write("manifests/r.yaml", records_doc("r", [players_record(1)]))
        args = ["plan"]
    r = configured_repo.run(*args, timeout=60)  # bounded: a read until MemoryError would time out
    _error(r, r"secret reference file:/dev/zero: /dev/zero: not a regular file")


def test_fifo_and_oversized_files_are_refused(configured_repo: Repo) -> None:
    os.mkfifo(configured_repo.root / "manifests-fifo")
    (configured_repo.root / "manifests").mkdir()
    os.symlink(configured_repo.root / "manifests-fifo", configured_repo.root / "manifests" / "pipe.yaml")
    with open(configured_repo.root / "manifests" / "big.yaml", "wb") as fh:
        fh.truncate(9 * 1024 * 1024)  # sparse, over the 8 MiB manifest limit
    r = configured_repo.run("validate", timeout=60)
    _error(r, r"^error: manifests/pipe\.yaml:1:1: not a regular file")
    assert re.search(r"^error: manifests/big\.yaml:1:1: larger than the 8 MiB limit for a manifest", r.stderr, re.M)


def test_a_symlinked_config_out_of_the_workspace_is_refused(repo: Repo) -> None:
    os.symlink(repo.root.parent / "outside.txt", repo.root / "reconciler.yaml")
    repo.write("manifests/a.yaml", account())
    r = repo.run("validate")
    _error(r, r"^error: reconciler\.yaml:1:1: resolves outside the workspace root")
    repo.assert_no_secret(r)


# -- secret scoping ------------------------------------------------------------------------------
def test_a_provider_credential_cannot_be_a_resource_value(configured_repo: Repo, emulators: Emulators) -> None:
    configured_repo.write("manifests/a.yaml", account(password="env:TCAPLUS_APP_KEY"))
    r = configured_repo.run("plan")
    _error(
        r,
        r"^error: manifests/a\.yaml:6:13: ProxyAccount/pr01 spec\.password: secret reference env:TCAPLUS_APP_KEY: "
        r"TCAPLUS_APP_KEY holds a provider credential",
    )
    assert emulators.bestproxy.emulator.stats == {} or sum(emulators.bestproxy.emulator.stats.values()) == 0
    configured_repo.assert_no_secret(r)


def test_a_credential_under_another_name_or_file_is_still_refused(configured_repo: Repo, emulators: Emulators) -> None:
    """By value: the same credential behind an allowed env name, or in a file inside the root."""
    configured_repo.write("secrets/tc.txt", TC_PASSWORD)
    configured_repo.write(
        "manifests/a.yaml",
        account(password="env:RECONCILER_SECRET_COPY") + "---\n" + account("pr02", password="file:../secrets/tc.txt"),
    )
    r = configured_repo.run("plan", RECONCILER_SECRET_COPY=TC_PASSWORD)
    assert r.code == 1, r.output
    assert r.stderr.count("its value is a provider credential") == 2, r.stderr
    configured_repo.assert_no_secret(r)


def test_manifests_reference_only_the_env_names_meant_for_them(configured_repo: Repo, emulators: Emulators) -> None:
    configured_repo.write("manifests/a.yaml", account(password="env:DATABASE_PASSWORD"))
    r = configured_repo.run("validate", DATABASE_PASSWORD="DbCanary123")
    _error(
        r,
        r"secret reference env:DATABASE_PASSWORD: manifests may reference only environment variables matching "
        r"settings\.manifest_secret_env \(RECONCILER_\*\)",
    )
    assert "DbCanary123" not in r.output
    configured_repo.write("reconciler.yaml", config_text(emulators, extra="settings:\n  manifest_secret_env: [PROXY_PW_*]\n"))
    configured_repo.write("manifests/a.yaml", account(password="env:PROXY_PW_PR01"))
    ok = configured_repo.run("validate", PROXY_PW_PR01="Declared123")
    assert ok.code == 0, ok.output


def test_no_message_reveals_a_secret_length(configured_repo: Repo) -> None:
    configured_repo.write("manifests/a.yaml", account(password="env:RECONCILER_SECRET_SHORT"))
    # --resolve-secrets: validate is offline by default (issue #12) and reads no value
    r = configured_repo.run("validate", "--resolve-secrets", RECONCILER_SECRET_SHORT="abc")
    _error(r, r"spec\.password: the password behind env:RECONCILER_SECRET_SHORT must be 6-16 characters$")
    assert "3" not in r.stderr.split("must be 6-16 characters", 1)[1]


# -- loader ----------------------------------------------------------------------------------------
def test_a_broken_symlink_or_loop_among_manifests_is_an_error_not_a_prune(configured_repo: Repo) -> None:
    configured_repo.write("manifests/a.yaml", account())
    _symlink(configured_repo, "manifests/gone.yaml", configured_repo.root / "nowhere.yaml")
    _symlink(configured_repo, "manifests/loop1.yaml", configured_repo.root / "manifests" / "loop2.yaml")
    _symlink(configured_repo, "manifests/loop2.yaml", configured_repo.root / "manifests" / "loop1.yaml")
    r = configured_repo.run("validate")
    assert r.code == 1, r.output
    assert "manifests/gone.yaml:1:1: broken symlink (its target does not exist)" in r.stderr
    assert "manifests/loop1.yaml:1:1: symlink loop" in r.stderr and "manifests/loop2.yaml:1:1: symlink loop" in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file without read permission")
def test_an_unreadable_manifest_is_an_error(configured_repo: Repo) -> None:
    path = configured_repo.write("manifests/a.yaml", account())
    path.chmod(0)
    r = configured_repo.run("validate")
    _error(r, r"^error: manifests/a\.yaml:1:1: permission denied")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, r"more than 1000 alias uses \(\*name\) in one document"),
        ("a: &a [*a]\n", r"recursive alias"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", r"nested deeper than 64 levels"),
    ],
)
def test_yaml_alias_bombs_and_deep_nesting_are_bounded(configured_repo: Repo, text: str, message: str) -> None:
    configured_repo.write("manifests/bomb.yaml", text)
    r = configured_repo.run("validate", timeout=60)
    _error(r, rf"^error: manifests/bomb\.yaml:\d+:\d+: .*{message}")


@pytest.mark.parametrize(
    ("remark", "char"),
    [
        ("ok\\0evil", "U+0000"),
        ("safe\\u202egnp.exe", "U+202E"),
        ("a\\u2066b", "U+2066"),
        ("a\\x1bb", "U+001B"),
    ],
)
def test_control_and_bidi_characters_are_refused_in_manifest_strings(configured_repo: Repo, remark: str, char: str) -> None:
    configured_repo.write("manifests/a.yaml", account().replace('remark: "from a PR"', f'remark: "{remark}"'))
    r = configured_repo.run("validate")
    _error(
        r, rf"^error: manifests/a\.yaml:8:11: spec\.remark: (bidirectional )?control character {re.escape(char)} is not allowed"
    )


def test_control_characters_are_refused_in_record_strings_and_players_files(configured_repo: Repo) -> None:
    configured_repo.write(
        "manifests/data/p.jsonl", '{"player_id": 1, "player_name": "p\\u202e1", "player_email": "e", "game_server_id": 1}\n'
    )
    configured_repo.write("manifests/r.yaml", records_doc("r", file="data/p.jsonl"))
    configured_repo.write("manifests/players.txt", "player00001\nplayer\u202e00002\n")
    configured_repo.write("manifests/e.yaml", event_doc(players_file="players.txt"))
    r = configured_repo.run("validate")
    assert r.code == 1, r.output
    assert "manifests/data/p.jsonl:1:1: TcaplusRecords/r player_name: bidirectional control character U+202E" in r.stderr
    assert "cannot read players file players.txt: line 2: bidirectional control character U+202E" in r.stderr


def test_control_characters_in_live_values_are_shown_escaped(configured_repo: Repo, emulators: Emulators) -> None:
    """Live values come from the vendor, not from validated manifests: plans show them escaped."""
    import httpx

    from tests.security.conftest import BP_APP_KEY

    r = httpx.post(
        emulators.bestproxy.url + "/gateway/whitelist-account/add",
        json={"app_key": BP_APP_KEY, "accounts": "pr01:Other1234", "product_type": 9, "remark": "ok\u202etxt.exe"},
    )
    assert r.json()["code"] == 200, r.text
    configured_repo.write("manifests/a.yaml", account(remark="ok"))
    for fmt in ("text", "markdown"):
        out = configured_repo.run("plan", "--format", fmt)
        assert out.code == 0, out.output
        assert "\u202e" not in out.stdout and "u202e" in out.stdout, out.stdout


def test_a_file_name_with_a_refused_character_is_shown_escaped(configured_repo: Repo, emulators: Emulators) -> None:
    """File names are not judged by the string rules (a pull request may name a file anything), so
    every output that names one shows its refused characters escaped: plans (text, Markdown and
    JSON, where the escape reads back as the same value), apply's lines and error lines."""
    configured_repo.write("manifests/a\u202eyaml.txt.yaml", account(remark="ok"))
    out = configured_repo.run("plan", "--format", "json")
    assert out.code in (0, 2) and "\u202e" not in out.stdout, out.output
    assert json.loads(out.stdout)["changes"][0]["source"] == "manifests/a\u202eyaml.txt.yaml:1"  # the same value
    shown = {"plan": "a\\u202eyaml.txt.yaml", "markdown": "a&#92;u202eyaml.txt.yaml", "apply": "a\\u202eyaml.txt.yaml"}
    for args in (("plan",), ("plan", "--format", "markdown"), ("apply", "--auto-approve")):
        out = configured_repo.run(*args)
        assert out.code in (0, 2), out.output
        assert "\u202e" not in out.stdout + out.stderr, args
        assert shown[args[-1] if args[-1] == "markdown" else args[0]] in out.stdout, (args, out.stdout)
    configured_repo.write("manifests/a\u202eyaml.txt.yaml", account(remark="ok") + "  bogus: 1\n")
    out = configured_repo.run("validate")
    assert out.code == 1 and "\u202e" not in out.stderr and "manifests/a\\u202eyaml.txt.yaml:" in out.stderr, out.stderr


def test_a_proto_import_leaving_the_workspace_is_refused(configured_repo: Repo) -> None:
    """Imports are never read; one that names a path outside the workspace is an error."""
    configured_repo.write(
        "tables/game_players.proto",
        PROTO.replace(
            'import "tcaplusservice.optionv1.proto";', 'import "tcaplusservice.optionv1.proto";\nimport "../../outside.txt";'
        ),
    )
    configured_repo.write("manifests/r.yaml", records_doc("r", [players_record(1)]))
    r = configured_repo.run("validate")
    _error(
        r,
        r"^error: tables/game_players\.proto:1:1: import '\.\./\.\./outside\.txt': imports must be "
        r"relative paths inside the workspace",
    )
    configured_repo.assert_no_secret(r)


def test_a_deeply_nested_json_lines_record_is_an_input_error(configured_repo: Repo) -> None:
    configured_repo.write("manifests/data/deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n")
    configured_repo.write("manifests/r.yaml", records_doc("r", file="data/deep.jsonl"))
    r = configured_repo.run("validate")
    _error(r, r"^error: manifests/data/deep\.jsonl:1:1: TcaplusRecords/r: invalid JSON: nested too deep")


def test_a_named_connections_credential_is_never_a_resource_value(configured_repo: Repo, emulators: Emulators) -> None:
    """Even when its env name matches settings.manifest_secret_env."""
    configured_repo.write(
        "reconciler.yaml",
        config_text(
            emulators,
            extra=f"""\
connections:
  bestproxy:
    eu:
      base_url: {emulators.bestproxy.url}
      app_key: env:RECONCILER_SECRET_EU_APP_KEY
""",
        ),
    )
    configured_repo.write("manifests/a.yaml", account(password="env:RECONCILER_SECRET_EU_APP_KEY"))
    r = configured_repo.run("validate", RECONCILER_SECRET_EU_APP_KEY="EuAppKey12345")
    _error(
        r,
        r"spec\.password: secret reference env:RECONCILER_SECRET_EU_APP_KEY: RECONCILER_SECRET_EU_APP_KEY holds "
        r"a provider credential",
    )
    assert "EuAppKey12345" not in r.output


def test_symlinked_and_unlistable_manifest_folders_are_never_skipped_silently(configured_repo: Repo) -> None:
    configured_repo.write("manifests/a.yaml", account())
    configured_repo.write("shared/b.yaml", account("pr02"))
    (configured_repo.root.parent / "elsewhere").mkdir()
    (configured_repo.root.parent / "elsewhere" / "c.yaml").write_text(account("pr03"), encoding="utf-8")
    _symlink(configured_repo, "manifests/shared", configured_repo.root / "shared")  # inside the root: followed
    _symlink(configured_repo, "manifests/outside", configured_repo.root.parent / "elsewhere")  # outside: an error
    _symlink(configured_repo, "manifests/loop", configured_repo.root / "manifests")  # a loop: walked once
    r = configured_repo.run("validate")
    assert r.code == 1, r.output
    assert r.stderr.strip().splitlines() == [
        f"error: manifests/outside:1:1: a symlinked folder that resolves outside the workspace root ({configured_repo.root})"
    ]
    (configured_repo.root / "manifests" / "outside").unlink()
    ok = configured_repo.run("validate")
    assert ok.code == 0 and "Valid: 2 resource(s)" in ok.stdout, ok.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists a folder without read permission")
def test_an_unlistable_manifest_folder_is_an_error(configured_repo: Repo) -> None:
    configured_repo.write("manifests/sub/a.yaml", account())
    (configured_repo.root / "manifests" / "sub").chmod(0)
    try:
        r = configured_repo.run("validate")
    finally:
        (configured_repo.root / "manifests" / "sub").chmod(0o755)
    _error(r, r"^error: manifests/sub:1:1: cannot list the folder: Permission denied")


def test_a_nul_in_a_secret_path_is_an_input_error(configured_repo: Repo) -> None:
    configured_repo.write("manifests/a.yaml", account(password='"file:pw\\0.txt"'))
    r = configured_repo.run("validate")
    assert r.code == 1 and "internal error" not in r.stderr, r.output
    assert "control character U+0000 is not allowed" in r.stderr


def test_ci_platform_variables_stay_out_of_reach_even_with_widened_patterns(configured_repo: Repo, emulators: Emulators) -> None:
    """A pull request can widen settings.manifest_secret_env in its own config; the CI platform's
    tokens stay unreachable anyway (RECONCILER_CONNECTIONS_FROM also takes the patterns from the
    target branch)."""
    configured_repo.write("reconciler.yaml", config_text(emulators, extra="settings:\n  manifest_secret_env: ['*']\n"))
    configured_repo.write(
        "manifests/a.yaml", account(password="env:GITHUB_TOKEN") + "---\n" + account("pr02", password="env:CI_JOB_TOKEN")
    )
    r = configured_repo.run("validate", GITHUB_TOKEN="ghsCanary123456", CI_JOB_TOKEN="glcCanary123456")
    assert r.code == 1, r.output
    assert r.stderr.count("belongs to the CI platform or a cloud SDK; manifests cannot use it") == 2, r.stderr
    assert "Canary123456" not in r.output
