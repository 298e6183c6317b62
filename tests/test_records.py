"""The one record schema (nasbench_suite/records.py): every stored record loads and writes back unchanged, old
ones included; method-specific values are kept; a mistyped value is a StoreError naming the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.errors import StoreError
from nasbench_suite.records import SCHEMA_VERSION, EpochMetrics, RunRecord
from nasbench_suite.store import Store, json_default, plain, read_metrics, read_record

from .records import make_epoch, make_record

REPO = Path(__file__).resolve().parents[1]
#: a record and metrics file written by the first schema-1 code (commit 9fdbd87: no config_hash, no data split, no
#: benchmark datasets/metrics, no ranking or distribution keys), run id rsps--default--quick--s0--13907434
OLD = Path(__file__).parent / "data" / "schema1-9fdbd87"
STORED = [OLD, REPO / "results" / "example"]


def _stored_runs() -> list:
    return [
        pytest.param(run_dir, id=f"{root.name}/{run_dir.name}")
        for root in STORED
        for run_dir in sorted((root / "runs").iterdir())
    ]


@pytest.mark.parametrize("run_dir", _stored_runs())
def test_every_stored_record_and_line_round_trips_exactly(run_dir: Path):
    """Old (9fdbd87) and current records: from_json then to_json gives back the stored JSON, key for key; the
    store writes the same bytes the runner wrote."""
    raw = json.loads((run_dir / "record.json").read_text())
    rec = read_record(run_dir / "record.json")
    assert rec.to_json() == raw
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e.to_json() for e in read_metrics(run_dir / "metrics.jsonl")] == lines


def test_rewriting_a_stored_run_gives_the_same_bytes(tmp_path: Path):
    src = REPO / "results" / "example" / "runs" / "e2nas--default--quick--s0"
    store = Store(tmp_path)
    rec = read_record(src / "record.json")
    store.write_record(rec)
    store.write_metrics(rec.run_id, read_metrics(src / "metrics.jsonl"))
    assert store.record_path(rec.run_id).read_bytes() == (src / "record.json").read_bytes()
    assert store.metrics_path(rec.run_id).read_bytes() == (src / "metrics.jsonl").read_bytes()


def test_the_old_record_loads_into_the_frames_with_what_it_has(tmp_path: Path):
    rec = read_record(next((OLD / "runs").iterdir()) / "record.json")
    assert rec.schema_version == 1 and rec.config_hash is None and rec.data.split is None
    assert rec.benchmark.datasets is None and rec.final.bench == {} and rec.final.valid_loss is None
    assert rec.variant_name == "RSPS" and rec.epochs == 2 and rec.overrides == {"epochs": "2", "steps_per_epoch": "2"}
    loaded = load_runs(OLD)
    assert loaded.problems == [] and len(loaded.runs) == 1 and len(loaded.epochs) == 2
    row = loaded.runs.iloc[0]
    assert row["variant"] == "RSPS" and row["epochs"] == 2 and row["arch"] == rec.final.arch
    assert row["total_s"] == rec.timings.total_s and row[["cifar10_test", "cifar100_valid"]].isna().all()
    assert loaded.epochs["train_acc"].tolist() == [13.28125, 10.15625] and loaded.epochs["valid_loss"].isna().all()
    assert "arch_entropy" not in loaded.epochs  # (never recorded then)


def test_method_scalars_and_unknown_keys_are_kept():
    line = EpochMetrics.from_json({"epoch": 3, "arch": None, "bench": {}, "tau": 4.2, "novelty": [1, 2], "wall_s": 1})
    assert line.scalars == {"tau": 4.2, "novelty": [1, 2]} and line.wall_s == 1
    assert line.columns() == {"epoch": 3, "arch": None, "tau": 4.2, "wall_s": 1}  # scalars only, for the frames
    line.update({"gamma": 0.5, "train_loss": 2.0})
    assert line.train_loss == 2.0 and line.scalars["gamma"] == 0.5
    rec = make_record("r", "gdas", "GDAS", 0, [make_epoch(0, "|x|")]).to_json()
    rec["added_later"] = {"a": 1}
    rec["environment"]["gpu_driver"] = "560"
    back = RunRecord.from_json(rec)
    assert back.extra == {"added_later": {"a": 1}} and back.environment.extra == {"gpu_driver": "560"}
    assert back.to_json() == rec


@pytest.mark.parametrize(
    "path,value,named",
    [
        (("seed",), "zero", "record.seed is 'zero', not an integer"),
        (("seed",), True, "record.seed is True, not an integer"),
        (("final",), "a string", "record.final is 'a string', not a mapping"),
        (("final", "bench", "cifar10", "test"), "93", "record.final.bench.cifar10.test is '93', not a number"),
        (("timings", "total_s"), [1], "record.timings.total_s is [1], not a number"),
        (("config", "protocol", "epochs"), 2.5, "record.config.protocol.epochs is 2.5, not an integer"),
        (("benchmark", "name"), 7, "record.benchmark.name is 7, not a string"),
    ],
)
def test_a_mistyped_value_is_a_store_error_naming_the_key(tmp_path: Path, path, value, named):
    src = next((OLD / "runs").iterdir())
    raw = json.loads((src / "record.json").read_text())
    target = raw
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    dest = tmp_path / "runs" / "bad" / "record.json"
    dest.parent.mkdir(parents=True)
    dest.write_text(json.dumps(raw))
    with pytest.raises(StoreError) as err:
        read_record(dest)
    assert str(err.value) == f"run record {dest} is malformed ({named})"
    assert not Store(tmp_path).is_done("bad")


def test_a_malformed_metrics_line_names_its_line(tmp_path: Path):
    shutil.copytree(OLD, tmp_path / "r")
    (run_dir,) = (tmp_path / "r" / "runs").iterdir()
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": "two", "arch": null, "bench": {}}\n')
    with pytest.raises(StoreError, match=r"metrics.jsonl:3 is malformed \(epoch line.epoch is 'two', not an integer\)"):
        read_metrics(run_dir / "metrics.jsonl")
    loaded = load_runs(tmp_path / "r")  # the run keeps its row; only its curves are left out, and said so
    assert len(loaded.runs) == 1 and loaded.epochs.empty and "metrics.jsonl:3 is malformed" in loaded.problems[0]


def test_a_newer_schema_is_refused(tmp_path: Path):
    raw = make_record("r", "rsps", "RSPS", 0, [make_epoch(0, "|x|")]).to_json()
    raw["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "record.json").write_text(json.dumps(raw))
    with pytest.raises(StoreError, match="newer than this tool's"):
        read_record(tmp_path / "record.json")


def test_the_one_json_encoder():
    np = pytest.importorskip("numpy")
    data = {"a": np.float32(0.5), "b": (1, 2), "c": Path("/x"), "d": float("nan"), "e": [np.int64(3), {4}]}
    assert plain(data) == {"a": 0.5, "b": [1, 2], "c": "/x", "d": None, "e": [3, [4]]}
    assert json.loads(json.dumps({k: v for k, v in data.items() if k != "d"}, default=json_default)) == {
        "a": 0.5,
        "b": [1, 2],
        "c": "/x",
        "e": [3, [4]],
    }
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        json.dumps(object(), default=json_default)
