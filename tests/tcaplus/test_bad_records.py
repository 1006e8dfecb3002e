"""One small manifest per bad-record case (tests/tcaplus/bad/): one line naming file:line:col, the
resource, the field and the rule; exit 1; no API call."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tcaplus.conftest import Workspace

HERE = Path(__file__).parent
BAD = HERE / "bad"

# file -> the error lines (after "error: ")
CASES: dict[str, list[str]] = {
    "bad_jsonl_record.yaml": ["bad_data/records.jsonl:4:1: TcaplusRecords/bj is_available: expected true or false (bool)"],
    "duplicate_record.yaml": [
        "manifests/duplicate_record.yaml:15:7: TcaplusRecords/second spec.records[0]: duplicate record tb_example|1|a|1: "
        "also declared at manifests/duplicate_record.yaml:7"
    ],
    "file_with_unknown_prune_index.yaml": [
        "manifests/file_with_unknown_prune_index.yaml:7:18: TcaplusRecords/fp spec.prune.index: "
        "table tb_example has no index 'nope' (indexes: index_name, index_uin)"
    ],
    "int32_out_of_range.yaml": [
        "manifests/int32_out_of_range.yaml:8:16: TcaplusRecords/ir spec.records[1].region: "
        "2147483648 is out of range for int32 (-2147483648..2147483647)"
    ],
    "invalid_jsonl.yaml": ["bad_data/syntax.jsonl:2:27: TcaplusRecords/ij: invalid JSON: Expecting ',' delimiter"],
    "missing_data_file.yaml": [
        "manifests/missing_data_file.yaml:6:9: TcaplusRecords/md spec.file: data file not found: manifests/data/nowhere.jsonl"
    ],
    "missing_key.yaml": ["manifests/missing_key.yaml:8:7: TcaplusRecords/mk spec.records[1]: primary-key field 'uin' is missing"],
    "missing_required.yaml": [
        "manifests/missing_required.yaml:7:7: TcaplusRecords/mr spec.records[0]: required field 'game_server_id' is missing"
    ],
    "nested_wrong_type.yaml": [
        "manifests/nested_wrong_type.yaml:12:24: TcaplusRecords/nw spec.records[0].pay.auth.update_time: expected an integer (int64)"
    ],
    "records_and_file.yaml": ["manifests/records_and_file.yaml:5:3: TcaplusRecords/rf spec: give exactly one of records or file"],
    "repeated_not_a_list.yaml": [
        "manifests/repeated_not_a_list.yaml:7:44: TcaplusRecords/rl spec.records[0].lockid: expected a list (repeated int64)"
    ],
    "unknown_field.yaml": [
        "manifests/unknown_field.yaml:10:7: TcaplusRecords/uf spec.records[0].nickname: unknown field: tb_example has no field 'nickname'"
    ],
    "unknown_mode.yaml": ["manifests/unknown_mode.yaml:6:9: TcaplusRecords/um spec.mode: Input should be 'declared' or 'whole'"],
    "unknown_prune_index.yaml": [
        "manifests/unknown_prune_index.yaml:8:12: TcaplusRecords/pi spec.prune.index: "
        "table tb_example has no index 'index_region' (indexes: index_name, index_uin)"
    ],
    "unknown_table.yaml": [
        "manifests/unknown_table.yaml:5:10: TcaplusRecords/ut spec.table: "
        "table 'tb_missing' is not in providers.tcaplus.tables (known: game_players, tb_example)"
    ],
    "wrong_prune_keys.yaml": [
        "manifests/wrong_prune_keys.yaml:9:11: TcaplusRecords/pk spec.prune.keys: key field 'uin' is missing",
        "manifests/wrong_prune_keys.yaml:9:21: TcaplusRecords/pk spec.prune.keys.region: 'region' is not one of the key fields (name, uin)",
    ],
    "wrong_type.yaml": [
        "manifests/wrong_type.yaml:10:18: TcaplusRecords/wt spec.records[0].gamesvrid: expected an integer (int32)"
    ],
}


def test_every_bad_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_records_are_rejected_before_any_call(tcaplus_ws: Workspace, name: str) -> None:
    shutil.copytree(HERE / "bad_data", tcaplus_ws.root / "bad_data")
    (tcaplus_ws.root / "manifests").mkdir()
    shutil.copy(BAD / name, tcaplus_ws.root / "manifests" / name)
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        res = tcaplus_ws.cli(*command)
        assert res.exit_code == 1, (command, res.stdout, res.stderr)
        lines = [line for line in res.stderr.splitlines() if line]
        assert lines == [f"error: {line}" for line in CASES[name]], lines
    assert tcaplus_ws.requests() == 0


def test_a_bad_proto_is_reported_with_its_position(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.write(
        "protos/tb_example.proto",
        (HERE / "data" / "tb_example.proto").read_text().replace("int64 uin = 3;", "repeated int64 uin = 3;"),
    )
    tcaplus_ws.write(
        "manifests/e.yaml",
        """
        apiVersion: reconciler/v1
        kind: TcaplusRecords
        metadata: {name: e}
        spec: {table: tb_example, records: []}
        """,
    )
    res = tcaplus_ws.cli("plan")
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [
        "error: protos/tb_example.proto:17:20: tb_example.uin: a primary-key field cannot be repeated"
    ]
    assert tcaplus_ws.requests() == 0


def test_an_unresolvable_password_is_an_input_error(tcaplus_ws: Workspace) -> None:
    (tcaplus_ws.root / "secrets" / "tcaplus_password").unlink()
    tcaplus_ws.write(
        "manifests/e.yaml",
        """
        apiVersion: reconciler/v1
        kind: TcaplusRecords
        metadata: {name: e}
        spec: {table: tb_example, records: []}
        """,
    )
    assert tcaplus_ws.cli("validate").exit_code == 0  # offline: references are not resolved (issue #12)
    res = tcaplus_ws.cli("validate", "--resolve-secrets")
    assert res.exit_code == 1
    assert res.stderr.startswith(
        "error: reconciler.yaml:8:15: Config providers.tcaplus.password: secret reference file:secrets/tcaplus_password"
    )
