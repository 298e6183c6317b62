"""The contract every registered method meets, run for each name in ``method_names()`` (new methods included).

Two tiny epochs on CPU through the real runner (quick preset, 3 steps an epoch, small batches): finite losses, a
valid derived cell every epoch, an exact resume (2 epochs straight == 1 epoch, a new Run from the checkpoint, 1 more
epoch: the same per-epoch cells and the same losses, compared exactly), and gradients that reach exactly what the
method trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math

import pytest
import torch

from nasbench_suite.config import RunSpec
from nasbench_suite.method import get_method, method_names
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.space import Cell
from tests.plugin_demo import NAME as PLUGIN
from tests.plugin_demo import installed_plugin

#: every registered method, plus a method from another package (an entry-point plugin, installed per test)
METHODS = [*method_names(), PLUGIN]


@pytest.fixture(autouse=True)
def _plugin_installed(request):
    """The plugin method is installed while a test of it runs (and only then: nothing leaks to other tests)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    with installed_plugin() if PLUGIN in params.values() else contextlib.nullcontext():
        yield


# one intra-op thread for every test: set in tests/conftest.py
#: every run: 2 epochs of 3 steps, small batches, few selection candidates
BASE = (
    ("epochs", "2"),
    ("steps_per_epoch", "3"),
    ("batch_size", "16"),
    ("select_candidates", "3"),
    ("select_batch_size", "16"),
    ("derive_every", "1"),
)  # every epoch derives: derive is checked at each
#: method hyperparameters that scale a method's own work; applied to the methods that have them (a new method
#: with an expensive phase adds its knob here)
FAST = {"controller_steps": "2", "controller_aggregate": "2", "epoch_samples": "2"}
#: per-epoch values that are timings, not results
TIMING_KEYS = {"search_s", "wall_s", "rank_s"}


def _spec(name: str) -> RunSpec:
    hp = {f.name for f in dataclasses.fields(get_method(name).Hparams)}
    return RunSpec(name, 0, "quick", overrides=BASE + tuple((k, v) for k, v in FAST.items() if k in hp))


def _stop_after_first_epoch(spec: RunSpec, results) -> None:
    """Run epoch 0 and checkpoint it, as a run killed after its first epoch."""
    run = Run(spec, RunOptions(results=results))
    if "stop_after" in inspect.signature(run.execute).parameters:
        assert run.execute(stop_after=1) is None
        return
    run.store.ensure_writable()  # the same steps as execute()'s loop, for a runner without stop_after
    assert not run.try_resume()
    line = run.run_epoch(0)
    run.epochs_done.append(line)
    run.elapsed += line.wall_s
    run.store.write_metrics(run.run_id, run.epochs_done)
    run.save_checkpoint()


@pytest.fixture(scope="module", params=METHODS)
def straight(request, tmp_path_factory):
    """(spec, per-epoch lines, record) of an uninterrupted 2-epoch run."""
    with installed_plugin() if request.param == PLUGIN else contextlib.nullcontext():
        spec = _spec(request.param)
        run = Run(spec, RunOptions(results=tmp_path_factory.mktemp(f"straight-{request.param}")))
        record = run.execute()
    return spec, [line.to_json() for line in run.epochs_done], record


def test_losses_finite_and_cells_valid(straight):
    spec, lines, record = straight
    assert [line["epoch"] for line in lines] == [0, 1]
    for line in lines:
        losses = {k: v for k, v in line.items() if k.endswith("_loss")}
        assert "train_loss" in losses
        assert all(math.isfinite(v) for v in losses.values()), losses
        cell = Cell.parse(line["arch"])
        assert cell.arch_str == line["arch"] and len(cell.ops) == 6
    assert record.final.arch == lines[-1]["arch"]
    assert record.method == get_method(spec.method).name


def test_resume_is_exact(straight, tmp_path):
    spec, lines, _ = straight
    _stop_after_first_epoch(spec, tmp_path)  # the Run object is gone: only the checkpoint remains
    resumed = Run(spec, RunOptions(results=tmp_path))
    record = resumed.execute()
    assert record.timings.resumed is True
    assert len(resumed.epochs_done) == len(lines)
    for a, b in zip(lines, (line.to_json() for line in resumed.epochs_done)):
        assert a["arch"] == b["arch"]
        for key in set(a) | set(b):
            if key not in TIMING_KEYS:
                assert a.get(key) == b.get(key), (key, a.get(key), b.get(key))  # exact, floats included


