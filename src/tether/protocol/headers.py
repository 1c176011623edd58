"""HTTP headers as a case-insensitive multi-dict.

:class:`Headers` keeps every field in the order it arrived, duplicates and
original spelling included, and answers lookups by name, ignoring case. It
behaves like a ``dict`` while no name repeats; the few places where a name
may repeat are spelt out in its docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, TypeAlias, cast

from tether.exceptions import WebSocketException
from tether.protocol.speedups import speedups

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ["Headers", "HeadersLike", "MultipleValuesError", "check_header"]

# RFC 9110 section 5.6.2: tchar.
_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 9110 section 5.5: field-vchar, SP, HTAB and obs-text. Code points stop at
# U+00FF because values travel as latin-1, which maps each one to one byte.
_VALUE_CHARS = frozenset(map(chr, [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]))


class MultipleValuesError(WebSocketException, LookupError):
    """``headers[name]`` found more than one value; use :meth:`Headers.get_all`.

    It is a :class:`LookupError` but not a :class:`KeyError`, so that
    ``headers.get(name)`` raises it too rather than pretending the header is
    absent: a repeated ``Sec-WebSocket-Key`` must not go unnoticed.
    """

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        super().__init__(f"header {name!r} appears {count} times; expected one value")


# Defining __eq__ leaves __hash__ as None, as a mutable mapping should.
class Headers(MutableMapping[str, str]):  # noqa: PLW1641
    """HTTP headers: a case-insensitive mapping that keeps order and duplicates.

    Build it from nothing, a mapping, an iterable of ``(name, value)`` pairs,
    another :class:`Headers` (duplicates kept) and keyword arguments. Names
    must be RFC 9110 tokens and values may hold only visible ASCII, space,
    tab and U+0080 to U+00FF, or :class:`ValueError` is raised: a CR or LF in
    a value would let it forge extra header lines.

    As a mapping it follows these rules:

    - ``headers[name]`` returns the value, raises :class:`KeyError` when the
      name is absent and :class:`MultipleValuesError` when it repeats;
      ``get``, ``pop``, ``values()`` and ``items()`` inherit this;
    - ``headers[name] = value`` *appends* a field and never replaces one;
      ``update`` appends too; ``del headers[name]`` then setting replaces;
    - ``del headers[name]`` removes every field of that name;
    - iteration yields each distinct name once, in lower case, in the order
      first seen (as websockets' ``Headers`` does), and ``len`` counts
      distinct names; the names go on the wire as they were given.

    :meth:`get_all` and :meth:`raw_items` reach every field, duplicates
    included.
    """

    # Only the fields are kept, and lookups scan them: a handshake has a
    # dozen headers (max_headers bounds a hostile one), and an idle
    # connection keeps its request and response, so an index per Headers
    # would cost more memory than the scans cost time. For the same reason
    # a connection packs them (see _pack).
    __slots__ = ("_fields",)

    def __init__(self, arg: HeadersLike | None = None, /, **kwargs: str) -> None:
        self._fields: list[tuple[str, str]] = []
        if arg is not None:
            self.update(arg)
        self.update(**kwargs)

    @classmethod
    def _adopt(cls, fields: list[tuple[str, str]]) -> Headers:
        """Wrap ``fields`` as they are: for callers that checked every name and value already."""
        headers = cls.__new__(cls)
        headers._fields = fields
        return headers

    def _pack(self, block: bytes | None = None) -> None:
        """Keep the fields as their header block until they are next used.

        A connection keeps its handshake's request and response for its
        whole life, and most never read them again: the block that
        :meth:`serialize` builds takes less than half the memory of a list
        of pairs. ``block`` is that block when the caller has just built
        it, as a server has for its response. The headers then belong to a
        private subclass, whose first use of the fields parses the block
        back and makes them a :class:`Headers` again, so that the methods of
        :class:`Headers` itself never check for packed fields. Fields that
        hold a line feed or a character past U+00FF, which no checked field
        does, are not packed.
        """
        if type(self) is Headers:
            if block is None:
                block = _pack_fields(self._fields)
            elif block.count(b"\n") != len(self._fields) + 1:
                return
            if block is not None:
                self._fields = block  # type: ignore[assignment]
                self.__class__ = _PackedHeaders

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        if len(values) > 1:
            raise MultipleValuesError(self._first_spellings()[name.lower()], len(values))
        return values[0]

    def __setitem__(self, name: str, value: str) -> None:
        _check_field(name, value)
        self._fields.append((name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [field for field in self._fields if field[0].lower() != key]
        if len(kept) == len(self._fields):
            raise KeyError(name)
        self._fields = kept

    def _first_spellings(self) -> dict[str, str]:
        """Map each distinct lower-cased name to its first spelling, in first-seen order."""
        names: dict[str, str] = {}
        for name, _ in self._fields:
            names.setdefault(name.lower(), name)
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._first_spellings()))

    def __len__(self) -> int:
        return len(self._first_spellings())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def _grouped(self) -> dict[str, list[str]]:
        values: dict[str, list[str]] = {}
        for name, value in self._fields:
            values.setdefault(name.lower(), []).append(value)
        return values

    def __eq__(self, other: object) -> bool:
        """Compare values name by name, ignoring case and the order of names.

        The order of values of one name matters. A plain mapping compares
        equal when it holds the same names and values.
        """
        if isinstance(other, Headers):
            return self._grouped() == other._grouped()
        if isinstance(other, Mapping):
            try:
                return self._grouped() == Headers(other)._grouped()
            except (TypeError, ValueError):
                return False
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields!r})"

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name`` in order, or an empty list."""
        key = name.lower()
        size = len(key)
        # Most peers spell names as the RFCs do: an exact match skips lower(),
        # and comparing lengths first skips most of the other lower() calls.
        return [
            value
            for field, value in self._fields
            if field == name or (len(field) == size and field.lower() == key)
        ]

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Yield every ``(name, value)`` field in order, as originally spelt."""
        return iter(self._fields)

    def update(
        self,
        arg: SupportsKeysAndGetItem[str, str] | Iterable[tuple[str, str]] = (),
        /,
        **kwargs: str,
    ) -> None:
        """Append the fields of ``arg`` then those of ``kwargs``; replace nothing.

        ``arg`` is a :data:`HeadersLike`: a :class:`Headers` (every field,
        duplicates included), a mapping, or an iterable of pairs.
        """
        pairs: Iterable[tuple[str, str]]
        if isinstance(arg, Headers):
            pairs = arg.raw_items()
        elif hasattr(arg, "keys"):
            mapping = cast("SupportsKeysAndGetItem[str, str]", arg)
            pairs = [(name, mapping[name]) for name in mapping.keys()]  # noqa: SIM118
        else:
            pairs = arg
        for name, value in pairs:
            self[name] = value
        for name, value in kwargs.items():
            self[name] = value

    def copy(self) -> Headers:
        """Return a shallow copy with the same fields in the same order."""
        return Headers._adopt(self._fields.copy())

    def clear(self) -> None:
        """Remove every field."""
        self._fields.clear()

    def serialize(self) -> bytes:
        """Build the header block: ``Name: value`` lines and the blank line after them."""
        lines = [f"{name}: {value}\r\n" for name, value in self._fields]
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")


class _PackedHeaders(Headers):
    """:class:`Headers` whose fields :meth:`Headers._pack` packed into one string.

    Each method that reads the fields unpacks them first, then runs as
    :class:`Headers` does; the others go through these.
    """

    __slots__ = ()

    def _unpack(self) -> None:
        packed: object = self._fields
        # Another thread may be between the two steps below: the fields are
        # a list already, and only the class is left to switch.
        if type(packed) is bytes:
            # One line per field, then the blank line: a checked name is a
            # token, so the first ": " of a line ends its name.
            lines = packed.decode("latin-1").split("\r\n")
            del lines[-2:]
            fields = (line.partition(": ") for line in lines)
            self._fields = [(name, value) for name, _, value in fields]
        self.__class__ = Headers  # type: ignore[assignment]

    def __setitem__(self, name: str, value: str) -> None:
        self._unpack()
        self[name] = value

    def __delitem__(self, name: str) -> None:
        self._unpack()
        del self[name]

    def _first_spellings(self) -> dict[str, str]:
        self._unpack()
        return self._first_spellings()

    def _grouped(self) -> dict[str, list[str]]:
        self._unpack()
        return self._grouped()

    def __repr__(self) -> str:
        self._unpack()
        return repr(self)

    def get_all(self, name: str) -> list[str]:
        self._unpack()
        return self.get_all(name)

    def raw_items(self) -> Iterator[tuple[str, str]]:
        self._unpack()
        return self.raw_items()

    def copy(self) -> Headers:
        self._unpack()
        return self.copy()

    def clear(self) -> None:
        self._unpack()
        self.clear()

    def serialize(self) -> bytes:
        # The packed fields are the header block: they stay packed.
        packed: object = self._fields
        if type(packed) is bytes:
            return packed
        return Headers.serialize(self)  # unpacked meanwhile, by another thread


def _pack_python(fields: list[tuple[str, str]]) -> bytes | None:
    """The header block of ``fields``, as :meth:`Headers.serialize` builds it, or ``None``.

    ``None`` for no fields, and for fields that would not read back the same:
    a name or value holding a line feed or a character past U+00FF.
    """
    if not fields:
        return None
    try:
        block = Headers._adopt(fields).serialize()
    except UnicodeEncodeError:
        return None
    return block if block.count(b"\n") == len(fields) + 1 else None


_pack_fields = _pack_python if speedups is None else speedups.pack_fields


HeadersLike: TypeAlias = Headers | Mapping[str, str] | Iterable[tuple[str, str]]
"""Anything :class:`Headers` can be built from: a ``Headers``, a mapping or pairs."""


def check_header(name: str, value: str) -> None:
    """Raise :class:`ValueError` (or :class:`TypeError`) for a field HTTP does not allow."""
    _check_field(name, value)


def _check_field(name: str, value: str) -> None:
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
    if not name or not _TCHARS.issuperset(name):
        raise ValueError(f"invalid header name: {name!r}")
    if not _VALUE_CHARS.issuperset(value):
        raise ValueError(f"invalid value for header {name}: {value!r}")
