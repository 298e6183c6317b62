"""The step timing (nasbench_suite.timing) as smoke tests, and the supernet's opt-in fast options.

CI runs pytest with ``--benchmark-disable``: each ``benchmark(...)`` call then runs its function once, so these
check that every method's step (ours and xautodl's) runs and gives the same loss on both sides, never how fast it is.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from nasbench_suite.cli import cli
from nasbench_suite.errors import ConfigError
from nasbench_suite.method import method_names
from nasbench_suite.numerics import numerics
from nasbench_suite.supernet import Supernet, SupernetConfig, apply_fast_options, box_sum, inv_count
from nasbench_suite.timing import (
    FastOptions,
    ReferenceMissing,
    available_methods,
    reference_class,
    time_one,
    time_steps,
    time_steps_cmd,
)

QUICK = dict(size="tiny", steps=1, warmup=0)


def _finite(v):
    return v is not None and math.isfinite(v)


WITH_REFERENCE = [m for m in method_names() if reference_class(m) is not None]


def test_every_baseline_names_its_reference_and_the_core_names_no_method():
    assert set(WITH_REFERENCE) == set(method_names()) - {"e2nas"}
    core = Path(__file__).resolve().parents[1] / "nasbench_suite" / "timing.py"
    assert not re.search(r"\b(darts|gdas|setn|enas|rsps|e2nas)", core.read_text(), re.I)


@pytest.mark.parametrize("method", WITH_REFERENCE)
def test_step_against_reference(benchmark, method):
    pytest.importorskip("xautodl", reason="xautodl is the benchmark's reference (pip install --no-deps xautodl)")
    with numerics(onednn=False):  # compare the algorithms, not the CPU's conv kernels
        r = benchmark.pedantic(time_one, args=(method,), kwargs=QUICK, rounds=1, iterations=1)
    assert _finite(r.ours_loss) and _finite(r.ref_loss)
    # the timed steps are the tested ones: same initial weights, batches and seeds on both sides, so the same loss
    assert r.ours_loss == pytest.approx(r.ref_loss, rel=1e-5, abs=1e-6)
    assert r.ours_ms > 0 and r.ref_ms > 0 and r.ratio > 0
    assert len(r.ours_all_ms) == len(r.ref_all_ms) == 1


def test_ours_only_without_reference(benchmark):
    r = benchmark.pedantic(time_one, args=("rsps",), kwargs=dict(QUICK, reference=False), rounds=1, iterations=1)
    assert _finite(r.ours_loss) and r.ref_ms is None and r.ratio is None and "reference off" in r.note


def test_unregistered_methods_are_skipped_with_a_note():
    ok, notes = available_methods(["darts", "no-such-method", "darts-v1"])
    assert ok == ["darts-v1"]
    assert len(notes) == 1 and "no-such-method" in notes[0]


def test_cli_json(monkeypatch):
    pytest.importorskip("xautodl")
    res = CliRunner().invoke(
        time_steps_cmd, ["--methods", "darts,nope", "--size", "tiny", "--steps", "1", "--warmup", "0", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    (row,) = out["results"]
    assert row["method"] == "darts-v1" and _finite(row["ours_loss"]) and _finite(row["ref_loss"])
    assert any("nope" in n for n in out["notes"])


def test_old_command_name_is_an_alias():
    res = CliRunner().invoke(cli, ["bench", "--methods", "rsps", "--size", "tiny", "--steps", "1", "--no-reference"])
    assert res.exit_code == 0, res.output
    assert "rsps" in res.output and "ref/ours" in res.output
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert "  time-steps " in listing and "  bench " in listing and "The same as time-steps." in listing


def test_cli_table():
    res = CliRunner().invoke(
        time_steps_cmd, ["--methods", "rsps", "--size", "tiny", "--steps", "1", "--warmup", "0", "--no-reference"]
    )
    assert res.exit_code == 0, res.output
    assert "rsps" in res.output and "ref/ours" in res.output


def test_missing_xautodl_is_one_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("xautodl"):
            raise ImportError("no xautodl")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ReferenceMissing, match="pip install --no-deps xautodl"):
        time_steps(["darts-v1"], **QUICK)


def test_bad_size_is_a_config_error():
    with pytest.raises(ConfigError):
        time_one("rsps", size="huge", steps=1, warmup=0, reference=False)


# --- the supernet pieces the benchmark relies on ---------------------------------------------------------------------
def test_box_pool_equals_avg_pool():
    x = torch.randn(3, 5, 7, 6, dtype=torch.float64, requires_grad=True)
    ref = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    ours = box_sum(x) * inv_count(x)
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ref)
    (ga,) = torch.autograd.grad(ref, x, g)
    (gb,) = torch.autograd.grad(ours, x, g)
    torch.testing.assert_close(ga, gb)


def test_fast_options_default_off_and_bf16_on_cpu():
    torch.manual_seed(0)
    net = Supernet(SupernetConfig(C=4, N=1))
    x = torch.randn(2, 3, 8, 8)
    w = torch.softmax(torch.randn(6, 5), -1)
    assert net.amp_dtype is None and not net.channels_last
    base = net.forward_mixture(x, w)
    apply_fast_options(net, amp="bf16", channels_last=True)
    fast = net.forward_mixture(x, w)
    assert fast.dtype == torch.float32 and torch.isfinite(fast).all()
    torch.testing.assert_close(fast, base, atol=0.1, rtol=0.1)  # bf16: close, not equal
    apply_fast_options(net, amp="off", channels_last=False)
    torch.testing.assert_close(net.forward_mixture(x, w), base)
    with pytest.raises(ConfigError):
        apply_fast_options(net, amp="fp8")
    with pytest.raises(ConfigError):
        apply_fast_options(net, compile="fastest")


def test_fast_options_label():
    assert FastOptions().label == "eager"
    assert FastOptions(amp="bf16", channels_last=True).label == "amp=bf16,channels_last"
