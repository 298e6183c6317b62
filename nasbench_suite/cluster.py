"""Runs as cluster jobs through submitit: one job per run (with ``--vectorize``, per method's seeds run as one
vectorized search), submitted as one Slurm job array.

Each job calls :class:`RunJob`, a :class:`submitit.helpers.Checkpointable`: when Slurm signals a time-out or a
preemption, submitit calls :meth:`RunJob.checkpoint`, which requeues the same unit. Nothing else has to be saved
at that moment: the runner checkpoints atomically after every epoch and resumes from the last one, so the
requeued job continues where the epoch checkpoints left off (the epoch in flight is recomputed). Claims
(:mod:`nasbench_suite.claims`) recognise the requeued job by its Slurm job id, so it takes its own claim back even
on another node.

``executor="submitit-local"`` runs the same jobs on this machine with submitit's ``LocalExecutor`` (real
processes, real signals, real requeues): a dry run of the cluster path without a cluster. It starts every job at
once (no array throttling), so it is for checking a setup, not for throughput; ``--executor local`` (the spawn
pool of :mod:`nasbench_suite.executors`) is the way to use one machine's GPUs.
"""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from .config import RunSpec
from .errors import ConfigError
from .executors import Outcome, _execute_unit
from .runner import RunOptions

CLUSTER_EXECUTORS = ("slurm", "submitit-local")


@dataclass
class ClusterOptions:
    """How runs become jobs (the run itself is described by :class:`RunOptions`)."""

    executor: str = "slurm"  # "slurm" | "submitit-local"
    partition: str | None = None
    gpus_per_job: int = 1
    time_limit_min: int = 240  # per job; a run longer than this is requeued and resumes
    array_parallelism: int = 64  # how many of the array's jobs Slurm runs at once
    log_dir: Path | None = None  # default: <results>/submitit
    max_requeues: int = 10  # time-outs after which a job gives up (preemptions do not count)
    signal_delay_s: int = 120  # Slurm sends the checkpoint signal this long before the time limit
    poll_s: float = 10.0  # how often to look at the jobs while waiting
    extra: dict[str, Any] = field(default_factory=dict)  # more submitit parameters (e.g. slurm_mem, cpus_per_task)

    def check(self) -> None:
        """User errors in the options, as :class:`ConfigError`."""
        if self.executor not in CLUSTER_EXECUTORS:
            raise ConfigError(
                f"unknown cluster executor {self.executor!r}; choose one of {', '.join(CLUSTER_EXECUTORS)}"
            )
        if self.gpus_per_job < 0:
            raise ConfigError(f"--gpus-per-job must be >= 0, got {self.gpus_per_job}")
        if self.time_limit_min < 1:
            raise ConfigError(f"--time-limit must be at least 1 minute, got {self.time_limit_min}")
        if self.array_parallelism < 1:
            raise ConfigError(f"--array-parallelism must be at least 1, got {self.array_parallelism}")
        if self.executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise ConfigError(
                "--executor slurm needs Slurm's sbatch and srun on PATH (run this on a cluster login node)"
            )


class RunJob(Checkpointable):
    """The callable each job runs: execute (or resume) one unit of the plan (a run, or a method's seeds as one
    vectorized search: :func:`nasbench_suite.seedgroup.group_plan`); requeue the same unit on time-out/preemption."""

    def __init__(self, options: RunOptions):
        self.options = options
        self.requeues = 0

    def __call__(self, unit: list[RunSpec]) -> list[Outcome]:
        outs = _execute_unit(unit, self.options, _print_progress)
        for out in outs:
            out.requeues = self.requeues
        return outs

    def checkpoint(self, unit: list[RunSpec]) -> DelayedSubmission:  # type: ignore[override]
        # The runners' epoch checkpoints are already on disk; requeueing the same unit resumes from them.
        ids = ", ".join(spec.run_id for spec in unit)
        print(f"checkpoint signal: requeueing {ids} (it resumes from its last epoch checkpoint)", flush=True)
        self.requeues += 1
        return DelayedSubmission(self, unit)


