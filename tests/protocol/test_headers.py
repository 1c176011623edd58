from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator, MutableMapping
from types import FrameType
from typing import Any

import pytest

from tether.exceptions import WebSocketException
from tether.protocol.headers import Headers, MultipleValuesError, _pack_python, _PackedHeaders


def test_empty() -> None:
    headers = Headers()
    assert len(headers) == 0
    assert list(headers) == []
    assert headers.serialize() == b"\r\n"
    assert not headers


def test_from_mapping() -> None:
    headers = Headers({"Host": "example.com", "Origin": "https://example.com"})
    assert headers["host"] == "example.com"
    assert headers["ORIGIN"] == "https://example.com"
    assert list(headers.raw_items()) == [("Host", "example.com"), ("Origin", "https://example.com")]


def test_from_pairs_keeps_duplicates_and_order() -> None:
    headers = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert list(headers.raw_items()) == [("A", "1"), ("b", "2"), ("a", "3")]
    assert headers.get_all("a") == ["1", "3"]
    # As websockets: names in lower case, each once, in the order first seen.
    assert list(headers) == ["a", "b"]
    assert len(headers) == 2


def test_from_generator() -> None:
    def pairs() -> Iterator[tuple[str, str]]:
        yield "X", "1"

    assert Headers(pairs())["x"] == "1"


def test_from_headers_keeps_duplicates() -> None:
    original = Headers([("A", "1"), ("a", "2")])
    copy = Headers(original)
    assert copy.get_all("A") == ["1", "2"]
    assert copy == original


def test_from_keywords() -> None:
    headers = Headers({"A": "1"}, B="2")
    assert list(headers.raw_items()) == [("A", "1"), ("B", "2")]


def test_getitem_missing() -> None:
    with pytest.raises(KeyError):
        Headers()["Origin"]


def test_getitem_multiple() -> None:
    headers = Headers([("Sec-WebSocket-Key", "a"), ("sec-websocket-key", "b")])
    with pytest.raises(MultipleValuesError) as exc_info:
        headers["SEC-WEBSOCKET-KEY"]
    exc = exc_info.value
    assert isinstance(exc, LookupError)
    assert isinstance(exc, WebSocketException)
    assert not isinstance(exc, KeyError)
    assert exc.name == "Sec-WebSocket-Key"
    assert exc.count == 2
    assert str(exc) == "header 'Sec-WebSocket-Key' appears 2 times; expected one value"


def test_get_does_not_hide_duplicates() -> None:
    headers = Headers([("A", "1"), ("A", "2")])
    assert headers.get("B") is None
    with pytest.raises(MultipleValuesError):
        headers.get("A")


def test_setitem_appends() -> None:
    headers = Headers()
    headers["A"] = "1"
    headers["a"] = "2"
    assert headers.get_all("A") == ["1", "2"]
    assert list(headers) == ["a"]


def test_delitem_removes_every_value() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    del headers["a"]
    assert list(headers.raw_items()) == [("B", "2")]
    assert "A" not in headers
    assert headers.get_all("a") == []
    headers["a"] = "4"
    assert list(headers) == ["b", "a"]


def test_delitem_missing() -> None:
    with pytest.raises(KeyError):
        del Headers()["A"]


def test_contains() -> None:
    headers = Headers(Upgrade="websocket")
    assert "upgrade" in headers
    assert "UPGRADE" in headers
    assert "Connection" not in headers
    not_a_name: object = 42
    assert not_a_name not in headers


def test_update_appends() -> None:
    headers = Headers(A="1")
    headers.update({"a": "2"}, B="3")
    headers.update([("b", "4")])
    headers.update(Headers([("C", "5"), ("c", "6")]))
    assert headers.get_all("A") == ["1", "2"]
    assert headers.get_all("B") == ["3", "4"]
    assert headers.get_all("C") == ["5", "6"]


def test_mapping_mixins() -> None:
    headers = Headers([("A", "1"), ("B", "2")])
    assert list(headers.keys()) == ["a", "b"]
    assert list(headers.values()) == ["1", "2"]
    assert list(headers.items()) == [("a", "1"), ("b", "2")]
    assert headers.setdefault("C", "3") == "3"
    assert headers.pop("a") == "1"
    assert list(headers.raw_items()) == [("B", "2"), ("C", "3")]


def test_copy_is_independent() -> None:
    headers = Headers([("A", "1")])
    copy = headers.copy()
    copy["A"] = "2"
    copy["B"] = "3"
    assert headers.get_all("A") == ["1"]
    assert "B" not in headers
    assert list(copy.raw_items()) == [("A", "1"), ("A", "2"), ("B", "3")]


