"""The terminal side of a run: whole lines, machines' lines under their names in their own colours,
and, on a terminal, a status line kept below them and redrawn in place.

What goes to a file or a pipe is plain lines, written once: no cursor movement, and colour only
where `colors_wanted` says so. On a terminal a status (a wait's elapsed time, `booted 37/100`) stays
on the last line and is redrawn every `TICK` seconds; a line printed meanwhile goes above it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

TICK = 0.25  # seconds between two redraws of the status line
STYLES = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
# The machines' colours, in declaration order: neither red, kept for failures, nor plain.
MACHINE_COLORS = ("36", "35", "34", "32", "33", "96", "95", "94", "92", "93")
NAME_WIDTH = 12  # a machine's name is padded to this, so that its lines line up
ERASE = "\r\x1b[2K"  # to the start of the line, and clear it


def colors_wanted(stream: TextIO) -> bool:
    """Whether to colour what goes to `stream`: never with NO_COLOR set (not empty), always with
    FORCE_COLOR set (not empty, not 0), else where it is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    return _is_terminal(stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def style(text: str, color: str | None, wanted: bool) -> str:
    """`text` in `color` (a name of `STYLES` or an SGR code) when colour is `wanted`."""
    if not wanted or not color:
        return text
    return f"\x1b[{STYLES.get(color, color)}m{text}\x1b[0m"


class MachinePrefixes:
    """Each machine's name as its lines start, padded, in a colour of its own (by declaration order)."""

    def __init__(self, names: Sequence[str], color: bool) -> None:
        self._codes = {name: MACHINE_COLORS[i % len(MACHINE_COLORS)] for i, name in enumerate(names)}
        self.color = color

    def line(self, machine: str, source: str, text: str) -> str:
        """`text` from `machine`'s `source` ("console", "journal") as a terminal line."""
        name = style(f"{machine:<{NAME_WIDTH}}", self._codes.get(machine), self.color)
        return f"  {name} {style(source, 'dim', self.color)} {text}"


class Terminal:
    """Lines to a stream, and a status line below them where the stream is a terminal.

    Thread-safe. `status(key, render)` shows `render()` until `status(key, None)`; several statuses
    share the line. Where the stream is not a terminal, statuses show nothing: their owners print
    one plain line when they end.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.color = stream is not None and colors_wanted(stream)
        self.live = stream is not None and _is_terminal(stream)  # status lines redrawn in place
        self.lock = threading.Lock()
        self._statuses: dict[object, Callable[[], str]] = {}
        self._drawn = False  # a status line is on the screen
        self._shown = ""  # what it shows
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None

    def line(self, text: str, color: str | None = None) -> None:
        """Write a line (already `printable`), above the status line if one shows."""
        with self.lock:
            self._write(f"{ERASE if self._drawn else ''}{style(text, color, self.color)}\n")
            self._drawn = False
            self._draw()

    def status(self, key: object, render: Callable[[], str] | None) -> None:
        """Show `render()` on the status line, redrawn as time passes; None takes it away."""
        if not self.live:
            return
        with self.lock:
            if render is None:
                self._statuses.pop(key, None)
            else:
                self._statuses[key] = render
            self._draw()
            if self._ticker is None and self._statuses and not self._closed.is_set():
                self._ticker = threading.Thread(target=self._tick, name="herd-terminal", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while not self._closed.wait(TICK):
            with self.lock:
                if self._statuses:
                    self._draw()

    def _width(self) -> int:
        """The terminal's width, or 80 where it does not say (a pseudo-terminal of size 0)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns if self.stream else 0
        except (OSError, ValueError):
            columns = 0
        return columns or 80

    def _draw(self) -> None:
        """Redraw the status line (or clear it when there is no status); the lock is held."""
        if not self.live or not (self._statuses or self._drawn):
            return
        text = "  ·  ".join(render() for render in self._statuses.values())
        # One screen line at most: a line that wrapped could not be redrawn in place.
        text = text[: max(self._width() - 1, 1)]
        if self._drawn and text == self._shown:
            return
        self._write(f"{ERASE}{style(text, 'dim', self.color)}" if text else ERASE)
        self._drawn, self._shown = bool(text), text

    def _write(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the log file still has it all
            self.stream = None

    def close(self) -> None:
        """Take the status line away and stop redrawing it."""
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join()
        with self.lock:
            self._statuses.clear()
            self._draw()


class Progress:
    """`booted 37/100`: how many of a number of machines are through, for a status line
    (`Terminal.status(progress, progress.render)`). `one_done` fits `Future.add_done_callback`."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def one_done(self, *_: object) -> None:
        with self._lock:
            self.done += 1

    def render(self) -> str:
        return f"{self.what} {self.done}/{self.total}"