def _print_progress(ev: dict[str, Any]) -> None:
    if ev.get("kind") == "step":  # a job log gets one line per epoch
        return
    if ev.get("kind") == "select":
        print(
            f"{ev['run_id']} epoch {ev['epoch']}/{ev['epochs']} scoring candidate {ev['candidate']}/{ev['candidates']}",
            flush=True,
        )
        return
    line = ev["line"]
    print(f"{ev['run_id']} epoch {ev['epoch']}/{ev['epochs']} {line['arch']} ({line['wall_s']:.1f}s)", flush=True)


def make_executor(copts: ClusterOptions, results: Path) -> submitit.Executor:
    """The submitit executor for ``copts``, logging to ``copts.log_dir`` (one folder per job)."""
    folder = Path(copts.log_dir or Path(results) / "submitit") / "%j"
    if copts.executor == "slurm":
        ex: submitit.Executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=copts.max_requeues)
        params: dict[str, Any] = dict(
            time=copts.time_limit_min,
            gpus_per_node=copts.gpus_per_job or None,
            array_parallelism=copts.array_parallelism,
            signal_delay_s=copts.signal_delay_s,
            job_name="nas-suite",
            nodes=1,
            ntasks_per_node=1,
        )
        if copts.partition:
            params["partition"] = copts.partition
    else:
        ex = submitit.LocalExecutor(folder=folder, max_num_timeout=copts.max_requeues)
        params = dict(
            timeout_min=copts.time_limit_min, gpus_per_node=copts.gpus_per_job, signal_delay_s=copts.signal_delay_s
        )
    ex.update_parameters(**{**params, **copts.extra})
    return ex


def submit(plan: list[RunSpec], options: RunOptions, copts: ClusterOptions) -> list[tuple[list[RunSpec], submitit.Job]]:
    """Submit one job per unit of the plan (a run; with ``options.vectorize``, a method's seeds together), as a
    single job array on Slurm; returns (unit, job) pairs without waiting."""
    from .seedgroup import group_plan

    copts.check()
    if not plan:
        return []
    units = group_plan(plan, options.vectorize, options.device)
    executor = make_executor(copts, options.results)
    jobs = executor.map_array(RunJob(options), units)
    return list(zip(units, jobs))


def job_logs(job: submitit.Job) -> str:
    """The job's stdout and stderr paths, for messages."""
    return f"{job.paths.stdout} / {job.paths.stderr}"


def collect(
    submitted: list[tuple[list[RunSpec], submitit.Job]], poll_s: float = 10.0, on_outcome: Callable | None = None
) -> list[Outcome]:
    """Wait for the jobs; one :class:`Outcome` per spec, in plan order. A job that dies (crash, cancel, out of
    requeues) is a failed outcome for each of its runs, holding submitit's error (with the job's traceback) and its
    log paths."""
    by_job = {job.job_id: unit for unit, job in submitted}
    outcomes: dict[str, Outcome] = {}
    for job in submitit.helpers.as_completed([j for _, j in submitted], poll_frequency=poll_s):
        unit = by_job[job.job_id]
        try:
            outs = job.result()
        except Exception as e:  # noqa: BLE001 - submitit raises the job's own error (with its traceback)
            msg = str(e) or traceback.format_exc()
            outs = [Outcome(spec.run_id, "failed", error=msg) for spec in unit]
        if not (isinstance(outs, list) and all(isinstance(o, Outcome) for o in outs)):
            error = f"job returned {type(outs).__name__}, not a list of Outcomes"
            outs = [Outcome(spec.run_id, "failed", error=error) for spec in unit]
        for out in outs:
            out.log = job_logs(job)
            if out.status == "failed":
                out.error = f"{(out.error or '').rstrip()}\n(job {job.job_id} logs: {out.log})"
            outcomes[out.run_id] = out
            if on_outcome:
                on_outcome(out)
    return [outcomes[spec.run_id] for unit, _ in submitted for spec in unit]


def run_cluster(
    plan: list[RunSpec], options: RunOptions, copts: ClusterOptions, on_outcome: Callable | None = None
) -> list[Outcome]:
    """Submit the plan as jobs and wait for all of them."""
    if copts.gpus_per_job == 0 and options.device.startswith("cuda"):
        options = replace(options, device="cpu")
    outcomes = {o.run_id: o for o in collect(submit(plan, options, copts), copts.poll_s, on_outcome)}
    return [outcomes[spec.run_id] for spec in plan]
