"""The one safe writer: every file the CLI writes goes through here (DESIGN.md principle 7).

In a pull request the author controls the checkout, and so every name in it: ``plan.json`` can be
committed as a symlink to a script the CI job is running, ``out/`` as a symlink to a folder outside
the workspace. A write that follows such a link overwrites whatever it points at. So a file is
written

- into a folder reached component by component from ``/`` (an absolute path) or the current folder
  (a relative one), each component opened with ``O_NOFOLLOW``: a component that is a symlink is
  refused (:class:`UnsafePathError`, one line, exit 1), whatever it points at; folders that do not
  exist yet are created the same way (``mkdirat``, then opened without following);
- as a new temporary file in that folder (``O_CREAT|O_EXCL|O_NOFOLLOW``), written, fsynced and
  renamed over the target (``renameat``): a symlink at the target's name is replaced by the new
  file, never followed, and a reader never sees half a file.

A file that is appended to (the apply journal of ``apply --resume``) is opened with
``O_APPEND|O_NOFOLLOW`` from the same folder descriptor and must be a regular file with one link.

Every path is taken as written: ``..`` is walked like any other component (it is never a symlink),
nothing is resolved first. Relative paths start at the current folder, whose path the operating
system keeps without symlinks.

This module sits below every other layer (it imports only :mod:`reconciler.errors`), so the
sandbox's state folder and the manifest readers (:mod:`reconciler.manifest.confine`) use it too.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import IO

from reconciler.errors import ReconcilerError

_O_PATH = getattr(os, "O_PATH", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# a folder is opened only to be a base for the next step: O_PATH needs no read permission
_DIR_FLAGS = (_O_PATH or os.O_RDONLY) | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
_AT = os.open in os.supports_dir_fd and os.mkdir in os.supports_dir_fd and os.stat in os.supports_dir_fd


class UnsafePathError(ReconcilerError):
    """A file may not be written (or read) there: a symlinked component, a folder in the way, a
    missing folder, a file with more than one link. The message names the path as written."""

    def __init__(self, shown: str, reason: str, *, verb: str = "write"):
        self.shown = shown
        self.reason = reason
        super().__init__(f"{shown}: cannot {verb}: {reason}")


def _parts(path: Path | str) -> tuple[bool, list[str]]:
    s = os.fspath(path)
    if "\0" in s:
        raise UnsafePathError(s.replace("\0", "\\0"), "a path may not hold a NUL character")
    return s.startswith(os.sep), [p for p in s.split(os.sep) if p not in ("", ".")]


def _join(absolute: bool, parts: list[str]) -> str:
    text = os.sep.join(parts)
    return (os.sep + text) if absolute else (text or ".")


def open_dir(
    path: Path | str, *, create: bool = False, mode: int = 0o755, verb: str = "write", target: Path | str | None = None
) -> int:
    """A descriptor of the folder ``path``, reached without following any symlink (created,
    component by component, when ``create``). The caller closes it. Errors name ``target`` (the
    file to be written in it), else ``path``."""
    absolute, parts = _parts(path)
    named = os.fspath(target if target is not None else path)
    fd = os.open(os.sep if absolute else ".", _DIR_FLAGS)
    try:
        for i, name in enumerate(parts):
            shown = _join(absolute, parts[: i + 1])
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise UnsafePathError(named, f"folder {shown} does not exist", verb=verb) from None
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: checked below like any other
                except OSError as exc:
                    raise UnsafePathError(named, f"cannot create folder {shown} ({_why(exc)})", verb=verb) from None
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise UnsafePathError(named, f"{shown}: {_why(exc)}", verb=verb) from None
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePathError(
                    named,
                    f"{shown} is a symlink; files are never {verb_past(verb)} through a symlink (give a path without one)",
                    verb=verb,
                )
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(named, f"{shown} is not a folder", verb=verb)
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:  # swapped for a symlink since the stat: O_NOFOLLOW refuses it
                raise UnsafePathError(named, f"{shown}: {_why(exc)}", verb=verb) from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_folder(path: Path | str) -> None:
    """Fail before any work when the folder ``path`` could not be made or written safely: no
    existing component of it may be a symlink or a file (missing ones are made when written)."""
    absolute, parts = _parts(path)
    for i in range(len(parts), -1, -1):
        try:
            os.close(open_dir(_join(absolute, parts[:i])))
        except UnsafePathError as exc:
            if "does not exist" in exc.reason:
                continue
            raise UnsafePathError(os.fspath(path), exc.reason) from None
        return


def verb_past(verb: str) -> str:
    return {"write": "written", "read": "read"}.get(verb, verb + "ed")


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symlink"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "not a folder"
    return exc.strerror or type(exc).__name__


def _split(path: Path | str) -> tuple[str, str]:
    absolute, parts = _parts(path)
    if not parts or parts[-1] == "..":
        raise UnsafePathError(os.fspath(path), "expected a file name")
    return _join(absolute, parts[:-1]), parts[-1]


def check_target(path: Path | str) -> None:
    """Fail before any work when ``path`` cannot be written safely: its folder must exist and be
    reached without a symlink, and the name must not be a folder (a symlink there is fine: it is
    replaced, not followed)."""
    parent, name = _split(path)
    fd = open_dir(parent, target=path)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise UnsafePathError(os.fspath(path), "is a folder, expected a file to write")
    finally:
        os.close(fd)


def _fsync_dirfd(dfd: int) -> None:
    try:
        fd = os.open(".", os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """fsync the folder ``path`` (its entries: a file just placed in it survives a power loss),
    reached without following a symlink; where it cannot be opened or synced, do nothing."""
    try:
        dfd = open_dir(path)
    except (UnsafePathError, OSError):
        return
    try:
        _fsync_dirfd(dfd)
    finally:
        os.close(dfd)


def _create_temp(dfd: int, name: str, mode: int, shown: str) -> tuple[int, str]:
    for _ in range(16):
        tmp = f".{name[:64]}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, mode, dir_fd=dfd), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise UnsafePathError(shown, f"cannot create a file in its folder ({_why(exc)})") from None
    raise UnsafePathError(shown, "cannot create a temporary file in its folder")  # pragma: no cover


def _place(dfd: int, tmp: str, name: str, shown: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(shown, "is a folder, expected a file to write")
    try:
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as exc:
        raise UnsafePathError(shown, _why(exc)) from None


def write_bytes(
    path: Path | str, data: bytes, *, mode: int = 0o644, create_parents: bool = False, parent_mode: int = 0o755
) -> None:
    """Write ``data`` to ``path``: a new file renamed over the target (see the module docstring)."""
    shown = os.fspath(path)
    if not _AT:  # pragma: no cover - platforms without *at calls (Windows): no symlinks to fear there
        Path(path).write_bytes(data)
        return
    parent, name = _split(path)
    dfd = open_dir(parent, create=create_parents, mode=parent_mode, target=path)
    try:
        fd, tmp = _create_temp(dfd, name, mode, shown)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _place(dfd, tmp, name, shown)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        _fsync_dirfd(dfd)
    finally:
        os.close(dfd)


def write_text(path: Path | str, text: str, *, mode: int = 0o644, create_parents: bool = False, parent_mode: int = 0o755) -> None:
    """:func:`write_bytes` of ``text`` in UTF-8."""
    write_bytes(path, text.encode("utf-8"), mode=mode, create_parents=create_parents, parent_mode=parent_mode)


def open_stream(path: Path | str, *, append: bool, mode: int = 0o644) -> IO[str]:
    """A text file to write line by line (the apply journal).

    ``append=False``: a new empty file is created and renamed over ``path`` at once (whatever was
    there, a symlink included, is replaced); lines are then written to it. ``append=True``: the
    existing file is opened with ``O_APPEND|O_NOFOLLOW``; a symlink, a non-regular file or a file
    with more than one hard link is refused."""
    shown = os.fspath(path)
    if not _AT:  # pragma: no cover
        return open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
    parent, name = _split(path)
    dfd = open_dir(parent, target=path)
    try:
        if append:
            try:
                fd = os.open(
                    name, os.O_WRONLY | os.O_APPEND | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0), dir_fd=dfd
                )
            except OSError as exc:
                raise UnsafePathError(shown, _why(exc)) from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                raise UnsafePathError(
                    shown,
                    "not a regular file"
                    if not stat.S_ISREG(st.st_mode)
                    else f"has {st.st_nlink} hard links; a file written to must have one",
                )
            os.set_blocking(fd, True)
            return os.fdopen(fd, "a", encoding="utf-8")
        fd, tmp = _create_temp(dfd, name, mode, shown)
        try:
            _place(dfd, tmp, name, shown)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        return os.fdopen(fd, "w", encoding="utf-8")
    finally:
        os.close(dfd)


def ensure_dir(path: Path | str, *, mode: int = 0o755, chmod: int | None = None) -> None:
    """Create the folder ``path`` (and its parents) without following any symlink; refuse one.
    ``chmod``: set the folder's mode (through its descriptor, not its name)."""
    fd = open_dir(path, create=True, mode=mode)
    try:
        if chmod is not None:
            rfd = os.open(".", os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC, dir_fd=fd) if _O_PATH else os.dup(fd)
            try:
                os.fchmod(rfd, chmod)
            finally:
                os.close(rfd)
    finally:
        os.close(fd)


