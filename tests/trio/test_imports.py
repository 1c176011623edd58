"""trio is an optional extra: only ``import tether.trio`` imports it."""

from __future__ import annotations

import subprocess
import sys


def test_tether_and_its_other_apis_never_import_trio() -> None:
    code = (
        "import sys\n"
        "import tether, tether.asyncio, tether.sync, tether.protocol\n"
        "tether.connect, tether.serve, tether.broadcast, tether.route, tether.basic_auth\n"
        "assert 'trio' not in sys.modules, sorted(m for m in sys.modules if 'trio' in m)\n"
        "import tether.trio\n"
        "assert 'trio' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
