"""Events are small immutable values whose repr stays short."""

from __future__ import annotations

import dataclasses

import pytest

from tether.protocol.events import Fragment, Message, Ping


def test_events_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Ping(b"x").data = b"y"  # type: ignore[misc]


def test_short_payloads_show_whole() -> None:
    assert repr(Message("hi")) == "Message(data='hi')"
    assert repr(Fragment(b"ab", True, False)) == "Fragment(data=b'ab', first=True, last=False)"


def test_long_payloads_are_shortened() -> None:
    assert repr(Message("é" * 1000)) == f"Message(data={'é' * 48!r}... (1000 characters))"
    zeros = b"\x00" * 48
    assert repr(Fragment(b"\x00" * 65, False, True)) == (
        f"Fragment(data={zeros!r}... (65 bytes), first=False, last=True)"
    )
