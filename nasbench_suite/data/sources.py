"""Image datasets for the search: the embedded ``digits`` set, CIFAR-10/100 and NB201's ImageNet16-120.

Every source loads into one :class:`ImageDataset`: uint8 images NHWC with 3 channels, int64 labels, and the
per-channel normalisation and crop padding of the NB201 protocol. ``load_dataset(name, data_root)`` is the one
entry point; names are looked up case-insensitively in a registry built per call (no module state is mutated).

Folder layouts (``data_root`` may be the parent folder or the batch folder itself):

- CIFAR-10:  ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` (keys ``b'data'`` N x 3072, ``b'labels'``)
- CIFAR-100: ``cifar-100-python/train``, ``test`` (keys ``b'data'`` N x 3072, ``b'fine_labels'``)
- ImageNet16-120: ``ImageNet16/train_data_batch_1..10``, ``val_data`` (keys ``data`` N x 768, ``labels`` 1..1000);
  only classes 1..120 are kept, shifted to 0..119, as NB201 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .pickles import batch_arrays, read_batch


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image dataset held in memory.

    ``train_x``/``test_x``: uint8 arrays ``(N, H, W, 3)`` (read-only); ``train_y``/``test_y``: int64 in
    ``0..num_classes-1``. ``mean``/``std``: per channel, in [0, 1] pixel units. ``pad``: the zero padding of the
    protocol's random crop (4 for 32x32 images, 2 for 16x16).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad: int

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
                raise ValueError(f"{self.name} {split}_x must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (len(x),):
                raise ValueError(f"{self.name} {split}_y must be int64 ({len(x)},), got {y.dtype} {y.shape}")
            # Splits and streams share these arrays; read-only turns an accidental in-place edit into an error.
            x.setflags(write=False)
            y.setflags(write=False)
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @property
    def image_size(self) -> int:
        """Height (= width) of the images in pixels."""
        return int(self.train_x.shape[1])

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.name!r}, train={len(self.train_x)}, test={len(self.test_x)}, "
            f"size={self.image_size}, classes={self.num_classes})"
        )


# -- NB201 normalisation constants (xautodl's get_datasets) -----------------------------------------------------
CIFAR10_MEAN = tuple(x / 255 for x in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(x / 255 for x in (63.0, 62.1, 66.7))
CIFAR100_MEAN = tuple(x / 255 for x in (129.3, 124.1, 112.4))
CIFAR100_STD = tuple(x / 255 for x in (68.2, 65.4, 70.4))
IMAGENET16_MEAN = tuple(x / 255 for x in (122.68, 116.66, 104.01))
IMAGENET16_STD = tuple(x / 255 for x in (63.22, 61.26, 65.09))

#: Fraction of the 1,797 digits used for training; the rest is the test set.
DIGITS_TRAIN_FRACTION = 0.8
#: Seed of the fixed permutation that splits digits into train/test (part of the dataset, not of a run).
DIGITS_SPLIT_SEED = 0


#: The 1,797 handwritten digits (8x8, grey levels 0..16) as package data; licence in ``digits.txt`` beside it.
DIGITS_FILE = Path(__file__).with_name("digits.npz")


def load_digits_dataset() -> ImageDataset:
    """The UCI optdigits handwritten digits (scikit-learn's ``load_digits`` copy) as a 16x16 RGB dataset.

    Shipped as package data (``digits.npz``: the 8x8 images and labels, exactly as scikit-learn returns them), so
    there are no files to fetch and no scikit-learn to install. The 8x8 images with 17 grey levels (0..16) are
    scaled to 0..255, upscaled 2x by nearest neighbour and copied to 3 channels. Nearest neighbour keeps every
    pixel value exact (no blur on 8-pixel strokes, same grey levels) and makes the protocol's 16x16 crop with
    padding 2 equal to a 1-pixel shift at native resolution. The train/test split is fixed: a permutation seeded
    with ``DIGITS_SPLIT_SEED``; the first 80% (1,437) train, the remaining 360 test. Mean/std are computed from
    the training images.
    """
    try:
        with np.load(DIGITS_FILE, allow_pickle=False) as z:
            raw, target = z["images"], z["labels"]
    except Exception as exc:  # noqa: BLE001 - any read failure means a damaged install; say which file
        raise DataError(f"cannot read the embedded digits dataset {DIGITS_FILE}: {exc!r}; reinstall nas-suite") from exc
    if raw.shape != (1797, 8, 8) or target.shape != (1797,) or raw.max() > 16 or target.max() > 9:
        raise DataError(f"{DIGITS_FILE} is not the expected 1,797 8x8 digits; reinstall nas-suite")
    grey = np.rint(raw.astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8), 16 -> 255
    big = grey.repeat(2, axis=1).repeat(2, axis=2)
    images = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=3))
    labels = target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    n_train = int(DIGITS_TRAIN_FRACTION * len(images))
    tr, te = order[:n_train], order[n_train:]
    train_x = images[tr]
    scaled = train_x.reshape(-1, 3).astype(np.float64) / 255.0
    return ImageDataset(
        name="digits",
        train_x=train_x,
        train_y=labels[tr],
        test_x=images[te],
        test_y=labels[te],
        num_classes=10,
        mean=tuple(scaled.mean(axis=0)),
        std=tuple(scaled.std(axis=0)),
        pad=2,
    )


def _batch_folder(data_root: str | Path | None, name: str, subdir: str, layout: str) -> Path:
    """Resolve ``data_root`` to the folder holding the batch files: ``root/subdir`` if present, else ``root``."""
    if data_root is None:
        raise DataError(f"dataset {name!r} needs a data root (--data-root) holding {layout}")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder: expected {layout}")
    nested = root / subdir
    return nested if nested.is_dir() else root


def _check_labels(labels: np.ndarray, low: int, high: int, path: Path, expected: str) -> None:
    if len(labels) and (labels.min() < low or labels.max() > high):
        raise DataError(
            f"{path}: labels span {labels.min()}..{labels.max()}, expected {low}..{high}: expected {expected}"
        )


def _read_cifar(
    folder: Path, files: list[str], label_key: str, num_classes: int, expected: str
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for file in files:
        path = folder / file
        x, y = batch_arrays(read_batch(path, expected), path, label_key, 32, expected)
        _check_labels(y, 0, num_classes - 1, path, expected)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar10(data_root: str | Path | None) -> ImageDataset:
    """CIFAR-10 from the python-pickle batches (``cifar-10-batches-py``) under ``data_root``."""
    layout = "cifar-10-batches-py/ with data_batch_1..5 and test_batch (python-pickle CIFAR-10)"
    folder = _batch_folder(data_root, "cifar10", "cifar-10-batches-py", layout)
    expected = f"a CIFAR-10 batch: a pickled dict with b'data' (N x 3072 uint8) and b'labels' 0..9, in {layout}"
    train_x, train_y = _read_cifar(folder, [f"data_batch_{i}" for i in range(1, 6)], "labels", 10, expected)
    test_x, test_y = _read_cifar(folder, ["test_batch"], "labels", 10, expected)
    return ImageDataset("cifar10", train_x, train_y, test_x, test_y, 10, CIFAR10_MEAN, CIFAR10_STD, pad=4)


def load_cifar100(data_root: str | Path | None) -> ImageDataset:
    """CIFAR-100 (fine labels) from the python-pickle files (``cifar-100-python``) under ``data_root``."""
    layout = "cifar-100-python/ with train and test (python-pickle CIFAR-100)"
    folder = _batch_folder(data_root, "cifar100", "cifar-100-python", layout)
    expected = f"a CIFAR-100 file: a pickled dict with b'data' (N x 3072 uint8) and b'fine_labels' 0..99, in {layout}"
    train_x, train_y = _read_cifar(folder, ["train"], "fine_labels", 100, expected)
    test_x, test_y = _read_cifar(folder, ["test"], "fine_labels", 100, expected)
    return ImageDataset("cifar100", train_x, train_y, test_x, test_y, 100, CIFAR100_MEAN, CIFAR100_STD, pad=4)


#: ImageNet16-120 keeps the first 120 of the 1,000 ImageNet classes (labels 1..120 in the files).
IMAGENET16_CLASSES = 120


def load_imagenet16_120(data_root: str | Path | None) -> ImageDataset:
    """NB201's ImageNet16-120: downsampled 16x16 ImageNet, classes 1..120 only, relabelled 0..119."""
    layout = "ImageNet16/ with train_data_batch_1..10 and val_data (NB201's ImageNet16 pickles)"
    folder = _batch_folder(data_root, "ImageNet16-120", "ImageNet16", layout)
    expected = f"an ImageNet16 batch: a pickled dict with 'data' (N x 768 uint8) and 'labels' 1..1000, in {layout}"

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for file in files:
            path = folder / file
            x, y = batch_arrays(read_batch(path, expected), path, "labels", 16, expected)
            _check_labels(y, 1, 1000, path, expected)
            keep = y <= IMAGENET16_CLASSES  # filter per file so the full 1.28M-image set never sits in memory
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = read([f"train_data_batch_{i}" for i in range(1, 11)])
    test_x, test_y = read(["val_data"])
    return ImageDataset(
        "ImageNet16-120", train_x, train_y, test_x, test_y, IMAGENET16_CLASSES, IMAGENET16_MEAN, IMAGENET16_STD, pad=2
    )


Loader = Callable[[str | Path | None], ImageDataset]


def dataset_registry() -> dict[str, Loader]:
    """Canonical dataset name -> loader taking ``data_root`` (``digits`` ignores it)."""
    return {
        "digits": lambda _root: load_digits_dataset(),
        "cifar10": load_cifar10,
        "cifar100": load_cifar100,
        "ImageNet16-120": load_imagenet16_120,
    }


def dataset_names() -> list[str]:
    """The canonical names :func:`load_dataset` accepts (lookup is case-insensitive)."""
    return list(dataset_registry())


def canonical_name(name: str) -> str:
    """Map ``name`` (any case, e.g. ``imagenet16-120``) to its canonical spelling; unknown -> DataError."""
    known = {n.lower(): n for n in dataset_registry()}
    key = str(name).strip().lower()
    if key not in known:
        raise DataError(f"unknown dataset {name!r}: expected one of {', '.join(dataset_registry())}")
    return known[key]


def load_dataset(name: str, data_root: str | Path | None = None) -> ImageDataset:
    """Load dataset ``name`` from ``data_root``.

    ``digits`` is embedded and needs no root. For the others ``data_root`` is the folder holding the standard
    batch folder (or that batch folder itself). Raises :class:`DataError` for an unknown name (listing the known
    ones), a missing folder, or a missing or malformed file (naming the path and the expected layout).
    """
    canonical = canonical_name(name)
    return dataset_registry()[canonical](data_root)
