"""The NB201 search splits: which images train the weights, which drive the arch step, which are held out.

- CIFAR-10: the official halves of the training set (NB201's ``cifar-split.txt``: ``train`` 25k for the weights,
  ``valid`` 25k for the arch step and selection); the held-out part is the test set.
- CIFAR-100 and ImageNet16-120: weights on all training images; the arch step on the official "x-valid" half of
  the test images (``cifar100-test-split.txt``, ``imagenet-16-120-test-split.txt``: 5,000 of 10,000; 3,000 of
  6,000); the other half, "x-test", is what the benchmark's test accuracy is measured on and is never seen.
- ``digits`` (no official split): halves by a permutation seeded with ``split_seed``.

The official files ship inside the package as bitmaps (``nb201_splits.npz``, provenance in ``PROVENANCE.md``).
The split depends only on ``(dataset, split_seed)``, never on a run's seed, so every run of a study searches on
the same split; :func:`split_name` says which one a run used (recorded in its record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from ..errors import ConfigError, DataError
from .sources import ImageDataset

Source = Literal["train", "test"]

#: How each dataset is split for search: halves of the train set, or train + halves of the test set.
SPLIT_KIND: dict[str, str] = {
    "digits": "train-halves",
    "cifar10": "train-halves",
    "cifar100": "test-halves",
    "ImageNet16-120": "test-halves",
}


#: The official split files (D-X-Y/AutoDL-Projects configs/nas-benchmark/) per dataset: (file, first part's key,
#: second part's key). The first part is what the bitmap marks (train for CIFAR-10, xvalid for the test halves).
OFFICIAL_SPLIT_FILES: dict[str, tuple[str, str, str]] = {
    "cifar10": ("cifar-split.txt", "train", "valid"),
    "cifar100": ("cifar100-test-split.txt", "xvalid", "xtest"),
    "ImageNet16-120": ("imagenet-16-120-test-split.txt", "xvalid", "xtest"),
}
SPLITS_FILE = "nb201_splits.npz"


def convert_official_splits(folder: str | Path) -> dict[str, np.ndarray]:
    """Read the official JSON split files in ``folder`` into the shipped form: per dataset, a bit-packed mask of the
    first part over all indices (the two parts are complementary halves; checked). Used to build and to verify
    ``nb201_splits.npz``."""
    out: dict[str, np.ndarray] = {}
    for name, (fname, first, second) in OFFICIAL_SPLIT_FILES.items():
        data = json.loads((Path(folder) / fname).read_text())
        a = np.array([int(i) for i in data[first][1]], dtype=np.int64)
        b = np.array([int(i) for i in data[second][1]], dtype=np.int64)
        n = len(a) + len(b)
        mask = np.zeros(n, dtype=bool)
        mask[a] = True
        if mask.sum() != len(a) or mask[b].any() or len(np.union1d(a, b)) != n:
            raise DataError(f"{fname}: {first}/{second} are not complementary halves of 0..{n - 1}")
        out[name] = np.packbits(mask)
        out[name + "_n"] = np.array(n, dtype=np.int64)
    return out


@cache
def official_split(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The official (first, second) index halves of dataset ``name`` (sorted), or None if it has none."""
    if name not in OFFICIAL_SPLIT_FILES:
        return None
    with resources.files("nasbench_suite.data").joinpath(SPLITS_FILE).open("rb") as f:
        z = np.load(f)
        n = int(z[name + "_n"])
        mask = np.unpackbits(z[name])[:n].astype(bool)
    first, second = np.flatnonzero(mask), np.flatnonzero(~mask)
    for arr in (first, second):
        arr.setflags(write=False)
    return first, second


def split_name(name: str, split_seed: int = 0, official: bool = True) -> str:
    """Which search split a run on dataset ``name`` uses (recorded with the run)."""
    files = OFFICIAL_SPLIT_FILES.get(name)
    if files is not None and official:
        return f"official NB201 {files[0]} ({files[1]}/{files[2]})"
    return f"seeded halves (split_seed={split_seed})"


@dataclass(frozen=True, eq=False)
class DataPart:
    """A subset of one side (``source``: "train" or "test") of an :class:`ImageDataset`.

    ``indices`` index that side's arrays; ``images``/``labels`` are the selected rows (copies, read-only).
    """

    source: Source
    indices: np.ndarray
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


class SearchSplit(NamedTuple):
    """``train``: weight updates; ``valid``: arch steps and candidate selection; ``test``: never seen by search
    (the test set for train-halves datasets, x-test for test-halves datasets)."""

    train: DataPart
    valid: DataPart
    test: DataPart


def make_part(ds: ImageDataset, source: Source, indices: np.ndarray) -> DataPart:
    """Select ``indices`` of ``ds``'s ``source`` side as a :class:`DataPart`."""
    x, y = (ds.train_x, ds.train_y) if source == "train" else (ds.test_x, ds.test_y)
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == len(x) and np.array_equal(idx, np.arange(len(x))):
        images, labels = x, y  # the whole side: share the (read-only) arrays instead of copying them
    else:
        images, labels = x[idx], y[idx]
    for arr in (idx, images, labels):
        arr.setflags(write=False)
    return DataPart(source, idx, images, labels)


def search_split(ds: ImageDataset, split_seed: int = 0, official: bool = True) -> SearchSplit:
    """Split ``ds`` for search as the NB201 protocol does: the official halves where NB201 has them (CIFAR-10,
    CIFAR-100, ImageNet16-120), else halves of a permutation seeded by ``split_seed``. ``official=False``
    (protocol ``split=seeded``): seeded halves for every dataset, e.g. a partial data folder for a smoke test.

    Seeded halves: the first ``n // 2`` of the permutation go to the first part (weights, or x-valid), the rest to
    the second. Indices inside each part are sorted so a part does not depend on the permutation's order.
    """
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise ConfigError(f"split seed must be a non-negative integer, got {split_seed!r}")
    kind = SPLIT_KIND.get(ds.name)
    if kind is None:
        raise DataError(f"no search split defined for dataset {ds.name!r}: expected one of {', '.join(SPLIT_KIND)}")
    side = ds.train_x if kind == "train-halves" else ds.test_x

    def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
        shipped = official_split(ds.name) if official else None
        if shipped is not None:
            first, second = shipped
            if len(first) + len(second) != n:
                which = "training" if kind == "train-halves" else "test"
                raise DataError(
                    f"the official {ds.name} split covers {len(first) + len(second)} {which} images, the dataset "
                    f"has {n}: is the data folder the complete {ds.name}? (--set split=seeded searches a partial "
                    "folder on seeded halves instead)"
                )
            return first, second
        order = np.random.default_rng(int(split_seed)).permutation(n)
        return np.sort(order[: n // 2]), np.sort(order[n // 2 :])

    if kind == "train-halves":
        first, second = halves(len(side))
        return SearchSplit(
            make_part(ds, "train", first),
            make_part(ds, "train", second),
            make_part(ds, "test", np.arange(len(ds.test_x))),
        )
    x_valid, x_test = halves(len(side))
    return SearchSplit(
        make_part(ds, "train", np.arange(len(ds.train_x))),
        make_part(ds, "test", x_valid),
        make_part(ds, "test", x_test),
    )
