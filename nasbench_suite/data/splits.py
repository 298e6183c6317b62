"""The NB201 search splits: which images train the weights, which drive the arch step, which are held out.

- CIFAR-10 (and ``digits``): the training images split in two halves by a seeded permutation (25k/25k for
  CIFAR-10). NB201 ships a fixed ``cifar-split.txt``; it is not available here, so our halves are seeded: the
  sizes match the protocol, the members do not match the official file. The held-out part is the test set.
- CIFAR-100 and ImageNet16-120: weights on all training images; the arch step on "x-valid", one half of the test
  images chosen by a seeded permutation (5,000 of 10,000; 3,000 of 6,000); the other half is "x-test".

The split depends only on ``(dataset, split_seed)``, never on a run's seed, so every run of a study searches on
the same split.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def search_split(ds: ImageDataset, split_seed: int = 0) -> SearchSplit:
    """Split ``ds`` for search as the NB201 protocol does, with a permutation seeded by ``split_seed``.

    Halves: the first ``n // 2`` of the permutation go to the first part (weights, or x-valid), the rest to the
    second. Indices inside each part are sorted so a part does not depend on the permutation's order.
    """
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise ConfigError(f"split seed must be a non-negative integer, got {split_seed!r}")
    kind = SPLIT_KIND.get(ds.name)
    if kind is None:
        raise DataError(f"no search split defined for dataset {ds.name!r}: expected one of {', '.join(SPLIT_KIND)}")

    def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(int(split_seed)).permutation(n)
        return np.sort(order[: n // 2]), np.sort(order[n // 2 :])

    if kind == "train-halves":
        first, second = halves(len(ds.train_x))
        return SearchSplit(
            make_part(ds, "train", first),
            make_part(ds, "train", second),
            make_part(ds, "test", np.arange(len(ds.test_x))),
        )
    x_valid, x_test = halves(len(ds.test_x))
    return SearchSplit(
        make_part(ds, "train", np.arange(len(ds.train_x))),
        make_part(ds, "test", x_valid),
        make_part(ds, "test", x_test),
    )
