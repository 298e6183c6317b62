"""Supernet ranking quality and search dynamics (issue 15 items 2 and 3): the measures, the fixed sample, the
per-method architecture distributions, and that recording them never changes the search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.benchmarks import open_benchmark
from nasbench_suite.config import RunSpec, resolve
from nasbench_suite.method import get_method, method_names
from nasbench_suite.ownership import run_one
from nasbench_suite.ranking import KNOWN_CELLS, distribution_entry, ranking_quality, ranking_sample
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.space import NUM_EDGES, NUM_OPS, as_cell
from nasbench_suite.store import Store, read_metrics

TINY = (("epochs", "2"), ("steps_per_epoch", "2"), ("select_candidates", "3"))


def test_ranking_quality_hand_computed():
    truth = [90.0, 80.0, 70.0, 60.0, 50.0]
    assert ranking_quality([5, 4, 3, 2, 1], truth, k=2) == pytest.approx(
        {"rank_kendall": 1.0, "rank_spearman": 1.0, "rank_top10": 1.0}
    )
    # one adjacent swap among 5: 9 concordant, 1 discordant pair -> tau = 8/10; d^2 = 2 -> rho = 1 - 6*2/(5*24)
    q = ranking_quality([4, 5, 3, 2, 1], truth, k=2)
    assert q["rank_kendall"] == pytest.approx(0.8) and q["rank_spearman"] == pytest.approx(0.9)
    q = ranking_quality([1, 2, 3, 4, 5], truth, k=2)
    assert q == {"rank_kendall": pytest.approx(-1.0), "rank_spearman": pytest.approx(-1.0), "rank_top10": 0.0}
    # a cell the benchmark does not hold is left out; constant scores have no correlation
    assert ranking_quality([5, 4, 3, 9], [3.0, 2.0, 1.0, None])["rank_kendall"] == pytest.approx(1.0)
    assert ranking_quality([1, 1, 1], [3.0, 2.0, 1.0])["rank_kendall"] is None
    assert ranking_quality([1, 2], [3.0, 2.0]) == {"rank_kendall": None, "rank_spearman": None, "rank_top10": None}


def test_ranking_sample_is_fixed_and_holds_the_optima():
    a, b = ranking_sample(30), ranking_sample(100)
    assert len(a) == 30 and len(set(c.ops for c in b)) == 100 and b[:30] == a  # one order for every size
    assert [c.arch_str for c in a[: len(KNOWN_CELLS)]] == list(KNOWN_CELLS)
    bench = open_benchmark(None)
    for i, ds in enumerate(("cifar10", "cifar100", "ImageNet16-120")):  # the first three: the NB201 test optima
        assert bench.query(a[i], ds).test == bench.optimum(ds).test


def _permuted_scores(truth: list[float], swaps: int) -> list[float]:
    """Scores ranking the cells as the benchmark does, except that the ``swaps`` best disjoint adjacent pairs
    (by truth) are exchanged: a known permutation of the benchmark order."""
    order = np.argsort(-np.asarray(truth), kind="stable")
    rank = np.empty(len(truth))
    rank[order] = np.arange(len(truth))  # 0 = best
    for j in range(swaps):
        a, b = order[2 * j], order[2 * j + 1]
        rank[a], rank[b] = rank[b], rank[a]
    return list(-rank)


@pytest.mark.parametrize("swaps", [0, 3])
def test_kendall_tau_of_a_synthetic_supernet_with_a_known_permutation(tmp_path, swaps):
    spec = RunSpec("rsps", 0, "quick", TINY + (("rank_cells", "30"),))
    run = Run(spec, RunOptions(results=tmp_path))
    truth = [run.benchmark.query(c, "cifar10").test for c in ranking_sample(30)]
    assert len(set(truth)) == 30  # distinct: the hand formulas below hold without ties
    seen = {}

    def synthetic(cells, batches):  # a supernet whose accuracies are a known permutation of the benchmark order
        seen["cells"] = cells
        return _permuted_scores(truth, swaps)

    run.method.score_cells = synthetic
    q = run._rank_quality(0)
    n, pairs = 30, 30 * 29 / 2
    assert seen["cells"] == ranking_sample(30) and q["rank_dataset"] == "cifar10"  # digits: scored against C10
    assert q["rank_kendall"] == pytest.approx(1 - 2 * swaps / pairs)  # each adjacent swap: one discordant pair
    assert q["rank_spearman"] == pytest.approx(1 - 6 * 2 * swaps / (n * (n * n - 1)))
    assert q["rank_top10"] == 1.0  # swaps among the best 6 stay inside the top 10


def _probs(run: Run) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(distribution_entry(run.method.arch_distribution())["arch_probs"])


@pytest.mark.parametrize("method", ["darts-v1", "darts-v2", "gdas", "setn", "enas", "rsps", "e2nas"])
def test_every_method_exposes_its_distribution_without_drawing(tmp_path, method):
    run = Run(RunSpec(method, 0, "quick", TINY), RunOptions(results=tmp_path))
    torch_state, np_state = torch.get_rng_state(), run.ctx.rng.bit_generator.state
    p = _probs(run)
    assert torch.equal(torch.get_rng_state(), torch_state) and run.ctx.rng.bit_generator.state == np_state
    assert p.shape == (NUM_EDGES, NUM_OPS) and np.allclose(p.sum(1), 1.0) and (p >= 0).all()
    if method in ("darts-v1", "darts-v2", "gdas", "setn"):
        assert np.allclose(p, torch.softmax(run.method.alpha.detach(), -1).numpy(), atol=1e-6)
    if method == "rsps":
        assert distribution_entry(run.method.arch_distribution())["arch_entropy"] == pytest.approx(math.log(5))
    if method == "e2nas":  # the decoder's P along its argmax walk: its argmax is the derived cell
        assert tuple(p.argmax(1)) == run.method.derive(0).ops


def test_entropy_is_the_mean_edge_entropy():
    p = np.full((NUM_EDGES, NUM_OPS), 0.2)
    p[0] = [1, 0, 0, 0, 0]
    assert distribution_entry(p)["arch_entropy"] == pytest.approx(5 / 6 * math.log(5))
    assert distribution_entry(None) == {}


@pytest.mark.parametrize(
    "method,extra", [("darts-v1", ()), ("enas", ()), ("e2nas", ()), ("gdas", (("track_running_stats", "true"),))]
)
def test_ranking_quality_never_changes_the_search(tmp_path, method, extra):
    on = RunSpec(method, 0, "quick", TINY + extra + (("rank_cells", "12"), ("rank_every", "1")))
    off = RunSpec(method, 0, "quick", TINY + extra + (("rank_cells", "0"),))
    rec_on = run_one(on, RunOptions(results=tmp_path / "on"))
    rec_off = run_one(off, RunOptions(results=tmp_path / "off"))
    a = [x.to_json() for x in read_metrics(Store(tmp_path / "on").metrics_path(on.run_id))]
    b = [y.to_json() for y in read_metrics(Store(tmp_path / "off").metrics_path(off.run_id))]
    assert all(x.get("rank_kendall") is not None or x.get("rank_top10") is not None for x in a)
    assert all("rank_top10" not in y for y in b)
    for x, y in zip(a, b, strict=True):
        for k in ("train_loss", "valid_loss", "arch", "arch_probs", "arch_entropy"):
            assert x.get(k) == y.get(k), (k, x.get(k), y.get(k))
    assert rec_on.final.arch == rec_off.final.arch


def test_epochs_frame_keeps_the_dynamics_and_the_ranking(tmp_path):
    spec = RunSpec("gdas", 0, "quick", TINY + (("rank_cells", "8"),))
    run_one(spec, RunOptions(results=tmp_path))
    ep = load_runs(tmp_path).epochs
    for col in ("tau", "arch_entropy", "arch_probs", "rank_kendall", "rank_spearman", "rank_top10", "rank_s"):
        assert col in ep.columns, col
    assert ep["rank_kendall"].isna().tolist() == [True, False]  # rank_every 4: only after the last epoch
    assert np.asarray(ep["arch_probs"].iloc[0]).shape == (NUM_EDGES, NUM_OPS)


def test_rank_keys_are_protocol_settings_with_ranges():
    from nasbench_suite.errors import ConfigError

    cls = get_method("rsps")
    p = resolve(RunSpec("rsps", 0, "quick", ()), cls.Hparams, cls.name).protocol
    assert (p.rank_cells, p.rank_every) == (30, 4)
    p = resolve(RunSpec("rsps", 0, "nb201", ()), cls.Hparams, cls.name).protocol
    assert (p.rank_cells, p.rank_every) == (100, 10)
    with pytest.raises(ConfigError, match="rank_every=0 is out of range"):
        resolve(RunSpec("rsps", 0, "quick", (("rank_every", "0"),)), cls.Hparams, cls.name)
    assert "e2nas" in method_names() and as_cell(KNOWN_CELLS[5]).ops == (1,) * 6


def test_report_has_the_ranking_column_and_the_new_figures(tmp_path):
    from nasbench_suite.analysis.figures import clipped_artists, group_figures
    from nasbench_suite.analysis.report import build_report, render_json
    from nasbench_suite.analysis.tables import to_markdown

    for method in ("darts-v1", "e2nas"):
        for seed in (0, 1):
            spec = RunSpec(method, seed, "quick", TINY + (("rank_cells", "10"), ("rank_every", "1")))
            run_one(spec, RunOptions(results=tmp_path))
    rep = build_report(tmp_path, published=False)
    (g,), (t,) = rep.groups, rep.tables
    assert t.columns[-1] == "rank_kendall" and "ranking τ" in to_markdown(t)
    ep = load_runs(tmp_path).epochs
    for row in (r for r in t.rows if r.kind == "run"):  # the column: the mean of each run's last measured tau
        runs = ep[(ep["method"] == row.method) & (ep["epoch"] == 1)]
        assert row.values["rank_kendall"][0] == pytest.approx(runs["rank_kendall"].mean())
    assert '"rank_kendall"' in render_json(rep)
    figs = group_figures(g, rep.records)
    for name in ("ranking", "entropy", "dynamics"):
        assert name in figs and clipped_artists(figs[name]) == [], name
    # runs without ranking (rank_cells=0): no column, no ranking figure
    other = tmp_path / "off"
    run_one(RunSpec("rsps", 0, "quick", TINY + (("rank_cells", "0"),)), RunOptions(results=other))
    rep = build_report(other, published=False)
    assert "rank_kendall" not in rep.tables[0].columns and "ranking" not in group_figures(rep.groups[0], rep.records)
