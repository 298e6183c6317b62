"""Crash safety: a run SIGKILLed at random moments and started again ends with the record of an uninterrupted run;
half-written checkpoints and records are detected and never used.

The kill loop runs in a helper process that has imported torch and the suite once and warmed the dataset and
benchmark caches; each attempt is a fork of it (a separate process, killed with SIGKILL by the helper at a random
delay), so twenty-odd kills (at least 22, on two to five runs) fit in well under two minutes on two busy cores. Only what a killed process left on
disk carries over to the next attempt, as after a real crash (the benchmark table, read-only, is shared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.claims import executions
from nasbench_suite.config import RunSpec
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.store import Store, read_metrics, read_record

pytestmark = pytest.mark.timeout(900)  # subprocesses: a hung one fails the test instead of the CI run

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "epochs": "4",
    "steps_per_epoch": "2",
    "C": "4",
    "batch_size": "16",
    "select_batch_size": "16",
    "select_candidates": "4",
}
TIMING_KEYS = {"search_s", "wall_s", "rank_s"}

KILL_LOOP = r"""
import json, os, random, signal, sys, time, traceback
from pathlib import Path
import torch
torch.set_num_threads(1)
from nasbench_suite.benchmarks import open_benchmark
from nasbench_suite.config import RunSpec
from nasbench_suite.data import load_dataset
from nasbench_suite.runner import RunOptions
from nasbench_suite.ownership import run_one
from nasbench_suite.space import Cell

import nasbench_suite.runner as runner_module

cfg = json.loads(sys.argv[1])
load_dataset("digits", None)
# The embedded benchmark table loads per instance (seconds); every fork shares this warmed, read-only one.
bench = open_benchmark(None)
bench.query_all(Cell((1,) * 6))
runner_module.open_benchmark = lambda path=None: bench
# Build each run once here (imports the methods, fills the data caches) so that a fork starts in a fraction of a
# second and the kills spread over the epochs rather than over start-up.
for m in sorted({m for m, _ in cfg["specs"]}):
    runner_module.Run(RunSpec(m, 0, "quick", tuple(sorted(cfg["overrides"].items()))), RunOptions(results=Path(cfg["ref"])))
runner_module.code_version()

def attempt(spec, results, kill_after=None, watch=None):
    # fork a process that runs spec; SIGKILL it after kill_after s; watch collects the times of epoch ends
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            run_one(spec, RunOptions(results=Path(results)))
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    metrics = Path(results) / "runs" / spec.run_id / "metrics.jsonl"
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, "a run attempt failed"
            return False, time.monotonic() - t0
        if kill_after is not None and time.monotonic() - t0 >= kill_after:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return True, time.monotonic() - t0
        if watch is not None and metrics.exists():
            n = metrics.read_text().count("\n")
            while len(watch) < n:
                watch.append(time.monotonic() - t0)
        time.sleep(0.002)

def epochs_on_disk(results, run_id):
    ck = Path(results) / "runs" / run_id / "checkpoint.pt"
    rec = Path(results) / "runs" / run_id / "record.json"
    if rec.exists():
        return "record"
    if not ck.exists():
        return 0
    return int(torch.load(ck, weights_only=False)["epoch"])

rng = random.Random(cfg["rng"])
report = []
for m, seed in cfg["specs"]:
    if sum(len(r["kills"]) for r in report) >= cfg["min_kills"]:
        break
    spec = RunSpec(m, seed, "quick", tuple(sorted(cfg["overrides"].items())))
    ends = []
    _, t_ref = attempt(spec, cfg["ref"], watch=ends)
    # Kill moments are drawn from [0, 1.5 x (start-up + two epochs)]: anywhere in start-up, resume, the next epoch or
    # its checkpoint and metrics writes (or the record write near the end), so most attempts die and each one
    # advances at most about one epoch. After kills_per_run kills the run may finish.
    window = 1.5 * (ends[0] + (ends[-1] - ends[0]) / max(1, len(ends) - 1))
    points = []
    while True:
        before = epochs_on_disk(cfg["crash"], spec.run_id)
        limit = rng.uniform(0.0, window) if len(points) < cfg["kills_per_run"] else None
        killed, t = attempt(spec, cfg["crash"], limit)
        if not killed:
            break
        points.append([before, epochs_on_disk(cfg["crash"], spec.run_id), round(t, 3)])
    report.append({"run_id": spec.run_id, "t_ref": t_ref, "epoch_ends": ends, "kills": points})
