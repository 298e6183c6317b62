"""A small factory of run records for tests that store runs by hand (the analysis, stats and report tests).

Builds :class:`~nasbench_suite.records.RunRecord` / :class:`~nasbench_suite.records.EpochMetrics` objects, so a
hand-made record has exactly the schema the runner writes: a field renamed in the schema is a TypeError here.
"""

from __future__ import annotations

from typing import Any

from nasbench_suite.records import (
    BenchmarkInfo,
    BenchScores,
    DataInfo,
    Environment,
    EpochMetrics,
    FinalResult,
    RunRecord,
    Timings,
)


def make_epoch(epoch: int, arch: str | None, bench: BenchScores | None = None, **values: Any) -> EpochMetrics:
    """One epoch line with plausible losses and times; ``values`` set (or add) any other key."""
    line = EpochMetrics(
        epoch,
        arch=arch,
        bench=bench or {},
        train_loss=2.0 - 0.1 * epoch,
        valid_loss=2.1 - 0.1 * epoch,
        train_acc=10.0,
        valid_acc=9.0,
        lr=0.025,
        search_s=10.0,
        wall_s=11.0,
    )
    line.update(values)
    return line


def make_record(
    run_id: str,
    method: str,
    variant: str,
    seed: int,
    epochs: list[EpochMetrics],
    *,
    protocol: str = "nb201",
    dataset: str = "cifar10",
    fingerprint: str = "fp-test",
    overrides: dict[str, str] | None = None,
    hparams: dict[str, Any] | None = None,
    total_s: float = 3600.0,
    device: str = "NVIDIA H100",
) -> RunRecord:
    """A finished run's record whose final cell is the last epoch's; the benchmark is a synthetic one."""
    last = epochs[-1]
    return RunRecord(
        run_id=run_id,
        status="done",
        method=method,
        variant=variant,
        seed=seed,
        protocol=protocol,
        dataset=dataset,
        spec={"method": method, "seed": seed, "protocol": protocol, "overrides": overrides or {}, "dataset": None},
        config={
            "protocol": {"name": protocol, "dataset": dataset, "epochs": len(epochs), "C": 16},
            "hparams": hparams or {},
            "sources": {},
        },
        code_version="abc123def456",
        environment=Environment(device=device, torch="2.13", python="3.11", host="h"),
        data=DataInfo(dataset=dataset, data_root="/data"),
        benchmark=BenchmarkInfo(
            name="fake-bench", provenance="synthetic test table", fingerprint=fingerprint, path="/bench"
        ),
        final=FinalResult(arch=last.arch, bench=last.bench, train_loss=1.5, valid_loss=1.6),
        timings=Timings(
            total_s=total_s, search_s=total_s - 10, per_epoch_s=[11.0] * len(epochs), steps_per_epoch=3, resumed=False
        ),
        finished_at="2025-01-01T00:00:00+0000",
    )
