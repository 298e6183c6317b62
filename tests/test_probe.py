"""The known-landscape probe (nasbench_suite/probe.py): the fitted additive landscape, the stand-in supernet's three
forward modes, and every registered method's own search steps driven on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from nasbench_suite.method import method_names
from nasbench_suite.probe import (
    TOP,
    ProbeNet,
    ProbeRun,
    fit_landscape,
    markdown_table,
    probe_one,
    probe_search,
    threshold_batches,
)
from nasbench_suite.space import NUM_CELLS, NUM_EDGES, NUM_OPS, Cell, all_ops_array


@pytest.fixture(scope="module")
def land():
    return fit_landscape()


def test_landscape_is_the_least_squares_additive_fit_with_a_known_best(land):
    ops = all_ops_array()
    # the fit is the least-squares solution: its residual is orthogonal to every one-hot column
    resid = land.acc - land.score
    for e in range(NUM_EDGES):
        for o in range(NUM_OPS):
            assert abs(resid[ops[:, e] == o].sum()) < 1e-6 * NUM_CELLS
    assert 0.0 < land.r2 < 1.0
    best = land.best
    assert land.score[best.index] == pytest.approx(land.score.max())
    assert land.percentile(best) == pytest.approx(100.0 / NUM_CELLS)
    worst = Cell(tuple(int(o) for o in land.W.argmin(1)))
    assert land.percentile(worst) == pytest.approx(100.0)
    assert (land.cost >= 0).all() and np.allclose(land.cost.min(1), 0.0)


def test_standin_forward_modes_encode_the_cost_of_the_cell_weights(land):
    net = ProbeNet(land.cost)
    q, y = next(threshold_batches(256, float(land.cost.max(1).sum()), seed=0))
    cell = Cell((3, 2, 1, 0, 4, 3))
    c = float(net.cell_cost(cell))
    assert c == pytest.approx(float(land.cost[np.arange(NUM_EDGES), cell.ops].sum()), rel=1e-6)
    logits = net.forward_cell(q, cell)
    ce = float(F.cross_entropy(logits, y).detach())
    assert ce == pytest.approx(float(F.softplus(c - q).mean()), rel=1e-6)
    # accuracy = share of thresholds above the cost: lower cost, higher accuracy
    acc = float((logits.argmax(1) == y).float().mean())
    assert acc == pytest.approx(float((q > c).float().mean()))
    # straight-through hard weights: the chosen cell's value, gradient to every entry of the probabilities
    alpha = torch.zeros(NUM_EDGES, NUM_OPS, requires_grad=True)
    P = torch.softmax(alpha, -1)
    H = F.one_hot(torch.tensor(cell.ops), NUM_OPS).float() - P.detach() + P
    loss = F.cross_entropy(net.forward_hard(q, H, cell.ops), y)
    assert float(loss.detach()) == pytest.approx(ce, rel=1e-6)
    (g,) = torch.autograd.grad(loss, [alpha])
    # descending the gradient favours, on every edge, the op with the lowest cost
    assert (g.argmin(1) == torch.as_tensor(land.cost.argmin(1))).all()
    # the softmax mixture: the mixture's cost, same direction
    (gm,) = torch.autograd.grad(F.cross_entropy(net.forward_mixture(q, torch.softmax(alpha, -1)), y), [alpha])
    assert (gm.argmin(1) == torch.as_tensor(land.cost.argmin(1))).all()


def test_darts_finds_the_top_of_the_landscape(land):
    # DARTS-V1's own steps on the stand-in: every seed within the top 5 % after a few dozen arch steps
    for seed in range(3):
        run = probe_one("darts-v1", seed, land, epochs=6, steps_per_epoch=5)
        assert len(run.percentiles) == 6 and run.percentiles[-1] <= TOP, run.percentiles
        assert run.steps_to() is not None and run.steps_to() <= 30


@pytest.mark.parametrize("method", method_names())
def test_every_registered_method_runs_on_the_standin(land, method):
    over = {"controller_steps": "1"} if method == "enas" else {}  # ENAS's controller phase is the costly part
    run = probe_one(method, 0, land, epochs=2, steps_per_epoch=2, overrides=over)
    assert len(run.cells) == 2 and all(Cell.parse(a) for a in run.cells)
    assert all(0 < p <= 100 for p in run.percentiles)


def test_e2nas_gamma0_climbs_the_landscape(land):
    """E2NAS's latent gradient (ours, gamma = 0) improves on its start cell on the known landscape."""
    run = probe_one("e2nas", 1, land, epochs=12, steps_per_epoch=5, overrides={"gamma": "static:0"})
    start = probe_one("e2nas", 1, land, epochs=1, steps_per_epoch=1, overrides={"gamma": "static:0", "z_lr": "1e-9"})
    assert run.percentiles[-1] < start.percentiles[0] / 2, (start.percentiles, run.percentiles)


def test_summary_counts_and_budget():
    runs = [ProbeRun("DARTS-V1", "darts-v1", {}, s, 5, ["x"] * 3, p) for s, p in enumerate([[9, 4, 1], [3, 2, 1]])]
    runs += [ProbeRun("M", "m", {}, s, 5, ["x"] * 3, p) for s, p in enumerate([[50, 20, 4], [6, 5, 5]])]
    assert runs[0].steps_to() == 10 and runs[1].steps_to() == 5 and runs[2].steps_to() == 15
    assert runs[2].at_step(10) == 20 and runs[3].at_step(10) == 5


def test_probe_search_result_and_cli(tmp_path, land):
    res = probe_search([("darts-v1", {}), ("gdas", {})], seeds=2, epochs=2, steps_per_epoch=2, land=land)
    assert [r["label"] for r in res["summary"]] == ["DARTS-V1", "GDAS"]
    assert res["landscape"]["best"] == land.best.arch_str and len(res["runs"]) == 4
    assert "| DARTS-V1 |" in markdown_table(res)
    from nasbench_suite.cli import cli

    out = tmp_path / "probe"
    r = CliRunner().invoke(
        cli,
        [
            "probe-search",
            "--methods",
            "darts-v1",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--steps",
            "1",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["budget"]["steps"] == 2
    assert (out / "probe.json").exists() and (out / "probe.md").exists() and (out / "probe.png").exists()


def test_cli_user_errors_are_one_line_exit_2(monkeypatch, capsys):
    import sys

    from nasbench_suite.cli import main

    for args in (["--seeds", "0"], ["--methods", "nosuch"], ["--set", "gamma=cosine:1", "--methods", "e2nas"]):
        monkeypatch.setattr(sys, "argv", ["nas-suite", "probe-search", *args])
        with pytest.raises(SystemExit) as e:
            main()
        err = capsys.readouterr().err
        assert e.value.code == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("error:"), err
