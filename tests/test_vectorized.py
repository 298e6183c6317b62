"""Seeds as a batch dimension (nasbench_suite.stacked, nasbench_suite.seedgroup).

* the static masked forward equals the branching one (values and gradients, BN running statistics), random cells;
* for every method, K = 3 seeds as one vectorized search equal three single-seed runs (two tiny epochs, cells and
  every logged number), under both SGD semantics;
* a vectorized group killed after its first epoch and resumed ends as the uninterrupted group;
* ownership: a stored seed is not rerun, a seed another process holds is left to it; ``--vectorize`` at the CLI.

Compared in float64 with oneDNN off, so the only differences are the grouped kernels' rounding (measured <= 2e-13
relative; the tolerance is 1e-9, while the smallest behavioural change the regression mutations make moves a loss by
1e-3).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from nasbench_suite.cli import cli
from nasbench_suite.config import RunSpec
from nasbench_suite.errors import ConfigError
from nasbench_suite.method import get_method, method_names
from nasbench_suite.numerics import numerics
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.seedgroup import execute_group, group_plan, run_group
from nasbench_suite.space import sample_cell
from nasbench_suite.stacked import StackedSupernet
from nasbench_suite.supernet import Supernet, SupernetConfig
from tests.test_conformance import BASE as CONFORMANCE_BASE
from tests.test_conformance import FAST, TIMING_KEYS

pytestmark = pytest.mark.timeout(900)

RTOL = 1e-9
#: the conformance suite's tiny runs, with ranking quality, in float64 without oneDNN, and a clip that acts (the tiny
#: runs' gradient norms are 1-2.5), per seed
BASE = (
    *CONFORMANCE_BASE,
    ("rank_cells", "4"),
    ("rank_every", "1"),
    ("dtype", "float64"),
    ("onednn", "false"),
    ("grad_clip", "1.0"),
)
SEEDS = (0, 1, 2)


def _specs(method: str, extra: dict[str, str] | None = None) -> list[RunSpec]:
    hp = {f.name for f in dataclasses.fields(get_method(method).Hparams)}
    ov = dict(BASE) | {k: v for k, v in FAST.items() if k in hp} | (extra or {})
    return [RunSpec(method, s, "quick", overrides=tuple(ov.items())) for s in SEEDS]


def _lines(results, spec) -> list[dict]:
    return [json.loads(line) for line in (results / "runs" / spec.run_id / "metrics.jsonl").read_text().splitlines()]


def _differences(a: list[dict], b: list[dict]) -> list[str]:
    """Every per-epoch value that differs (numbers beyond RTOL, anything else at all); timings left out."""
    out = []
    for ea, eb in zip(a, b, strict=True):
        for key in sorted(set(ea) | set(eb)):
            if key in TIMING_KEYS:
                continue
            va, vb = ea.get(key), eb.get(key)
            if isinstance(va, float) and isinstance(vb, float):
                if not math.isclose(va, vb, rel_tol=RTOL, abs_tol=RTOL):
                    out.append(f"epoch {ea['epoch']} {key}: {va!r} vs {vb!r}")
            elif key == "arch_probs" and va is not None and vb is not None:
                if not np.allclose(va, vb, rtol=RTOL, atol=RTOL):
                    out.append(f"epoch {ea['epoch']} {key} differ")
            elif va != vb:
                out.append(f"epoch {ea['epoch']} {key}: {va!r} vs {vb!r}")
    return out


# --- the static step ------------------------------------------------------------------------------------------------
def _nets(cfg: SupernetConfig, k: int) -> list[Supernet]:
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(Supernet(cfg))
    return nets


@pytest.mark.parametrize("track", [False, True], ids=["batch-stats", "running-stats"])
@pytest.mark.parametrize("mode", ["cells", "per-layer-cells", "hard", "mixture"])
def test_static_step_equals_branching_step(mode, track):
    """The masked forward of K = 3 stacked networks against each network's own (branching) forward, for random
    cells: logits, the gradient of every parameter (exact zeros for the ops not chosen) and of the hard weights,
    and the BN running statistics (updated for the chosen ops only)."""
    with numerics("float64", False, True):
        cfg = SupernetConfig(C=4, N=2, num_classes=10, affine=track, track_running_stats=track)
        nets = _nets(cfg, 3)
        stacked = StackedSupernet(nets)
        g = torch.Generator().manual_seed(7)
        X, Y = torch.randn(3, 8, 3, 8, 8, generator=g), torch.randint(0, 10, (3, 8), generator=g)
        rng = np.random.default_rng(3)
        H = torch.softmax(3 * torch.randn(3, 6, 5, generator=g), -1).requires_grad_()
        if mode == "cells":
            cells = [sample_cell(rng) for _ in range(3)]
            out, ref = stacked.forward_cells(X, cells), [n.forward_cell(X[k], cells[k]) for k, n in enumerate(nets)]
        elif mode == "per-layer-cells":
            cells = [[sample_cell(rng) for _ in range(nets[0].num_search_cells)] for _ in range(3)]
            out, ref = stacked.forward_cells(X, cells), [n.forward_cell(X[k], cells[k]) for k, n in enumerate(nets)]
        elif mode == "hard":
            idx = torch.tensor([sample_cell(rng).ops for _ in range(3)])
            out = stacked.forward_hard(X, H, idx)
            ref = [n.forward_hard(X[k], H[k], idx[k]) for k, n in enumerate(nets)]
        else:
            out, ref = stacked.forward_mixture(X, H), [n.forward_mixture(X[k], H[k]) for k, n in enumerate(nets)]
        torch.testing.assert_close(out, torch.stack(ref), rtol=1e-12, atol=1e-12)
        loss = F.cross_entropy(out.reshape(-1, 10), Y.reshape(-1), reduction="none").view(3, -1).mean(1).sum()
        grads = torch.autograd.grad(loss, [H, *stacked.parameters()], allow_unused=True)
        ref_loss = sum(F.cross_entropy(r, Y[k]) for k, r in enumerate(ref))
        params = [dict(n.named_parameters()) for n in nets]
        ref_grads = torch.autograd.grad(
            ref_loss, [H, *[p[name] for p in params for name in stacked.names]], allow_unused=True
        )
        if mode != "cells" and mode != "per-layer-cells":
            torch.testing.assert_close(grads[0], ref_grads[0], rtol=1e-12, atol=1e-12)
        it = iter(ref_grads[1:])
        per_net = {(k, name): next(it) for k in range(3) for name in stacked.names}
        for i, name in enumerate(stacked.names):
            for k in range(3):
                want = per_net[(k, name)]
                got = grads[1 + i][k]
                torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want, rtol=1e-11, atol=1e-12)
        for name in stacked.buffer_names:
            for k, n in enumerate(nets):
                want = dict(n.named_buffers())[name]
                torch.testing.assert_close(stacked.P(name)[k], want.to(stacked.P(name).dtype), rtol=1e-12, atol=0)


# --- K seeds vectorized == K single runs ------------------------------------------------------------------------------
def _single_and_group(method: str, tmp_path, extra=None):
    specs = _specs(method, extra)
    for spec in specs:
        Run(spec, RunOptions(results=tmp_path / "single")).execute()
    runs = [Run(spec, RunOptions(results=tmp_path / "group")) for spec in specs]
    records = execute_group(runs)
    return specs, records


@pytest.mark.slow
@pytest.mark.parametrize("semantics", ["zero", "none"])
@pytest.mark.parametrize("method", method_names())
def test_vectorized_seeds_equal_single_runs(method, semantics, tmp_path):
    extra = {"sgd_semantics": semantics}
    if semantics == "none":  # the other SGD semantics with BN running statistics recorded (the nb201 preset's)
        extra["track_running_stats"] = "true"
    specs, records = _single_and_group(method, tmp_path, extra)
    for spec, record in zip(specs, records):
        diff = _differences(_lines(tmp_path / "single", spec), _lines(tmp_path / "group", spec))
        assert not diff, f"{spec.run_id}: {diff[:5]}"
        assert record.timings.vectorized_seeds == len(specs)


@pytest.mark.slow
def test_vectorized_group_resumes_exactly(tmp_path):
    """Killed after epoch 1 (every member checkpointed) and started again: the same lines as straight through;
    one member a checkpoint behind (killed between two members' checkpoints) catches up alone first."""
    specs = _specs("gdas", {"epochs": "3"})
    execute_group([Run(s, RunOptions(results=tmp_path / "straight")) for s in specs])
    options = RunOptions(results=tmp_path / "resumed")
    assert execute_group([Run(s, options) for s in specs], stop_after=1) == [None] * len(specs)
    assert all((tmp_path / "resumed" / "runs" / s.run_id / "checkpoint.pt").exists() for s in specs)
    execute_group([Run(s, options) for s in specs])
    for spec in specs:
        diff = _differences(_lines(tmp_path / "straight", spec), _lines(tmp_path / "resumed", spec))
        assert not diff, f"{spec.run_id}: {diff[:5]}"
    # one member behind: its checkpoint of epoch 1 replaced by none at all (it restarts and catches up alone)
    options = RunOptions(results=tmp_path / "behind")
    execute_group([Run(s, options) for s in specs], stop_after=1)
    (tmp_path / "behind" / "runs" / specs[1].run_id / "checkpoint.pt").unlink()
    (tmp_path / "behind" / "runs" / specs[1].run_id / "metrics.jsonl").unlink()
    execute_group([Run(s, options) for s in specs])
    for spec in specs:
        diff = _differences(_lines(tmp_path / "straight", spec), _lines(tmp_path / "behind", spec))
        assert not diff, f"{spec.run_id}: {diff[:5]}"


# --- ownership, planning, CLI -----------------------------------------------------------------------------------------
def test_group_plan_units():
    plan = [RunSpec(m, s, "quick") for m in ("darts-v1", "rsps") for s in (0, 1)]
    assert group_plan(plan, "off", "cuda") == [[p] for p in plan]
    assert group_plan(plan, "auto", "cpu") == [[p] for p in plan]  # a CPU step is compute-bound: no gain
    assert group_plan(plan, "auto", "cuda:0") == [plan[:2], plan[2:]]
    assert group_plan(plan, "on", "cpu") == [plan[:2], plan[2:]]
    other = [RunSpec("rsps", 0, "quick", overrides=(("lr", "0.1"),)), *plan[2:]]
    assert group_plan(other, "on", "cpu") == [[other[0]], other[1:]]  # other settings: another search


def test_vectorize_on_refuses_a_method_without_group_step(monkeypatch):
    cls = get_method("rsps")
    monkeypatch.setattr(cls, "vectorize_reason", classmethod(lambda c, hp: "no group_step: its seeds run one by one"))
    with pytest.raises(ConfigError, match="rsps cannot run its seeds as one search"):
        group_plan([RunSpec("rsps", s, "quick") for s in (0, 1)], "on")
    assert len(group_plan([RunSpec("rsps", s, "quick") for s in (0, 1)], "auto", "cuda")) == 2  # alone, no error


def test_run_group_keeps_stored_and_claimed_runs(tmp_path):
    """A seed already stored is returned as stored (not rerun); a seed another live process claims is left to it;
    the others run as one group."""
    from nasbench_suite.claims import acquire

    specs = [
        RunSpec("rsps", s, "quick", overrides=(("epochs", "1"), ("steps_per_epoch", "2"), ("rank_cells", "0")))
        for s in (0, 1, 2)
    ]
    options = RunOptions(results=tmp_path, vectorize="on")
    stored = Run(specs[0], options).execute()
    held = acquire(tmp_path / "runs" / specs[2].run_id, options.claim_stale_s)
    try:
        out = run_group(specs, options)
    finally:
        held.release()
    assert [s for s, _ in out] == ["skipped", "done", "claimed"]
    assert out[0][1].finished_at == stored.finished_at
    assert out[1][1].timings.vectorized_seeds == 1  # the only one left to run


def test_cli_vectorize_on_runs_the_seeds_together(tmp_path):
    args = ["run", "--methods", "rsps", "--seeds", "2", "--results", str(tmp_path), "--quiet", "--vectorize", "on"]
    args += ["--set", "epochs=1", "--set", "steps_per_epoch=2", "--set", "rank_cells=0"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("runs/*/record.json"))]
    assert [r["timings"]["vectorized_seeds"] for r in records] == [2, 2]
    res = CliRunner().invoke(cli, [*args[:-2], "--vectorize", "sideways"])
    assert res.exit_code == 2 and "sideways" in res.output


@pytest.mark.slow
def test_local_pool_runs_groups(tmp_path):
    """The local pool takes units: each worker runs one method's seeds as one search."""
    from nasbench_suite.executors import run_pool

    tiny = (("epochs", "1"), ("steps_per_epoch", "2"), ("rank_cells", "0"), ("batch_size", "16"))
    plan = [RunSpec(m, s, "quick", overrides=tiny) for m in ("rsps", "darts-v1") for s in (0, 1)]
    outcomes = run_pool(plan, RunOptions(results=tmp_path, vectorize="on"), workers=2)
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    assert [o.record.timings.vectorized_seeds for o in outcomes] == [2, 2, 2, 2]


def test_methods_listing_says_which_methods_vectorize():
    res = CliRunner().invoke(cli, ["methods"])
    assert res.exit_code == 0, res.output
    lines = [line.strip() for line in res.output.splitlines() if "vectorized seeds:" in line]
    assert len(lines) == len(method_names())
    assert "vectorized seeds: yes (the shared-weight steps; the controller phase runs per seed)" in lines  # ENAS
