"""The runner and the store: exact resume, no repeated runs, atomic records, problems reported."""

import json

import pytest

from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.claims import executions
from nasbench_suite.config import RunSpec
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.store import Store

TINY = (("epochs", "3"), ("steps_per_epoch", "3"), ("select_candidates", "5"), ("C", "4"))


def _epochs(record_dir):
    return [json.loads(line) for line in (record_dir / "metrics.jsonl").read_text().splitlines()]


def _comparable(lines):
    keys = ("epoch", "arch", "train_loss", "train_acc", "valid_loss", "valid_acc", "bench")
    return [{k: ln.get(k) for k in keys} for ln in lines]


@pytest.mark.parametrize("method", ["rsps", "darts-v1"])
@pytest.mark.parametrize("kill_after", [1, 2])
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, method, kill_after):
    spec = RunSpec(method, 3, "quick", TINY)
    straight = run_one(spec, RunOptions(results=tmp_path / "a"))
    opts = RunOptions(results=tmp_path / "b")
    assert Run(spec, opts).execute(stop_after=kill_after) is None  # "killed" after epoch k's checkpoint
    assert Store(tmp_path / "b").checkpoint_path(spec.run_id).exists()
    resumed = Run(spec, opts).execute()  # a fresh process: everything rebuilt, state from the checkpoint
    assert resumed.timings.resumed is True
    assert resumed.final.arch == straight.final.arch
    a = _epochs(Store(tmp_path / "a").run_dir(spec.run_id))
    b = _epochs(Store(tmp_path / "b").run_dir(spec.run_id))
    assert len(a) == len(b) == 3
    assert _comparable(a) == _comparable(b)  # exact: same floats, same cells
    assert not Store(tmp_path / "b").checkpoint_path(spec.run_id).exists()


def test_finished_run_is_not_repeated_unless_forced(tmp_path):
    spec = RunSpec("rsps", 0, "quick", TINY)
    opts = RunOptions(results=tmp_path)
    first = run_one(spec, opts)
    path = Store(tmp_path).record_path(spec.run_id)
    before = path.read_bytes()
    run_dir = Store(tmp_path).run_dir(spec.run_id)
    assert len(executions(run_dir)) == 1
    again = run_one(spec, opts)
    assert json.loads(json.dumps(first.to_json())) == again.to_json() and path.read_bytes() == before
    assert len(executions(run_dir)) == 1  # the stored record was returned: nothing executed
    forced = run_one(spec, RunOptions(results=tmp_path, force=True))
    assert len(executions(run_dir)) == 2  # --force executed the run again ...
    assert forced.timings.per_epoch_s != first.timings.per_epoch_s  # ... with fresh timings
    assert json.loads(path.read_text()) == json.loads(json.dumps(forced.to_json()))  # and stored its new record
    assert forced.final.arch == first.final.arch  # deterministic on CPU


def test_record_contents_and_tidy_frames(tmp_path):
    spec = RunSpec("darts", 1, "quick", TINY)
    rec = run_one(spec, RunOptions(results=tmp_path))
    assert rec.schema_version == 1 and rec.method == "darts-v1" and rec.variant == "DARTS-V1"
    assert rec.protocol_settings["epochs"] == 3 and rec.config["sources"]["epochs"] == "--set"
    assert rec.protocol_settings["lr"] == 0.025 and rec.config["sources"]["lr"] == "preset quick"
    assert rec.benchmark.name and rec.benchmark.fingerprint
    loaded = load_runs(tmp_path)
    assert loaded.problems == []
    assert list(loaded.runs["method"]) == ["darts-v1"]
    assert loaded.runs.loc[0, "cifar10_test"] == rec.final.bench["cifar10"]["test"]
    assert list(loaded.epochs["epoch"]) == [0, 1, 2]


def test_unreadable_record_is_reported_not_dropped(tmp_path):
    spec = RunSpec("rsps", 0, "quick", TINY)
    run_one(spec, RunOptions(results=tmp_path))
    bad = Store(tmp_path).run_dir("broken")
    bad.mkdir(parents=True)
    (bad / "record.json").write_text('{"schema_version": 1, "run_id": "bro')  # truncated write
    loaded = load_runs(tmp_path)
    assert len(loaded.runs) == 1
    assert len(loaded.problems) == 1 and "broken" in loaded.problems[0]
    assert not Store(tmp_path).is_done("broken")
