"""The timing harness of vectorized seeds (nasbench_suite.groupbench) and the GPU check's dry run
(scripts/gpu_check.py --device cpu): the group is built as K single-seed runs, OOM is recorded, goals are computed
from the rows, and the whole script runs end to end on the CPU with finite figures."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from nasbench_suite.groupbench import (
    CUDA_GRAPH,
    EPOCHS,
    STEPS_PER_EPOCH,
    GroupStepper,
    e2nas_projection,
    goals,
    time_group_vs_single,
    time_vectorized,
)
from nasbench_suite.numerics import numerics
from nasbench_suite.runner import seed_everything
from nasbench_suite.supernet import Supernet, SupernetConfig
from nasbench_suite.timing import OurStepper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the GPU check's CPU dry run as docs/performance.md gives it
DRY_RUN = (
    "--device cpu --size tiny --steps 1 --warmup 0 --k 1,2 --k-steps 1 --no-compile --vk 1,2 --v-steps 1 --v-warmup 0 "
    "--single-k 2 --threads 1"
).split()


def _finite(v):
    return isinstance(v, int | float) and math.isfinite(v)


@pytest.mark.parametrize("method", ["darts-v1", "gdas", "rsps"])
def test_group_members_are_the_single_seed_runs(method):
    """Seed k of the group = the method's single run of seed k: its supernet's initial weights exactly, and the
    first step's loss on seed k's batches (same cells: RSPS from ctx.rng, GDAS from seed k's torch stream)."""
    K = 2
    with numerics(onednn=False):  # compare the algorithms, not oneDNN's conv kernels
        gs = GroupStepper(method, "tiny", K, "cpu")
        p = gs.protocol
        for k in range(K):
            seed_everything(k)
            alone = Supernet(SupernetConfig(p.C, p.N, 10, p.affine, p.track_running_stats))
            for name, param in alone.named_parameters():
                assert torch.equal(gs.net.P(name)[k], param.detach()), (k, name)
        train, valid = gs.batches(0)
        assert not torch.equal(train[0][0], train[0][1])  # each seed its own data stream
        group_losses = [d["train_loss"] for d in gs.step(0)]
        for k in range(K):
            seed_everything(k)  # OurStepper builds its supernet from the global RNG, as a run of seed k does
            single = OurStepper(method, gs.config, torch.device("cpu"), seed=k)
            out = single.step((train[0][k], train[1][k]), (valid[0][k], valid[1][k]))
            assert out["train_loss"] == pytest.approx(group_losses[k], rel=1e-5), k
    assert group_losses[0] != pytest.approx(group_losses[1], rel=1e-6)  # two different seeds


def test_time_vectorized_rows_and_oom_guard(monkeypatch):
    """One reference process per method, a row per K with finite figures; a K that runs out of device memory is a
    row saying so (not an exception), and every larger K is skipped."""
    pytest.importorskip("xautodl", reason="the reference side needs xautodl (pip install --no-deps xautodl)")
    real_step = GroupStepper.step

    def step(self, i=None):
        if self.K >= 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, i)

    monkeypatch.setattr(GroupStepper, "step", step)
    seen = []
    rows, skipped = time_vectorized("rsps", (1, 2, 3), size="tiny", device="cpu", steps=1, warmup=0, on_row=seen.append)
    assert seen == rows and [r["K"] for r in rows] == [1, 2]
    ok, oom = rows
    for key in ("group_ms", "seed_equiv_steps_per_s", "ref_ms", "ref_steps_per_s", "ratio_vs_ref", "pair_ratio"):
        assert _finite(ok[key]), key
    assert ok["ratio_vs_ref"] == pytest.approx(ok["seed_equiv_steps_per_s"] / ok["ref_steps_per_s"])
    assert ok["cuda_graph"] == CUDA_GRAPH and "not built" in CUDA_GRAPH
    assert oom["oom"] is True and "out of memory" in oom["error"] and "group_ms" not in oom
    assert skipped == ["vectorized rsps K=3: K=2 ran out of device memory"]


def test_group_vs_single_has_finite_figures():
    r = time_group_vs_single("rsps", 2, size="tiny", steps=1, warmup=0)
    assert all(_finite(r[k]) for k in ("group_ms", "singles_ms", "ratio", "pair_ratio"))
    assert len(r["seed_losses"]) == 2 and all(_finite(v) for v in r["seed_losses"])


def test_goals_and_the_e2nas_projection():
    rows = [
        {"method": "darts-v1", "K": 16, "ratio_vs_ref": 25.0},
        {"method": "gdas", "K": 16, "oom": True, "error": "OutOfMemoryError: CUDA out of memory"},
        {"method": "gdas", "K": 5, "ratio_vs_ref": 30.0},
        {"method": "e2nas", "K": 16, "group_ms": 160.0, "w_passes": 1.0},
        {"method": "e2nas", "K": 32, "group_ms": 960.0},  # 30 ms per seed-step
    ]
    proj = e2nas_projection(rows)
    h16 = 10.0 * EPOCHS * STEPS_PER_EPOCH / 3.6e6  # 10 ms per seed-step
    assert proj["per_K"]["16"]["as_measured_h"] == pytest.approx(h16)
    assert proj["per_K"]["16"]["worst_case_h"] == pytest.approx(2 * h16)  # 4 passes instead of 2
    assert "worst_case_h" not in proj["per_K"]["32"]
    assert proj["per_K"]["32"]["as_measured_h"] == pytest.approx(3 * h16)
    assert proj["best_K"] == 16 and proj["best_h"] == pytest.approx(2 * h16)  # the worst case where it is known
    g = goals(rows)
    assert g["darts-v1 K=16 >= 20x one reference process"]["met"] is True
    gd = g["gdas K=16 >= 20x one reference process"]
    assert gd["met"] is None and "out of memory" in gd["why_not_measured"]
    e = g["e2nas 250 epochs <= 1 h per seed-equivalent"]
    assert e["met"] is True and e["at_K"] == 16
    assert goals([])["e2nas 250 epochs <= 1 h per seed-equivalent"]["met"] is None


@pytest.mark.slow
def test_gpu_check_dry_run_end_to_end(tmp_path):
    """The GPU check's CPU dry run (every part) writes a JSON with the vectorized section's figures finite."""
    pytest.importorskip("xautodl")
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py"), *DRY_RUN, "--out", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    vec = data["vectorized"]
    assert vec["cuda_graph"] == CUDA_GRAPH
    rows = [r for r in vec["rows"] if "group_ms" in r]
    assert {r["method"] for r in rows} >= {"darts-v1", "gdas", "e2nas"}
    for r in rows:
        assert all(_finite(r[k]) for k in ("group_ms", "seed_equiv_steps_per_s")), r
        if r["method"] != "e2nas":  # E2NAS has no xautodl counterpart
            assert all(_finite(r[k]) for k in ("ref_ms", "ratio_vs_ref")), r
        assert all(_finite(v) for v in r["seed_losses"]), r
    assert not [r for r in vec["rows"] if "error" in r]
    assert all(_finite(r["ratio"]) for r in data["group_vs_single"]["rows"])
    assert "darts-v1 K=16 >= 20x one reference process" in data["goals"]
    assert data["steps"] and data["k_seeds"] and "e2nas_projection" in data
