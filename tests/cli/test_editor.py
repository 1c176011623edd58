"""The line editor of the interactive client, and the client's formatting, without a terminal."""

from __future__ import annotations

import ssl

import pytest

from tether.cli.client import connect_error, format_message, parse_header
from tether.cli.editor import Action, LineEditor, sanitize, text_width
from tether.exceptions import InvalidMessage

LEFT = b"\x1b[D"
RIGHT = b"\x1b[C"
UP = b"\x1b[A"
DOWN = b"\x1b[B"


def typed(*keys: bytes) -> LineEditor:
    editor = LineEditor()
    for key in keys:
        assert editor.feed(key) == []
    return editor


def test_enter_submits_the_line_and_starts_a_new_one() -> None:
    editor = typed(b"hello")
    assert editor.feed(b"\r") == [Action("line", "hello")]
    assert editor.text == ""
    assert editor.render() == "\r\x1b[K> "


def test_several_lines_in_one_read() -> None:
    editor = LineEditor()
    assert editor.feed(b"one\rtwo\npartial") == [Action("line", "one"), Action("line", "two")]
    assert editor.text == "partial"


def test_utf8_split_across_reads() -> None:
    data = "é✓".encode()
    editor = typed(data[:1], data[1:4])
    assert editor.feed(data[4:] + b"\r") == [Action("line", "é✓")]


def test_cursor_movement_and_editing() -> None:
    editor = typed(b"acd", LEFT, LEFT, b"b")
    assert (editor.text, editor.cursor) == ("abcd", 2)
    assert editor.render() == "\r\x1b[K> abcd\x1b[2D"
    editor.feed(b"\x7f")  # Backspace
    assert (editor.text, editor.cursor) == ("acd", 1)
    editor.feed(b"\x1b[3~")  # Delete
    assert (editor.text, editor.cursor) == ("ad", 1)
    editor.feed(b"\x01")  # Ctrl-A
    assert editor.cursor == 0
    editor.feed(b"\x05")  # Ctrl-E
    assert editor.cursor == 2
    editor.feed(b"\x1b[H")  # Home
    assert editor.cursor == 0
    editor.feed(LEFT)
    assert editor.cursor == 0
    editor.feed(b"\x1bOF")  # End, as some terminals send it
    assert editor.cursor == 2
    editor.feed(RIGHT)
    assert editor.cursor == 2
    editor.feed(b"\x02\x02\x06")  # Ctrl-B twice, Ctrl-F
    assert editor.cursor == 1


def test_kill_keys() -> None:
    editor = typed(b"one two  three", LEFT, LEFT)
    editor.feed(b"\x0b")  # Ctrl-K: to the end
    assert editor.text == "one two  thr"
    editor.feed(b"\x17")  # Ctrl-W: the word before the cursor
    assert editor.text == "one two  "
    editor.feed(b"\x17")
    assert editor.text == "one "
    editor.feed(b"\x15")  # Ctrl-U: to the start
    assert (editor.text, editor.cursor) == ("", 0)


def test_ctrl_d_ends_only_on_an_empty_line() -> None:
    editor = typed(b"ab", LEFT)
    assert editor.feed(b"\x04") == []
    assert editor.text == "a"
    editor.feed(b"\x7f")
    assert editor.feed(b"\x04") == [Action("eof")]


def test_ctrl_c_interrupts() -> None:
    assert typed(b"text").feed(b"\x03") == [Action("interrupt")]


def test_history() -> None:
    editor = LineEditor()
    editor.feed(b"first\rsecond\rsecond\rdraft")
    assert editor.history == ["first", "second"]
    editor.feed(UP)
    assert editor.text == "second"
    editor.feed(b"\x10")  # Ctrl-P
    assert editor.text == "first"
    editor.feed(UP)
    assert editor.text == "first"
    editor.feed(DOWN)
    assert editor.text == "second"
    editor.feed(b"\x0e")  # Ctrl-N
    assert (editor.text, editor.cursor) == ("draft", 5)
    editor.feed(DOWN)
    assert editor.text == "draft"


def test_escape_sequence_split_across_reads() -> None:
    editor = typed(b"ab", b"\x1b", b"[", b"D")
    assert editor.cursor == 1


def test_unknown_keys_change_nothing() -> None:
    editor = typed(b"ab", b"\x1bb", b"\x1b[15~", b"\x07\x0c\t")
    assert (editor.text, editor.cursor) == ("ab", 2)


def test_long_line_scrolls_sideways() -> None:
    editor = typed(b"x" * 30 + b"y" * 30)
    # 20 columns: 2 for the prompt, 1 kept free, 17 for the text.
    assert editor.render(20) == "\r\x1b[K> " + "y" * 17
    editor.feed(b"\x01")
    assert editor.render(20) == "\r\x1b[K> " + "x" * 17 + "\x1b[17D"


def test_wide_characters_count_two_columns() -> None:
    assert text_width("a界e\u0301") == 4
    editor = typed("界界".encode(), LEFT)
    assert editor.render() == "\r\x1b[K> 界界\x1b[2D"


def test_sanitize_neutralizes_terminal_controls() -> None:
    assert sanitize("plain text") == "plain text"
    assert sanitize("a\x1b[2Jb\r\x07") == "a\\x1b[2Jb\\r\\x07"
    assert sanitize("two\nlines\tand tab") == "two\nlines\tand tab"
    assert sanitize("\u009b") == "\\x9b"


def test_format_message() -> None:
    assert format_message("text") == "text"
    assert format_message(b"\x01\x02") == "[binary, 2 bytes] 01 02"
    assert format_message(bytes(100)).endswith(" 00 ...")


def test_parse_header() -> None:
    assert parse_header("Authorization: Bearer x:y") == ("Authorization", "Bearer x:y")
    assert parse_header("X-Empty:") == ("X-Empty", "")
    for bad in ("no colon", ": no name"):
        with pytest.raises(ValueError, match="expected 'Name: value'"):
            parse_header(bad)


def test_connect_errors_in_one_line() -> None:
    uri = "wss://example.test/"
    assert connect_error(uri, TimeoutError(), 2.5) == f"timed out connecting to {uri} after 2.5 s"
    closed = InvalidMessage("connection closed while reading the status line")
    closed.__cause__ = EOFError()
    message = connect_error(uri, closed, 1)
    assert message == "the server closed the connection without answering the WebSocket handshake"
    message = connect_error(uri, InvalidMessage("invalid status code in status line: b'x'"), 1)
    assert message == (
        f"{uri} is not a WebSocket server: its answer is not a valid HTTP/1.1 handshake "
        "response (invalid status code in status line: 'x')"
    )
    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    failure.verify_message = "self-signed certificate"
    assert connect_error(uri, failure, 1) == (
        "TLS certificate verification failed: self-signed certificate (--insecure skips it)"
    )
    assert connect_error(uri, OSError("Multiple exceptions"), 1) == (
        f"cannot connect to {uri}: Multiple exceptions"
    )
    assert connect_error(uri, RuntimeError("bug"), 1) is None
