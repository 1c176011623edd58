"""Coverage-guided fuzz targets for tether, one module per target.

Each module exposes ``TestOneInput(data: bytes) -> None``, the entry point
atheris calls with each generated input, and runs under atheris when
executed: ``python -m fuzz.frames fuzz/corpus/frames -max_total_time=60``
(``make fuzz`` does this for every target). ``TestOneInput`` raises
:class:`AssertionError`, or lets an undocumented exception escape, when it
finds a bug; the tests in ``tests/fuzz`` replay the corpus through it
without atheris, then run each target under atheris for a few seconds.
``make fuzz-native`` runs the ``speedups`` target on a build of the C
accelerator instrumented for coverage and sanitizers (``fuzz/native.sh``).
"""
