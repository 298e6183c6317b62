"""Every user error of docs/errors.md: one line on stderr (no traceback), exit code 2, stored runs untouched.

Commands run through :func:`nasbench_suite.cli.main` (the console entry point: argv in, exit code out) in this
process; a few also as real ``nas-suite`` processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasbench_suite.cli import main
from nasbench_suite.config import RunSpec
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import RunOptions

pytestmark = pytest.mark.timeout(600)  # subprocesses: a hung one fails the test instead of the CI run

GOOD_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = {
    "epochs": "2",
    "steps_per_epoch": "1",
    "C": "4",
    "batch_size": "16",
    "select_batch_size": "16",
    "select_candidates": "2",
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A results folder holding one finished run, and bad inputs of every kind beside it."""
    root = tmp_path_factory.mktemp("errs")
    results = root / "results"
    run_one(RunSpec("rsps", 0, "quick", tuple(sorted(TINY.items()))), RunOptions(results=results))
    (root / "emptydata").mkdir()
    (root / "notbench.pth").write_text("hello")
    torch.save({"a": 1}, root / "wrongbench.pth")
    (root / "trunc.pth").write_bytes((root / "wrongbench.pth").read_bytes()[:40])
    (root / "afile").write_text("x")
    corrupt = root / "corrupt" / "runs" / "x"
    corrupt.mkdir(parents=True)
    (corrupt / "record.json").write_text('{"schema_version": 1, "run_id": "x", "fin')
    return root


def _snapshot(results: Path) -> dict[str, str]:
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file()
    }


