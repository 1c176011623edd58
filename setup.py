"""The C accelerator, declared here: everything else is in pyproject.toml.

setuptools still calls its pyproject.toml table for extensions experimental,
and says so on every build; declaring the extension here is its stable way.

The extension is optional: without a C compiler, tether installs anyway and
runs on its pure-Python fallback. Two things keep that fallback honest:

- A build that fails leaves no module behind, in the build directory or (for
  an editable install) next to the sources: otherwise a module built earlier
  from other sources would be imported as if it were this one.
- ``TETHER_REQUIRE_SPEEDUPS=1`` makes a failed build fail the install. The
  Makefile sets it for the development and CI installs, whose tests are
  meant to run the C code of this tree.

Free-threaded CPython builds (3.13t and later) get no accelerator: its C code
relies on the GIL to guard its caches, so there tether runs in pure Python
rather than turn the GIL back on for the whole process.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REQUIRED = os.environ.get("TETHER_REQUIRE_SPEEDUPS", "") not in ("", "0")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


class BuildExt(build_ext):
    """build_ext whose failed builds leave no stale module to import."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except BaseException:
            for path in self._outputs(ext):
                path.unlink(missing_ok=True)
            raise

    def _outputs(self, ext: Extension) -> list[Path]:
        # Where this build writes the module, and where an editable install
        # (or --inplace) copies it: the package's directory in the sources.
        fullname = self.get_ext_fullname(ext.name)
        built = Path(self.get_ext_fullpath(ext.name))
        package = fullname.rpartition(".")[0]
        package_dir = self.get_finalized_command("build_py").get_package_dir(package)
        return [built, Path(package_dir) / built.name]


if FREE_THREADED and REQUIRED:
    raise SystemExit(
        "TETHER_REQUIRE_SPEEDUPS is set, but tether's C accelerator is not built "
        "on a free-threaded Python"
    )

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[]
    if FREE_THREADED
    else [
        Extension(
            "tether._speedups",
            sources=["src/tether/_speedups.c"],
            # permessage-deflate runs zlib directly (Debian: zlib1g-dev).
            libraries=["z"],
            optional=not REQUIRED,
            extra_compile_args=["-O3"],
        )
    ],
)
