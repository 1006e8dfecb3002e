"""The YAML loader's node-by-node rules (positions, bounds, refused characters), judged on the
problems and positions it reports; the loader takes shortcuts for plain scalars and keys."""

from __future__ import annotations

from reconciler.manifest.yamlload import load_documents
from tests.bestproxy.conftest import Workspace


def lines(text: str) -> list[str]:
    return [str(p) for p in load_documents(text, "f.yaml")[1]]


def test_values_and_keys_keep_their_positions() -> None:
    docs, problems = load_documents(
        "a:\n  b: [1, two, {c: 3.5, d: null}]\n  'e': |\n    text\n    more\n---\n- x\n- {y: true, z: 0x1F, w: 0o17, v: .inf}\n",
        "f.yaml",
    )
    assert problems == []
    first, second = docs
    assert first.data == {"a": {"b": [1, "two", {"c": 3.5, "d": None}], "e": "text\nmore\n"}}
    assert first.marks == {
        (): (1, 1),
        ("a",): (2, 3),
        ("a", "b"): (2, 6),
        ("a", "b", 0): (2, 7),
        ("a", "b", 1): (2, 10),
        ("a", "b", 2): (2, 15),
        ("a", "b", 2, "c"): (2, 19),
        ("a", "b", 2, "d"): (2, 27),
        ("a", "e"): (3, 8),
    }
    assert first.key_marks == {
        ("a",): (1, 1),
        ("a", "b"): (2, 3),
        ("a", "b", 2, "c"): (2, 16),
        ("a", "b", 2, "d"): (2, 24),
        ("a", "e"): (3, 3),
    }
    assert second.data == ["x", {"y": True, "z": 31, "w": 15, "v": float("inf")}]
    assert second.marks[(1, "v")] == (8, 34) and second.key_marks[(1, "v")] == (8, 31) and second.start == (7, 1)


def test_a_scalar_one_level_too_deep_is_refused_where_it_is() -> None:
    assert lines("x: " + "[" * 63 + "1" + "]" * 63 + "\n---\nx: " + "[" * 64 + "]" * 64 + "\n") == []
    assert lines("x: " + "[" * 64 + "1" + "]" * 64 + "\n") == ["f.yaml:1:68: x" + "[0]" * 64 + ": nested deeper than 64 levels"]


def test_scalars_expanded_by_aliases_count_toward_the_bound() -> None:
    text = "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [" + ", ".join(["*a"] * 600) + "]\n"
    assert lines(text) == ["f.yaml:1:314: b[497][102]: aliases expand to more than 100,000 values (alias bomb?)"]
    assert lines("a: &s text\nb: [" + ", ".join(["*s"] * 1500) + "]\n") == []  # a scalar alias is not a use
    assert lines("a: &a {b: *a}\n") == ["f.yaml:1:4: a.b: recursive alias: an anchor may not contain an alias of itself"]


def test_keys_refused_characters_and_duplicates() -> None:
    docs, problems = load_documents('? [a]\n: 1\n"k\\u202e": 2\n"n\\x01": 3\nk: 1\nk: 2\n1: int\nnull: n\ntrue: t\n', "f.yaml")
    assert [str(p) for p in problems] == [
        "f.yaml:1:3: mapping keys must be scalars",
        "f.yaml:3:1: k\u202e: field name: bidirectional control character U+202E is not allowed",
        "f.yaml:4:1: n\x01: field name: control character U+0001 is not allowed",
        "f.yaml:6:1: k: duplicate key 'k' (first at line 5)",
    ]
    assert docs[0].data == {"k\u202e": 2, "n\x01": 3, "k": 1, "1": "int", "null": "n", "True": "t"}
    assert docs[0].key_marks[("n\x01",)] == (4, 1) and docs[0].marks[("n\x01",)] == (4, 10)


def test_values_refused_characters_and_tags() -> None:
    assert lines('a: "x\\u2066y"\nb: "tab\\there"\nc: !!binary aGk=\nd: !!int abc\ne: ["\\x85", ok]\n') == [
        "f.yaml:1:4: a: bidirectional control character U+2066 is not allowed",
        "f.yaml:3:4: c: unsupported YAML tag tag:yaml.org,2002:binary",
        "f.yaml:4:4: d: cannot read 'abc' as int",
        "f.yaml:5:5: e[0]: control character U+0085 is not allowed",
    ]


def test_a_refused_character_is_never_printed_even_when_a_line_names_it(bestproxy_ws: Workspace) -> None:
    """A field name, a file name or a vendor's message may hold a character the input rules refuse
    (a bidirectional override reorders the rest of the line on a terminal): every error line shows
    it as ``\\uXXXX``, and the refused field is named by its own path."""
    bestproxy_ws.write(
        "manifests/a\u202e.yaml",
        "apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata:\n  name: game01\nspec:\n"
        '  username: game01\n  "pass\\u202eword": x\n  password: file:secrets/pw\n  productType: 9\n',
    )
    r = bestproxy_ws.cli("validate")
    assert r.exit_code == 1
    assert "\u202e" not in r.stderr and "\u202e" not in r.stdout
    assert (
        "error: manifests/a\\u202e.yaml:7:3: spec.pass\\u202eword: field name: bidirectional control character "
        "U+202E is not allowed" in r.stderr.splitlines()
    )
