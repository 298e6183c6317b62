"""Datasets, NB201 search splits and device-resident batch streams.

``load_dataset(name, data_root)`` -> :class:`ImageDataset`; ``search_split(ds, split_seed)`` ->
:class:`SearchSplit` (train / valid / test parts); ``BatchStream.from_part(part, ds, batch_size=..., device=...)``
-> endless augmented batches.
"""

from .batches import BatchStream
from .sources import ImageDataset, canonical_name, dataset_names, load_dataset, load_digits_dataset
from .splits import SPLIT_KIND, DataPart, SearchSplit, make_part, search_split

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
