"""Datasets, NB201 search splits and device-resident batch streams.

``load_dataset(name, data_root)`` -> :class:`ImageDataset`; ``search_split(ds, split_seed)`` ->
:class:`SearchSplit` (train / valid / test parts); ``BatchStream.from_part(part, ds, batch_size=..., device=...)``
-> endless augmented batches.
"""

from typing import TYPE_CHECKING

from .sources import ImageDataset, canonical_name, dataset_names, load_dataset, load_digits_dataset
from .splits import SPLIT_KIND, DataPart, SearchSplit, make_part, search_split

if TYPE_CHECKING:
    from .batches import BatchStream


def __getattr__(name: str):
    # BatchStream needs torch (seconds to import); the torch-free parts of the package (the pickle scanner that
    # the benchmark adapters use, the splits) must not pay for it: `nas-suite query` answers in a fraction of that.
    if name == "BatchStream":
        from .batches import BatchStream

        return BatchStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchStream",
    "DataPart",
    "ImageDataset",
    "SPLIT_KIND",
    "SearchSplit",
    "canonical_name",
    "dataset_names",
    "load_dataset",
    "load_digits_dataset",
    "make_part",
    "search_split",
]
