"""``derive_every``: the cell is derived every k epochs and after the last; skipping derivations never changes the
search; a long candidate selection reports progress (issue 18 item 3)."""

from __future__ import annotations

import pytest

from nasbench_suite import runner as runner_mod
from nasbench_suite.config import RunSpec
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import RunOptions
from nasbench_suite.store import Store, read_metrics

TINY = (("epochs", "3"), ("steps_per_epoch", "2"), ("select_candidates", "3"))


def _lines(root, spec):
    return [line.to_json() for line in read_metrics(Store(root).metrics_path(spec.run_id))]


@pytest.mark.parametrize("method", ["rsps", "darts-v1"])
def test_derive_every_skips_epochs_but_not_the_last_and_never_changes_the_search(tmp_path, method):
    every = RunSpec(method, 0, "quick", TINY + (("derive_every", "1"),))
    sparse = RunSpec(method, 0, "quick", TINY + (("derive_every", "2"),))
    last_only = RunSpec(method, 0, "quick", TINY + (("derive_every", "0"),))
    recs = {s: run_one(s, RunOptions(results=tmp_path / str(i))) for i, s in enumerate((every, sparse, last_only))}
    a, b, c = (_lines(tmp_path / str(i), s) for i, s in enumerate((every, sparse, last_only)))
    assert all(line["arch"] for line in a)
    assert [line["arch"] is not None for line in b] == [False, True, True]  # after epoch 2 (k=2) and the last
    assert [line["arch"] is not None for line in c] == [False, False, True]
    assert b[1]["arch"] == a[1]["arch"] and b[0]["bench"] == {}
    for x, y in zip(a, b):  # the search itself is the same: derivation is logging only
        assert x["train_loss"] == y["train_loss"]
    assert recs[every].final.arch == recs[sparse].final.arch == recs[last_only].final.arch


def test_candidate_scoring_reports_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "SELECT_PROGRESS_S", 0.0)
    events = []
    spec = RunSpec("rsps", 0, "quick", (("epochs", "1"), ("steps_per_epoch", "1"), ("select_candidates", "4")))
    run_one(spec, RunOptions(results=tmp_path), progress=events.append)
    scoring = [e for e in events if e.get("kind") == "select"]
    assert [e["candidate"] for e in scoring] == [1, 2, 3, 4] and all(e["candidates"] == 4 for e in scoring)
    assert [e["epoch"] for e in events if "line" in e] == [1]


def test_quick_preset_scored_methods_derive_sparsely():
    from nasbench_suite.config import resolve
    from nasbench_suite.method import get_method

    for name, k in (("rsps", 4), ("setn", 4), ("enas", 4), ("darts-v1", 1), ("gdas", 1)):
        cls = get_method(name)
        assert resolve(RunSpec(name, 0, "quick"), cls.Hparams, cls.name).protocol.derive_every == k, name
