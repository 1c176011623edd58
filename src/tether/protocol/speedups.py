"""Whether the C accelerator ``tether._speedups`` is used, decided once at import.

It is used when it was built and ``TETHER_NO_SPEEDUPS`` is unset, empty or
``0``. The pure-Python versions stay in place and pass the same tests.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["speedups"]


def _load() -> ModuleType | None:
    if os.environ.get("TETHER_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        import tether._speedups as module  # noqa: PLC0415
    except ImportError:  # pragma: no cover - only where no C compiler was found
        return None
    return module


speedups = _load()
"""The C module, or ``None`` when the pure-Python fallback is in use."""
