"""The seams of issue 14: one SearchContext factory, a method's own stand-ins for timing, one optional-import guard,
one missing-autoencoder message."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from nasbench_suite.config import Protocol
from nasbench_suite.errors import ConfigError
from nasbench_suite.imports import import_optional
from nasbench_suite.method import SearchContext, get_method, make_context
from nasbench_suite.supernet import Supernet, SupernetConfig


def test_make_context_defaults_are_the_runners():
    p = Protocol(C=4, N=1, lr=0.05, momentum=0.8, weight_decay=1e-3, epochs=7)
    net = Supernet(SupernetConfig(C=4, N=1, num_classes=10))
    ctx = make_context(net, p, seed=3, steps_per_epoch=5)
    assert isinstance(ctx, SearchContext) and not hasattr(ctx, "extra")
    assert (ctx.epochs, ctx.steps_per_epoch, ctx.seed, ctx.device) == (7, 5, 3, torch.device("cpu"))
    g = ctx.w_optimizer.param_groups[0]
    assert isinstance(ctx.w_optimizer, torch.optim.SGD)
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) == (0.05, 0.8, True, 1e-3)
    assert len(g["params"]) == len(list(net.parameters()))
    assert ctx.rng.integers(1 << 30) == np.random.default_rng(3).integers(1 << 30)
    assert list(ctx.selection_batches(0, augment=None, salt=1)) == []


def test_for_timing_default_and_e2nas_stand_in():
    rsps = get_method("rsps")
    m, note = rsps.for_timing(rsps.Hparams())
    assert type(m) is rsps and note == ""
    e2 = get_method("e2nas")
    m, note = e2.for_timing(e2.Hparams())
    assert m._given_vae is not None  # the harness never depends on vae_path
    assert (note == "") == (m._given_vae[1] != "untrained")


def test_import_optional_skips_an_absent_package_but_not_a_broken_one(tmp_path, monkeypatch):
    assert import_optional("no_such_pkg_i14.search") is None
    pkg = tmp_path / "pkg_i14_broken"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "search.py").write_text("import no_such_dependency_i14  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_i14"):
        import_optional("pkg_i14_broken.search")
    sys.modules.pop("pkg_i14_broken", None)


def test_missing_autoencoder_message_names_the_command_that_writes_it(tmp_path):
    from nasbench_suite_methods.e2nas.vae import DEFAULT_WEIGHTS, missing_weights_message

    other = tmp_path / "vae.pt"
    assert missing_weights_message(other).endswith(f"`nas-suite e2nas train-vae --seed 0 --out {other}`")
    assert missing_weights_message(DEFAULT_WEIGHTS).endswith(f"--out {DEFAULT_WEIGHTS} --force`")
    e2 = get_method("e2nas")
    net = Supernet(SupernetConfig(C=4, N=1, num_classes=10))
    with pytest.raises(ConfigError, match="train-vae --seed 0 --out"):
        e2(e2.Hparams(vae_path=str(other))).setup(make_context(net, Protocol(), seed=0, steps_per_epoch=1))
