"""Benchmark lookups: a cell's valid/test accuracy per dataset, from whichever benchmark the user has.

``open_benchmark(path)`` picks the adapter from what ``path`` is:

- ``None``: :class:`EmbeddedBenchmark` (AnalogNAS-Bench CIFAR-10 table shipped on PyPI; no files needed),
- a NATS-Bench topology ``-simple`` folder (holds ``meta.pickle.pbz2``): :class:`NatsBenchmark`,
- an NAS-Bench-201 ``.pth`` file: :class:`NB201Benchmark`.

The query protocol (``hp='200'``, ``is_random=False``, which metric is valid/test) is in :mod:`.protocol`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BenchmarkError
from .base import ALL_DATASETS, Benchmark, BenchResult, canonical_dataset
from .embedded import EmbeddedBenchmark
from .nats import META_FILE, NatsBenchmark
from .nb201 import NB201Benchmark

__all__ = [
    "ALL_DATASETS",
    "Benchmark",
    "BenchResult",
    "EmbeddedBenchmark",
    "NatsBenchmark",
    "NB201Benchmark",
    "canonical_dataset",
    "open_benchmark",
]

_EXPECTED = "an NAS-Bench-201 .pth file or a NATS-Bench topology '-simple' folder (holding meta.pickle.pbz2)"


def open_benchmark(path: str | Path | None) -> Benchmark:
    """Open the benchmark at ``path`` (None: the embedded table); BenchmarkError if it is not one."""
    if path is None:
        return EmbeddedBenchmark()
    p = Path(path).expanduser()
    if not p.exists():
        raise BenchmarkError(f"benchmark path {p} does not exist; expected {_EXPECTED}")
    if p.is_dir():
        if (p / META_FILE).is_file() or p.name.endswith("-simple"):
            return NatsBenchmark(p)  # a '-simple' folder without meta gets NatsBenchmark's precise message
        raise BenchmarkError(f"{p} is a folder without {META_FILE}: not a recognised benchmark; expected {_EXPECTED}")
    if p.name == META_FILE:
        return NatsBenchmark(p.parent)  # pointing at the meta file means its folder
    if p.suffix == ".pth":
        return NB201Benchmark(p)
    if p.name.endswith(".pickle.pbz2"):
        raise BenchmarkError(
            f"{p} looks like a single-file NATS-Bench benchmark; nas-suite reads the '-simple' folder "
            "(fast mode, one cell at a time): point at NATS-tss-v1_0-3ffb9-simple instead"
        )
    raise BenchmarkError(f"{p} is not a recognised benchmark; expected {_EXPECTED}")
