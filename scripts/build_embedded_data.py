"""Rebuild the package data files the embedded defaults read (run once by a maintainer, not at install time).

- ``nasbench_suite/benchmarks/nb201_test_accuracy.npz`` from ``../shared/reference/nb201_test_accuracy.csv``
  (NATS-Bench topology ``NATS-tss-v1_0-3ffb9``, 200 epochs, mean over the training seeds; MIT licence,
  Xuanyi Dong): the three test accuracies per official index, scaled by 10,000 to exact integers, and the
  position of each official index in :func:`nasbench_suite.space.all_cells` order.
- ``nasbench_suite/data/digits.npz`` from scikit-learn's bundled copy of the UCI optdigits test set (needs
  scikit-learn installed only while running this script).

Usage: ``python scripts/build_embedded_data.py [path/to/nb201_test_accuracy.csv] [--digits]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasbench_suite.benchmarks.embedded import COLUMNS, DATA_FILE, SCALE  # noqa: E402
from nasbench_suite.space import NUM_CELLS, Cell  # noqa: E402


def build_nb201(csv: Path) -> None:
    import pandas as pd

    df = pd.read_csv(csv).sort_values("nb201_index")
    assert list(df["nb201_index"]) == list(range(NUM_CELLS)), "expected official indices 0..15624, once each"
    cell_index = np.array([Cell.parse(a).index for a in df["arch"]], dtype=np.int16)
    assert len(set(cell_index.tolist())) == NUM_CELLS
    raw = df[list(COLUMNS.values())].to_numpy(np.float64)
    scaled = np.rint(raw * SCALE)
    assert np.abs(scaled / SCALE - raw).max() < 1e-9, "more than 4 decimals: SCALE would round the numbers"
    np.savez_compressed(DATA_FILE, cell_index=cell_index, test=scaled.astype(np.uint32))
    print(f"wrote {DATA_FILE} ({DATA_FILE.stat().st_size} bytes)")


def build_digits() -> None:
    from sklearn.datasets import load_digits

    from nasbench_suite.data.sources import DIGITS_FILE

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)  # 0..16 grey levels, exact
    assert np.array_equal(images, bunch.images)
    np.savez_compressed(DIGITS_FILE, images=images, labels=bunch.target.astype(np.uint8))
    print(f"wrote {DIGITS_FILE} ({DIGITS_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build_nb201(Path(args[0]) if args else ROOT.parent / "shared" / "reference" / "nb201_test_accuracy.csv")
    if "--digits" in sys.argv:
        build_digits()
