"""A loaded dataset compared with the standard one, before any search starts.

The CLI refuses a batch larger than a half of the search split (``cli._check_data``); here: a dataset far
smaller than the standard one is accepted with a warning, since its numbers are not comparable with published ones.
"""

from __future__ import annotations

from .sources import ImageDataset

#: (training images, test images) of the standard datasets, as the NB201 protocol uses them.
STANDARD_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "ImageNet16-120": (151_700, 6_000)}
#: Below this fraction of the standard size a dataset is reported as far smaller than the standard one.
SMALL_FRACTION = 0.5


def dataset_warnings(ds: ImageDataset, source: str = "") -> list[str]:
    """Warnings about ``ds`` (one line each): far fewer images than the standard dataset of that name."""
    std = STANDARD_SIZES.get(ds.name)
    if std is None or (len(ds.train_x) >= SMALL_FRACTION * std[0] and len(ds.test_x) >= SMALL_FRACTION * std[1]):
        return []
    where = f" from {source}" if source else ""
    return [
        f"warning: {ds.name}{where} has {len(ds.train_x):,} training and {len(ds.test_x):,} test images, far fewer "
        f"than the standard {std[0]:,} and {std[1]:,}; its results are not comparable with published ones"
    ]
