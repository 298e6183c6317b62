"""Everything checked before a plan runs, so that a user's mistake fails at once and not in every run later.

:func:`preflight` resolves every distinct configuration of the plan (unknown keys, bad types, values out of range),
loads each planned dataset once (a missing or malformed data file, a batch larger than the search split), opens the
benchmark (once: the executors pass it to every run of this process), picks and checks the device, and checks the
results folder (writable; no stored run made under other settings). ``nas-suite run`` and :func:`nasbench_suite.run`
both call it; nothing is written before it passes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .benchmarks import Benchmark, open_benchmark
from .config import Protocol, RunSpec, resolve
from .errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class Checked:
    """What :func:`preflight` found: the plan's distinct protocols, the open benchmark and the device to use."""

    protocols: list[Protocol]
    benchmark: Benchmark
    device: str


def resolve_protocols(plan: Iterable[RunSpec]) -> list[Protocol]:
    """Resolve every spec of ``plan`` (ConfigError on the first that does not); the seed plays no part in that, so
    each distinct configuration is resolved once. Returns one protocol per distinct configuration."""
    from .method import get_method

    protocols: dict[RunSpec, Protocol] = {}
    for spec in plan:
        key = dataclasses.replace(spec, seed=0)
        if key not in protocols:
            cls = get_method(spec.method)
            protocols[key] = resolve(spec, cls.Hparams, cls.name).protocol
    return list(protocols.values())


def check_data_root(protocols: Iterable[Protocol], data_root: Path | None) -> None:
    """Refuse a data root that does not exist, or one the plan would ignore (its only dataset is the embedded one)."""
    if data_root is not None and not Path(data_root).exists():
        raise DataError(f"data root {data_root} does not exist")
    if data_root is not None and {p.dataset for p in protocols} <= {"digits"}:
        raise ConfigError(
            f"--data-root {data_root} would be ignored: the plan's dataset is the embedded 'digits' "
            "(choose --dataset cifar10, cifar100 or ImageNet16-120)"
        )


def check_data(protocols: Iterable[Protocol], data_root: Path | None) -> None:
    """Load each planned dataset once (a missing or malformed data file fails now, not in every run) and refuse a
    batch larger than a half of its search split; a set far smaller than the standard one is logged as a warning."""
    from .data import load_dataset, search_split
    from .data.checks import STANDARD_SIZES, dataset_warnings

    loaded = {}
    for p in protocols:
        if p.dataset not in loaded:
            loaded[p.dataset] = load_dataset(p.dataset, data_root if p.dataset != "digits" else None)
        split = search_split(loaded[p.dataset], p.split_seed, official=p.split == "official")
        room = min(len(split.train), len(split.valid))
        if p.batch_size > room:
            std = STANDARD_SIZES.get(p.dataset)
            usual = f" (the standard {p.dataset} has {std[0]:,} training and {std[1]:,} test images)" if std else ""
            raise ConfigError(
                f"batch_size={p.batch_size} is out of range: the search split of {p.dataset} has "
                f"{len(split.train)} + {len(split.valid)} images, so it must be <= {room}{usual}"
            )
    for ds in loaded.values():
        for warning in dataset_warnings(ds, source=str(data_root)):
            log.warning(warning)


def check_device(device: str, protocols: Iterable[Protocol], local: bool = True) -> None:
    """Refuse a device torch does not know, a CUDA device this machine lacks, or an amp mode the device lacks
    (``local=False``: the runs execute elsewhere, so only the device's name is checked)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a device (use cpu, cuda or cuda:N)") from None
    if not local or dev.type != "cuda":
        return  # (cluster jobs: this node's GPUs say nothing about theirs; CPU autocast supports bf16)
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible on this machine (use --device cpu)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if any(p.amp == "bf16" for p in protocols) and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"amp='bf16' is out of range: {torch.cuda.get_device_name(dev)} has no bfloat16 support")


def preflight(
    plan: list[RunSpec],
    results: Path,
    *,
    data_root: Path | None = None,
    benchmark: str | Path | None = None,
    device: str | None = None,
    force: bool = False,
    cluster_gpus: int | None = None,
    load_data: bool = True,
) -> Checked:
    """Check ``plan`` before it runs (see the module docstring); raises a :class:`NasSuiteError` on the first problem.

    ``device=None``: CUDA when this machine has it, else the CPU. ``cluster_gpus`` (GPUs per job) when the runs
    execute as cluster jobs: the device then defaults to CUDA when the jobs have GPUs, and this machine's GPUs are not
    asked. ``load_data=False``: the data files are not loaded here (a cluster's data paths need not exist on the
    login node).
    """
    import torch

    from .runner import check_stored_configs
    from .store import Store

    protocols = resolve_protocols(plan)
    check_data_root(protocols, data_root)
    if load_data:
        check_data(protocols, data_root)
    bench = open_benchmark(benchmark)
    if cluster_gpus is not None:  # jobs run elsewhere: this (login) node's GPUs say nothing about theirs
        device = device or ("cuda" if cluster_gpus > 0 else "cpu")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device, protocols, local=cluster_gpus is None)
    Store(results).ensure_writable()
    if not force:  # a stored run made under other settings is not silently reused
        check_stored_configs(plan, Path(results))
    return Checked(protocols, bench, device)