def _graph_leaves(root: torch.Tensor) -> set[int]:
    """ids of the leaf tensors (parameters) that ``root``'s autograd graph reaches."""
    leaves, seen, stack = set(), set(), [root.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):  # AccumulateGrad
            leaves.add(id(fn.variable))
        stack.extend(f for f, _ in fn.next_functions)
    return leaves


@pytest.mark.parametrize("name", METHODS)
def test_gradients_reach_exactly_what_the_method_trains(name, tmp_path, monkeypatch):
    """One search step (plus the epoch's end, where ENAS trains its controller).

    "Used by the forward" = the supernet parameters that the loss of the first ``backward()`` before the first
    weight-optimiser step depends on (its autograd graph; ops a discrete cell computes on a branch that never
    reaches the output are not used). At that weight step exactly those have a (finite) gradient; after the step
    exactly the parameters the SGD step trains have changed (those with a gradient, plus cell parameters whose ops
    were computed but whose output only reaches the loss through ``none`` edges: the reference keeps them in its
    graph, see nasbench_suite/sgd.py) and every other supernet parameter is bit-identical; the arch parameters
    (if any) have been updated.
    """
    import nasbench_suite.method as method_module

    run = Run(_spec(name), RunOptions(results=tmp_path))
    method, net, opt = run.method, run.supernet, run.w_optimizer
    named = dict(net.named_parameters())
    by_id = {id(p): n for n, p in named.items()}
    before = {n: p.detach().clone() for n, p in named.items()}
    arch_before = [a.detach().clone() for a in method.arch_parameters()]
    used: set[str] = set()
    at_step: dict[str, bool] = {}
    original_backward, original_step = torch.Tensor.backward, method_module.masked_sgd_step
    stepped: set[str] = set()

    def spy_backward(self, *args, **kwargs):
        if not at_step and not used:  # the first backward before the first weight step: the weight loss
            used.update(by_id[i] for i in _graph_leaves(self) if i in by_id)
        return original_backward(self, *args, **kwargs)

    def spy_step(optimizer, row_masks, skip):
        assert optimizer is opt
        if not at_step:
            at_step.update({n: p.grad is not None for n, p in named.items()})
            stepped.update(
                n for n, p in named.items() if p not in skip and (bool(row_masks[p].any()) if p in row_masks else True)
            )
            for n, p in named.items():
                if p.grad is not None:
                    assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {n}"
        return original_step(optimizer, row_masks, skip)

    monkeypatch.setattr(torch.Tensor, "backward", spy_backward)
    monkeypatch.setattr(method_module, "masked_sgd_step", spy_step)
    net.train()
    method.begin_epoch(0)
    batch = next(run.train_stream)
    method.search_step(batch, run.valid_stream.draw(len(batch[1])), 0, 0)
    method.end_epoch(0)
    monkeypatch.undo()

    changed = {n for n, p in named.items() if not torch.equal(p.detach(), before[n])}
    assert at_step, f"{name} never stepped the weight optimiser"
    assert {"stem.0.weight", "classifier.weight", "lastact.weight"} <= used, f"{name}: weight loss detached"
    with_grad = {n for n, has in at_step.items() if has}
    assert with_grad == used, (
        f"{name}: used without gradient {sorted(used - with_grad)[:5]}; gradient but unused "
        f"{sorted(with_grad - used)[:5]}"
    )
    assert used <= stepped and all(".nodes." in n for n in stepped - used), f"{name}: {sorted(stepped - used)}"
    assert changed == stepped, (
        f"{name}: changed but not trained {sorted(changed - stepped)[:5]}; "
        f"trained but unchanged {sorted(stepped - changed)[:5]}"
    )
    arch_after = method.arch_parameters()
    assert len(arch_after) == len(arch_before)
    for a in arch_after:
        assert torch.isfinite(a).all()
    if arch_before:
        assert any(not torch.equal(a.detach(), b) for a, b in zip(arch_after, arch_before)), (
            f"{name}: arch parameters not updated"
        )
