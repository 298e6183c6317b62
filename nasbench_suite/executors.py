"""Where runs execute: in this process, or in a local pool of worker processes (one GPU slot per worker).

A plan is a list of :class:`RunSpec`. Both executors skip runs whose finished record exists (the runner checks),
return one outcome per spec and never stop the whole plan for one failed run: failures are collected with their
traceback. Cluster execution (submitit) lives in :mod:`nasbench_suite.cluster`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from .benchmarks import Benchmark, open_benchmark
from .claims import ClaimHeld
from .config import RunSpec
from .errors import NasSuiteError
from .ownership import run_one
from .progress import throttled
from .records import RunRecord
from .runner import ProgressFn, RunOptions

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What happened to one planned run."""

    run_id: str
    status: str  # "done" | "skipped" (already stored) | "claimed" (another live process runs it) | "failed"
    record: RunRecord | None = None
    error: str | None = None
    seconds: float = 0.0
    requeues: int = 0  # cluster jobs: times the job was checkpointed and requeued
    log: str | None = None  # cluster jobs: the job's stdout/stderr files


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts for the end-of-plan line: done, skipped, claimed, failed, and requeued (jobs requeued at least once)."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "claimed", "failed")}
    counts["requeued"] = sum(o.requeues > 0 for o in outcomes)
    return counts


def _execute(
    spec: RunSpec, options: RunOptions, progress: ProgressFn | None, benchmark: Benchmark | None = None
) -> Outcome:
    from .store import Store

    t0 = time.perf_counter()
    already = not options.force and Store(options.results).is_done(spec.run_id)
    try:
        record = run_one(spec, options, progress, benchmark=benchmark)
    except ClaimHeld as e:  # not a failure: another process owns the run and will store it
        return Outcome(spec.run_id, "claimed", error=str(e), seconds=time.perf_counter() - t0)
    except NasSuiteError as e:
        return Outcome(spec.run_id, "failed", error=str(e), seconds=time.perf_counter() - t0)
    except Exception:  # noqa: BLE001 - one broken run must not stop the plan; the traceback is kept
        return Outcome(spec.run_id, "failed", error=traceback.format_exc(), seconds=time.perf_counter() - t0)
    return Outcome(spec.run_id, "skipped" if already else "done", record, seconds=time.perf_counter() - t0)


def _execute_unit(
    unit: list[RunSpec], options: RunOptions, progress: ProgressFn | None, benchmark: Benchmark | None = None
) -> list[Outcome]:
    """One unit of :func:`nasbench_suite.seedgroup.group_plan`: a run alone, or K seeds as one vectorized search
    (every run of it fails together if the search fails)."""
    if len(unit) == 1:
        return [_execute(unit[0], options, progress, benchmark)]
    from .seedgroup import run_group

    t0 = time.perf_counter()
    try:
        results = run_group(unit, options, progress, benchmark)
    except Exception as e:  # noqa: BLE001 - one broken group must not stop the plan; the traceback is kept
        error = str(e) if isinstance(e, NasSuiteError) else traceback.format_exc()
        return [Outcome(s.run_id, "failed", error=error, seconds=time.perf_counter() - t0) for s in unit]
    share = (time.perf_counter() - t0) / len(unit)
    outs = []
    for spec, (status, got) in zip(unit, results):
        if status == "claimed":  # not a failure: another process owns the run and will store it
            outs.append(Outcome(spec.run_id, status, error=str(got), seconds=share))
        else:
            outs.append(Outcome(spec.run_id, status, got, seconds=share))
    return outs


def run_inprocess(
    plan: list[RunSpec],
    options: RunOptions,
    progress: ProgressFn | None = None,
    on_outcome: Callable | None = None,
    benchmark: Benchmark | None = None,
) -> list[Outcome]:
    """Run the plan sequentially in this process, every run on the one ``benchmark`` (opened from
    ``options.benchmark`` here when not given); the seeds of a method together per ``options.vectorize``."""
    from .seedgroup import group_plan

    bench = benchmark if benchmark is not None else open_benchmark(options.benchmark)
    outcomes = []
    for unit in group_plan(plan, options.vectorize, options.device):
        for out in _execute_unit(unit, options, progress, bench):
            outcomes.append(out)
            if on_outcome:
                on_outcome(out)
    by_id = {o.run_id: o for o in outcomes}
    return [by_id[s.run_id] for s in plan]


