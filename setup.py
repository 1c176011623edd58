"""The C accelerator, declared here: everything else is in pyproject.toml.

setuptools still calls its pyproject.toml table for extensions experimental,
and says so on every build; declaring the extension here is its stable way.
The extension is optional: without a C compiler, tether installs anyway and
runs on its pure-Python fallback.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tether._speedups",
            sources=["src/tether/_speedups.c"],
            # permessage-deflate runs zlib directly (Debian: zlib1g-dev).
            libraries=["z"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
