"""The NB201 query protocol: which benchmark dataset and metric count as "valid" and "test".

This is the only place these settings live; both file adapters (NATS-Bench and NB201) query through
:func:`query_api`. The API defaults (``hp='12'``, ``is_random=True``) are not the paper's settings, so every
call passes them explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BenchmarkError
from ..space import Cell
from .base import BenchResult

#: 200-epoch training schedule, as in the NB201 paper's tables.
HP = "200"
#: Mean over the benchmark's training seeds rather than one random seed.
IS_RANDOM = False


@dataclass(frozen=True)
class MetricSource:
    """Where one number comes from: the benchmark's dataset key and the ``get_more_info`` field."""

    api_dataset: str
    key: str


@dataclass(frozen=True)
class DatasetQuery:
    """The valid and test sources of one of our datasets."""

    valid: MetricSource
    test: MetricSource


QUERIES: dict[str, DatasetQuery] = {
    # CIFAR-10's valid number comes from the model trained on the 25k train split (dataset 'cifar10-valid'),
    # its test number from the model trained on all 50k images (dataset 'cifar10', ori-test).
    "cifar10": DatasetQuery(MetricSource("cifar10-valid", "valid-accuracy"), MetricSource("cifar10", "test-accuracy")),
    # For these two, 'valid-accuracy' is x-valid and 'test-accuracy' is x-test of the same trained model.
    "cifar100": DatasetQuery(MetricSource("cifar100", "valid-accuracy"), MetricSource("cifar100", "test-accuracy")),
    "ImageNet16-120": DatasetQuery(
        MetricSource("ImageNet16-120", "valid-accuracy"), MetricSource("ImageNet16-120", "test-accuracy")
    ),
}


def api_datasets_needed(dataset: str) -> set[str]:
    """The benchmark dataset keys a record must hold to answer ``dataset``."""
    q = QUERIES[dataset]
    return {q.valid.api_dataset, q.test.api_dataset}


def datasets_answerable(api_datasets: Iterable[str]) -> tuple[str, ...]:
    """Our datasets (in canonical order) whose valid and test sources are all among ``api_datasets``."""
    have = set(api_datasets)
    return tuple(ds for ds in QUERIES if api_datasets_needed(ds) <= have)


def official_index(api: Any, cell: Cell, where: str) -> int:
    """The benchmark's own index of ``cell`` (its position in ``meta_archs``); BenchmarkError if absent.

    Goes through ``query_index_by_arch`` with the official arch string, which answers -1 for a cell the
    benchmark does not list.
    """
    index = api.query_index_by_arch(cell.arch_str)
    if index is None or index < 0:
        raise BenchmarkError(f"{where}: cell {cell.arch_str} is not in this benchmark")
    return int(index)


def query_api(api: Any, index: int, dataset: str, where: str) -> BenchResult:
    """Query ``api.get_more_info`` (NATS-Bench or NB201 API) for official ``index`` under the protocol.

    ``where`` names the benchmark in error messages. Failures inside the API (a record lacking the dataset
    or the 200-epoch results) become :class:`BenchmarkError`.
    """
    q = QUERIES[dataset]
    infos: dict[str, dict] = {}
    for src in (q.valid, q.test):
        if src.api_dataset in infos:
            continue
        try:
            infos[src.api_dataset] = api.get_more_info(index, src.api_dataset, hp=HP, is_random=IS_RANDOM)
        except (KeyError, ValueError, AssertionError, IndexError) as exc:
            # The APIs signal a missing dataset/hp with KeyError/ValueError/assert deep inside.
            raise BenchmarkError(
                f"{where}: official index {index} has no hp={HP} results for {src.api_dataset!r} ({exc!r})"
            ) from exc
    test = infos[q.test.api_dataset].get(q.test.key)
    if test is None:
        raise BenchmarkError(f"{where}: official index {index} lacks {q.test.key} on {q.test.api_dataset!r}")
    valid = infos[q.valid.api_dataset].get(q.valid.key)
    return BenchResult(valid=None if valid is None else float(valid), test=float(test))
