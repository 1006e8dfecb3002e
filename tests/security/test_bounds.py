"""Bounds per run (issue #21 item 6), attacked through the real CLI.

YAML aliases, values and expanded size are bounded per file and per run; problems and printed
lines are capped per file with a count of the rest; data files are streamed with memory bounded by
their size; deep ``.proto`` nesting is a ``file:line`` error; confinement opens files from a
descriptor of the workspace root without following symlinks and refuses files with a second hard
link. Memory is measured as the peak RSS of a subprocess (``resource.getrusage``), never a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import MAX_PROBLEMS_PER_FILE, InputError
from reconciler.manifest import confine, yamlload
from tests.security.conftest import (
    OUTSIDE_TEXT,
    TCAPLUS_PROTOS,
    Repo,
    Run,
    config_text,
    event_doc,
    records_doc,
)

PROTO = (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8")
MiB = 1024 * 1024

# The peak is this process's own: VmHWM of /proc/self/status (its memory map, new at exec).
# getrusage(RUSAGE_SELF).ru_maxrss is not: Linux carries the high-water mark of the memory map
# replaced by exec into it, so a child started from a large test worker reported the worker's RSS.
RSS_WRAPPER = """\
import resource, sys
from reconciler.cli import cli
code = 0
try:
    cli(sys.argv[1:], prog_name="reconciler")
except SystemExit as exc:
    code = exc.code
try:
    with open("/proc/self/status", encoding="ascii") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"peak-rss-kib {peak}", file=sys.stderr)
