"""The terminal of the interactive client: keystrokes in, a prompt that survives output."""

from __future__ import annotations

import asyncio
import os
import termios
from types import TracebackType
from typing import Any, TextIO

from tether.cli.editor import Action, LineEditor, sanitize

__all__ = ["Terminal"]

_CLEAR_LINE = "\r\x1b[K"


class Terminal:
    """A prompt on a TTY, with lines printed above it as they come.

    Used with ``with``, it turns off the terminal's own line editing and
    echo (the :class:`~tether.cli.editor.LineEditor` does both) and restores
    the settings on exit. Output processing stays on, so ``\\n`` still
    starts a new line. Keystrokes are read on the event loop, not in a
    thread, so that every write to the terminal happens in one place.
    """

    def __init__(self, fd: int, out: TextIO, prompt: str = "> ") -> None:
        self.fd = fd
        self.out = out
        self.editor = LineEditor(prompt)
        self.actions: asyncio.Queue[Action] = asyncio.Queue()
        """What the keystrokes asked for, in order."""
        self._saved: list[Any] | None = None
        self._reading = False

    def __enter__(self) -> Terminal:
        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        # Ctrl-C and Ctrl-D come in as keys; Enter comes as \r, and stays \r.
        mode[0] &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, mode)
        asyncio.get_running_loop().add_reader(self.fd, self._read)
        self._reading = True
        self._draw("")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self.fd)
            self._reading = False
        self._draw(_CLEAR_LINE)
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def columns(self) -> int:
        """The terminal's width, read each time so that resizing needs no signal handler."""
        try:
            columns = os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns or 80

    def show(self, text: str) -> None:
        """Print ``text`` above the prompt, then redraw the prompt and the line being typed."""
        self._draw(f"{_CLEAR_LINE}{sanitize(text)}\n{self.editor.render(self.columns())}")

    def _draw(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            data = b""
        if not data:
            # The terminal went away: the same as Ctrl-D.
            asyncio.get_running_loop().remove_reader(self.fd)
            self._reading = False
            self.actions.put_nowait(Action("eof"))
            return
        editor = self.editor
        actions = editor.feed(data)
        for action in actions:
            if action.kind == "line":
                # Leave the line sent on screen, as a shell does.
                self._draw(f"{_CLEAR_LINE}{editor.prompt}{sanitize(action.text)}\n")
            self.actions.put_nowait(action)
        # Every keystroke may have moved the cursor or changed the line: redraw it whole.
        self._draw(editor.render(self.columns()))
