"""One small manifest per bad FreeSpinEvent input (tests/jdb/bad/): rejected with file:line:col,
the resource, the field and the rule; exit 1; no API call."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import JdbWorkspace

BAD = Path(__file__).parent / "bad"
DATA_FILES = ("bad-players.txt",)

# file -> [(line:col, fragments of the error line)], one entry per expected error line
CASES: dict[str, list[tuple[str, list[str]]]] = {
    "name_too_long.yaml": [("6:9", ["FreeSpinEvent/nl", "spec.name", "at most 70 characters"])],
    "empty_agent.yaml": [("7:10", ["FreeSpinEvent/ag", "spec.agent", "at least 1 character"])],
    "start_without_offset.yaml": [("8:14", ["FreeSpinEvent/no", "spec.startTime", "needs a UTC offset"])],
    "end_before_start.yaml": [("9:12", ["FreeSpinEvent/eb", "spec.endTime", "later than startTime"])],
    "empty_machine_types.yaml": [("10:17", ["FreeSpinEvent/em", "spec.machineTypes", "at least 1 item"])],
    "duplicate_machine_type.yaml": [("10:25", ["FreeSpinEvent/dm", "spec.machineTypes[1]", "duplicate machine type 14077"])],
    "bet_not_a_string.yaml": [("11:8", ["FreeSpinEvent/bn", "spec.bet", "valid string"])],
    "bet_too_many_decimals.yaml": [("11:8", ["FreeSpinEvent/bd", "spec.bet", "at most 3 decimals"])],
    "bet_zero.yaml": [("11:8", ["FreeSpinEvent/bz", "spec.bet", "greater than 0"])],
    "unknown_type.yaml": [("12:9", ["FreeSpinEvent/ut", "spec.type", "'NORMAL', 'FEATURE' or 'BONUSCHIPS'"])],
    "normal_without_times.yaml": [("12:9", ["FreeSpinEvent/nt", "spec.type", "NORMAL events need times"])],
    "bonuschips_without_multiplier.yaml": [("12:9", ["FreeSpinEvent/bc", "spec.type", "BONUSCHIPS needs chipsMultiplier"])],
    "bonuschips_with_times.yaml": [("13:10", ["FreeSpinEvent/bt", "spec.times", "BONUSCHIPS events have no times"])],
    "min_above_max.yaml": [("14:18", ["FreeSpinEvent/mm", "spec.minWithdrawal", "less than or equal to maxWithdrawal"])],
    "duplicate_player.yaml": [("16:39", ["FreeSpinEvent/dp", "spec.players[2]", "duplicate player 'player00001'"])],
    "player_with_space.yaml": [("16:13", ["FreeSpinEvent/lp", "spec.players[0]", "1-50 characters and no spaces"])],
    "players_and_file.yaml": [("17:16", ["FreeSpinEvent/pf", "spec.playersFile", "not both"])],
    "missing_players_file.yaml": [
        ("16:16", ["FreeSpinEvent/mf", "spec.playersFile", "cannot read players file missing-players.txt"])
    ],
    "bad_players_file.yaml": [
        ("16:16", ["FreeSpinEvent/bf", "spec.playersFile", "bad-players.txt line 2: not a player ID"]),
        ("16:16", ["FreeSpinEvent/bf", "spec.playersFile", "bad-players.txt line 3: duplicate player 'good01'"]),
    ],
    "excluded_also_declared.yaml": [
        ("17:21", ["FreeSpinEvent/ex", "spec.excludedPlayers[0]", "'player00002' is also in players"])
    ],
    "generation_zero.yaml": [("17:15", ["FreeSpinEvent/g0", "spec.generation", "greater than or equal to 1"])],
    "unknown_field.yaml": [("17:3", ["FreeSpinEvent/uf", "spec.eventId", "unknown field"])],
    "duplicate_display_name.yaml": [
        ("23:9", ["FreeSpinEvent/second", "spec.name", "duplicate identity 'sandboxag/Spring spins'", "FreeSpinEvent/first"])
    ],
}


def test_every_bad_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_manifest_is_rejected_before_any_call(ws: JdbWorkspace, name: str) -> None:
    manifests = ws.root / "manifests"
    manifests.mkdir(exist_ok=True)
    shutil.copy(BAD / name, manifests / name)
    for data in DATA_FILES:
        shutil.copy(BAD / data, manifests / data)
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        res = ws.cli(*command)
        assert res.exit_code == 1, (command, res.stdout, res.stderr)
        lines = [line for line in res.stderr.splitlines() if line]
        assert len(lines) == len(CASES[name]), res.stderr
        for line, (where, fragments) in zip(lines, CASES[name], strict=True):
            assert line.startswith(f"error: manifests/{name}:{where}: "), line
            for fragment in fragments:
                assert fragment in line, (fragment, line)
    assert ws.stats() == {}, "no API call may be made for bad input"


VALID = """\
apiVersion: reconciler/v1
kind: FreeSpinEvent
metadata: {name: ok}
spec: {name: Ok, agent: sandboxag, startTime: "2031-03-01T00:00:00Z", endTime: "2031-03-02T00:00:00Z",
       machineTypes: [14077], bet: "1", type: NORMAL, times: 5}
"""


def test_a_key_of_the_wrong_length_is_a_config_error_without_its_value(ws: JdbWorkspace) -> None:
    ws.write("secrets/jdb_key", "tooShortKey")
    ws.write("manifests/ok.yaml", VALID)
    res = ws.cli("plan")
    assert res.exit_code == 1
    assert (
        "reconciler.yaml:7:10: Config providers.jdb.key: the JDB key behind file:secrets/jdb_key must be 16 ASCII" in res.stderr
    )
    assert "tooShortKey" not in res.stderr + res.stdout
    assert ws.stats() == {}


def test_no_jdb_provider_is_an_input_error(ws: JdbWorkspace) -> None:
    ws.write("reconciler.yaml", "apiVersion: reconciler/v1\nkind: Config\n")
    ws.write("manifests/ok.yaml", VALID)
    res = ws.cli("validate")
    assert res.exit_code == 1 and "manifests/ok.yaml:2:7: FreeSpinEvent/ok kind: providers.jdb is not configured" in res.stderr
