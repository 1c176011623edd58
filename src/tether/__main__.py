"""``python -m tether`` and the ``tether`` console script; see :mod:`tether.cli`."""

from __future__ import annotations

import sys

from tether.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
