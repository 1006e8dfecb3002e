"""Progress of long steps on stderr: a live display on a terminal, a line now and then otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import click

from reconciler.manifest import oneline

PROGRESS_INTERVAL = 5.0  # seconds between one-line progress reports when stderr is not a terminal


class ProgressDisplay:
    """Progress of long steps, fed by ``RunContext.report`` (from worker threads too).

    On a terminal (stderr): a rich progress display, shown while some step is running and removed
    when none is. Otherwise: one line per step at most every ``PROGRESS_INTERVAL`` seconds (short runs
    print nothing)."""

    def __init__(self, stream: Any, *, color: bool):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", None) and stream.isatty())
        self.color = color
        self.lock = threading.Lock()
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.last_line = time.monotonic()

    def __call__(self, what: str, done: int, total: int | None) -> None:
        what = oneline.one_line(what)  # a label may name a table from the config
        with self.lock:
            if self.tty:
                self._live(what, done, total)
            elif time.monotonic() - self.last_line >= PROGRESS_INTERVAL:
                self.last_line = time.monotonic()
                count = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
                print(f"progress: {what}: {count}", file=self.stream, flush=True)

    def _live(self, what: str, done: int, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        finished = total is not None and done >= total
        if self.progress is None:
            if finished:
                return
            console = Console(file=self.stream, no_color=not self.color, force_terminal=True)
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.progress.start()
        task = self.tasks.get(what)
        if task is None:
            task = self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(task, completed=done, total=total)
        if finished:
            self.progress.remove_task(task)
            del self.tasks[what]
            if not self.tasks:
                self.close_locked()

    def notice(self, text: str) -> None:
        """One line at once (what a slow run waits for), above a live display on a terminal."""
        with self.lock:
            line = oneline.one_line(text)
            if self.progress is not None:
                self.progress.console.print(line, markup=False, highlight=False)
            else:
                print(line, file=self.stream, flush=True)

    def close_locked(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.tasks.clear()

    def close(self) -> None:
        with self.lock:
            self.close_locked()


def progress_for(ctx: Any, *, color: bool) -> None:
    """Drive a progress display from this run's reports; stopped when the command ends."""
    display = ProgressDisplay(sys.stderr, color=color)
    ctx.on_progress = display
    ctx.on_wait = display.notice
    _displays.append(display)
    click.get_current_context().call_on_close(display.close)


_displays: list[ProgressDisplay] = []


def stop_progress() -> None:
    while _displays:
        _displays.pop().close()
