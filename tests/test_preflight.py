"""The checks before a plan runs (nasbench_suite.preflight), shared by ``nas-suite run`` and ``nasbench_suite.run``,
and the benchmark opened once per process and handed to every run (never reopened per run)."""

from __future__ import annotations

from pathlib import Path

import pytest

import nasbench_suite as ns
from nasbench_suite import executors, preflight, runner
from nasbench_suite.benchmarks import open_benchmark
from nasbench_suite.config import RunSpec
from nasbench_suite.errors import BenchmarkError, ConfigError
from nasbench_suite.runner import RunOptions
from tests.test_cli_errors import TINY, invoke

SETS = [f"{k}={v}" for k, v in TINY.items()]


@pytest.fixture
def opens(monkeypatch):
    """Counts the benchmark openings of the preflight and the executors; a run opening its own fails the test."""
    count = {"n": 0}

    def counted(path):
        count["n"] += 1
        return open_benchmark(path)

    def refused(path):
        raise AssertionError("a run opened its own benchmark")

    monkeypatch.setattr(preflight, "open_benchmark", counted)
    monkeypatch.setattr(executors, "open_benchmark", counted)
    monkeypatch.setattr(runner, "open_benchmark", refused)
    return count


def test_cli_run_opens_the_benchmark_once(tmp_path, monkeypatch, opens):
    args = ["run", "--methods", "rsps", "--seeds", "2", "--results", str(tmp_path), "--device", "cpu"]
    code, out, err = invoke([*args, *(a for s in SETS for a in ("--set", s))], monkeypatch)
    assert code == 0, err
    assert opens["n"] == 1 and "finished: 2 run" in err


def test_api_run_checks_first_and_opens_the_benchmark_once(tmp_path, opens):
    with pytest.raises(ConfigError, match="lr=-1"):  # refused before anything is stored
        ns.run("rsps", 2, sets=[*SETS, "lr=-1"], results=tmp_path, device="cpu")
    assert not (tmp_path / "runs").exists()
    outcomes = ns.run("rsps,random", 2, sets=SETS, results=tmp_path, device="cpu")  # (random: RSPS's alias)
    assert [o.status for o in outcomes] == ["done", "done"] and opens["n"] == 1
    again = ns.run(["rsps"], 2, sets=SETS, results=tmp_path, device="cpu")
    assert [o.status for o in again] == ["skipped", "skipped"]


def test_api_run_refuses_a_bad_benchmark_before_running(tmp_path):
    with pytest.raises(BenchmarkError):
        ns.run("rsps", 1, sets=SETS, results=tmp_path, benchmark=tmp_path / "nope.pth")
    assert not (tmp_path / "runs").exists()


def test_a_pool_worker_opens_the_benchmark_once(tmp_path, monkeypatch, opens):
    """The worker's task as the pool runs it (here in this process): the first run opens, the next reuses."""
    monkeypatch.setattr(executors, "_SLOT", {"slot": 0, "events": None})
    options = RunOptions(results=Path(tmp_path))
    for seed in (0, 1):
        out = executors._pool_task(RunSpec("rsps", seed, "quick", tuple(sorted(TINY.items()))), options)
        assert out.status == "done", out.error
    assert opens["n"] == 1


def test_a_pool_worker_reports_a_bad_benchmark_as_a_failed_run(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "_SLOT", {"slot": 0, "events": None})
    options = RunOptions(results=Path(tmp_path), benchmark=tmp_path / "nope.pth")
    out = executors._pool_task(RunSpec("rsps", 0, "quick", tuple(sorted(TINY.items()))), options)
    assert out.status == "failed" and "nope.pth" in out.error
