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


def test_the_first_refused_character_is_named() -> None:
    assert bad_character("a\u202eb\x00") == "bidirectional control character U+202E is not allowed"
    assert bad_character("tab\tand\r\nbreaks") is None
    assert bad_character("") is None
