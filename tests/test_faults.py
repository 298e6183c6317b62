"""Faults: bad records and failed writes in the report path, a full disk in a run, a skipped run whose holder died,
SIGTERM/SIGINT. Each ends in one line and the right exit code, with nothing stored lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nasbench_suite import store as store_mod
from nasbench_suite.config import RunSpec
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import RunOptions
from nasbench_suite.store import Store, read_metrics, read_record
from tests.test_cli_errors import TINY, _snapshot, invoke

pytestmark = pytest.mark.timeout(600)  # subprocesses: a hung one fails the test instead of the CI run

REPO = Path(__file__).resolve().parents[1]
SETS = [a for k, v in sorted(TINY.items()) for a in ("--set", f"{k}={v}")]
SPEC = RunSpec("rsps", 0, "quick", tuple(sorted(TINY.items())))


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("faults") / "results"
    run_one(SPEC, RunOptions(results=results))
    return results


def _copy(results: Path, dest: Path) -> Path:
    shutil.copytree(results, dest)
    return dest


def _full_disk(monkeypatch, only: str = "") -> None:
    """Atomic writes (of files whose temp name contains ``only``) fail as on a full disk: ENOSPC at fsync, where a
    filesystem reports a delayed one."""
    real = os.fsync

    def fsync(fd):
        if only in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(store_mod.os, "fsync", fsync)


# -- item 3: the report path --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["schema_version", "metrics_line", "final_type", "seed_type"])
def test_a_bad_record_is_a_problem_and_the_report_goes_on(one_run, tmp_path, monkeypatch, bad):
    results = _copy(one_run, tmp_path / "r")
    good = results / "runs" / SPEC.run_id
    broken = results / "runs" / "broken"
    shutil.copytree(good, broken)
    rec = json.loads((broken / "record.json").read_text())
    rec["run_id"] = "broken"
    if bad == "schema_version":
        rec["schema_version"] = "one"
    elif bad == "final_type":
        rec["final"] = "a string"
    elif bad == "seed_type":
        rec["seed"] = "zero"
    (broken / "record.json").write_text(json.dumps(rec))
    if bad == "metrics_line":
        (broken / "metrics.jsonl").write_text((broken / "metrics.jsonl").read_text() + "[1, 2]\n")
    code, out, err = invoke(["report", "--results", str(results), "--no-published"], monkeypatch)
    assert code == 0 and err == "", err
    assert "1 problem(s)" in out, out
    # the bad record named; the good run still reported (a bad metrics line costs only that run's curves)
    assert str(broken) in out and f"· {2 if bad == 'metrics_line' else 1} runs ·" in out
    if bad == "metrics_line":
        assert "is not a JSON object" in out


def test_report_out_under_a_file_is_one_line(one_run, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    code, out, err = invoke(
        ["report", "--results", str(one_run), "--out", str(tmp_path / "afile" / "sub")], monkeypatch
    )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: cannot write the report into {tmp_path / 'afile' / 'sub'} (")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_report_out_read_only_is_one_line(one_run, tmp_path, monkeypatch):
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        code, out, err = invoke(["report", "--results", str(one_run), "--out", str(out_dir)], monkeypatch)
    finally:
        out_dir.chmod(0o755)
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err, err


def test_report_on_a_full_disk_keeps_the_old_report(one_run, tmp_path, monkeypatch):
    out_dir = tmp_path / "rep"
    out_dir.mkdir()
    (out_dir / "report.md").write_text("the previous report\n")
    before = _snapshot(one_run)
    _full_disk(monkeypatch)
    code, out, err = invoke(["report", "--results", str(one_run), "--out", str(out_dir)], monkeypatch)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot write {out_dir / 'report.md'} (No space left on device)" in err
    assert (out_dir / "report.md").read_text() == "the previous report\n"
    assert [p.name for p in out_dir.iterdir()] == ["report.md"]  # no temp file left behind
    assert _snapshot(one_run) == before


# -- item 4: faults in a run --------------------------------------------------------------------------------------
def test_a_full_disk_in_a_run_names_the_path(tmp_path, monkeypatch):
    _full_disk(monkeypatch, only=".checkpoint.pt.")  # the disk fills up during the run's first epoch
    results = tmp_path / "results"
    code, out, err = invoke(["run", "--methods", "rsps", "--results", str(results), *SETS], monkeypatch)
    assert code == 1, err
    failure = err.splitlines()[err.splitlines().index(next(x for x in err.splitlines() if "FAILED" in x)) + 1]
    assert "cannot write" in failure and str(results / "runs" / SPEC.run_id) in failure, err
    assert "No space left on device" in failure
    assert not (results / "runs" / SPEC.run_id / "claim").exists()  # the claim was released
    assert not list((results / "runs" / SPEC.run_id).glob(".*.tmp"))  # and the half-written file removed


def test_a_skipped_run_whose_holder_died_unfinished_is_reported(tmp_path, monkeypatch):
    import nasbench_suite.executors as executors

    results = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        from nasbench_suite.claims import CLAIM_FILE, _me, _proc_start

        run_dir = Store(results).run_dir(SPEC.run_id)
        run_dir.mkdir(parents=True)
        info = {**_me(), "pid": holder.pid, "proc_start": _proc_start(holder.pid)}
        (run_dir / CLAIM_FILE).write_text(json.dumps(info))
        other = RunSpec("rsps", 1, "quick", SPEC.overrides)
        real = executors.run_one

        def run_one_then(spec, options, progress=None, benchmark=None):
            if spec.run_id == other.run_id:  # the holder dies while this runner is busy with its next run
                holder.kill()
                holder.wait()
            return real(spec, options, progress, benchmark)

        monkeypatch.setattr(executors, "run_one", run_one_then)
        code, out, err = invoke(
            ["run", "--methods", "rsps", "--seeds", "2", "--results", str(results), *SETS], monkeypatch
        )
    finally:
        holder.kill()
        holder.wait()
    assert code == 1, err
    assert f"{SPEC.run_id}: skipped for pid {holder.pid}" in err and "ended without finishing it" in err, err
    assert "1 run by another process (1 left unfinished by it)" in err, err
    # while the holder lives, the same skip is not an error
    assert Store(results).is_done(other.run_id)


def _cli(results: Path, epochs: int) -> list[str]:
    sets = {**TINY, "epochs": str(epochs)}
    return [
        sys.executable,
        "-m",
        "nasbench_suite.cli",
        "run",
        "--methods",
        "rsps",
        "--results",
        str(results),
        "--quiet",
        *[a for k, v in sorted(sets.items()) for a in ("--set", f"{k}={v}")],
    ]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_is_one_line_releases_the_claim_and_resumes_exactly(tmp_path, sig, code):
    epochs = 12
    spec = RunSpec("rsps", 0, "quick", tuple(sorted({**TINY, "epochs": str(epochs)}.items())))
    results = tmp_path / "results"
    run_dir = results / "runs" / spec.run_id
    proc = subprocess.Popen(_cli(results, epochs), env=ENV, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)  # mid-run: after the first checkpoint, long before the last epoch
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and err.startswith(f"interrupted ({sig.name})"), err
    assert not (run_dir / "claim").exists() and (run_dir / "checkpoint.pt").exists()
    assert not (run_dir / "record.json").exists()
    done = subprocess.run(_cli(results, epochs), env=ENV, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ref = run_one(spec, RunOptions(results=tmp_path / "ref"))
    rec = read_record(run_dir / "record.json")
    assert rec.timings.resumed is True
    assert rec.final == ref.final
    strip = lambda rows: [  # noqa: E731
        {k: v for k, v in r.to_json().items() if k not in ("search_s", "wall_s", "rank_s")} for r in rows
    ]
    assert strip(read_metrics(run_dir / "metrics.jsonl")) == strip(
        read_metrics(tmp_path / "ref" / "runs" / spec.run_id / "metrics.jsonl")
    )


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    proc = subprocess.Popen(_cli(tmp_path / "results", 2), env=ENV, cwd=REPO, stderr=subprocess.PIPE, text=True)
    time.sleep(0.6)  # in the imports (torch takes seconds); the entry point itself loads in a few hundredths
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_checkpoint_that_no_longer_fits_the_code_is_set_aside_and_the_run_starts_afresh(tmp_path, caplog):
    import torch

    from nasbench_suite.runner import Run

    spec = RunSpec("darts-v1", 0, "quick", tuple(sorted({**TINY, "epochs": "3"}.items())))
    reference = run_one(spec, RunOptions(results=tmp_path / "ref"))
    options = RunOptions(results=tmp_path / "results")
    assert Run(spec, options).execute(stop_after=1) is None  # one epoch done, then "killed"
    ck = Store(options.results).checkpoint_path(spec.run_id)
    state = torch.load(ck, weights_only=True)
    # the supernet part still loads (its weights are then in place), the method part no longer fits
    state["method"] = {"renamed_in_a_new_version": state["method"]["alpha"]}
    torch.save(state, ck)
    caplog.clear()
    record = run_one(spec, options)
    err = caplog.text  # the runner warns through logging (logger nasbench_suite.runner)
    assert "ignoring unreadable checkpoint" in err and "KeyError" in err, err
    assert len(list(ck.parent.glob("checkpoint.corrupt-*.pt"))) == 1
    # started from exactly the state an uninterrupted run starts from, not from half-loaded weights
    assert record.timings.resumed is False
    assert record.final == reference.final
