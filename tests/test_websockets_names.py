"""Every public name of websockets 17 is importable from tether's module of the same name.

websockets is a dev dependency: its modules' ``__all__`` are the list, so a
name that goes missing from tether fails here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import subprocess
import sys
import warnings

import pytest
import websockets

import tether

MODULES = {
    "websockets": "tether",
    "websockets.exceptions": "tether.exceptions",
    "websockets.typing": "tether.typing",
    "websockets.asyncio.client": "tether.asyncio.client",
    "websockets.asyncio.server": "tether.asyncio.server",
    "websockets.asyncio.connection": "tether.asyncio.connection",
    "websockets.asyncio.router": "tether.asyncio.router",
    "websockets.sync.client": "tether.sync.client",
    "websockets.sync.server": "tether.sync.server",
    "websockets.sync.connection": "tether.sync.connection",
    "websockets.sync.router": "tether.sync.router",
    "websockets.trio.client": "tether.trio.client",
    "websockets.trio.server": "tether.trio.server",
    "websockets.trio.connection": "tether.trio.connection",
    "websockets.trio.router": "tether.trio.router",
}

# Names websockets defines in a module without listing them in __all__.
UNLISTED = {"websockets.typing": ["BytesLike", "DataLike"]}

NAMES = [
    (theirs, ours, name)
    for theirs, ours in MODULES.items()
    for name in [*importlib.import_module(theirs).__all__, *UNLISTED.get(theirs, [])]
]


def test_websockets_is_17() -> None:
    assert importlib.metadata.version("websockets").split(".")[0] == "17"


@pytest.mark.parametrize(("theirs", "ours", "name"), NAMES, ids=[f"{o}.{n}" for _, o, n in NAMES])
def test_name_importable(theirs: str, ours: str, name: str) -> None:
    module = importlib.import_module(ours)
    assert hasattr(module, name), f"{ours} lacks {name}, which {theirs} has"
    assert name in dir(module)
    # An exception stays an exception.
    their_value = getattr(importlib.import_module(theirs), name)
    if inspect.isclass(their_value) and issubclass(their_value, BaseException):
        assert issubclass(getattr(module, name), BaseException)


@pytest.mark.parametrize("name", importlib.import_module("websockets.exceptions").__all__)
def test_exception_bases_match(name: str) -> None:
    theirs = getattr(importlib.import_module("websockets.exceptions"), name)
    ours = getattr(tether.exceptions, name)
    # The same direct bases, by name: tether's exceptions root at its own WebSocketException.
    assert [base.__name__ for base in ours.__bases__] == [
        base.__name__ for base in theirs.__bases__
    ]


@pytest.mark.parametrize(
    "name", ["AbortHandshake", "InvalidStatusCode", "RedirectHandshake", "WebSocketProtocolError"]
)
def test_deprecated_names_warn(name: str) -> None:
    for module in (tether, tether.exceptions):
        with pytest.warns(DeprecationWarning, match=f"{name} is deprecated"):
            getattr(module, name)


def test_dir_lists_lazy_names_and_leaks_nothing() -> None:
    names = dir(tether)
    for name in ("connect", "serve", "route", "unix_route", "Headers", "State", "Side", "Data"):
        assert name in names
    for leaked in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert leaked not in names
    assert set(tether.__all__) <= set(names)


def test_aliases_of_the_engine() -> None:
    from tether.protocol import Connection, Role  # noqa: PLC0415

    assert tether.Protocol is Connection
    assert tether.Side is Role
    assert {member.name for member in tether.Side} == {member.name for member in websockets.Side}
    assert {member.name for member in tether.State} == {member.name for member in websockets.State}


def test_lazy_names_load_nothing_until_used() -> None:
    code = (
        "import sys, tether; "
        "assert 'asyncio' not in sys.modules and 'tether.protocol' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('asyncio', 'tether.protocol'))); "
        "tether.Headers; assert 'tether.protocol' in sys.modules; "
        "assert 'asyncio' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_pydoc_shows_lazy_names() -> None:
    import pydoc  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        text = pydoc.render_doc(tether, renderer=pydoc.TextDoc())
    for name in ("connect", "serve", "Headers", "CloseCode"):
        assert name in text