def invoke(args: list[str], monkeypatch) -> tuple[int, str, str]:
    """Run ``nas-suite ARGS`` through the entry point; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["nas-suite", *args])
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


# (arguments, a piece of the expected message); {root} is the fixture folder, {results} its stored results
CASES = [
    (["run", "--methods", "nope"], "error: unknown method 'nope'; known methods: "),
    (["run", "--methods", ","], "error: --methods needs at least one method name"),
    (["run", "--protocol", "nope"], "error: unknown protocol preset 'nope'; choose one of: nats, nb201, quick"),
    (["run", "--seeds", "0"], "error: --seeds must be at least 1, got 0"),
    (["run", "--seed-start", "-1"], "error: --seed-start must be >= 0, got -1"),
    (["run", "--workers", "0"], "error: --workers must be at least 1, got 0"),
    (["run", "--set", "foo=1"], "error: unknown setting 'foo' for rsps (from --set); valid keys: C, N, affine"),
    (["run", "--set", "epochs"], "error: --set expects key=value, got 'epochs'"),
    (["run", "--set", "epochs=abc"], "error: epochs needs an integer, got 'abc'"),
    (["run", "--set", "lr=fast"], "error: lr needs a number, got 'fast'"),
    (["run", "--set", "nesterov=maybe"], "error: nesterov needs true/false, got 'maybe'"),
    (["run", "--set", "arch_betas=1"], "error: arch_betas needs 2 comma-separated values, got '1'"),
    (["run", "--set", "epochs=0"], "error: epochs=0 is out of range: it must be >= 1 and <= 100000 (from --set)"),
    (["run", "--grid", "nope"], "error: method rsps has no grid 'nope' (its grids: none)"),
    (
        ["run", "--seeds", "2", "--vectorize", "on", "--set", "compile=default"],
        "error: --vectorize on: rsps cannot run its seeds as one search (compile is set",
    ),
    # every key's declared range (config.setting), checked for the whole plan before anything runs
    (["run", "--set", "lr=-1"], "error: lr=-1.0 is out of range: it must be > 0 and <= 100 (from --set)"),
    (["run", "--set", "lr=1e-400"], "error: lr=0.0 is out of range: it must be > 0"),
    (["run", "--set", "N=-1"], "error: N=-1 is out of range: it must be >= 1 and <= 100 (from --set)"),
    (["run", "--set", "C=0"], "error: C=0 is out of range: it must be >= 1"),
    (["run", "--set", "momentum=1"], "error: momentum=1.0 is out of range: it must be >= 0 and < 1"),
    (["run", "--set", "weight_decay=-0.1"], "error: weight_decay=-0.1 is out of range: it must be >= 0 and < 1"),
    (["run", "--set", "grad_clip=-1"], "error: grad_clip=-1.0 is out of range: it must be >= 0"),
    (["run", "--set", "arch_betas=0.5,1.5"], "error: arch_betas=(0.5, 1.5) is out of range: it must be >= 0 and < 1"),
    (["run", "--set", "lr_min=1"], "error: lr_min=1.0 is out of range: it must be <= lr=0.025 (from --set)"),
    (["run", "--set", "lr_tmax=0"], "error: lr_tmax=0 is out of range: it must be >= 1"),
    (["run", "--set", "steps_per_epoch=0"], "error: steps_per_epoch=0 is out of range: it must be >= 1"),
    (["run", "--set", "select_candidates=0"], "error: select_candidates=0 is out of range: it must be >= 1"),
    (["run", "--set", "select_batch_size=0"], "error: select_batch_size=0 is out of range: it must be >= 1"),
    (
        ["run", "--set", "split_seed=4294967296"],
        "error: split_seed=4294967296 is out of range: it must be >= 0 and <= 2147483647",
    ),
    (["run", "--set", "amp=fp16"], "error: amp='fp16' is out of range: it must be one of 'off', 'bf16'"),
    (["run", "--set", "compile=fast"], "error: compile='fast' is out of range: it must be one of 'off', 'default'"),
    (["run", "--set", "batch_size=5000"], "error: batch_size=5000 is out of range: the search split of digits has "),
    (["run", "--methods", "e2nas", "--set", "eps=2"], "error: eps=2.0 is out of range: it must be >= 0 and <= 1"),
    (
        ["run", "--methods", "e2nas", "--set", "gamma=sig:-1"],
        "error: gamma='sig:-1' is out of range: it must be 'static:g' with 0 <= g <= 1, or 'sig:s' with s > 0",
    ),
    (
        ["run", "--methods", "setn", "--set", "weight_sampling=all"],
        "error: weight_sampling='all' is out of range: it must be one of 'dynamic', 'urs'",
    ),
    (["run", "--methods", "gdas", "--set", "tau_min=0"], "error: tau_min=0.0 is out of range: it must be > 0"),
    (["run", "--methods", "enas", "--set", "lstm_layers=0"], "error: lstm_layers=0 is out of range: it must be >= 1"),
    (["run", "--methods", "darts-v2", "--set", "unrolled_r=0"], "error: unrolled_r=0.0 is out of range"),
    (["run", "--seeds", "5000000"], "error: --seeds 5000000 is more than any study needs (at most 100000)"),
    (
        ["run", "--seed-start", "2147483647", "--seeds", "2"],
        "error: --seed-start 2147483647 with --seeds 2 goes past the largest seed, 2147483647",
    ),
    (["run", "--seeds", "501"], "error: the plan has 1002 runs (2 method(s) x 501 seed(s)); add --yes to run them all"),
    (["run", "--device", "tpu9"], "error: --device 'tpu9' is not a device (use cpu, cuda or cuda:N)"),
    (
        ["run", "--data-root", "{root}/emptydata"],
        "error: --data-root {root}/emptydata would be ignored: the plan's dataset is the embedded 'digits'",
    ),
    (["run", "--results", ""], "error: --results needs a folder, got an empty string"),
    (["report", "--results", ""], "error: --results needs a folder, got an empty string"),
    (["run", "--dataset", "mnist"], "error: unknown dataset 'mnist': expected one of digits, cifar10"),
    (["run", "--data-root", "{root}/nonexistent"], "error: data root {root}/nonexistent does not exist"),
    (["run", "--dataset", "cifar10"], "error: dataset 'cifar10' needs a data root (--data-root) holding cifar-10"),
    (
        ["run", "--data-root", "{root}/emptydata", "--dataset", "cifar10"],
        "error: missing file {root}/emptydata/data_batch_1: expected a CIFAR-10 batch",
    ),
    (["run", "--benchmark", "{root}/nonexistent.pth"], "error: benchmark path {root}/nonexistent.pth does not exist"),
    (["run", "--benchmark", "{root}/notbench.pth"], "error: {root}/notbench.pth is not a PyTorch .pth file"),
    (
        ["run", "--benchmark", "{root}/trunc.pth"],
        "error: cannot load {root}/trunc.pth as a NAS-Bench-201 .pth file (truncated or corrupt?)",
    ),
    (
        ["run", "--benchmark", "{root}/wrongbench.pth"],
        "error: {root}/wrongbench.pth is a .pth file but not a NAS-Bench-201 benchmark",
    ),
    (
        ["run", "--results", "{root}/afile/sub"],
        "error: results folder {root}/afile/sub is not writable (Not a directory)",
    ),
    (["run", "--executor", "slurm"], "error: --executor slurm needs Slurm's sbatch and srun on PATH"),
    (["run", "--executor", "submitit-local", "--time-limit", "0"], "error: --time-limit must be at least 1 minute"),
    (["query", "nope"], "error: not an NB201 arch string (expected 3 '+'-separated nodes"),
    (["query", GOOD_ARCH.rsplit("|", 2)[0] + "|"], "error: node 3 needs 3 input edge(s), got 2"),
    (["query", GOOD_ARCH.replace("nor_conv_3x3~0", "conv~0", 1)], "error: unknown op 'conv' in"),
    (["query", GOOD_ARCH.replace("~2|", "~1|")], "error: node 3's edge 2 must read from node 2, got ~1"),
    (["query", GOOD_ARCH, "--benchmark", "{root}/trunc.pth"], "error: cannot load {root}/trunc.pth"),
    (
        ["report", "--results", "{root}/corrupt"],
        "error: no finished runs under {root}/corrupt; run `nas-suite run` "
        "first (1 unreadable: run record {root}/corrupt/runs/x/record.json is unreadable",
    ),
    (["report", "--results", "{root}/emptydata"], "error: no finished runs under {root}/emptydata"),
    (["report", "--results", "{results}", "--benchmark", "{root}/notbench.pth"], "is not a PyTorch .pth file"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_user_error_is_one_line_exit_2_and_stored_runs_intact(stored, monkeypatch, args, message):
    results = stored / "results"
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no sbatch
    before = _snapshot(results)
    fill = dict(root=stored, results=results)
    args = [a.format(**fill) for a in args]
    if args[0] == "run" and "--results" not in args:
        args += ["--results", str(results)]  # every bad run command points at the stored runs
    code, out, err = invoke(args, monkeypatch)
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message.format(**fill) in err, err
    assert _snapshot(results) == before


def test_click_usage_errors_exit_2_without_traceback(stored, monkeypatch):
    code, _, err = invoke(["run", "--seeds", "two", "--results", str(stored / "results")], monkeypatch)
    assert code == 2 and err.strip() == "error: Invalid value for '--seeds': 'two' is not a valid integer."
    assert "Traceback" not in err


def test_corrupt_record_beside_good_ones_is_a_warning_in_the_report(stored, monkeypatch):
    results = stored / "results"
    before = _snapshot(results)
    mixed = stored / "mixed"
    import shutil

    shutil.copytree(results, mixed)
    shutil.copytree(stored / "corrupt" / "runs" / "x", mixed / "runs" / "x")
    code, out, err = invoke(["report", "--results", str(mixed), "--no-published"], monkeypatch)
    assert code == 0 and "1 problem(s)" in out and "record.json is unreadable" in out
    assert _snapshot(results) == before


@pytest.mark.slow
@pytest.mark.parametrize("args", [["run", "--methods", "nope"], ["query", "|bad~0|"]])
def test_real_process_one_line_exit_2(stored, args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nasbench_suite.cli",
            *args,
            *(["--results", str(stored / "results")] if args[0] == "run" else []),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
