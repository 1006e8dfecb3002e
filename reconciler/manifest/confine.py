"""File confinement: the one place every file named by manifests or config is read through.

In a pull request the author controls manifests, ``reconciler.yaml``, ``.proto`` schemas and data
files (DESIGN.md principle 7). Whatever they name is read only when it

- resolves, after following every symlink, inside the *workspace root* (the config file's folder,
  or ``--root``);
- is a regular file (no FIFO, device such as ``/dev/zero``, socket or directory);
- is no larger than the limit for its kind of file (:data:`LIMITS`), checked before and while
  reading, so memory and time stay bounded.

Errors (:class:`ConfinementError`) name the path as written and the rule, never a byte of the
target. Secret references in the config (``file:`` for mounted CI secrets) are the one exception
to the root rule (``confine=False``); the regular-file and size rules still apply, and nothing read
through them is ever echoed.

The root is process-wide state set by the engine when a run starts (:func:`set_root`): the kinds'
file readers call :func:`read_text` / :func:`check` without having to carry it.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
from pathlib import Path

from reconciler.errors import ReconcilerError

KiB = 1024
MiB = 1024 * KiB

LIMITS: dict[str, int] = {
    "manifest": 8 * MiB,
    "config": 1 * MiB,
    "secret": 64 * KiB,
    "proto": 2 * MiB,
    "players file": 16 * MiB,  # 50,000 players per JDB call; a few hundred thousand lines
    "data file": 256 * MiB,  # TcaplusDB seed records in JSON Lines (read whole, parsed line by line)
    "YAML data file": 32 * MiB,  # the same in YAML: building the node tree costs far more per byte
    "plan": 256 * MiB,
}

_STRICT_TEXT = {"players file", "proto"}  # kinds of text whose every line is checked by bad_character

_lock = threading.Lock()
_root: Path | None = None


class ConfinementError(ReconcilerError):
    """A named file may not be read (outside the root, not a regular file, too large, unreadable).
    The message names the path as written and the rule; never the file's content."""

    def __init__(self, what: str, shown: str, reason: str):
        self.what = what
        self.shown = shown
        self.reason = reason
        super().__init__(f"{what} {shown}: {reason}")


def set_root(root: Path | None) -> None:
    """Set the workspace root for this process (``None``: no root rule, other rules still apply)."""
    global _root
    with _lock:
        _root = Path(os.path.realpath(root)) if root is not None else None


def get_root() -> Path | None:
    return _root


