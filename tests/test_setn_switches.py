"""SETN's two switches: ``weight_sampling=urs`` (the reference's forward_urs: a cell per search layer, no node
without a non-``none`` input) and ``clip_weight_grads`` (the script's weight step does not clip)."""

from __future__ import annotations

import numpy as np
import torch

from nasbench_suite.config import RunSpec
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.space import IN_EDGES, NONE, NUM_OPS
from nasbench_suite_baselines.setn import sample_urs_cell

TINY = (("C", "4"), ("batch_size", "16"), ("select_batch_size", "16"), ("select_candidates", "3"), ("epochs", "2"))


def _run(tmp_path, **hp) -> Run:
    overrides = TINY + tuple((k, str(v)) for k, v in hp.items())
    return Run(RunSpec("setn", 0, "quick", tuple(sorted(overrides))), RunOptions(results=tmp_path))


def test_urs_cell_gives_every_node_a_real_input_and_is_otherwise_uniform():
    rng = np.random.default_rng(0)
    cells = np.array([sample_urs_cell(rng).ops for _ in range(4000)])
    for node in (1, 2, 3):
        assert (cells[:, list(IN_EDGES[node])] != NONE).any(axis=1).all(), f"node {node} got only `none` inputs"
    # node 1 has one input: never `none`, the other four ops uniform
    counts = np.bincount(cells[:, 0], minlength=NUM_OPS)
    assert counts[NONE] == 0 and (np.abs(counts[1:] / len(cells) - 0.25) < 0.03).all()
    # node 3's inputs: rejection only drops the all-none triple, so `none` keeps most of its 1/5 share per edge
    share_none = (cells[:, 3:6] == NONE).mean()
    assert 0.15 < share_none < 0.2


def test_urs_trains_one_cell_per_search_layer(tmp_path, monkeypatch):
    run = _run(tmp_path, weight_sampling="urs", N=2)
    seen = []
    real = run.supernet.forward_cell

    def spy(x, cells):
        seen.append(cells)
        return real(x, cells)

    monkeypatch.setattr(run.supernet, "forward_cell", spy)
    run.method.search_step(next(run.train_stream), next(run.valid_stream), 0, 0)
    (cells,) = seen
    assert isinstance(cells, list) and len(cells) == run.supernet.num_search_cells == 6
    assert len({c.ops for c in cells}) > 1  # drawn per layer, not one cell repeated


def _weight_update(tmp_path, clip: bool, calls: list) -> torch.Tensor:
    run = _run(tmp_path / str(clip), clip_weight_grads=clip, grad_clip=1e-4)
    before = torch.cat([p.detach().flatten().clone() for p in run.supernet.parameters()])
    run.method.search_step(next(run.train_stream), next(run.valid_stream), 0, 0)
    after = torch.cat([p.detach().flatten() for p in run.supernet.parameters()])
    return after - before


def test_clip_weight_grads_switch(tmp_path, monkeypatch):
    calls = []
    real = torch.nn.utils.clip_grad_norm_

    def counting(params, max_norm, *a, **k):
        calls.append(max_norm)
        return real(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting)
    plain = _weight_update(tmp_path, False, calls)
    assert calls == []  # the script's SETN weight step never clips
    clipped = _weight_update(tmp_path, True, calls)
    assert calls == [1e-4]
    # same start, same batch, same cell: clipping to a tiny norm shrinks the step (momentum buffers start empty, so
    # the first update is lr * (grad + wd * w) either way; only the gradient part is clipped)
    assert clipped.norm() < 0.5 * plain.norm()