def test_clear() -> None:
    headers = Headers([("A", "1")])
    headers.clear()
    assert headers == Headers()
    assert list(headers.raw_items()) == []


def test_eq() -> None:
    assert Headers([("A", "1"), ("B", "2")]) == Headers([("b", "2"), ("a", "1")])
    assert Headers([("A", "1"), ("A", "2")]) != Headers([("A", "2"), ("A", "1")])
    assert Headers(A="1") != Headers(A="2")
    assert Headers(A="1") == {"a": "1"}
    # The reflected comparison goes through Headers.__eq__ too.
    assert {"a": "1"} == Headers(A="1")  # noqa: SIM300
    assert Headers(A="1") != {"a": "2"}
    assert Headers(A="1") != {"a b": "1"}
    assert Headers(A="1") != {1: "1"}
    assert Headers(A="1") != [("A", "1")]


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Headers())


def test_repr() -> None:
    assert repr(Headers([("A", "1"), ("a", "2")])) == "Headers([('A', '1'), ('a', '2')])"


def test_serialize() -> None:
    headers = Headers([("Host", "example.com"), ("X", "caf\xe9"), ("x", "")])
    assert headers.serialize() == b"Host: example.com\r\nX: caf\xe9\r\nx: \r\n\r\n"


@pytest.mark.parametrize("name", ["", "A B", "A:", "A\r\nB", "Ä", "A\x00"])
def test_invalid_name(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        Headers()[name] = "1"


@pytest.mark.parametrize("value", ["a\r\nB: c", "a\nb", "a\rb", "\x00", "\x7f", "\u20ac"])
def test_invalid_value(value: str) -> None:
    with pytest.raises(ValueError, match="invalid value for header A"):
        Headers()["A"] = value


def test_valid_unusual_values() -> None:
    headers = Headers([("A", "\t x\xff ")])
    assert headers["A"] == "\t x\xff "


def test_not_str() -> None:
    with pytest.raises(TypeError):
        Headers([("A", 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Headers([(b"A", "1")])  # type: ignore[list-item]


def test_names_go_on_the_wire_as_given() -> None:
    # Iteration gives lower-case names; serialization keeps the spelling.
    headers = Headers([("Sec-WebSocket-Key", "k"), ("X-CUSTOM", "v")])
    assert list(headers) == ["sec-websocket-key", "x-custom"]
    assert headers.serialize() == b"Sec-WebSocket-Key: k\r\nX-CUSTOM: v\r\n\r\n"
    assert dict(headers) == {"sec-websocket-key": "k", "x-custom": "v"}


# Packed fields (Headers._pack): what an open connection keeps of its
# handshake. Every reading and every change must give what it gives on the
# same headers unpacked.

_PACKED_SAMPLES = [
    [("Host", "example.com")],
    [
        ("Host", "h"),
        ("Set-Cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("X-Empty", ""),
        ("A", "\t x\xff "),
    ],
    [("A", ""), ("B", ""), ("a", "3")],
]


def _outcome(operation: Callable[[Headers], object], headers: Headers) -> object:
    try:
        return operation(headers)
    except LookupError as exc:
        return type(exc), str(exc)


def _delete(headers: Headers, name: str) -> list[tuple[str, str]]:
    del headers[name]
    return list(headers.raw_items())


def _set(headers: Headers) -> list[tuple[str, str]]:
    headers["Host"] = "other"
    return list(headers.raw_items())


def _clear(headers: Headers) -> list[tuple[str, str]]:
    headers.clear()
    return list(headers.raw_items())


def _update(headers: Headers) -> list[tuple[str, str]]:
    headers.update([("X", "1")], Y="2")
    return list(headers.raw_items())


_OPERATIONS: list[Callable[[Headers], object]] = [
    lambda headers: list(headers.raw_items()),
    list,
    len,
    repr,
    lambda headers: headers.serialize(),
    lambda headers: headers["host"],
    lambda headers: headers["SET-COOKIE"],
    lambda headers: headers.get("a"),
    lambda headers: headers.get_all("set-cookie"),
    lambda headers: headers.get_all("Missing"),
    lambda headers: "HOST" in headers,
    lambda headers: "missing" in headers,
    lambda headers: headers == Headers([("host", "example.com")]),
    lambda headers: list(headers.copy().raw_items()),
    lambda headers: _delete(headers, "a"),
    lambda headers: _delete(headers, "SET-COOKIE"),
    _set,
    _clear,
    _update,
]


@pytest.mark.parametrize("fields", _PACKED_SAMPLES)
@pytest.mark.parametrize("operation", range(len(_OPERATIONS)))
def test_packed_reads_and_changes_as_unpacked(
    fields: list[tuple[str, str]], operation: int
) -> None:
    packed = Headers(fields)
    packed._pack()
    assert isinstance(packed._fields, bytes)
    expected = _outcome(_OPERATIONS[operation], Headers(fields))
    assert _outcome(_OPERATIONS[operation], packed) == expected


def test_packed_equals_unpacked() -> None:
    for fields in _PACKED_SAMPLES:
        packed, other = Headers(fields), Headers(fields)
        packed._pack()
        other._pack()
        assert packed == Headers(fields)
        assert Headers(fields) == other
        assert packed == other


def test_packed_is_headers_and_unpacks_once() -> None:
    headers = Headers([("A", "1"), ("B", "2")])
    headers._pack()
    assert isinstance(headers, Headers)
    assert isinstance(headers, MutableMapping)
    packed = headers._fields
    headers._pack()
    assert headers._fields is packed
    assert headers["b"] == "2"
    assert type(headers) is Headers
    assert headers._fields == [("A", "1"), ("B", "2")]


def test_pack_leaves_some_headers_alone() -> None:
    empty = Headers()
    empty._pack()
    assert type(empty) is Headers
    assert empty._fields == []

    class Custom(Headers):
        __slots__ = ()

    custom = Custom([("A", "1")])
    custom._pack()
    assert custom._fields == [("A", "1")]


def test_pack_python() -> None:
    # The C twin, speedups.pack_fields, is compared with it in test_speedups.
    fields = [("A", "1"), ("b", ""), ("C", "\t x\xff ")]
    assert _pack_python(fields) == b"A: 1\r\nb: \r\nC: \t x\xff \r\n\r\n"
    assert _pack_python(fields) == Headers(fields).serialize()
    assert _pack_python([("A", "")]) == b"A: \r\n\r\n"
    # Nothing to pack, a line feed that would split where no field ends, or
    # a character past U+00FF: the fields stay as they are.
    assert _pack_python([]) is None
    assert _pack_python([("A", "1\n2"), ("B", "3")]) is None
    assert _pack_python([("A", "1"), ("B\n", "3")]) is None
    assert _pack_python([("A", "\u20ac")]) is None


def test_packed_block_given_is_kept_when_it_reads_back() -> None:
    headers = Headers([("A", "1"), ("B", "")])
    block = headers.serialize()
    headers._pack(block)
    assert headers._fields is block  # type: ignore[comparison-overlap]
    # Serializing packed headers gives the block itself, still packed.
    assert headers.serialize() is block
    assert type(headers) is not Headers
    assert list(headers.raw_items()) == [("A", "1"), ("B", "")]
    # A block with a line feed more than its fields have lines is refused.
    other = Headers([("A", "1")])
    other._pack(b"A: 1\r\nB: 2\r\n\r\n")
    assert other._fields == [("A", "1")]
    assert type(other) is Headers


_READS = [0, 1, 2, 3, 4, 5, 8, 9, 10, 12, 13]


@pytest.mark.parametrize("operation", _READS)
def test_packed_read_while_another_read_unpacks(operation: int) -> None:
    # Another thread may read the headers while a first read is unpacking
    # them, between its two steps: it reads them as they are.
    fields = _PACKED_SAMPLES[1]
    headers = Headers(fields)
    headers._pack()
    read = _OPERATIONS[operation]
    code = _PackedHeaders._unpack.__code__
    lines, start = inspect.getsourcelines(code)
    switch = start + next(i for i, line in enumerate(lines) if "__class__ = Headers" in line)
    seen: list[object] = []

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == switch and not seen:
            seen.append(_outcome(read, headers))  # the other thread's read, now
        return local

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        first = headers.get_all("host")
    finally:
        sys.settrace(previous)
    assert first == ["h"]
    assert seen == [_outcome(read, Headers(fields))]


@pytest.mark.parametrize("operation", _READS)
def test_packed_headers_unpacked_already_read_as_headers(operation: int) -> None:
    # What the other thread meets there: the fields a list, the class not yet switched.
    fields = _PACKED_SAMPLES[1]
    headers = Headers(fields)
    headers._pack()
    headers._fields = list(fields)
    assert type(headers) is _PackedHeaders
    assert _outcome(_OPERATIONS[operation], headers) == _outcome(
        _OPERATIONS[operation], Headers(fields)
    )
