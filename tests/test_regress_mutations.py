"""The regression check catches small behavioural changes: each mutation below, applied in-process, makes
``nas-suite regress`` fail with exit code 1 and a readable diff naming the method (the tolerance of the portable
float64 baseline is far below any of them).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from click.testing import CliRunner

import nasbench_suite.runner as runner_module
from nasbench_suite.analysis.cli import regress as regress_cmd
from nasbench_suite.method import get_method


def _hparams(monkeypatch, method: str, **changes) -> None:
    """Every run of ``method`` resolves with ``changes`` applied to its hyperparameters (a code change in effect)."""
    real = runner_module.resolve

    def resolve(spec, hparams_cls, name):
        cfg = real(spec, hparams_cls, name)
        return dataclasses.replace(cfg, hparams=dataclasses.replace(cfg.hparams, **changes)) if name == method else cfg

    monkeypatch.setattr(runner_module, "resolve", resolve)


def gdas_tau_one_epoch_late(monkeypatch):
    cls = get_method("gdas")
    real = cls.begin_epoch
    monkeypatch.setattr(cls, "begin_epoch", lambda self, epoch: real(self, max(epoch - 1, 0)))
    return "gdas"


def setn_with_clipping(monkeypatch):
    _hparams(monkeypatch, "setn", clip_weight_grads=True)
    return "setn"


def darts_v2_r_doubled(monkeypatch):
    _hparams(monkeypatch, "darts-v2", unrolled_r=0.02)
    return "darts-v2"


def e2nas_eps_04(monkeypatch):
    _hparams(monkeypatch, "e2nas", eps=0.4)
    return "e2nas"


def one_fewer_step_per_epoch(monkeypatch):
    real = runner_module.Run.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.steps_per_epoch -= 1
        self.ctx.steps_per_epoch = self.steps_per_epoch

    monkeypatch.setattr(runner_module.Run, "__init__", init)
    return "rsps"


def e2nas_complement_other_generator(monkeypatch):
    import nasbench_suite_methods.e2nas.search as search

    real = search.complementary_cell
    other = np.random.default_rng(12345)
    monkeypatch.setattr(search, "complementary_cell", lambda a_prev, a_t, rng: real(a_prev, a_t, other))
    return "e2nas"


MUTATIONS = [
    gdas_tau_one_epoch_late,
    setn_with_clipping,
    darts_v2_r_doubled,
    e2nas_eps_04,
    one_fewer_step_per_epoch,
    e2nas_complement_other_generator,
]


@pytest.mark.slow
@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__)
def test_regress_reports_the_mutation(monkeypatch, mutate, capsys):
    method = mutate(monkeypatch)
    res = CliRunner().invoke(regress_cmd, ["--methods", method, "--quiet"])
    assert res.exit_code == 1, res.output
    fails = [line for line in res.output.splitlines() if line.startswith("FAIL")]
    assert fails, res.output
    # readable: "FAIL <method> epoch <k>|final <field>: expected <x>, got <y>"
    assert all(re.match(rf"FAIL {re.escape(method)} (epoch \d+|final) \w+: expected .+, got .+", f) for f in fails)
    assert "REGRESSION" in res.output
    with capsys.disabled():  # the first diff line of each mutation, for the record
        print(f"\n{mutate.__name__}: {len(fails)} diffs; first: {fails[0]}")
