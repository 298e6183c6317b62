"""The embedded default: real NB201 test numbers on three datasets in the report; digits as package data;
records made with the previous embedded table still load and say what they are."""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from nasbench_suite.analysis import render_report
from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.benchmarks import open_benchmark
from nasbench_suite.config import RunSpec
from nasbench_suite.data import load_dataset
from nasbench_suite.data.sources import DIGITS_FILE
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import RunOptions
from nasbench_suite.store import Store, atomic_write_json, read_record

TINY = (("epochs", "2"), ("steps_per_epoch", "2"), ("select_candidates", "3"), ("C", "4"))


def test_default_report_has_three_test_columns_and_the_nb201_optimum(tmp_path):
    rec = run_one(RunSpec("rsps", 0, "quick", TINY), RunOptions(results=tmp_path))
    assert rec.benchmark.name == "embedded-nb201" and "NATS-tss-v1_0-3ffb9" in rec.benchmark.provenance
    assert rec.benchmark.fingerprint == open_benchmark(None).fingerprint()
    assert set(rec.final.bench) == {"cifar10", "cifar100", "ImageNet16-120"}
    text = render_report(tmp_path, benchmark=open_benchmark(None))  # as `nas-suite report` prints it
    assert "| Method | n | CIFAR-10 test | CIFAR-100 test | ImageNet16-120 test |" in text
    assert "| optimum (embedded-nb201) | – | 94.37 | 73.51 | 47.31 |" in text
    assert "| GDAS (published: nb201-paper-table5) | 3 | 93.61 ± 0.09 | 70.70 ± 0.30 | 41.71 ± 0.98 |" in text
    assert "no valid columns: benchmark embedded-nb201 has test accuracies only" in text
    assert "these runs searched digits under protocol quick, so the search data differs" in text


def test_records_of_the_old_embedded_table_load_and_are_labelled(tmp_path):
    spec = RunSpec("rsps", 0, "quick", TINY)
    rec = run_one(spec, RunOptions(results=tmp_path))
    old = {
        **rec.to_json(),
        "benchmark": {
            "name": "embedded-analognasbench",
            "fingerprint": "a2e61b83f6fab0f5",
            "path": "",
            "provenance": "AnalogNAS-Bench CIFAR-10 'baseline_accuracy' ... test only",
        },
        "final": {**rec.final.to_json(), "bench": {"cifar10": {"valid": None, "test": 91.5}}},
    }
    path = Store(tmp_path).record_path(spec.run_id)
    atomic_write_json(path, old)
    assert read_record(path).benchmark.name == "embedded-analognasbench"
    assert not load_runs(tmp_path).problems
    text = render_report(tmp_path, benchmark=open_benchmark(None), published=False)
    assert "the old embedded table: AnalogNAS-Bench CIFAR-10 numbers (own training recipe), NOT NAS-Bench-201" in text
    assert "| RSPS | 1 | **91.50 ± –** |" in text  # its one CIFAR-10 column, as stored
    assert "no optimum row" in text  # the new table is not the one these runs were looked up in


def test_digits_ship_as_package_data_without_scikit_learn():
    with np.load(DIGITS_FILE) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (1797, 8, 8) and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert DIGITS_FILE.with_name("digits.txt").read_text().count("BSD 3-Clause") == 1
    ds = load_dataset("digits")
    h = hashlib.sha256()
    for a in (ds.train_x, ds.train_y, ds.test_x, ds.test_y, np.array(ds.mean), np.array(ds.std)):
        h.update(np.ascontiguousarray(a).tobytes())
    # the dataset the scikit-learn loader built before (measured on scikit-learn 1.9.1): same pixels, split, stats
    assert h.hexdigest() == "a4f25c16e1e9bf5471a03064632ea87ae339557f22b26858e2bc1ebe6f4fd343"
    assert "sklearn" not in sys.modules