sys.exit(code)
"""


def _measured(configured_repo: Repo, *args: str) -> tuple[Run, int]:
    """The CLI in a subprocess, and its peak RSS in MiB."""
    wrapper = configured_repo.root.parent / "rss_wrapper.py"
    wrapper.write_text(RSS_WRAPPER, encoding="utf-8")
    p = subprocess.run(
        [sys.executable, str(wrapper), *args],
        cwd=configured_repo.root,
        env=configured_repo.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    m = re.search(r"^peak-rss-kib (\d+)$", p.stderr, re.M)
    assert m, p.stderr[-2000:]
    stderr = p.stderr[: m.start()] + p.stderr[m.end() + 1 :]
    return Run(p.returncode, p.stdout, stderr), int(m.group(1)) // 1024


def _errors(r: Run) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("error: ")]


# -- (a) YAML: aliases, values and expanded size per file and per run ---------------------------------
def _fan_out_doc(i: int) -> str:
    """One document whose aliases expand to about 91,000 values: under the bound of one document
    of earlier versions; 40 of them in 22 KB ended in MemoryError."""
    return (
        f"apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {{name: b{i}}}\nspec:\n  username: b{i}\n"
        "  a: &a [" + ", ".join(["x"] * 100) + "]\n"
        "  b: &b [" + ", ".join(["*a"] * 30) + "]\n"
        "  c: [" + ", ".join(["*b"] * 30) + "]\n"
    )


def test_an_alias_bomb_over_40_documents_is_one_error_in_bounded_memory(configured_repo: Repo) -> None:
    configured_repo.write("manifests/bomb.yaml", "---\n".join(_fan_out_doc(i) for i in range(40)))
    assert (configured_repo.root / "manifests" / "bomb.yaml").stat().st_size < 32 * 1024
    r, rss = _measured(configured_repo, "validate")
    assert r.code == 1, r.output
    assert "Traceback" not in r.output and "MemoryError" not in r.output
    bombs = [line for line in _errors(r) if "alias" in line]
    assert bombs == [bombs[0]] and re.match(
        r"^error: manifests/bomb\.yaml:\d+:\d+: spec\.c\[\d+\]\[\d+\]\[\d+\]: aliases expand to more than 100,000 "
        r"values \(alias bomb\?\)$",
        bombs[0],
    ), r.stderr
    assert rss < 200, f"peak RSS {rss} MiB"  # about 60 MiB; earlier versions: 870 MiB, then MemoryError


def test_alias_fan_out_spread_over_files_hits_the_run_budget(configured_repo: Repo) -> None:
    # each file stays under its own bound (100,000 values); together they pass the run's (250,000)
    for i in range(5):
        configured_repo.write(f"manifests/f{i}.yaml", _fan_out_doc(i))
    r = configured_repo.run("validate")
    assert r.code == 1, r.output
    run_wide = [line for line in _errors(r) if "in this run" in line]
    assert run_wide and all(
        re.match(
            r"^error: manifests/f[234]\.yaml:\d+:\d+: spec\.[bc](\[\d+\])+: aliases expand to "
            r"more than 250,000 values in this run \(all files read so far\) \(alias bomb\?\)$",
            line,
        )
        for line in run_wide
    ), r.stderr
    assert "manifests/f0.yaml" not in "".join(run_wide) and "manifests/f1.yaml" not in "".join(run_wide)
    # a new run starts with a full budget: the first two files alone are fine as YAML
    for i in range(2, 5):
        (configured_repo.root / "manifests" / f"f{i}.yaml").unlink()
    assert not [line for line in _errors(configured_repo.run("validate")) if "alias" in line]


def test_the_run_budget_is_shared_by_files_and_reset_per_run() -> None:
    one = "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 90) + "]\n"  # 90,090 values
    yamlload.start_run()
    try:
        assert [str(p) for p in yamlload.load_documents(one, "1.yaml")[1]] == []
        assert [str(p) for p in yamlload.load_documents(one, "2.yaml")[1]] == []
        third = [str(p) for p in yamlload.load_documents(one, "3.yaml")[1]]
        assert third and re.match(r"^3\.yaml:\d+:\d+: b\[\d+\]\[\d+\]: ", third[0]) and "250,000 values in this run" in third[0]
        spent = yamlload.run_spent()
        assert spent is not None and spent.alias_nodes <= yamlload.RUN_BUDGET.alias_nodes + 1
        yamlload.start_run()
        assert [str(p) for p in yamlload.load_documents(one, "4.yaml")[1]] == []
    finally:
        yamlload.end_run()
    # outside a run (a library call) only the per-file budget applies
    assert all(yamlload.load_documents(one, f"{i}.yaml")[1] == [] for i in range(4))


def test_a_long_string_aliased_many_times_is_bounded_by_expanded_size() -> None:
    text = "s: &s " + "x" * (1 * MiB) + "\nl: [" + ", ".join(["*s"] * 100) + "]\n"  # 100 MiB once expanded
    problems = [str(p) for p in yamlload.load_documents(text, "s.yaml")[1]]
    assert len(problems) == 1 and re.match(r"^s\.yaml:\d+:\d+: l\[\d+\]: strings expand to more than 64 MiB", problems[0])


# -- (b) problems and printed lines capped per file ---------------------------------------------------
def test_problems_of_one_yaml_file_are_capped_with_a_count_of_the_rest(configured_repo: Repo) -> None:
    configured_repo.write("manifests/dup.yaml", "k: 1\n" + "".join("k: 2\n" for _ in range(2_000)))
    r = configured_repo.run("validate")
    lines = [line for line in _errors(r) if "manifests/dup.yaml" in line]
    assert len(lines) == MAX_PROBLEMS_PER_FILE + 1, r.stderr
    m = re.match(r"^error: \.\.\. and ([\d,]+) more problems in manifests/dup\.yaml$", lines[-1])
    assert m and int(m.group(1).replace(",", "")) >= 1_900, lines[-1]  # 2,000 duplicates, and the missing fields


def test_printed_lines_are_capped_per_file_whatever_made_the_problems() -> None:
    from reconciler.errors import Problem

    problems = [Problem("a.yaml", n, 1, "", "", "bad") for n in range(1, 251)] + [Problem("b.yaml", 1, 1, "", "", "bad")]
    lines = InputError(problems).lines()
    assert lines[:2] == ["a.yaml:1:1: bad", "a.yaml:2:1: bad"] and "b.yaml:1:1: bad" in lines
    assert lines[-1] == "... and 150 more problems in a.yaml" and len(lines) == MAX_PROBLEMS_PER_FILE + 2


def test_a_players_file_of_bad_lines_is_capped(configured_repo: Repo) -> None:
    configured_repo.write("manifests/players.txt", "".join(f"bad player {i}\n" for i in range(5_000)))
    configured_repo.write("manifests/e.yaml", event_doc(players_file="players.txt"))
    r = configured_repo.run("validate")
    assert r.code == 1
    lines = [line for line in _errors(r) if "players.txt" in line]
    assert len(lines) == MAX_PROBLEMS_PER_FILE + 1, r.stderr
    assert lines[-1].endswith("spec.playersFile: ... and 4,900 more problems in players.txt"), lines[-1]


# -- (c) data files streamed, memory bounded by their size --------------------------------------------
@pytest.mark.parametrize("line", ["{}", '{"a":0}', "1"])
def test_a_2_mib_json_lines_file_stays_under_200_mb_and_prints_a_capped_count(configured_repo: Repo, line: str) -> None:
    count = 2 * MiB // (len(line) + 1)
    (configured_repo.root / "manifests").mkdir()
    (configured_repo.root / "manifests" / "seed.jsonl").write_text((line + "\n") * count, encoding="utf-8")
    configured_repo.write("manifests/r.yaml", records_doc("r", file="seed.jsonl"))
    r, rss = _measured(configured_repo, "validate")
    assert r.code == 1 and "Traceback" not in r.output
    lines = [x for x in _errors(r) if "seed.jsonl" in x]
    assert len(lines) == MAX_PROBLEMS_PER_FILE + 1, lines[-3:]
    m = re.match(r"^error: \.\.\. and ([\d,]+) more problems in manifests/seed\.jsonl$", lines[-1])
    assert m and int(m.group(1).replace(",", "")) >= count - MAX_PROBLEMS_PER_FILE, lines[-1]
    assert rss < 200, f"peak RSS {rss} MiB"  # earlier versions: 1.6 GB and 2.8 million lines for {}


def test_a_data_file_that_is_not_utf8_is_one_line(configured_repo: Repo) -> None:
    (configured_repo.root / "manifests").mkdir()
    (configured_repo.root / "manifests" / "seed.jsonl").write_bytes(b'{"player_id": 1}\n{"a": "\xff"}\n')
    configured_repo.write("manifests/r.yaml", records_doc("r", file="seed.jsonl"))
    r = configured_repo.run("validate")
    assert r.code == 1
    assert re.search(r"^error: manifests/seed\.jsonl:2:1: TcaplusRecords/r: not UTF-8 text", r.stderr, re.M), r.stderr


# -- (d) deep .proto nesting ----------------------------------------------------------------------------
def test_3000_nested_proto_messages_are_a_file_line_error(configured_repo: Repo) -> None:
    depth = 3_000
    configured_repo.write(
        "tables/deep.proto",
        'syntax = "proto3";\n' + "".join(f"message M{i} {{\n" for i in range(depth)) + "int32 x = 1;\n" + "}\n" * depth,
    )
    configured_repo.write("reconciler.yaml", config_text(None, tables="deep: {proto: tables/deep.proto, message: M0}"))
    configured_repo.write("manifests/r.yaml", records_doc("r", [{"x": 1}]).replace("game_players", "deep"))
    r = configured_repo.run_process("validate")
    assert r.code == 1, r.output
    assert "Traceback" not in r.output and "RecursionError" not in r.output
    # the 33rd "message M32 {" is on line 34; its brace in column 13
    assert re.search(r"^error: tables/deep\.proto:34:13: .*nested deeper than 32 levels", r.stderr, re.M), r.stderr


def test_braces_in_comments_and_strings_do_not_count_as_nesting() -> None:
    from reconciler.vendors.tcaplus.protoschema import parse_proto

    text = (
        'syntax = "proto2";\n// ' + "{" * 100 + "\n/* " + "{" * 100 + " */\n"
        'message T { optional string s = 1 [default = "' + "{" * 100 + '"]; }\n'
    )
    assert "T" in parse_proto(text, file="t.proto").messages


# -- (e) confinement from a root descriptor; hard links ---------------------------------------------------
def test_a_hard_link_to_a_file_outside_the_workspace_is_refused(configured_repo: Repo) -> None:
    (configured_repo.root / "manifests").mkdir()
    os.link(configured_repo.root.parent / "outside.txt", configured_repo.root / "manifests" / "players.txt")
    configured_repo.write("manifests/e.yaml", event_doc(players_file="players.txt"))
    r = configured_repo.run("validate")
    assert r.code == 1, r.output
    assert re.search(
        r"^error: manifests/e\.yaml:\d+:\d+: FreeSpinEvent/pr-event spec\.playersFile: cannot read players "
        r"file players\.txt: has 2 hard links; a file named by manifests and config must have one",
        r.stderr,
        re.M,
    ), r.stderr
    assert OUTSIDE_TEXT not in r.output


def test_a_hard_linked_manifest_is_refused(configured_repo: Repo) -> None:
    outside = configured_repo.root.parent / "outside.yaml"
    outside.write_text(
        textwrap.dedent("""\
        apiVersion: reconciler/v1
        kind: ProxyAccount
        metadata: {name: outside}
        spec: {username: outside, password: env:RECONCILER_SECRET_PW, productType: 9}
        """),
        encoding="utf-8",
    )
    (configured_repo.root / "manifests").mkdir()
    os.link(outside, configured_repo.root / "manifests" / "a.yaml")
    r = configured_repo.run("validate")
    assert r.code == 1
    assert re.search(r"^error: manifests/a\.yaml:1:1: has 2 hard links", r.stderr, re.M), r.stderr


def test_a_symlinked_folder_component_out_of_the_workspace_is_refused(configured_repo: Repo) -> None:
    elsewhere = configured_repo.root.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "players.txt").write_text(OUTSIDE_TEXT + "\n", encoding="utf-8")
    (configured_repo.root / "manifests").mkdir()
    os.symlink(elsewhere, configured_repo.root / "manifests" / "data")
    configured_repo.write("manifests/e.yaml", event_doc(players_file="data/players.txt"))
    r = configured_repo.run("validate")
    assert r.code == 1
    assert re.search(
        r"spec\.playersFile: cannot read players file players\.txt: resolves outside the workspace root", r.stderr
    ), r.stderr
    assert OUTSIDE_TEXT not in r.output


def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The swap happens exactly between the path check and the open (the check resolves the path;
    the swap is done right after it): the open, component by component from the root's descriptor
    with O_NOFOLLOW, refuses the symlink instead of reading the file outside."""
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "data" / "players.txt").write_text("inside\n", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "players.txt").write_text(OUTSIDE_TEXT + "\n", encoding="utf-8")
    real_realpath = os.path.realpath
    swapped = []

    def realpath_then_swap(path: object, *args: object, **kwargs: object) -> str:
        result = real_realpath(path, *args, **kwargs)  # type: ignore[arg-type]
        if str(path).endswith("players.txt") and not swapped:
            os.rename(root / "data", root / "data.old")
            os.symlink(outside, root / "data")
            swapped.append(True)
        return result

    old = confine.get_root()
    confine.set_root(root)
    try:
        monkeypatch.setattr(confine.os.path, "realpath", realpath_then_swap)
        with pytest.raises(confine.ConfinementError) as err:
            confine.read_bytes(root / "data" / "players.txt", what="players file")
    finally:
        monkeypatch.undo()
        confine.set_root(old)
    assert swapped
    assert "changed while being opened" in err.value.reason and OUTSIDE_TEXT not in str(err.value)


# -- deep JSON in files the CLI reads back (a saved plan from the artifact store, a journal) -----------
def test_a_deeply_nested_plan_file_is_one_line_not_a_recursion_error(configured_repo: Repo) -> None:
    (configured_repo.root / "plan.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    r = configured_repo.run_process("show", "plan.json")
    assert r.code == 1 and "Traceback" not in r.output and "internal error" not in r.output, r.output
    assert r.stderr.splitlines() == ["error: plan.json: not a readable plan file (RecursionError)"]


def test_a_deeply_nested_journal_line_is_one_line_not_a_recursion_error(configured_repo: Repo) -> None:
    (configured_repo.root / "run.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    r = configured_repo.run_process("apply", "--resume", "run.jsonl")
    assert r.code == 1 and "Traceback" not in r.output and "internal error" not in r.output, r.output
    assert r.stderr.splitlines() == ["error: run.jsonl: not an apply journal (no run record)"]
