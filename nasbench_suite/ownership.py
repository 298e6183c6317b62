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
from .claims import CLAIM_FILE, Claim, ClaimHeld, acquire
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
    record, claim = claim_run(spec, options)
    if claim is None:
        return record
    try:
        return Run(spec, options, benchmark=benchmark).execute(heartbeat_progress({spec.run_id: claim}, progress))
    finally:
        claim.release()


def claim_run(spec: RunSpec, options: RunOptions) -> tuple[RunRecord | None, Claim | None]:
    """Who executes ``spec``: ``(record, None)`` when a finished record exists (checked to be made under the same
    resolved settings; not with ``options.force``), else ``(None, claim)``: the run's claim taken and started, what a
    crash left behind cleared. :class:`ClaimHeld` when another live process has it. The caller releases the claim."""
    store = Store(options.results)
    if not options.force and store.is_done(spec.run_id):
        _release_stale_claim(store, spec.run_id, options.claim_stale_s)
        return _checked_record(store, spec), None
    store.ensure_writable()
    # One owner per run; the record is checked again under the claim, since another process may have finished the
    # run between the check above and the claim.
    claim = acquire(store.run_dir(spec.run_id), options.claim_stale_s)
    try:
        done = not options.force and store.is_done(spec.run_id)
        if not done:
            _set_aside_unfinished_leftovers(store, spec.run_id)
            if options.force:
                store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
            claim.started()
    except BaseException:
        claim.release()
        raise
    if done:
        claim.release()
        return _checked_record(store, spec), None
    return None, claim


def heartbeat_progress(claims: dict[str, Claim], progress: ProgressFn | None) -> ProgressFn:
    """``progress``, plus a heartbeat of the run's claim on every epoch event (step events are too frequent to
    touch the claim file for)."""

    def beat(ev: dict[str, Any]) -> None:
        if ev.get("kind") == "epoch":
            claims[ev["run_id"]].heartbeat()
        if progress:
            progress(ev)

    return beat


def _checked_record(store: Store, spec: RunSpec) -> RunRecord:
    record = read_record(store.record_path(spec.run_id))
    check_stored_config(store, spec, record)
    return record


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