# --- local pool ------------------------------------------------------------------------------------------------
_SLOT: dict[str, Any] = {}


def _on_term(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds the run: its claim is released, its last checkpoint kept


def _init_worker(slots, threads: int, events=None) -> None:
    import signal

    # SIGTERM (the parent passing on its own, or a scheduler's) ends a worker's run like Ctrl-C; a Ctrl-C in the
    # terminal reaches the workers too and is left to the parent, which ends them with SIGTERM.
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SLOT["slot"] = slots.get()
    _SLOT["events"] = events
    import torch

    torch.set_num_threads(threads)


def _forward(ev: dict[str, Any]) -> None:
    # runs in a worker: the parent's drain thread hands the event to its progress display
    _SLOT["events"].put({**ev, "pid": os.getpid()})


def _pool_task(unit: list[RunSpec], options: RunOptions) -> list[Outcome]:
    import torch

    device = options.device
    if device.startswith("cuda") and torch.cuda.is_available():
        # one visible GPU per worker slot
        device = f"cuda:{_SLOT['slot'] % torch.cuda.device_count()}"
    progress = throttled(_forward) if _SLOT.get("events") is not None else None
    if "benchmark" not in _SLOT:  # opened once per worker process, at its first run, and kept for the others
        try:
            _SLOT["benchmark"] = open_benchmark(options.benchmark)
        except NasSuiteError as e:
            return [Outcome(spec.run_id, "failed", error=str(e)) for spec in unit]
    return _execute_unit(unit, replace(options, device=device), progress, _SLOT["benchmark"])


def _drain(events, progress: ProgressFn) -> None:
    """Parent side: pass forwarded worker events to ``progress`` until the ``None`` sentinel."""
    while (ev := events.get()) is not None:
        try:
            progress(ev)
        except Exception:  # noqa: BLE001 - a display error must not stop the plan or hang the pool
            log.exception("progress display failed on a worker event")


def run_pool(
    plan: list[RunSpec],
    options: RunOptions,
    workers: int,
    on_outcome: Callable | None = None,
    progress: ProgressFn | None = None,
) -> list[Outcome]:
    """Run the plan on ``workers`` spawned processes; each worker owns one slot (= one GPU when on CUDA).

    ``progress`` receives the workers' step and epoch events (see :mod:`nasbench_suite.progress`), each with the
    worker's ``pid``, on a thread of this process; step events arrive throttled.
    """
    ctx = mp.get_context("spawn")
    slots = ctx.Queue()
    for i in range(workers):
        slots.put(i)
    events = ctx.Queue() if progress is not None else None
    drain = threading.Thread(target=_drain, args=(events, progress), daemon=True) if events is not None else None
    if drain is not None:
        drain.start()
    threads = max(1, (os.cpu_count() or 1) // workers)
    outcomes: dict[str, Outcome] = {}
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(slots, threads, events))
    try:
        from .seedgroup import group_plan

        futures = {
            pool.submit(_pool_task, unit, options): unit for unit in group_plan(plan, options.vectorize, options.device)
        }
        for fut in as_completed(futures):
            unit = futures[fut]
            try:
                outs = fut.result()
            except Exception:  # noqa: BLE001 - a dead worker is one failed unit, not a dead plan
                outs = [Outcome(spec.run_id, "failed", error=traceback.format_exc()) for spec in unit]
            for out in outs:
                outcomes[out.run_id] = out
                if on_outcome:
                    on_outcome(out)
    except BaseException:  # interrupted (SIGINT/SIGTERM in the parent): stop the workers' runs the same way
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each worker's run unwinds and releases its claim
        for proc in procs:
            proc.join(timeout=60)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        if drain is not None:  # every worker has exited: all its events are in the queue before the sentinel
            events.put(None)
            drain.join()
    return [outcomes[s.run_id] for s in plan]
