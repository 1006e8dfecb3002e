"""Table schemas from .proto files: TcaplusDB's rules, positions of every problem, record checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import InputError
from reconciler.vendors.tcaplus.protoschema import (
    MAX_KEY_FIELDS,
    Label,
    load_proto,
    load_table,
    MAX_KEY_VALUE_BYTES,
    MAX_VALUE_BYTES,
    INT_RANGES,
    parse_proto,
    scalar_problem,
    validate_keys,
    validate_record,
)

DATA = Path(__file__).parent / "data"

HEADER = 'syntax = "proto2";\npackage t;\nimport "tcaplusservice.optionv1.proto";\n'


def problems(text: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_proto(text, file="t.proto")
    return info.value.lines()


def test_seed_table_parses_with_keys_indexes_and_nested_types() -> None:
    table = load_table(DATA / "tb_example.proto", "tb_example")
    assert table.primary_key == ("region", "name", "uin")
    assert table.indexes == {"index_name": ("name", "uin"), "index_uin": ("uin",)}
    assert table.sharding_key == ("uin",)
    assert table.syntax == "proto3"
    pay = table.fields["pay"]
    assert pay.type == "pay_info" and pay.message is table.messages["pay_info"]
    auth = table.field_at("pay.auth")
    assert auth is not None and auth.type == "pay_info.pay_auth_info"
    keys = table.field_at("pay.auth.pay_keys")
    assert keys is not None and keys.type == "string" and (keys.line, keys.col) == (32, 16)
    assert table.fields["lockid"].label is Label.REPEATED
    assert table.field_at("lockid.x") is None and table.field_at("pay.nope") is None


def test_proto2_table_and_message_override() -> None:
    table = load_table(DATA / "game_players.proto", "players", message="game_players")
    assert table.name == "players"
    assert table.fields["player_id"].label is Label.REQUIRED
    assert table.key_of({"player_id": 1, "player_name": "a", "player_email": "e", "x": 2}) == (1, "a", "e")


def test_qualified_type_names_resolve() -> None:
    text = HEADER + (
        "message outer { message inner { optional int32 v = 1; } }\n"
        "message tb {\n"
        '  option(tcaplusservice.tcaplus_primary_key) = "k";\n'
        "  required int32 k = 1;\n"
        "  optional outer.inner a = 2;\n"
        "  optional .t.outer b = 3;\n"
        "  optional t.outer.inner c = 4;\n"
        "}\n"
    )
    table = parse_proto(text, file="t.proto").tables["tb"]
    assert [table.fields[n].type for n in "abc"] == ["outer.inner", "outer", "outer.inner"]


def test_recursive_message_types_are_allowed() -> None:
    text = HEADER + (
        "message node { optional node child = 1; optional int32 v = 2; }\n"
        'message tb { option(tcaplusservice.tcaplus_primary_key) = "k"; required int32 k = 1; optional node n = 2; }\n'
    )
    table = parse_proto(text, file="t.proto").tables["tb"]
    assert validate_record(table, {"k": 1, "n": {"child": {"child": {"v": 3}}}}) == []


BAD_PROTOS = [
    # (name, body after HEADER, expected "line:col: ... message" fragment)
    ("syntax_error", "message tb {\n  required int32 k = 1\n}\n", "t.proto:6:1: syntax error: mismatched input '}'"),
    ("lexer_error", "message tb { required int32 k = 1; ` }\n", "t.proto:4:36: syntax error: token recognition error"),
    (
        "too_many_keys",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a,b,c,d,e";\n'
        + "".join(f"  required int32 {n} = {i};\n" for i, n in enumerate("abcde", 1))
        + "}\n",
        f"t.proto:5:48: tb: at most {MAX_KEY_FIELDS} primary-key fields (found 5)",
    ),
    (
        "key_not_a_field",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a, zz";\n  required int32 a = 1;\n}\n',
        "t.proto:5:48: tb.zz: primary-key field 'zz' is not a field of tb",
    ),
    (
        "key_is_message",
        'message m { optional int32 v = 1; }\nmessage tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        "  required m a = 1;\n}\n",
        "t.proto:7:14: tb.a: a primary-key field must be a scalar, not a message",
    ),
    (
        "key_repeated",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  repeated int32 a = 1;\n}\n',
        "t.proto:6:18: tb.a: a primary-key field cannot be repeated",
    ),
    (
        "key_optional_proto2",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  optional int32 a = 1;\n}\n',
        "t.proto:6:18: tb.a: a primary-key field must be 'required' in proto2",
    ),
    (
        "index_field_not_key",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a,b";\n'
        '  option(tcaplusservice.tcaplus_index) = "i1(a, c)";\n'
        "  required int32 a = 1;\n  required int32 b = 2;\n  optional int32 c = 3;\n}\n",
        "t.proto:6:42: tb: index 'i1': c not in the primary key",
    ),
    (
        "index_malformed",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        '  option(tcaplusservice.tcaplus_index) = "i1 a";\n  required int32 a = 1;\n}\n',
        't.proto:6:42: tb: an index is written "name(field1,field2)"',
    ),
    (
        "indexes_disjoint",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a,b";\n'
        '  option(tcaplusservice.tcaplus_index) = "i1(a)";\n  option(tcaplusservice.tcaplus_index) = "i2(b)";\n'
        "  required int32 a = 1;\n  required int32 b = 2;\n}\n",
        "t.proto:6:42: tb: the indexes must share at least one field",
    ),
    (
        "enum_field",
        'enum color { RED = 0; }\nmessage tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        "  required int32 a = 1;\n  optional color c = 2;\n}\n",
        "t.proto:4:6: color: enums are not supported in TcaplusDB tables; use an int32 field",
    ),
    (
        "enum_field_type",
        'enum color { RED = 0; }\nmessage tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        "  required int32 a = 1;\n  optional color c = 2;\n}\n",
        "t.proto:8:3: tb.c: enum type 'color' is not supported by TcaplusDB; use int32",
    ),
    (
        "map_field",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        "  map<string, int32> m = 2;\n}\n",
        "t.proto:7:22: tb.m: map fields are not supported by TcaplusDB",
    ),
    (
        "oneof",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        "  oneof choice { int32 x = 2; string y = 3; }\n}\n",
        "t.proto:7:9: tb.choice: oneof is not supported by TcaplusDB",
    ),
    (
        "well_known_type",
        'import "google/protobuf/timestamp.proto";\nmessage tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        "  required int32 a = 1;\n  optional google.protobuf.Timestamp t = 2;\n}\n",
        "t.proto:8:3: tb.t: well-known type 'google.protobuf.Timestamp' is not supported by TcaplusDB",
    ),
    (
        "unknown_type",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        "  optional nowhere n = 2;\n}\n",
        "t.proto:7:3: tb.n: unknown type 'nowhere'",
    ),
    (
        "duplicate_number",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        "  optional int32 b = 1;\n}\n",
        "t.proto:7:18: tb.b: field number 1 is already used by 'a'",
    ),
    (
        "duplicate_name",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        "  optional int32 a = 2;\n}\n",
        "t.proto:7:18: tb.a: field 'a' is defined twice",
    ),
    (
        "missing_label_proto2",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n  int32 b = 2;\n}\n',
        "t.proto:7:3: tb.b: proto2 fields need a label",
    ),
    (
        "long_field_name",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        f"  optional int32 {'x' * 33} = 2;\n}}\n",
        "t.proto:7:18: tb.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: field names are limited to 32 bytes",
    ),
    (
        "nested_table",
        'message outer {\n  message tb {\n    option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        "    required int32 a = 1;\n  }\n}\n",
        "t.proto:6:50: outer.tb: a table must be a top-level message",
    ),
    (
        "list_table",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n'
        '  option(tcaplusservice.tcaplus_customattr) = "TableType=LIST;ListNum=1023";\n  required int32 a = 1;\n}\n',
        "t.proto:6:47: tb: LIST tables are not supported by the RESTful API v1.0",
    ),
    (
        "sharding_key_outside_indexes",
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a,b";\n'
        '  option(tcaplusservice.tcaplus_index) = "i1(a)";\n  option(tcaplusservice.tcaplus_sharding_key) = "b";\n'
        "  required int32 a = 1;\n  required int32 b = 2;\n}\n",
        "t.proto:7:49: tb: sharding key fields must be in every index: b",
    ),
]


@pytest.mark.parametrize("body, expected", [(b, e) for _, b, e in BAD_PROTOS], ids=[n for n, _, _ in BAD_PROTOS])
def test_bad_proto_is_rejected_with_position(body: str, expected: str) -> None:
    lines = problems(HEADER + body)
    assert any(line.startswith(expected) for line in lines), lines


def test_missing_options_import() -> None:
    lines = problems('syntax = "proto3";\nmessage tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  int32 a = 1;\n}\n')
    assert lines == ['t.proto:3:48: tb: tcaplusservice options need: import "tcaplusservice.optionv1.proto";']


def test_all_problems_reported_at_once() -> None:
    body = (
        'message tb {\n  option(tcaplusservice.tcaplus_primary_key) = "a";\n  required int32 a = 1;\n'
        "  map<string, int32> m = 2;\n  optional nowhere n = 3;\n}\nenum e { X = 0; }\n"
    )
    assert len(problems(HEADER + body)) == 3


def test_proto3_rejects_required() -> None:
    lines = problems('syntax = "proto3";\nimport "tcaplusservice.optionv1.proto";\nmessage m { required int32 a = 1; }\n')
    assert lines == ["t.proto:3:13: m.a: 'required' is not allowed in proto3"]


def test_unreadable_and_missing_table(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_proto(tmp_path / "nope.proto", display="tables/nope.proto", resource="Config")
    assert info.value.lines()[0].startswith("tables/nope.proto:1:1: Config: cannot read .proto file")
    with pytest.raises(InputError) as info:
        load_table(DATA / "tb_example.proto", "pay_info", display="tb_example.proto")
    assert info.value.lines() == [
        "tb_example.proto:25:9: pay_info: message 'pay_info' has no option "
        "(tcaplusservice.tcaplus_primary_key): it is not a table"
    ]
    with pytest.raises(InputError) as info:
        load_table(DATA / "tb_example.proto", "other", display="tb_example.proto")
    assert info.value.lines() == ["tb_example.proto:1:1: no message 'other' in this file (tables: tb_example)"]


# -- records --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def players():
    return load_table(DATA / "game_players.proto", "game_players")


@pytest.fixture(scope="module")
def example():
    return load_table(DATA / "tb_example.proto", "tb_example")


def test_valid_records(players, example) -> None:
    full = {
        "player_id": 2**63 - 1,
        "player_name": "ann",
        "player_email": "a@x",
        "game_server_id": -5,
        "login_timestamp": ["t1", "t2"],
        "is_online": True,
        "pay": {"pay_id": 1, "amount": 2**64 - 1},
        "avatar": "AAEC",
        "rating": 4,
        "ratio": 0.5,
        "level": 0,
    }
    assert validate_record(players, full, require_required=True) == []
    seed = {
        "name": "calvinshao",
        "lockid": [50, 60, 70],
        "region": 101,
        "uin": 100,
        "is_available": True,
        "pay": {"pay_times": 2, "total_money": 10000, "pay_id": 5, "auth": {"pay_keys": "k", "update_time": 1}},
        "gamesvrid": 4099,
        "logintime": 404,
    }
    assert validate_record(example, seed, require_required=True) == []


@pytest.mark.parametrize(
    "record, issue",
    [
        ([1], ((), "a record must be a mapping of field names to values")),
        ({"player_id": 1, "player_name": "a"}, ((), "primary-key field 'player_email' is missing")),
        (
            {"player_id": 2**63, "player_name": "a", "player_email": "e"},
            (("player_id",), "9223372036854775808 is out of range for int64 (-9223372036854775808..9223372036854775807)"),
        ),
        ({"player_id": True, "player_name": "a", "player_email": "e"}, (("player_id",), "expected an integer (int64)")),
        ({"player_id": "1", "player_name": "a", "player_email": "e"}, (("player_id",), "expected an integer (int64)")),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "level": -1},
            (("level",), "-1 is out of range for uint32 (0..4294967295)"),
        ),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "nick": "x"},
            (("nick",), "unknown field: game_players has no field 'nick'"),
        ),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "pay": {"pay_id": 1, "bad": 1}},
            (("pay", "bad"), "unknown field: payment has no field 'bad'"),
        ),
        ({"player_id": 1, "player_name": "a", "player_email": "e", "pay": 5}, (("pay",), "expected a mapping (message payment)")),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "login_timestamp": ["a", 2]},
            (("login_timestamp", 1), "expected a string"),
        ),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "login_timestamp": "a"},
            (("login_timestamp",), "expected a list (repeated string)"),
        ),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "is_online": "yes"},
            (("is_online",), "expected true or false (bool)"),
        ),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "avatar": "not base64!"},
            (("avatar",), "expected a base64 string (bytes)"),
        ),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "rating": float("inf")},
            (("rating",), "NaN and infinity cannot be sent as JSON"),
        ),
        ({"player_id": 1, "player_name": "a", "player_email": "e", "ratio": 1e39}, (("ratio",), "out of range for float")),
        ({"player_id": 1, "player_name": "a", "player_email": "e", "rating": "1.5"}, (("rating",), "expected a number (double)")),
        (
            {"player_id": 1, "player_name": "a", "player_email": "e", "is_online": None},
            (("is_online",), "null is not a bool value"),
        ),
        ({"player_id": 1, "player_name": "x" * 1025, "player_email": "e"}, (("player_name",), "longer than 1024 bytes (1025)")),
    ],
)
def test_invalid_records(players, record, issue) -> None:
    assert issue in [(i.path, i.message) for i in validate_record(players, record)]


def test_required_fields_only_for_whole_records(players) -> None:
    record = {"player_id": 1, "player_name": "a", "player_email": "e", "pay": {"amount": 1}}
    assert validate_record(players, record) == []
    assert [(i.path, i.message) for i in validate_record(players, record, require_required=True)] == [
        (("pay",), "required field 'pay_id' is missing"),
        ((), "required field 'game_server_id' is missing"),
    ]


def test_partial_record_without_key(players) -> None:
    assert validate_record(players, {"level": 3}, require_key=False) == []


def test_keys(players) -> None:
    assert validate_keys(players, {"player_id": 1, "player_name": "a", "player_email": "e"}) == []
    assert [
        (i.path, i.message) for i in validate_keys(players, {"player_id": 1, "level": 2}, fields=("player_id", "player_name"))
    ] == [
        ((), "key field 'player_name' is missing"),
        (("level",), "'level' is not one of the key fields (player_id, player_name)"),
    ]
    assert [(i.path, i.message) for i in validate_keys(players, "x")] == [((), "keys must be a mapping of field names to values")]


# Values on both sides of every scalar rule: valid records are cleared by a quick test per type
# (protoschema._QUICK); whatever it clears, the full rule must accept too, key or not.
EDGE_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    10**400,
    0.0,
    -0.5,
    1.5,
    3.4028234663852886e38,
    3.5e38,
    -3.5e38,
    1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    "a",
    "x" * MAX_KEY_VALUE_BYTES,
    "x" * (MAX_KEY_VALUE_BYTES + 1),
    "é" * 512,
    "é" * 513,
    "\ud800",
    "AAEC",
    "not base64!",
    "1",
    [],
    ["a"],
    {},
    {"a": 1},
]
SCALARS = [*INT_RANGES, "float", "double", "bool", "string", "bytes"]


def _table_of(type_: str, label: str):
    text = HEADER + (
        "message tb {\n"
        '  option(tcaplusservice.tcaplus_primary_key) = "k";\n'
        f"  required int32 k = 1;\n  {label} {type_} v = 2;\n"
        "}\n"
    )
    return parse_proto(text, file="t.proto").tables["tb"]


@pytest.mark.parametrize("type_", SCALARS)
def test_every_scalar_value_is_judged_by_its_rule(type_: str) -> None:
    single, repeated = _table_of(type_, "optional"), _table_of(type_, "repeated")
    for value in EDGE_VALUES:
        want = scalar_problem(type_, value, max_bytes=MAX_VALUE_BYTES)
        got = [(i.path, i.message) for i in validate_record(single, {"k": 1, "v": value})]
        assert got == ([(("v",), want)] if want else []), (type_, value)
        valid = {"bool": True, "string": "s", "bytes": "AAEC"}.get(type_, 1)
        got = [(i.path, i.message) for i in validate_record(repeated, {"k": 1, "v": [valid, value]})]
        assert got == ([(("v", 1), want)] if want else []), (type_, value)


@pytest.mark.parametrize("type_", ["int64", "uint32", "string", "bytes", "bool", "double"])
def test_every_key_value_is_judged_by_the_key_rule(type_: str) -> None:
    text = HEADER + (f'message tb {{\n  option(tcaplusservice.tcaplus_primary_key) = "k";\n  required {type_} k = 1;\n}}\n')
    table = parse_proto(text, file="t.proto").tables["tb"]
    for value in EDGE_VALUES:
        want = scalar_problem(type_, value, max_bytes=MAX_KEY_VALUE_BYTES)
        got = [(i.path, i.message) for i in validate_record(table, {"k": value})]
        assert got == ([(("k",), want)] if want else []), value
