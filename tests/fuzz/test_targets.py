"""Replay every fuzz target over its corpus and over fixed pseudo-random inputs.

This needs no atheris: the targets are plain functions of bytes, so a bug
the fuzzer found once, kept in the corpus, is checked on every test run.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

TARGETS = ["frames", "handshake", "header_values", "deflate", "speedups"]
CORPUS = Path(__file__).parents[2] / "fuzz" / "corpus"
RANDOM_INPUTS = 300


def _target(name: str) -> Callable[[bytes], None]:
    module = importlib.import_module(f"fuzz.{name}")
    target: Callable[[bytes], None] = module.TestOneInput
    return target


@pytest.mark.parametrize("name", TARGETS)
def test_corpus(name: str) -> None:
    """Every stored input passes its target."""
    paths = sorted((CORPUS / name).iterdir())
    assert paths, f"no corpus for {name}"
    target = _target(name)
    for path in paths:
        target(path.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
def test_random_inputs(name: str) -> None:
    """Random inputs, and corpus inputs with random bytes changed, pass their target."""
    rng = random.Random(f"tether-fuzz-{name}")
    seeds = [path.read_bytes() for path in sorted((CORPUS / name).iterdir())]
    target = _target(name)
    for i in range(RANDOM_INPUTS):
        if i % 2:
            data = rng.randbytes(rng.randrange(64))
        else:
            # Mutating a seed reaches deeper than random bytes do.
            mutated = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                if mutated:
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            data = bytes(mutated[: rng.randrange(len(mutated) + 1)])
        target(data)


def test_seeds_are_written() -> None:
    """The committed corpus holds every seed that fuzz/seeds.py defines."""
    from fuzz.seeds import SEEDS  # noqa: PLC0415 - imports the handshake target too

    for name, seeds in SEEDS.items():
        assert name in TARGETS
        stored = {path.read_bytes() for path in (CORPUS / name).iterdir()}
        assert set(seeds) <= stored
