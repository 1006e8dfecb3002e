"""The plan's record comparison: its quick paths answer exactly as the leaf-by-leaf comparison.

``_diffs`` first asks whether every declared value equals the live one as read (declared mode) or
whether the records are equal (whole mode), and ``_leaves`` of a message without struct fields
keeps the record's known fields as they are; both skip work a no-op plan of 20,000 records would
do. These tests hold them to the slow paths over flat and nested tables, both modes, defaults,
extra and unknown live fields, numbers equal across types, and real differences.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.vendors.tcaplus.records import _diffs, _has_structs, _leaf_diffs, _leaf_paths, _leaves, _walk_leaves
from reconciler.vendors.tcaplus.protoschema import TableSchema, parse_proto

HEADER = 'syntax = "proto3";\npackage t;\nimport "tcaplusservice.optionv1.proto";\n'
PROTO = (
    HEADER
    + """
message Inner { int32 x = 1; string y = 2; }
message flat {
  option(tcaplusservice.tcaplus_primary_key) = "id";
  int64 id = 1; string name = 2; uint32 price = 3; repeated string tags = 4; bool on = 5; double ratio = 6;
}
message nested {
  option(tcaplusservice.tcaplus_primary_key) = "id";
  int64 id = 1; string name = 2; Inner inner = 3; repeated Inner many = 4;
}
"""
)


@pytest.fixture(scope="module")
def tables() -> dict[str, TableSchema]:
    return parse_proto(PROTO, file="t.proto").tables


FLAT: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"id": 1, "name": "a", "price": 3}, {"id": 1, "name": "a", "price": 3}),
    ({"id": 1, "name": "a"}, {"id": 1, "name": "a", "price": 3}),  # a live field not declared
    ({"id": 1, "name": "a"}, {"id": 1, "name": "a", "price": 0}),  # ... at its default
    ({"id": 1, "name": "a", "price": 0}, {"id": 1, "name": "a"}),  # a declared default the vendor omits
    ({"id": 1, "name": "a"}, {"id": 1, "name": "b"}),
    ({"id": 1, "price": 2}, {"id": 1, "price": 2.0}),  # equal numbers of two types
    ({"id": 1, "on": True}, {"id": 1, "on": 1}),
    ({"id": 1, "ratio": 0.5}, {"id": 1, "ratio": 0.25}),
    ({"id": 1, "tags": ["a", "b"]}, {"id": 1, "tags": ["a", "b"]}),
    ({"id": 1, "tags": ["a", "b"]}, {"id": 1, "tags": ["b", "a"]}),
    ({"id": 1, "tags": []}, {"id": 1}),
    ({"id": 1, "name": "a"}, {"id": 1, "name": "a", "unknown": 7}),  # a field the schema does not know
    ({"id": 1, "name": "a"}, {"id": 1}),
    ({"id": 1, "name": ""}, {"id": 1}),
]
NESTED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"id": 1, "inner": {"x": 1}}, {"id": 1, "inner": {"x": 1}}),
    ({"id": 1, "inner": {"x": 1}}, {"id": 1, "inner": {"x": 1, "y": "z"}}),  # a live leaf not declared
    ({"id": 1, "inner": {"x": 1}}, {"id": 1, "inner": {"x": 2}}),
    ({"id": 1, "inner": {"x": 0}}, {"id": 1, "inner": {}}),
    ({"id": 1, "inner": {"x": 0}}, {"id": 1}),
    ({"id": 1, "many": [{"x": 1}]}, {"id": 1, "many": [{"x": 1}]}),
    ({"id": 1, "many": [{"x": 1}]}, {"id": 1, "many": [{"x": 1, "y": ""}]}),
    ({"id": 1, "name": "a", "inner": {"y": "q"}}, {"id": 1, "name": "a", "inner": {"y": "q"}, "many": []}),
]


@pytest.mark.parametrize("whole", [False, True], ids=["declared", "whole"])
@pytest.mark.parametrize("table,pairs", [("flat", FLAT), ("nested", NESTED)])
def test_quick_comparison_answers_as_leaf_by_leaf(
    tables: dict[str, TableSchema], table: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]], whole: bool
) -> None:
    schema = tables[table]
    found_equal = found_different = 0
    for declared, live in pairs:
        expected = _leaf_diffs(schema, declared, live, whole=whole)
        assert _diffs(schema, declared, live, whole=whole) == expected, (declared, live)
        assert _leaf_diffs(schema, declared, live, whole=whole, want=_leaves(schema.message, declared)) == expected
        found_equal += not expected
        found_different += bool(expected)
    assert found_equal and found_different  # both answers are exercised


def test_leaves_of_a_flat_message_are_its_known_fields(tables: dict[str, TableSchema]) -> None:
    flat, nested = tables["flat"], tables["nested"]
    assert not _has_structs(flat.message) and _has_structs(nested.message)
    for declared, live in FLAT:
        for record in (declared, live):
            assert _leaves(flat.message, record) == _walk_leaves(flat.message, record)
    for declared, live in NESTED:
        for record in (declared, live):
            assert _leaves(nested.message, record) == _walk_leaves(nested.message, record)
    assert _leaves(nested.message, {"id": 1, "inner": {"x": 1}}) == {"id": 1, "inner.x": 1}
    assert _leaves(flat.message, {"id": 1, "unknown": 2}) == {"id": 1}


def test_a_reads_select_paths_are_the_records_leaves_but_its_keys(tables: dict[str, TableSchema]) -> None:
    for name, pairs in (("flat", FLAT), ("nested", NESTED)):
        schema = tables[name]
        for record in (r for pair in pairs for r in pair):
            expected = [p for p in _walk_leaves(schema.message, record) if p not in schema.primary_key]
            assert sorted(_leaf_paths(schema, record)) == sorted(expected), record
    assert sorted(_leaf_paths(tables["nested"], {"id": 1, "inner": {"x": 1, "y": "a"}, "many": []})) == [
        "inner.x",
        "inner.y",
        "many",
    ]
