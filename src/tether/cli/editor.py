"""A small line editor: keystrokes in, submitted lines and the text to draw out.

It does no I/O, so the interactive client can redraw the line being typed
whenever a message arrives, and the tests can drive it without a terminal.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = ["Action", "LineEditor", "sanitize", "text_width"]

# Keys of the editor, as bytes read from a terminal without ICANON.
_CTRL_A = "\x01"
_CTRL_B = "\x02"
_CTRL_C = "\x03"
_CTRL_D = "\x04"
_CTRL_E = "\x05"
_CTRL_F = "\x06"
_CTRL_H = "\x08"
_CTRL_K = "\x0b"
_CTRL_L = "\x0c"
_CTRL_N = "\x0e"
_CTRL_P = "\x10"
_CTRL_U = "\x15"
_CTRL_W = "\x17"
_ESC = "\x1b"
_DEL = "\x7f"

# Final bytes (and parameters) of the escape sequences the editor knows.
_CSI_KEYS = {
    "A": "up",
    "B": "down",
    "C": "right",
    "D": "left",
    "H": "home",
    "F": "end",
    "1~": "home",
    "7~": "home",
    "4~": "end",
    "8~": "end",
    "3~": "delete",
}

_HISTORY_SIZE = 500


@dataclass(frozen=True, slots=True)
class Action:
    """What a keystroke asks of the client: send a line, or stop."""

    kind: Literal["line", "eof", "interrupt"]
    """``line``: Enter was pressed; ``eof``: Ctrl-D on an empty line; ``interrupt``: Ctrl-C."""
    text: str = ""
    """The line, for ``line``."""


def char_width(char: str) -> int:
    """The number of terminal columns ``char`` takes: 0, 1 or 2."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    """The number of terminal columns ``text`` takes."""
    return sum(char_width(char) for char in text)


def sanitize(text: str) -> str:
    """Make ``text`` safe to write to a terminal: control characters become visible escapes.

    A peer must not be able to move the cursor or change the terminal's
    settings with escape sequences in its messages. Newlines and tabs stay.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char in "\n\t" or char.isprintable() or unicodedata.category(char) == "Zs":
            out.append(char)
        else:
            out.append(ascii(char)[1:-1])
    return "".join(out)


