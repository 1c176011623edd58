"""Sphinx configuration of tether's documentation (``make docs``).

Pages are Markdown (MyST); docstrings are reStructuredText with Sphinx roles.
The build is offline: no intersphinx inventory is fetched.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from pathlib import Path
from typing import Any

from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tether.version import __version__  # noqa: E402

project = "tether"
author = "tether's authors"
copyright = "tether's authors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Annotations in the signatures, with short names.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
# Names that modules import only for type checking (an optional extra).
autodoc_type_aliases = {"Map": "werkzeug.routing.Map"}
autodoc_default_options = {"members": True, "show-inheritance": True}
python_use_unqualified_type_names = True
# Names that modules import under another name for their annotations only.
autodoc_type_aliases = {
    "asyncio_connect": "tether.asyncio.client.connect",
    "SyncClientConnection": "tether.sync.client.ClientConnection",
}

# Every reference must resolve (``-n``). The standard library and third-party
# names cannot, offline, without intersphinx: they are listed here.
nitpicky = True
_BUILTINS = "|".join(name for name in dir(builtins) if not name.startswith("_"))
_STDLIB = "|".join(sorted(name for name in sys.stdlib_module_names if not name.startswith("_")))
nitpick_ignore_regex = [
    # The standard library, and the libraries tether works with.
    ("py:.*", rf"_?({_STDLIB}|uvloop|pytest|_pytest|uvicorn|redis|werkzeug|trio)(\..*)?"),
    # Builtins and typing names, as annotations show them.
    (
        "py:.*",
        r"(Any|Callable|Awaitable|Iterable|Iterator|AsyncIterator|Sequence|Mapping|"
        r"Generator|AsyncGenerator|MutableMapping|Coroutine|Self|TypeVar|Generic|ClassVar|Final|"
        r"Protocol|NamedTuple|Literal|Enum|IntEnum|Path|TracebackType|NoneType|Map|"
        rf"{_BUILTINS})",
    ),
    # Names that annotations use and no page documents: aliases of imports,
    # uvicorn's and typeshed's types, and type aliases private to a module.
    ("py:class", r"ssl_module\.\w+|Config|ServerState|SupportsKeysAndGetItem|_thread\.\w+"),
    ("py:class", r"(tether\.[\w.]+\.)?(ProcessRequest|ProcessResponse|Closable)"),
    # A dataclass field's default factory, which Sphinx splits at the comma.
    ("py:class", r"list\[tuple\[str"),
    # Bases from private modules (internal mixins), which autodoc does not document.
    ("py:class", r"tether\.(\w+\.)*_\w+\.\w+"),
    # Type variables and private bases, which autodoc does not document.
    ("py:.*", r"(tether\.[\w.]+\.)?(T|W|C|B|CheckResult|Conn|AsyncConn|AuthConn|Handler|_\w+)"),
]

html_theme = "furo"
html_title = f"tether {__version__}"
html_static_path: list[str] = []
html_show_sourcelink = False


def _resolve_short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python reference by its unique dotted suffix among documented objects.

    Docstrings name objects as their module sees them (``:class:`Message```,
    ``:func:`tether.connect```); when exactly one documented object's full
    name ends with that name, the reference goes there. Anything ambiguous
    or unknown is left alone, and ``-n`` reports it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].removeprefix("~").removeprefix(".")
    domain = env.get_domain("py")
    if target.startswith("tether."):
        # A public alias, such as tether.connect: where the object is defined.
        head, _, name = target.rpartition(".")
        try:
            obj = getattr(importlib.import_module(head), name)
        except (ImportError, AttributeError):
            obj = None
        defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        if defined in domain.objects:
            target = defined
    suffix = "." + target
    matches = [
        name
        for name, obj in domain.objects.items()
        if (name == target or name.endswith(suffix)) and not obj.aliased
    ]
    if len(matches) > 1:
        # The nearest one: Connection in tether.protocol.client is the engine's.
        here = (node.get("py:module") or "").split(".")

        def shared(name: str) -> int:
            parts = name.split(".")
            return next(
                (i for i, (a, b) in enumerate(zip(here, parts, strict=False)) if a != b),
                min(len(here), len(parts)),
            )

        best = max(map(shared, matches))
        matches = [name for name in matches if shared(name) == best]
    if len(matches) != 1:
        return None
    (fullname,) = matches
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], fullname, node, contnode
    )


class _QualifyModuleNames(SphinxPostTransform):
    """Point a bare name in a docstring or annotation at what its module means by it.

    ``-> Server`` in ``tether.sync.router`` is ``tether.sync.server.Server``,
    imported there; without this, Sphinx finds a ``Server`` in each API and
    cannot choose. Runs before references are resolved, and only retargets
    to a documented object.
    """

    default_priority = 5

    def run(self, **kwargs: Any) -> None:
        objects = self.env.get_domain("py").objects
        for node in self.document.findall(addnodes.pending_xref):
            target = node.get("reftarget", "")
            module = node.get("py:module")
            if node.get("refdomain") != "py" or not module or not target.isidentifier():
                continue
            namespace = sys.modules.get(module)
            obj = getattr(namespace, target, None) if namespace is not None else None
            qualified = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            if qualified in objects:
                node["reftarget"] = qualified


def setup(app: Any) -> None:
    app.add_post_transform(_QualifyModuleNames)
    app.connect("missing-reference", _resolve_short_names)
