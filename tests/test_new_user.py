"""What a new user meets first (issue 18 items 5-8): a dataset too small for the protocol fails before any run,
a method-specific --set goes to the methods that have it, `nas-suite methods` lists every setting and grid,
`e2nas train-vae` never overwrites the committed weights by default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nasbench_suite.errors import ConfigError
from nasbench_suite.plan import build_plan

from .test_data import write_cifar10

pytestmark = pytest.mark.timeout(600)  # subprocesses: a hung one fails the test instead of the CI run

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nasbench_suite.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_too_small_cifar10_fails_before_any_run_with_sizes(tmp_path: Path):
    write_cifar10(tmp_path / "data" / "cifar-10-batches-py", per_batch=10, n_test=10)
    results = tmp_path / "results"
    args = (
        "run",
        "--methods",
        "rsps",
        "--protocol",
        "nb201",
        "--data-root",
        str(tmp_path / "data"),
        "--results",
        str(results),
        "--set",
        "epochs=1",
    )
    proc = cli(*args)  # the official split needs the complete CIFAR-10
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "official cifar10 split covers 50000 training images, the dataset has 50" in line and "split=seeded" in line
    proc = cli(*args, "--set", "split=seeded")  # a partial folder on seeded halves: too small for the batches
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: batch_size=64 is out of range") and "25 + 25 images" in line and "<= 25" in line
    assert "the standard cifar10 has 50,000 training" in line  # what the standard dataset has
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())


def test_small_cifar10_is_accepted_with_a_warning(tmp_path: Path):
    write_cifar10(tmp_path / "data" / "cifar-10-batches-py", per_batch=100, n_test=100)
    proc = cli(
        "run",
        "--methods",
        "darts",
        "--protocol",
        "nb201",
        "--data-root",
        str(tmp_path / "data"),
        "--results",
        str(tmp_path / "results"),
        "--set",
        "epochs=1",
        "--set",
        "steps_per_epoch=1",
        "--set",
        "split=seeded",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    warning = next(line for line in proc.stderr.splitlines() if line.startswith("warning: cifar10"))
    assert "500 training and 100 test images" in warning and "50,000" in warning


def test_method_specific_set_goes_to_the_methods_that_have_it():
    plan = build_plan(["e2nas", "darts-v1"], [0], "quick", None, {"eps": "0.25", "epochs": "2"})
    by = {s.method: dict(s.overrides) for s in plan}
    assert by == {"e2nas": {"eps": "0.25", "epochs": "2"}, "darts-v1": {"epochs": "2"}}
    from nasbench_suite.config import resolve
    from nasbench_suite.method import get_method

    for methods, key in ((["darts-v1", "gdas"], "eps"), (["e2nas", "gdas"], "nonsense")):
        (spec, *_) = build_plan(methods, [0], "quick", None, {key: "1"})
        assert dict(spec.overrides) == {key: "1"}  # a key no selected method has stays, so resolving refuses it
        cls = get_method(spec.method)
        with pytest.raises(ConfigError, match=f"unknown setting '{key}' for {spec.method} \\(from --set\\)"):
            resolve(spec, cls.Hparams, cls.name)


def test_methods_lists_settings_defaults_and_grids():
    proc = cli("methods", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["protocol_settings"]["epochs"] == {
        "type": "int",
        "default": 8,
        "valid": ">= 1 and <= 100000",
        "source": "preset quick",
    }
    assert data["protocol_settings"]["lr_tmax"]["type"] == "int | None"
    e2nas = next(m for m in data["methods"] if m["name"] == "e2nas")
    assert e2nas["hparams"]["eps"]["default"] == 0.5 and e2nas["hparams"]["eps"]["type"] == "float"
    assert len(e2nas["grids"]["gamma"]) == 8
    rsps = next(m for m in data["methods"] if m["name"] == "rsps")
    assert rsps["protocol_overrides"]["derive_every"]["default"] == 4  # quick preset's per-method value
    text = cli("methods").stdout
    assert "--grid gamma: gamma=static:0;" in text and "derive_every" in text and "(float, float)" in text
    assert ">= 0 and <= 1000000" in text  # derive_every's range


def test_train_vae_refuses_the_committed_weights_without_force(tmp_path: Path):
    from nasbench_suite_methods.e2nas.vae import DEFAULT_WEIGHTS

    before = DEFAULT_WEIGHTS.read_bytes()
    proc = cli("e2nas", "train-vae", "--out", str(DEFAULT_WEIGHTS), "--epochs", "1")
    assert proc.returncode == 2 and "--force" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert DEFAULT_WEIGHTS.read_bytes() == before
    help_text = cli("e2nas", "train-vae", "--help").stdout
    assert "graph_vae-seed<SEED>.pt" in help_text