print("REPORT " + json.dumps(report))
"""


def _comparable(results: Path, run_id: str) -> dict:
    """What must not depend on crashes: per-epoch cells, losses, benchmark numbers; the final cell and losses."""
    store = Store(results)
    rec = read_record(store.record_path(run_id))
    lines = read_metrics(store.metrics_path(run_id))
    epochs = [{k: v for k, v in e.to_json().items() if k not in TIMING_KEYS} for e in lines]
    return {"final": rec.final, "epochs": epochs, "n_epochs": len(rec.timings.per_epoch_s)}


@pytest.mark.slow
def test_sigkill_at_random_moments_gives_the_uninterrupted_record(tmp_path):
    cfg = {
        "specs": [[m, seed] for seed in range(5) for m in ("rsps", "darts-v1")],  # used until 22 kills
        "overrides": TINY,
        "ref": str(tmp_path / "ref"),
        "crash": str(tmp_path / "crash"),
        "rng": 20240611,
        "kills_per_run": 11,
        "min_kills": 22,
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_LOOP, json.dumps(cfg)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    points = [p for r in report for p in r["kills"]]
    print(json.dumps(report, indent=1))
    assert len(points) >= 22, f"only {len(points)} kill points"
    # the kills landed at different stages: before the first checkpoint and after later ones
    assert len({p[0] for p in points}) >= 2 and sum(p[0] != 0 for p in points) >= 3, points
    for r in report:
        rid = r["run_id"]
        assert _comparable(tmp_path / "crash", rid) == _comparable(tmp_path / "ref", rid), rid
        rec = read_record(Store(tmp_path / "crash").record_path(rid))
        # every attempt that got as far as claiming the run left one 'executing' line; a killed one left its claim
        # behind, and the next attempt took it over because its pid was dead
        runs_dir = Store(tmp_path / "crash").run_dir(rid)
        log = [json.loads(x) for x in (runs_dir / "claims.log").read_text().splitlines()]
        assert len(executions(runs_dir)) >= 1
        assert all(e["previous"]["pid"] != e["pid"] for e in log if e["event"] == "recovered")
        assert not (runs_dir / "claim").exists()
        assert not list(runs_dir.glob(".*.tmp")) and not list(runs_dir.glob("checkpoint*"))
        if any(p[1] not in (0, "record") for p in r["kills"]):
            assert rec.timings.resumed is True
    loaded = load_runs(tmp_path / "crash")
    assert loaded.problems == [] and len(loaded.runs) == len(report)


# --- half-written files, by hand --------------------------------------------------------------------------------
def _spec(seed: int = 0) -> RunSpec:
    return RunSpec("rsps", seed, "quick", tuple(sorted({**TINY, "epochs": "3"}.items())))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    results = tmp_path_factory.mktemp("ref")
    run_one(_spec(), RunOptions(results=results))
    return results


def _partial(results: Path, epochs: int) -> Run:
    """A run stopped after ``epochs`` epochs' checkpoints, as if killed there."""
    run = Run(_spec(), RunOptions(results=results))
    run.store.ensure_writable()
    for epoch in range(epochs):
        line = run.run_epoch(epoch)
        run.epochs_done.append(line)
        run.elapsed += line.wall_s
        run.store.write_metrics(run.run_id, run.epochs_done)
        run.save_checkpoint()
    return run


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_checkpoint_is_set_aside_and_the_run_restarts(tmp_path, reference, keep):
    run = _partial(tmp_path, 2)
    ck = run.store.checkpoint_path(run.run_id)
    data = ck.read_bytes()
    ck.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    rec = run_one(_spec(), RunOptions(results=tmp_path))
    assert rec.timings.resumed is False  # from scratch: the truncated state was never loaded
    assert len(list(ck.parent.glob("checkpoint.corrupt-*.pt"))) == 1
    assert _comparable(tmp_path, run.run_id) == _comparable(reference, run.run_id)


def test_a_good_checkpoint_resumes_exactly(tmp_path, reference):
    run = _partial(tmp_path, 2)
    rec = run_one(_spec(), RunOptions(results=tmp_path))
    assert rec.timings.resumed is True
    assert _comparable(tmp_path, run.run_id) == _comparable(reference, run.run_id)


def test_truncated_record_is_not_done_is_reported_and_is_rerun(tmp_path, reference):
    rid = _spec().run_id
    store = Store(tmp_path)
    store.ensure_writable()
    good = reference / "runs" / rid
    (tmp_path / "runs" / rid).mkdir(parents=True)
    for name in ("record.json", "metrics.jsonl"):
        (tmp_path / "runs" / rid / name).write_bytes((good / name).read_bytes())
    rec_path = store.record_path(rid)
    rec_path.write_bytes(rec_path.read_bytes()[:200])
    assert not store.is_done(rid)
    loaded = load_runs(tmp_path)
    assert len(loaded.runs) == 0 and len(loaded.problems) == 1 and "unreadable" in loaded.problems[0]
    rec = run_one(_spec(), RunOptions(results=tmp_path))  # not skipped: a half record is not a finished run
    assert rec.timings.resumed is False and store.is_done(rid)
    assert len(list(rec_path.parent.glob("record.corrupt-*.json"))) == 1  # the half file is kept aside
    assert _comparable(tmp_path, rid) == _comparable(reference, rid)
    assert load_runs(tmp_path).problems == []


def test_claim_left_on_a_finished_run_is_released_on_the_next_visit(tmp_path):
    """Killed after writing the record, before releasing the claim: the finished run keeps a dead process's claim
    until the next `run` visits it, which takes it over and releases it without rerunning anything."""
    from nasbench_suite.claims import CLAIM_FILE, acquire
    from nasbench_suite.config import RunSpec
    from nasbench_suite.ownership import run_one
    from nasbench_suite.runner import RunOptions

    spec = RunSpec("rsps", 0, "quick", tuple(sorted(TINY.items())))
    opts = RunOptions(results=tmp_path)
    first = run_one(spec, opts)
    run_dir = Store(tmp_path).run_dir(spec.run_id)
    claim = acquire(run_dir)  # this process's claim, in the claim format ...
    dead = {**claim.info, "pid": 2**22 + 12345, "proc_start": None, "token": "dead-process"}
    (run_dir / CLAIM_FILE).write_text(json.dumps(dead))  # ... now a dead process's (pids stop below 2**22)
    record_bytes = Store(tmp_path).record_path(spec.run_id).read_bytes()
    again = run_one(spec, opts)
    assert again.final == first.final
    assert not (run_dir / CLAIM_FILE).exists()
    assert Store(tmp_path).record_path(spec.run_id).read_bytes() == record_bytes
