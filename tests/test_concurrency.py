"""Several ``nas-suite run`` processes on one results folder execute each run exactly once (claims)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nasbench_suite import claims
from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.claims import ClaimHeld, acquire, executions
from nasbench_suite.cli import cli
from nasbench_suite.store import Store

pytestmark = pytest.mark.timeout(900)  # subprocesses: a hung one fails the test instead of the CI run

REPO = Path(__file__).resolve().parents[1]
TINY = ["epochs=3", "steps_per_epoch=2", "C=4", "batch_size=16", "select_batch_size=16", "select_candidates=4"]
SETS = [a for s in TINY for a in ("--set", s)]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_claim(run_dir: Path, mtime_age: float = 0.0, **fields) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "proc_start": None,
        "job": None,
        "token": "x",
        "claimed_at": time.time() - mtime_age,
        **fields,
    }
    (run_dir / claims.CLAIM_FILE).write_text(json.dumps(info))
    t = time.time() - mtime_age
    os.utime(run_dir / claims.CLAIM_FILE, (t, t))


def test_live_claim_is_held_and_released(tmp_path):
    c = acquire(tmp_path / "r")
    with pytest.raises(ClaimHeld, match=f"pid {os.getpid()}"):
        acquire(tmp_path / "r")
    c.release()
    acquire(tmp_path / "r").release()
    assert not (tmp_path / "r" / "claim").exists()


@pytest.mark.parametrize(
    "fields, age, stale",
    [
        ({"pid": "dead"}, 0, True),  # same host, pid gone
        ({"proc_start": "1"}, 0, True),  # same host, our pid now belongs to another process start
        ({"host": "elsewhere", "pid": 1}, 10, False),  # other host, fresh heartbeat
        ({"host": "elsewhere", "pid": 1}, 7200, True),  # other host, heartbeat older than the timeout
        ({"host": "elsewhere", "pid": 1, "job": "slurm:77"}, 10, True),  # our own job id: a requeue of this job
    ],
)
def test_stale_claims_are_recovered_live_ones_are_not(tmp_path, monkeypatch, fields, age, stale):
    if fields.get("pid") == "dead":
        fields = {**fields, "pid": _dead_pid()}
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    if "job" not in fields:
        monkeypatch.delenv("SLURM_JOB_ID")
    _write_claim(tmp_path / "r", age, **fields)
    if stale:
        c = acquire(tmp_path / "r", stale_after_s=3600)
        log = [json.loads(x) for x in (tmp_path / "r" / "claims.log").read_text().splitlines()]
        assert log[-1]["event"] == "recovered" and log[-1]["previous"]["pid"] == fields.get("pid", os.getpid())
        c.release()
    else:
        with pytest.raises(ClaimHeld):
            acquire(tmp_path / "r", stale_after_s=3600)


def test_unreadable_claim_is_judged_by_its_heartbeat(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / claims.CLAIM_FILE).write_text("{not json")
    with pytest.raises(ClaimHeld):
        acquire(d, stale_after_s=3600)
    old = time.time() - 7200
    os.utime(d / claims.CLAIM_FILE, (old, old))
    acquire(d, stale_after_s=3600).release()
    assert not (d / claims.CLAIM_FILE).exists()


@pytest.mark.slow
def test_cli_reports_a_run_another_process_holds_and_runs_the_rest(tmp_path):
    results = tmp_path / "res"
    args = ["run", "--methods", "rsps", "--seeds", "2", "--results", str(results), *SETS]
    store = Store(results)
    held_id = "rsps--default--quick--s0--" + _hash()
    claim = acquire(store.run_dir(held_id))
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"{held_id}: skipped, another process is running it" in res.stderr
    assert f"pid {os.getpid()} on {socket.gethostname()}" in res.stderr
    assert "1 run, 0 already stored, 1 run by another process, 0 failed" in res.stderr
    assert not store.is_done(held_id) and len(load_runs(results).runs) == 1
    claim.release()
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    outs = {o["run_id"]: o["status"] for o in json.loads(res.stdout[res.stdout.index("[") :])}
    assert outs[held_id] == "done" and store.is_done(held_id) and list(outs.values()).count("skipped") == 1


def _hash() -> str:
    from nasbench_suite.config import RunSpec

    return RunSpec("rsps", 0, "quick", tuple(sorted(s.split("=") for s in TINY))).run_id.rsplit("--", 1)[1]


@pytest.mark.slow
def test_three_processes_overlapping_plans_execute_each_run_once(tmp_path):
    results = tmp_path / "res"
    plans = [
        ["--methods", "rsps,darts", "--seeds", "3"],
        ["--methods", "darts,rsps", "--seeds", "3"],
        ["--methods", "rsps,darts", "--seeds", "2", "--seed-start", "1"],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nasbench_suite.cli",
                "run",
                *p,
                "--results",
                str(results),
                *SETS,
                "--json",
                "--quiet",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in plans
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out))
    store = Store(results)
    run_ids = {o["run_id"] for out in outs for o in out}
    assert len(run_ids) == 6
    for rid in run_ids:
        # exactly one process executed it (one 'executing' line in its claim log) and reported it done
        assert len(executions(store.run_dir(rid))) == 1, rid
        statuses = [o["status"] for out in outs for o in out if o["run_id"] == rid]
        assert statuses.count("done") == 1, (rid, statuses)
        assert set(statuses) <= {"done", "skipped", "claimed"}
        assert not (store.run_dir(rid) / "claim").exists()
    loaded = load_runs(results)  # nothing lost: every record and every epoch line is there and readable
    assert loaded.problems == [] and len(loaded.runs) == 6 and len(loaded.epochs) == 6 * 3
    print({i: [o["status"] for o in out] for i, out in enumerate(outs)})
