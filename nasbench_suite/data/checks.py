"""Checks of a loaded dataset against what a protocol needs, run before any search starts.

A dataset too small for the protocol's batches fails now with the sizes found and needed (a :class:`DataError`,
exit code 2), not midway through a run; one far smaller than the standard dataset is accepted with a warning,
since its numbers will not be comparable with published ones.
"""

from __future__ import annotations

from ..errors import DataError
from .sources import ImageDataset
from .splits import search_split

#: (training images, test images) of the standard datasets, as the NB201 protocol uses them.
STANDARD_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "ImageNet16-120": (151_700, 6_000)}
#: Below this fraction of the standard size a dataset is reported as far smaller than the standard one.
SMALL_FRACTION = 0.5


def check_dataset(ds: ImageDataset, batch_size: int, split_seed: int = 0, source: str = "") -> list[str]:
    """Raise DataError when the search split of ``ds`` cannot fill one batch of ``batch_size`` in its weight or
    its arch part (the streams drop a last short batch); return warnings (e.g. far smaller than standard)."""
    split = search_split(ds, split_seed)
    where = f" from {source}" if source else ""
    short = [f"{name} {len(part):,}" for name, part in (("weight", split.train), ("arch/valid", split.valid))
             if len(part) < batch_size]  # fmt: skip
    std = STANDARD_SIZES.get(ds.name)
    if short:
        usual = f"; the standard {ds.name} has {std[0]:,} training and {std[1]:,} test images" if std else ""
        raise DataError(
            f"{ds.name}{where} is too small for batch size {batch_size}: its search split has {', '.join(short)} "
            f"images (found {len(ds.train_x):,} training and {len(ds.test_x):,} test images; each part needs at "
            f"least {batch_size}){usual}"
        )
    warnings = []
    if std and (len(ds.train_x) < SMALL_FRACTION * std[0] or len(ds.test_x) < SMALL_FRACTION * std[1]):
        warnings.append(
            f"warning: {ds.name}{where} has {len(ds.train_x):,} training and {len(ds.test_x):,} test images, far "
            f"fewer than the standard {std[0]:,} and {std[1]:,}; its results are not comparable with published ones"
        )
    return warnings
