"""One line per line: the one escaping every written value goes through.

A field name, a file name, a ``kind:`` value, a remark or a vendor's error message may hold any
character. Everything the CLI writes (stderr lines, text plans, apply's outcome lines, JSON, the
Markdown comment, log records) passes each physical line through :func:`one_line`, so that

- no value can end the line it is in and start another: CR, LF, tab and every other C0/C1
  control (NEL U+0085 is one), the Unicode line and paragraph separators U+2028/U+2029, the
  bidirectional controls and lone surrogates are written as ``\\uXXXX``;
- no line can be read as a GitHub workflow command: the runner takes a line whose first non-blank
  characters are ``::`` (``::error::``, ``::add-mask::``) and, in its legacy form, ``##[`` anywhere
  in a line; the first ``:`` of a leading ``::`` is written ``\\u003a`` and ``##[`` as ``##\\u005b``.

JSON stays valid and means the same (``\\uXXXX`` is a JSON escape, and only appears inside
strings); Markdown shows the escape as text.
"""

from __future__ import annotations

import re

# every character a written line may not hold as it is
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_LEADING_COMMAND = re.compile(r"^(\s*):(?=:)")
_LEGACY_COMMAND = "##["


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def one_line(text: object) -> str:
    """``text`` as one line that starts no workflow command (see the module docstring)."""
    s = text if isinstance(text, str) else str(text)
    if not s.isprintable():  # a clean line (nearly all) costs one scan in C
        s = _UNSAFE.sub(_escape, s)
    if "::" in s:
        s = _LEADING_COMMAND.sub(r"\1\\u003a", s, count=1)
    if _LEGACY_COMMAND in s:
        s = s.replace(_LEGACY_COMMAND, "##\\u005b")
    return s


def lines(text: str) -> str:
    """A multi-line document whose line breaks are its own (JSON with indentation, the Markdown
    comment, a ``--debug`` traceback): each LF-separated line through :func:`one_line`."""
    return "\n".join(one_line(line) for line in text.split("\n"))
