"""The characters a manifest string may not hold, judged for every code point."""

from __future__ import annotations

from reconciler.manifest.confine import bad_character

BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}


def expected(o: int) -> str | None:
    """The rule of docs/security.md, written out independently of the implementation."""
    if o in (0x09, 0x0A, 0x0D):
        return None
    if o < 0x20 or 0x7F <= o <= 0x9F:
        return f"control character U+{o:04X} is not allowed"
    if o in BIDI:
        return f"bidirectional control character U+{o:04X} is not allowed"
    if 0xD800 <= o <= 0xDFFF:
        return f"lone surrogate U+{o:04X} is not allowed"
    return None


def test_every_code_point_is_judged_by_the_rule() -> None:
    wrong = [hex(o) for o in range(0x110000) if bad_character(f"ok {chr(o)} ok") != expected(o)]
    assert wrong == []


def test_a_printable_string_holds_no_refused_character() -> None:
    """The YAML loader clears ``str.isprintable()`` strings without the full check."""
    assert [hex(o) for o in range(0x110000) if chr(o).isprintable() and expected(o) is not None] == []


def test_the_first_refused_character_is_named() -> None:
    assert bad_character("a\u202eb\x00") == "bidirectional control character U+202E is not allowed"
    assert bad_character("tab\tand\r\nbreaks") is None
    assert bad_character("") is None


def test_json_lines_records_are_judged_as_if_every_string_were_walked(tmp_path) -> None:
    """Data files are scanned per line and only suspect lines (a refused character as it is, or any
    backslash escape) are walked string by string: the problems must be those of walking every
    record."""
    import json

    from reconciler.vendors.tcaplus.records import _json_lines
    from reconciler.manifest import confine

    lines = [
        '{"a": "clean", "b": [1, "x"], "c": {"d": "e"}}',
        '{"a": "raw \u202e bidi"}',
        '{"k\u0085ey": 1, "n": {"m": ["ok", "c1 \u009b"]}}',
        '{"a": "escaped \\u202e", "b": "form \\f feed", "c": "back \\b space"}',
        '{"a": "harmless \\" \\\\ \\/ \\n \\t \\u00e9 escapes"}',
        '{"a": "nul \\u0000", "b": "surrogate \\ud800", "\\u2066k": true}',
        '{"a": "tab\\tand\\r\\nbreaks", "b": "del \\u007f"}',
        "",
        '{"a": "after a blank line \\u200f"}',
        '[1, 2, "\u2069"]',
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = []
    for number, line in enumerate(lines, 1):
        if line:
            expected += [(number, ".".join(map(str, where)), msg) for where, msg in confine.bad_strings(json.loads(line))]
    assert len(expected) == 12
    old = confine.get_root()
    confine.set_root(tmp_path)
    try:
        records, problems = _json_lines(str(data), 0, 0, "d.jsonl", "TcaplusRecords/r")
    finally:
        confine.set_root(old)
    assert len(records) == 8  # the list on line 10 is not a record (issue #21: bounded reading)
    assert [(p.line, p.field, p.message) for p in problems] == expected + [
        (10, "", "a record is a JSON object holding at least its primary key")
    ]
