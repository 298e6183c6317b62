"""Run ownership: whether a planned run executes here, is returned from the store, or belongs to another process.

:func:`run_one` is what every executor calls for one spec: a finished record is returned (after checking it was made
under the same resolved settings), otherwise the run's claim (:mod:`nasbench_suite.claims`) is taken, what a crash
left behind is cleared, and :class:`~nasbench_suite.runner.Run` executes (or resumes) it with the claim's heartbeat
on every epoch. The runner itself only knows one run.
"""

from __future__ import annotations

import time
from typing import Any

from .benchmarks import Benchmark
from .claims import CLAIM_FILE, ClaimHeld, acquire
from .config import RunSpec
from .records import RunRecord
from .runner import ProgressFn, Run, RunOptions, check_stored_config
from .store import Store, read_record


def run_one(
    spec: RunSpec,
    options: RunOptions,
    progress: ProgressFn | None = None,
    benchmark: Benchmark | None = None,
) -> RunRecord:
    """Execute one spec unless a finished record exists (then return it, unless ``options.force``).

    A finished record made under other resolved settings is not returned: ConfigError says which keys differ.
    ``benchmark``: the process's open benchmark (opened from ``options.benchmark`` when None), so that a plan does
    not reload a multi-GB benchmark file for every run.
    """
    store = Store(options.results)
    if not options.force and store.is_done(spec.run_id):
        _release_stale_claim(store, spec.run_id, options.claim_stale_s)
        record = read_record(store.record_path(spec.run_id))
        check_stored_config(store, spec, record)
        return record
    store.ensure_writable()
    # One owner per run (ClaimHeld if another live process has it); the claim is checked again under it, since
    # another process may have finished the run between the check above and the claim.
    claim = acquire(store.run_dir(spec.run_id), options.claim_stale_s)
    try:
        if not options.force and store.is_done(spec.run_id):
            record = read_record(store.record_path(spec.run_id))
            check_stored_config(store, spec, record)
            return record
        _set_aside_unfinished_leftovers(store, spec.run_id)
        if options.force:
            store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
        claim.started()

        def beat(ev: dict[str, Any]) -> None:
            if ev.get("kind") == "epoch":  # (step events are too frequent to touch the claim file for)
                claim.heartbeat()
            if progress:
                progress(ev)

        return Run(spec, options, benchmark=benchmark).execute(beat)
    finally:
        claim.release()


def _release_stale_claim(store: Store, run_id: str, stale_after_s: float) -> None:
    """A process killed between writing a run's record and releasing its claim leaves the claim behind on a finished
    run; the next visit takes a stale one over and releases it (a live holder, about to release it, keeps it)."""
    run_dir = store.run_dir(run_id)
    if not (run_dir / CLAIM_FILE).exists():
        return
    try:
        acquire(run_dir, stale_after_s).release()
    except (ClaimHeld, OSError):
        pass


def _set_aside_unfinished_leftovers(store: Store, run_id: str) -> None:
    """Under the run's claim: drop temp files of writes a crash interrupted, and move an unreadable record aside
    (it never counts as done, and the rerun must not be mistaken for having overwritten a good one)."""
    run_dir = store.run_dir(run_id)
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    rec = store.record_path(run_id)
    if rec.exists() and not store.is_done(run_id):
        rec.rename(rec.with_name(f"record.corrupt-{int(time.time())}.json"))