def refuse_symlinks(folder: Path | str, names: list[str]) -> None:
    """Refuse when any of ``names`` inside ``folder`` (reached without symlinks) is a symlink or not
    a regular file: for files opened by a library that follows links (SQLite's database files)."""
    dfd = open_dir(folder)
    try:
        for name in names:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            shown = os.path.join(os.fspath(folder), name)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePathError(shown, "is a symlink; files are never written through a symlink")
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise UnsafePathError(shown, "not a regular file with one link")
    finally:
        os.close(dfd)


def read_bytes(path: Path | str, *, limit: int, absent_ok: bool = False) -> bytes | None:
    """The bytes of the regular file ``path`` (one link, no symlink anywhere on the way), at most
    ``limit`` of them. With ``absent_ok`` (a file this program wrote and reads back, such as a
    sandbox credential: a symlink there is replaced when it is written again), ``None`` when there
    is no such file or a symlink is at its name; otherwise both are :class:`UnsafePathError`."""
    shown = os.fspath(path)
    parent, name = _split(path)
    try:
        dfd = open_dir(parent, verb="read", target=path)
    except UnsafePathError as exc:
        if absent_ok and "does not exist" in exc.reason:
            return None
        raise
    try:
        try:
            fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0), dir_fd=dfd)
        except FileNotFoundError:
            if absent_ok:
                return None
            raise UnsafePathError(shown, "no such file", verb="read") from None
        except OSError as exc:
            if absent_ok and exc.errno == errno.ELOOP:
                return None
            raise UnsafePathError(
                shown,
                _why(exc) if exc.errno != errno.ELOOP else "is a symlink; this file is never read through a symlink",
                verb="read",
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise UnsafePathError(shown, "not a regular file with one link", verb="read")
            chunks, total = [], 0
            while True:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise UnsafePathError(shown, f"larger than {limit} bytes", verb="read")
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


__all__ = [
    "UnsafePathError",
    "check_folder",
    "check_target",
    "ensure_dir",
    "open_dir",
    "open_stream",
    "read_bytes",
    "refuse_symlinks",
    "write_bytes",
    "write_text",
]
