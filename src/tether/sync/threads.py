"""Threads that keep less for their whole life than :class:`threading.Thread` does.

A threading server gives each connection a thread, and most of them sit idle
for hours. CPython's :class:`threading.Thread` keeps, per thread and for its
whole life, three things such a thread does not need once it has started:

* the event that :meth:`~threading.Thread.start` waits on until the thread
  runs: an :class:`~threading.Event` with its condition, the condition's
  deque and a lock, about 1.3 KiB;
* the closure that hands an uncaught exception to :func:`threading.excepthook`,
  about 0.4 KiB, though every thread's closure does the same;
* a weak reference in a set kept for CPython's own test suite, 0.2 KiB;
* its name, ``Thread-N`` unless given, about 60 bytes, which few threads
  ever show.

:class:`LeanThread` is a :class:`threading.Thread` in every public respect:
:func:`threading.enumerate`, :func:`threading.current_thread`, names, idents,
``join``, ``is_alive``, daemon threads, :func:`threading.excepthook` and
the trace and profile hooks (debuggers, coverage) work as for any thread. It
shares the first two among all lean threads, once each thread has started,
leaves the third out, and makes the default name when it is first asked
for (by ``name``, ``repr``, :mod:`logging`'s ``threadName``). These are
attributes that :mod:`threading` keeps to itself, so each step happens only
where the attribute is what this module expects; on an interpreter where it
is not, the thread keeps its own and is an ordinary thread. A lean thread
is always a daemon, and it runs :meth:`run`, which subclasses give: it takes
no ``target``.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LeanThread"]

# What threading.Thread calls the attributes that lean threads share.
_STARTED_ATTRIBUTE = "_started"
_HOOK_ATTRIBUTE = "_invoke_excepthook"

# An event that is set, shared by every lean thread once it has started: the
# thread's own answered start() already, and nothing clears it.
_STARTED = threading.Event()
_STARTED.set()

# The closure a lean thread hands its uncaught exception to: each thread's
# reads threading.excepthook when called, so one serves them all.
_make_hook = getattr(threading, "_make_invoke_excepthook", None)
_HOOK = _make_hook() if callable(_make_hook) else None

# Where threading numbers its default names ("Thread-N"): a lean thread takes
# its number when its name is first asked for.
_new_name = getattr(threading, "_newname", None)
if not callable(_new_name):  # pragma: no cover - CPython has it
    _new_name = None

# The name of a lean thread made without one, until it is asked for: this
# very string, told from any other by identity.
_UNNAMED = "".join(("<unnamed ", "lean thread>"))
_NAME_ATTRIBUTE = "_name"

# Thread.__init__ adds each thread to this set, for CPython's tests only.
_DANGLING = getattr(threading, "_dangling", None)

# The keyword arguments of a thread whose run() takes none: one dictionary for
# all, where Thread.__init__ would make an empty one per thread.
_NO_KWARGS: dict[str, Any] = {}


class LeanThread(threading.Thread):
    """A daemon :class:`threading.Thread` that keeps less memory; subclasses define :meth:`run`."""

    def __init__(self, name: str | None = None) -> None:
        lazy = name is None and _new_name is not None
        super().__init__(name=_UNNAMED if lazy else name, daemon=True, kwargs=_NO_KWARGS)
        if lazy and getattr(self, _NAME_ATTRIBUTE, None) is not _UNNAMED:  # pragma: no cover
            # Not threading's attribute as this module knows it: name it now.
            self.name = _new_name("Thread-%d")  # type: ignore[misc]
        # By getattr and setattr, not vars(self), which would give the thread
        # a dictionary object where CPython keeps its attributes' values alone.
        if _HOOK is not None and callable(getattr(self, _HOOK_ATTRIBUTE, None)):
            setattr(self, _HOOK_ATTRIBUTE, _HOOK)
        if _DANGLING is not None:
            _DANGLING.discard(self)

    @property
    def name(self) -> str:
        """The thread's name, as :attr:`threading.Thread.name`: ``Thread-N`` unless given."""
        name: str = getattr(self, _NAME_ATTRIBUTE)
        if name is _UNNAMED:
            assert _new_name is not None
            # Two threads asking at once may each make one: either stays.
            name = _new_name("Thread-%d")
            setattr(self, _NAME_ATTRIBUTE, name)
        return name

    @name.setter
    def name(self, name: str) -> None:
        threading.Thread.name.fset(self, name)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        self.name  # noqa: B018 - threading's repr shows the attribute: make it first.
        return super().__repr__()

    def start(self) -> None:
        """Start the thread as :meth:`threading.Thread.start` does; then share its start event."""
        super().start()
        started = getattr(self, _STARTED_ATTRIBUTE, None)
        if type(started) is threading.Event and started.is_set():
            setattr(self, _STARTED_ATTRIBUTE, _STARTED)