def is_inside(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    real_root = Path(os.path.realpath(root))
    return real == real_root or real_root in real.parents


def _shown(path: Path | str) -> str:
    return str(path)


def check(path: Path | str, *, what: str, confine: bool = True, limit: int | None = None, root: Path | None = None) -> Path:
    """The resolved path of ``path`` if it may be read as ``what``; else :class:`ConfinementError`.
    The file is opened (see :func:`_open_checked`) and closed again: the verdict is the one a read
    would get."""
    fd, real = _open_checked(path, what=what, confine=confine, limit=limit, root=root)
    os.close(fd)
    return real


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = getattr(os, "O_PATH", 0) or os.O_RDONLY
_DIR_FLAGS |= getattr(os, "O_DIRECTORY", 0) | _O_NOFOLLOW | _O_CLOEXEC
_AT = os.open in os.supports_dir_fd


def _open_checked(path: Path | str, *, what: str, confine: bool, limit: int | None, root: Path | None) -> tuple[int, Path]:
    """An open descriptor of ``path`` and its resolved path, under every rule of the module.

    Confined reads (a workspace root is set) do not trust the path once it is checked: the file is
    opened component by component from a descriptor of the root, each component with
    ``O_NOFOLLOW``, along the resolved path (which holds no symlink). A folder swapped for a symlink
    between the check and the open is refused, not followed; and the opened file must have exactly
    one hard link (a hard link inside the workspace to a file outside it has no symlink to see)."""
    shown = _shown(path)
    if "\0" in str(path):
        raise ConfinementError(what, shown.replace("\0", "\\0"), "a path may not hold a NUL character")
    p = Path(path)
    try:
        real = Path(os.path.realpath(p, strict=True))
    except RuntimeError:  # pragma: no cover - Python < 3.13 raises this for loops with strict
        raise ConfinementError(what, shown, "symlink loop") from None
    except OSError as exc:
        raise ConfinementError(what, shown, f"{_reason(exc, p)}") from None
    base = root if root is not None else _root
    # ``real`` is resolved already, and so is the process's root (set_root): one realpath per check
    real_base = base if base is None or base is _root else Path(os.path.realpath(base))
    beneath = confine and real_base is not None
    if beneath and not (real == real_base or real_base in real.parents):
        raise ConfinementError(
            what, shown, f"resolves outside the workspace root ({base}); files named by manifests and config must stay inside it"
        )
    try:
        st = real.stat()
    except OSError as exc:
        raise ConfinementError(what, shown, f"{_reason(exc, p)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfinementError(what, shown, "not a regular file")
    cap = limit if limit is not None else LIMITS.get(what, LIMITS["manifest"])
    if st.st_size > cap:
        raise ConfinementError(what, shown, f"larger than the {_size(cap)} limit for a {what}")
    flags = os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC
    try:
        if beneath and _AT:
            assert real_base is not None
            fd = _open_beneath(real_base, real.relative_to(real_base).parts, flags)
        else:
            fd = os.open(real, flags)
    except OSError as exc:
        import errno

        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ConfinementError(
                what,
                shown,
                "changed while being opened (a folder or the file became a symlink); files are opened without following symlinks",
            ) from None
        raise ConfinementError(what, shown, f"{_reason(exc, p)}") from None
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise ConfinementError(what, shown, "not a regular file")
        if beneath and fst.st_nlink != 1:
            raise ConfinementError(
                what,
                shown,
                f"has {fst.st_nlink} hard links; a file named by manifests and "
                "config must have one (a hard link may be a file outside the workspace)",
            )
        if fst.st_size > cap:
            raise ConfinementError(what, shown, f"larger than the {_size(cap)} limit for a {what}")
    except BaseException:
        os.close(fd)
        raise
    return fd, real


def _open_beneath(root: Path, parts: tuple[str, ...], flags: int) -> int:
    """``openat`` of ``parts`` one by one from a descriptor of ``root``, never following a symlink."""
    if not parts:
        raise IsADirectoryError(21, "is the workspace root")
    dfd = os.open(root, _DIR_FLAGS & ~_O_NOFOLLOW)  # the root itself is trusted (resolved by set_root)
    try:
        for name in parts[:-1]:
            nfd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            os.close(dfd)
            dfd = nfd
        return os.open(parts[-1], flags, dir_fd=dfd)
    finally:
        os.close(dfd)


def _reason(exc: OSError, path: Path) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return "broken symlink (its target does not exist)"
        return "no such file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot read ({exc.strerror or type(exc).__name__})"


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB"


def open_bytes(
    path: Path | str, *, what: str, confine: bool = True, limit: int | None = None, root: Path | None = None
) -> tuple[int, int]:
    """An open descriptor of ``path`` under the rules of :func:`check` (confined: opened from the
    root's descriptor) and the size limit, for readers that stream; the caller closes it and must
    stop reading at the limit."""
    fd, _ = _open_checked(path, what=what, confine=confine, limit=limit, root=root)
    return fd, limit if limit is not None else LIMITS.get(what, LIMITS["manifest"])


def read_bytes(path: Path | str, *, what: str, confine: bool = True, limit: int | None = None, root: Path | None = None) -> bytes:
    """The bytes of ``path`` under the rules of :func:`check`; never more than the limit, even if
    the file grows or is swapped between the check and the read."""
    fd, cap = open_bytes(path, what=what, confine=confine, limit=limit, root=root)
    try:
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 * MiB, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise ConfinementError(what, _shown(path), f"larger than the {_size(cap)} limit for a {what}")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfinementError(what, _shown(path), f"{_reason(exc, Path(path))}") from None
    finally:
        os.close(fd)


def text_lines(text: str) -> list[str]:
    """The lines of ``text`` as editors and ``git diff`` number them: broken at LF, CR LF or CR only.
    ``str.splitlines`` also breaks at VT, FF, FS-RS, NEL and U+2028/U+2029, so a players file's
    ``p1<U+2028>p2`` became two players and every later line number was off by one."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_text(path: Path | str, *, what: str, confine: bool = True, limit: int | None = None, root: Path | None = None) -> str:
    """UTF-8 text of ``path`` (see :func:`read_bytes`); NUL bytes are refused."""
    data = read_bytes(path, what=what, confine=confine, limit=limit, root=root)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfinementError(what, _shown(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if "\0" in text:
        raise ConfinementError(what, _shown(path), "holds a NUL byte (not a text file)")
    if what in _STRICT_TEXT and _REFUSED.search(text) is not None:  # a clean text has no bad line: one scan
        for n, line in enumerate(text_lines(text), 1):
            msg = bad_character(line)
            if msg:
                raise ConfinementError(what, _shown(path), f"line {n}: {msg}")
    return text


def open_text(path: Path | str, *, what: str, limit: int | None = None) -> io.StringIO:
    """:func:`read_text` as a file object (universal newlines), for line-by-line readers."""
    return io.StringIO(read_text(path, what=what, limit=limit), newline=None)


# -- characters ---------------------------------------------------------------------------------
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_ALLOWED_C0 = {"\t", "\n", "\r"}
# every character bad_character refuses, as one class: a clean string (nearly all) is cleared by
# one scan in C instead of a Python loop per character
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def bad_character(value: str) -> str | None:
    """A description of the first character not allowed in a manifest string, else ``None``.

    Refused: NUL and every other C0/C1 control except tab and line breaks, DEL, and the Unicode
    bidirectional controls (U+202A-U+202E, U+2066-U+2069, LRM/RLM/ALM), which can make a plan read
    differently from what is sent ("Trojan Source").
    """
    m = _REFUSED.search(value)
    if m is None:
        return None
    for ch in value[m.start() :]:
        o = ord(ch)
        if ch in _ALLOWED_C0:
            continue
        if o < 0x20 or 0x7F <= o <= 0x9F:
            return f"control character U+{o:04X} is not allowed"
        if ch in _BIDI:
            return f"bidirectional control character U+{o:04X} is not allowed"
        if 0xD800 <= o <= 0xDFFF:
            return f"lone surrogate U+{o:04X} is not allowed"
    return None


def bad_strings(value: object, path: tuple[object, ...] = ()) -> list[tuple[tuple[object, ...], str]]:
    """``(path, message)`` for every string (keys included) inside ``value`` with a bad character."""
    out: list[tuple[tuple[object, ...], str]] = []
    if isinstance(value, str):
        msg = bad_character(value)
        if msg:
            out.append((path, msg))
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and (msg := bad_character(k)):
                out.append((path + (k,), f"field name: {msg}"))
            out.extend(bad_strings(v, path + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(bad_strings(v, path + (i,)))
    return out
