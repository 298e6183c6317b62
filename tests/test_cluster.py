"""The submitit cluster path, without a cluster.

- submitit's LocalExecutor runs real jobs: one is sent the signal Slurm sends before a time limit (SIGUSR2, what
  submitit's own handler listens for) after its first epoch checkpoint; submitit calls ``RunJob.checkpoint``,
  requeues the job, and the requeued job resumes and ends with the record of an uninterrupted run.
- a fake ``sbatch`` on PATH records the submission script, so its Slurm directives can be checked.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nasbench_suite.cli import cli
from nasbench_suite.cluster import ClusterOptions, collect, run_cluster, submit
from nasbench_suite.config import RunSpec
from nasbench_suite.errors import ConfigError
from nasbench_suite.executors import summary
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import RunOptions
from nasbench_suite.store import Store, read_metrics, read_record

pytestmark = pytest.mark.timeout(600)  # subprocesses: a hung one fails the test instead of the CI run

TINY = {
    "epochs": "5",
    "steps_per_epoch": "3",
    "C": "4",
    "batch_size": "16",
    "select_batch_size": "16",
    "select_candidates": "4",
}


def _spec(method="darts-v1", seed=0) -> RunSpec:
    return RunSpec(method, seed, "quick", tuple(sorted(TINY.items())))


def _comparable(results: Path, run_id: str) -> dict:
    store = Store(results)
    epochs = [
        {k: v for k, v in e.to_json().items() if k not in ("search_s", "wall_s", "rank_s")}
        for e in read_metrics(store.metrics_path(run_id))
    ]
    return {"final": read_record(store.record_path(run_id)).final, "epochs": epochs}


@pytest.mark.slow
def test_local_job_checkpointed_requeued_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the job's threads = the reference's: same floats
    spec = _spec()
    ref = tmp_path / "ref"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_one(spec, RunOptions(results=ref))
    finally:
        torch.set_num_threads(threads)

    results = tmp_path / "res"
    copts = ClusterOptions("submitit-local", gpus_per_job=0, time_limit_min=30, poll_s=0.5, signal_delay_s=5)
    submitted = submit([spec], RunOptions(results=results), copts)
    ((_, job),) = submitted
    store = Store(results)
    ck, claim = store.checkpoint_path(spec.run_id), store.run_dir(spec.run_id) / "claim"
    deadline = time.time() + 300
    while not (ck.exists() and claim.exists()):  # first epoch checkpoint written, job still running
        assert time.time() < deadline and job.state == "RUNNING", job.stderr()
        time.sleep(0.02)
    pid = json.loads(claim.read_text())["pid"]  # the job's task process holds the claim
    os.kill(pid, signal.SIGUSR2)  # what Slurm sends signal_delay_s before the time limit
    outcomes = collect(submitted, poll_s=0.5)
    out = outcomes[0]
    assert out.status == "done", out.error
    assert out.requeues == 1
    assert summary(outcomes) == {"done": 1, "skipped": 0, "claimed": 0, "failed": 0, "requeued": 1}
    stdout = job.stdout()
    assert "checkpoint signal: requeueing" in stdout and "Requeued job" in stdout
    assert "Caught signal SIGUSR2" in job.stderr()
    rec = read_record(store.record_path(spec.run_id))
    assert rec.timings.resumed is True
    assert out.record.final == rec.final and out.record.timings == rec.timings  # (JSON turns tuples to lists)
    assert _comparable(results, spec.run_id) == _comparable(ref, spec.run_id)
    log = [json.loads(x) for x in (store.run_dir(spec.run_id) / "claims.log").read_text().splitlines()]
    assert [e["event"] for e in log] == ["executing", "released", "executing", "released"]


@pytest.mark.slow
def test_local_job_failure_is_collected_with_logs_and_traceback(tmp_path):
    # a run whose record folder cannot be made: the job fails inside the runner, after submission
    results = tmp_path / "res"
    results.mkdir()
    (results / "runs").write_text("not a folder")
    copts = ClusterOptions("submitit-local", gpus_per_job=0, time_limit_min=5, poll_s=0.5)
    outs = run_cluster([_spec("rsps")], RunOptions(results=results), copts)
    assert outs[0].status == "failed"
    assert "not writable" in outs[0].error and "logs:" in outs[0].error
    assert outs[0].log and outs[0].log.endswith("_log.err")
    assert summary(outs)["failed"] == 1


def test_slurm_submits_a_methods_seeds_as_one_job_when_vectorized(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "submitted.sh"
    (bindir / "sbatch").write_text(FAKE_SBATCH.format(record=record))
    (bindir / "srun").write_text("#!/bin/sh\n")
    for f in ("sbatch", "srun"):
        (bindir / f).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    plan = [_spec(m, s) for m in ("rsps", "darts-v1") for s in range(3)]
    copts = ClusterOptions("slurm", gpus_per_job=1, log_dir=tmp_path / "logs")
    submitted = submit(plan, RunOptions(results=tmp_path / "res", device="cuda", vectorize="auto"), copts)
    assert [[s.run_id for s in unit] for unit, _ in submitted] == [
        [s.run_id for s in plan[:3]],
        [s.run_id for s in plan[3:]],
    ]
    assert "#SBATCH --array=0-1" in record.read_text()


FAKE_SBATCH = """#!/bin/sh
cp "$1" "{record}"
echo "Submitted batch job 42"
"""


def test_slurm_submission_script(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    sbatch = bindir / "sbatch"
    record = tmp_path / "submitted.sh"
    sbatch.write_text(FAKE_SBATCH.format(record=record))
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    (bindir / "srun").write_text("#!/bin/sh\n")  # submitit only checks it exists
    (bindir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    plan = [_spec("rsps", s) for s in range(3)]
    copts = ClusterOptions(
        "slurm", partition="gpu-long", gpus_per_job=2, time_limit_min=90, array_parallelism=2, log_dir=tmp_path / "logs"
    )
    submitted = submit(plan, RunOptions(results=tmp_path / "res", device="cuda"), copts)
    assert [j.job_id for _, j in submitted] == ["42_0", "42_1", "42_2"]
    script = record.read_text()
    for directive in (
        "#SBATCH --partition=gpu-long",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --time=90",
        "#SBATCH --array=0-2%2",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --job-name=nas-suite",
    ):
        assert directive in script, script
    assert str(tmp_path / "logs") in script
    # each job's pickled callable is the checkpointable runner of its own unit (here one spec: not vectorized)
    sub = submitted[1][1].submission()
    assert sub.args == ([plan[1]],) and sub.function.options.device == "cuda"
    assert hasattr(sub.function, "checkpoint")


def test_slurm_needs_sbatch_and_sane_options(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ConfigError, match="needs Slurm's sbatch and srun"):
        ClusterOptions("slurm").check()
    for bad, msg in (
        (dict(time_limit_min=0), "--time-limit"),
        (dict(gpus_per_job=-1), "--gpus-per-job"),
        (dict(array_parallelism=0), "--array-parallelism"),
    ):
        with pytest.raises(ConfigError, match=msg):
            ClusterOptions("submitit-local", **bad).check()
    res = CliRunner().invoke(cli, ["run", "--executor", "slurm", "--results", str(tmp_path / "r")])
    assert isinstance(res.exception, ConfigError) and "sbatch" in str(res.exception)
    assert not (tmp_path / "r").exists()  # refused before anything was created
