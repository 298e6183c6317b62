"""Cost of one E2NAS search step relative to one GDAS step, on the same machine and supernet.

E2NAS step = decoder walk (with autograd to z) + weight step on up to 3 cells (a_t, a_prev, a_bar) + arch step
(hard straight-through forward/backward, novelty fit and log-likelihood, Adam on z). GDAS step = Gumbel sample +
weight step on 1 cell + Gumbel sample + arch step. The two are timed interleaved (E2NAS, GDAS, E2NAS, ...) so that
load from other processes on a shared machine hits both alike; the per-pair ratio's median is the figure to quote.

A step's cost depends on the ops of the cells it trains; E2NAS's z is put at the encoder mean of a random cell
before each step (with the committed weights that decodes to that cell), so both methods train random cells.
The E2NAS steps are timed in their most expensive regime: the archive full (novelty active, gamma = 0.5 so both
terms act) and a_prev set to a_t with one edge changed before every step, so a_t, a_prev and a_bar are three
distinct cells (3 weight passes; when the search stands still a_prev == a_t and it is 2).

    nas-suite e2nas time-step [--C 16 --N 5 --batch 64 --steps 5 --device cpu]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from nasbench_suite.config import Protocol
from nasbench_suite.method import SearchContext, make_context
from nasbench_suite.space import NUM_OPS, sample_cell
from nasbench_suite.supernet import Supernet, SupernetConfig
from nasbench_suite.timing import device_sync
from nasbench_suite_baselines.gdas import GDAS

from .search import E2NAS
from .vae import committed_or_standin


def _ctx(C: int, N: int, device: torch.device, seed: int) -> SearchContext:
    torch.manual_seed(seed)
    net = Supernet(SupernetConfig(C=C, N=N, num_classes=10)).to(device)
    return make_context(net, Protocol(C=C, N=N), seed=seed, steps_per_epoch=1, device=device)


def _gdas(ctx: SearchContext) -> GDAS:
    m = GDAS(GDAS.Hparams())
    m.setup(ctx)
    m.begin_epoch(0)
    return m


def bench_step(
    C: int = 16,
    N: int = 5,
    batch_size: int = 64,
    hw: int = 32,
    steps: int = 5,
    warmup: int = 1,
    device: str = "cpu",
    seed: int = 0,
    novelty_reps: int = 200,
) -> dict[str, Any]:
    """Time E2NAS and GDAS search steps interleaved; return medians, the ratio and the novelty/decode costs."""
    dev = torch.device(device)
    model, sha, note = committed_or_standin()
    e2 = E2NAS(E2NAS.Hparams(gamma="static:0.5"), vae=(model, sha))
    e2.setup(_ctx(C, N, dev, seed))
    e2.begin_epoch(0)
    rng = np.random.default_rng(seed)
    for _ in range(e2.hparams.archive_size):  # a full archive: the novelty term is active
        e2.novelty.append(sample_cell(rng).index)
    gdas = _gdas(_ctx(C, N, dev, seed))
    gen = torch.Generator().manual_seed(seed)

    def batch():
        x = torch.randn(batch_size, 3, hw, hw, generator=gen).to(dev)
        return x, torch.randint(0, 10, (batch_size,), generator=gen).to(dev)

    t_e2, t_gd, passes = _time_pairs(e2, gdas, batch, rng, dev, steps, warmup)
    ratios = [a / b for a, b in zip(t_e2, t_gd)]
    novelty_ms, decode_ms = _piece_costs(e2, dev, novelty_reps)
    return {
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "C": C,
        "N": N,
        "batch_size": batch_size,
        "hw": hw,
        "steps": steps,
        "vae": note or "committed",
        "vae_sha256": sha,
        "gdas": "nasbench_suite_baselines.gdas",
        "weight_passes_per_e2nas_step": statistics.median(passes),
        "e2nas_step_ms": 1000 * statistics.median(t_e2),
        "gdas_step_ms": 1000 * statistics.median(t_gd),
        "ratio_median_of_pairs": statistics.median(ratios),
        "ratio_of_medians": statistics.median(t_e2) / statistics.median(t_gd),
        "ratios": ratios,
        "novelty_ms": novelty_ms,
        "decode_ms": decode_ms,
    }


def _time_pairs(e2: E2NAS, gdas: GDAS, batch, rng, dev, steps: int, warmup: int):
    """``warmup + steps`` step pairs (E2NAS, then GDAS); the timed ones' seconds and E2NAS's weight passes."""
    t_e2, t_gd, passes = [], [], []
    for i in range(warmup + steps):
        # outside the timing: z at the encoder mean of a uniformly random cell (so E2NAS trains random cells, as
        # GDAS's near-uniform samples do: a step's cost depends on which ops the cell holds), and a_prev sharing all
        # but one edge with a_t
        with torch.no_grad():
            e2.z.copy_(e2._encode_one(sample_cell(rng).index))
        a_t = e2.derive(0).ops
        e2.a_prev = a_t[:-1] + ((a_t[-1] + 1) % NUM_OPS,)
        tb, vb, tb2, vb2 = batch(), batch(), batch(), batch()
        device_sync(dev)
        t0 = time.perf_counter()
        out = e2.search_step(tb, vb, 0, i)
        device_sync(dev)
        t1 = time.perf_counter()
        gdas.search_step(tb2, vb2, 0, i)
        device_sync(dev)
        t2 = time.perf_counter()
        if i >= warmup:
            t_e2.append(t1 - t0)
            t_gd.append(t2 - t1)
            passes.append(out["w_passes"])
    return t_e2, t_gd, passes


def _piece_costs(e2: E2NAS, dev, novelty_reps: int) -> tuple[float, float]:
    """Milliseconds per call of the novelty term (fit + log-likelihood + backward) and of the decoder walk
    (+ backward)."""

    def per_call_ms(fn, reps):
        fn()
        device_sync(dev)
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        device_sync(dev)
        return 1000 * (time.perf_counter() - t) / reps

    def novelty_call():
        e2.z.grad = None
        e2.novelty(e2.z).backward()

    def decode_call():
        e2.z.grad = None
        _, P = e2.propose()
        P.sum().backward()

    return per_call_ms(novelty_call, novelty_reps), per_call_ms(decode_call, max(novelty_reps // 10, 5))