class LineEditor:
    """Edit one line at a time, with the keys of a shell's line editing.

    :meth:`feed` takes the bytes read from the terminal and returns the
    actions they complete; :meth:`render` gives the escape sequences that
    redraw the prompt and the line with the cursor in place. Supported:
    printable text (UTF-8), Backspace, Delete, Left, Right, Home, End,
    Ctrl-A/B/E/F/K/U/W, Up and Down (or Ctrl-P/N) through the history,
    Enter, Ctrl-D on an empty line (end), Ctrl-C (interrupt).
    """

    def __init__(self, prompt: str = "> ") -> None:
        self.prompt = prompt
        self.chars: list[str] = []
        """The line being typed."""
        self.cursor = 0
        """The cursor's position in :attr:`chars`."""
        self.history: list[str] = []
        self._browsing = 0  # How far back in the history Up went; 0 is the line being typed.
        self._draft: list[str] = []  # The line being typed, kept while browsing the history.
        self._offset = 0  # The first character shown when the line is wider than the terminal.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # An incomplete escape sequence.

    @property
    def text(self) -> str:
        """The line being typed."""
        return "".join(self.chars)

    def feed(self, data: bytes) -> list[Action]:
        """Process bytes typed; return the actions they complete, in order."""
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        actions: list[Action] = []
        index = 0
        while index < len(text):
            char = text[index]
            if char == _ESC:
                consumed = self._escape(text, index)
                if consumed == 0:
                    self._pending = text[index:]
                    break
                index += consumed
                continue
            index += 1
            action = self._key(char)
            if action is not None:
                actions.append(action)
        return actions

    def _escape(self, text: str, start: int) -> int:
        """Handle the escape sequence at ``start``; return its length, 0 if incomplete."""
        if start + 1 >= len(text):
            return 0
        kind = text[start + 1]
        if kind not in "[O":
            return 2  # Alt and a key: not bound.
        end = start + 2
        while end < len(text) and not "\x40" <= text[end] <= "\x7e":
            end += 1
        if end >= len(text):
            return 0
        key = _CSI_KEYS.get(text[start + 2 : end + 1])
        if key is not None:
            self._move(key)
        return end + 1 - start

    def _move(self, key: str) -> None:
        if key == "left":
            self.cursor = max(0, self.cursor - 1)
        elif key == "right":
            self.cursor = min(len(self.chars), self.cursor + 1)
        elif key == "home":
            self.cursor = 0
        elif key == "end":
            self.cursor = len(self.chars)
        elif key == "delete":
            if self.cursor < len(self.chars):
                del self.chars[self.cursor]
        elif key == "up":
            self._browse(self._browsing + 1)
        elif key == "down":
            self._browse(self._browsing - 1)

    def _browse(self, back: int) -> None:
        if not 0 <= back <= len(self.history) or back == self._browsing:
            return
        if self._browsing == 0:
            self._draft = self.chars
        self._browsing = back
        self.chars = list(self._draft if back == 0 else self.history[-back])
        self.cursor = len(self.chars)

    def _key(self, char: str) -> Action | None:
        chars = self.chars
        if char in "\r\n":
            line = self.text
            if line and (not self.history or self.history[-1] != line):
                self.history.append(line)
                del self.history[:-_HISTORY_SIZE]
            self.chars = []
            self.cursor = 0
            self._browsing = 0
            self._offset = 0
            return Action("line", line)
        if char == _CTRL_D:
            if not chars:
                return Action("eof")
            self._move("delete")
        elif char == _CTRL_C:
            return Action("interrupt")
        elif char in (_DEL, _CTRL_H):
            if self.cursor > 0:
                self.cursor -= 1
                del chars[self.cursor]
        elif char == _CTRL_A:
            self._move("home")
        elif char == _CTRL_E:
            self._move("end")
        elif char == _CTRL_B:
            self._move("left")
        elif char == _CTRL_F:
            self._move("right")
        elif char == _CTRL_P:
            self._move("up")
        elif char == _CTRL_N:
            self._move("down")
        elif char == _CTRL_K:
            del chars[self.cursor :]
        elif char == _CTRL_U:
            del chars[: self.cursor]
            self.cursor = 0
        elif char == _CTRL_W:
            start = self.cursor
            while start > 0 and chars[start - 1] == " ":
                start -= 1
            while start > 0 and chars[start - 1] != " ":
                start -= 1
            del chars[start : self.cursor]
            self.cursor = start
        elif char.isprintable() or unicodedata.category(char) == "Zs":
            chars.insert(self.cursor, char)
            self.cursor += 1
        # Other control characters (and Ctrl-L) change nothing but trigger a redraw.
        return None

    def render(self, columns: int = 80) -> str:
        """Return what redraws the prompt and the line, leaving the cursor in place.

        A line wider than the terminal scrolls sideways to keep the cursor in
        view, so that the line never wraps: redrawing one row is enough.
        """
        room = max(1, columns - text_width(self.prompt) - 1)
        chars = self.chars
        cursor = self.cursor
        offset = min(self._offset, cursor)
        while text_width("".join(chars[offset:cursor])) > room:
            offset += 1
        self._offset = offset
        shown: list[str] = []
        width = 0
        for char in chars[offset:]:
            width += char_width(char)
            if width > room:
                break
            shown.append(char)
        after = text_width("".join(shown[cursor - offset :]))
        back = f"\x1b[{after}D" if after else ""
        return f"\r\x1b[K{self.prompt}{''.join(shown)}{back}"
