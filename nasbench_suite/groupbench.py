"""Timing of vectorized seeds (:mod:`nasbench_suite.seedgroup`): K seeds of one method as one group step.

Two measurements, each in one process with its sides interleaved (so load from other processes hits both alike):

* :func:`time_vectorized`: the group step of K = 1, 5, 16, 32 seeds against ONE reference (xautodl) process's step
  of the same method (:class:`~nasbench_suite.timing.reference_class`), as steps/s per seed-equivalent (K x group
  steps/s) over the reference's steps/s; on CUDA with the peak memory per K, and a K that runs out of device memory
  recorded instead of ending the measurement.
* :func:`time_group_vs_single`: the group step of K seeds against the K single-seed steps it replaces (our own
  :class:`~nasbench_suite.timing.OurStepper`, one per seed), i.e. what vectorizing gains over running the seeds one
  after another in one process.

:class:`GroupStepper` builds a :class:`~nasbench_suite.seedgroup.SeedGroup` without the runner: seed k's supernet,
method object and RNG streams are built as a run of seed k builds them (``seed_everything(k)``, then the supernet,
then :func:`~nasbench_suite.method.make_context` and the method's ``setup``), and each seed gets its own data stream;
only the dataset is synthetic (random images: the data do not change a step's cost). No CUDA graph is captured: the
stacked step is static (masked forwards) but capturing it is not built, and the results say so.

``scripts/gpu_check.py`` runs both; ``docs/performance.md`` has the figures and how to rerun them.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from .config import RunSpec, resolve
from .errors import ConfigError
from .method import OneShotMethod, get_method, make_context
from .numerics import numerics, torch_dtype
from .runner import seed_everything
from .seedgroup import SeedGroup, stack_optimizer, vectorize_reason
from .stacked import StackedSupernet
from .supernet import Supernet, SupernetConfig
from .timing import SIZES, OurStepper, device_sync, make_stream, reference_class, timing_protocol

#: The quick preset as it is (embedded digits: 8x8 images, C=8, N=1, batch 64), for the CPU comparison; every other
#: size is a :data:`nasbench_suite.timing.SIZES` entry on the nb201 protocol.
QUICK_PRESET = "quick-preset"
TIMING_SIZES = (*SIZES, QUICK_PRESET)
#: The slot for the CUDA-graph variant of every figure: capture of the whole group step is not built.
CUDA_GRAPH = "not built: the group step is static (masked forwards) but CUDA-graph capture is not implemented"
#: CUDA's out-of-memory error (``torch.OutOfMemoryError`` from torch 2.5; the GPU machine's torch may be older)
_OOM = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
#: The projection of a full search: the NB201 protocol's epochs x steps per epoch (25,000 images / batch 64).
EPOCHS, STEPS_PER_EPOCH = 250, 391


def timing_config(method: str, size: str):
    """The resolved config of ``method`` at timing ``size`` (a bench size on nb201, or the quick preset as is)."""
    if size == QUICK_PRESET:
        cls = get_method(method)
        return resolve(RunSpec(cls.name, 0, "quick", ()), cls.Hparams, cls.name)
    if size not in SIZES:
        raise ConfigError(f"unknown timing size {size!r}; choose one of: {', '.join(TIMING_SIZES)}")
    return timing_protocol(method, size)


def image_size(size: str) -> int:
    """The side of the synthetic images at timing ``size``."""
    return 8 if size == QUICK_PRESET else SIZES[size]["hw"]


def not_vectorized(method: str, size: str = "tiny") -> str:
    """Why ``method``'s seeds cannot run as one group step under its timing config ("" = they can)."""
    config = timing_config(method, size)
    return vectorize_reason(get_method(method), config.hparams, config.protocol)


@dataclass
class _Member:
    """What :class:`SeedGroup` and :func:`stack_optimizer` read of a run: its method, protocol, network and SGD."""

    method: OneShotMethod
    protocol: Any
    supernet: Supernet
    w_optimizer: torch.optim.Optimizer


def _torch_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


class GroupStepper:
    """K seeds (0..K-1) of ``method`` as one :class:`SeedGroup`, built without the runner, and its stacked batches.

    ``step()`` takes the method's group step on the next of ``pool`` pre-drawn stacked batch pairs (data loading is
    not timed); ``batches(i)`` gives pair i, ``(x (K, B, 3, H, W), y (K, B))`` per side, so that single-seed steppers
    can take seed k's slice of the same batches.
    """

    def __init__(self, method: str, size: str, K: int, device: str | torch.device = "cpu", pool: int = 4):
        self.device = device = torch.device(device)
        self.cls = cls = get_method(method)
        self.config = config = timing_config(method, size)
        self.protocol = p = config.protocol
        reason = vectorize_reason(cls, config.hparams, p)
        if reason:
            raise ConfigError(f"{cls.name}: no vectorized step ({reason})")
        self.K, self.notes = K, []
        members, rngs = [], []
        with self.numerics():
            for seed in range(K):
                seed_everything(seed)  # as Run.__init__: the supernet's initialisation is seed k's own
                net = Supernet(
                    SupernetConfig(p.C, p.N, 10, p.affine, p.track_running_stats, p.lastact_follows_flags)
                ).to(device, torch_dtype(p.dtype))
                ctx = make_context(net, p, seed=seed, steps_per_epoch=STEPS_PER_EPOCH, device=device)
                m, note = cls.for_timing(config.hparams)
                if note and note not in self.notes:
                    self.notes.append(note)
                m.setup(ctx)
                m.begin_epoch(0)
                members.append(_Member(m, p, net, ctx.w_optimizer))
                rngs.append(_torch_rng())  # seed k's torch stream after its setup, as its single run continues
            self.net = StackedSupernet([m.supernet for m in members])
            self.net.train()
            self.group = SeedGroup(members, self.net, stack_optimizer(members, self.net))
            for k, state in enumerate(rngs):
                self.group.set_torch_rng(k, state)
            hw, bs = image_size(size), p.batch_size
            streams = [
                (make_stream(4 * bs, hw, bs, device, 2 * k + 1), make_stream(4 * bs, hw, bs, device, 2 * k + 2))
                for k in range(K)
            ]
            self.pool = []
            dtype = torch_dtype(p.dtype)  # (the streams give float32 images; a run's follow its dtype)
            for _ in range(pool):
                draws = [(next(tr), next(va)) for tr, va in streams]
                self.pool.append(
                    tuple(
                        (
                            torch.stack([d[side][0] for d in draws]).to(dtype),
                            torch.stack([d[side][1] for d in draws]),
                        )
                        for side in (0, 1)
                    )
                )
        self._step = 0
        self.last: list[dict[str, float]] = []

    def numerics(self):
        """The protocol's numerics (dtype, oneDNN, determinism), as a run enters them around its epochs."""
        p = self.protocol
        return numerics(p.dtype, p.onednn, p.deterministic)

    def batches(self, i: int):
        """Stacked (train, valid) pair ``i`` of the pool."""
        return self.pool[i % len(self.pool)]

    def step(self, i: int | None = None) -> list[dict[str, float]]:
        """One group step (every seed's search step) on pool pair ``i`` (default: the next); per-seed log dicts."""
        train, valid = self.batches(self._step if i is None else i)
        with self.numerics():
            self.last = self.cls.group_step(self.group, train, valid, 0, self._step)
        self._step += 1
        return self.last


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    device_sync(device)
    t0 = time.perf_counter()
    fn()
    device_sync(device)
    return time.perf_counter() - t0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _seed_losses(logs: list[dict[str, float]]) -> list[float]:
    return [float(d.get("train_loss", d.get("valid_loss", float("nan")))) for d in logs]


def time_vectorized(
    method: str,
    ks: Sequence[int] = (1, 5, 16, 32),
    *,
    size: str = "search",
    device: str | torch.device = "cuda",
    steps: int = 5,
    warmup: int = 2,
    reference: bool = True,
    deadline: float | None = None,
    log: Callable[[str], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Group steps of K seeds of ``method`` for each K in ``ks`` (in that order), against one reference process.

    Per K: a fresh :class:`GroupStepper`; ``warmup`` untimed steps of each side, then ``steps`` timed steps,
    interleaved (ref, group, group, ref, ...). Returns (rows, skipped): a row per K measured, with the group's
    median ms/step, ``seed_equiv_steps_per_s`` = K x 1000 / that, the reference's median ms/step and steps/s,
    ``ratio_vs_ref`` = seed-equivalent steps/s over the reference's, the median of the per-pair ratios, the peak
    device memory (CUDA: ``torch.cuda.max_memory_allocated`` from building the group to its last step), and the
    group's per-seed losses; a K that runs out of device memory is a row with ``oom`` and its error instead, and
    every larger K of the method is skipped (listed in ``skipped``), as is every K once ``deadline`` has passed.
    ``log`` gets a line per row, ``on_row`` the row (e.g. to save partial results).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    ref = None
    has_ref = reference and reference_class(method) is not None
    oom_at: int | None = None
    for K in ks:
        if oom_at is not None and K >= oom_at:
            skipped.append(f"vectorized {method} K={K}: K={oom_at} ran out of device memory")
            continue
        if deadline is not None and time.time() > deadline:
            skipped.append(f"vectorized {method} K={K}: out of time")
            continue
        row: dict[str, Any] = {"method": method, "K": K, "size": size, "cuda_graph": CUDA_GRAPH}
        gs = ref_pool = None
        try:
            if has_ref and ref is None:
                config = timing_config(method, size)
                torch.manual_seed(0)
                ref = reference_class(method)(config.protocol, config.hparams, device=device, seed=0)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            gs = GroupStepper(method, size, K, device)
            row["build_s"] = time.perf_counter() - t0
            row["batch"] = gs.protocol.batch_size
            # the reference trains on seed 0's batches
            ref_pool = [tuple((x[0], y[0]) for x, y in gs.batches(i)) for i in range(len(gs.pool))]
            t_g, t_r = _time_pairs(gs, ref, ref_pool, warmup, steps, device)
            row.update(_row_figures(K, steps, t_g, t_r, gs.last))
            if gs.notes:
                row["note"] = "; ".join(gs.notes)
            if cuda:
                row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        except _OOM as e:  # record it, free the group, go on with the next K
            row.update(oom=True, error=_first_line(e))
            if cuda:
                row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            oom_at = K
        finally:
            del gs, ref_pool  # (the pool's slices hold the group's batches)
            _free(device)
        rows.append(row)
        if log:
            log(format_vectorized(row))
        if on_row:
            on_row(row)
    return rows, skipped


def _time_pairs(gs, ref, ref_pool, warmup: int, steps: int, device) -> tuple[list[float], list[float]]:
    """``warmup`` untimed steps of each side, then ``steps`` timed ones, interleaved (neither side always first);
    returns the group's and the reference's seconds per step."""
    t_g: list[float] = []
    t_r: list[float] = []
    for i in range(warmup):
        gs.step()
        if ref is not None:
            ref.step(*ref_pool[i % len(ref_pool)])
    for i in range(steps):
        order = (0, 1) if i % 2 == 0 or ref is None else (1, 0)
        for side in order:
            if side == 0:
                t_g.append(_timed(gs.step, device))
            elif ref is not None:
                pair = ref_pool[(warmup + i) % len(ref_pool)]
                t_r.append(_timed(partial(ref.step, *pair), device))
    return t_g, t_r


def _row_figures(K: int, steps: int, t_g: list[float], t_r: list[float], last) -> dict[str, Any]:
    """A row's figures from the timed seconds (see :func:`time_vectorized`); ``last``: the group's last logs."""
    out: dict[str, Any] = {}
    if not t_g:
        return out
    g_ms = 1e3 * statistics.median(t_g)
    out.update(
        steps=steps,
        group_ms=g_ms,
        group_all_ms=[1e3 * t for t in t_g],
        seed_equiv_steps_per_s=K * 1e3 / g_ms,
        seed_losses=_seed_losses(last),
    )
    if last and "w_passes" in last[0]:  # E2NAS: weight passes of the last step, mean over seeds
        out["w_passes"] = statistics.mean(d["w_passes"] for d in last)
    if t_r:
        r_ms = 1e3 * statistics.median(t_r)
        out.update(
            ref_ms=r_ms,
            ref_all_ms=[1e3 * t for t in t_r],
            ref_steps_per_s=1e3 / r_ms,
            ratio_vs_ref=out["seed_equiv_steps_per_s"] * r_ms / 1e3,
            pair_ratio=statistics.median(K * r / g for r, g in zip(t_r, t_g)),
        )
    return out


def format_vectorized(row: dict[str, Any]) -> str:
    """One line of the vectorized table."""
    head = f"vectorized {row['method']:9s} K={row['K']:2d}"
    if row.get("oom"):
        return f"{head}: out of device memory ({row.get('error', '')}); peak {row.get('peak_mib', 0):.0f} MiB"
    if "group_ms" not in row:
        return f"{head}: no figures"
    line = f"{head}: group {row['group_ms']:9.1f} ms/step = {row['seed_equiv_steps_per_s']:8.2f} seed-steps/s"
    if "ref_ms" in row:
        line += f"; ref {row['ref_ms']:8.1f} ms/step -> {row['ratio_vs_ref']:6.2f}x one reference process"
    if "peak_mib" in row:
        line += f"; peak {row['peak_mib']:.0f} MiB"
    return line


def e2nas_projection(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A full E2NAS search (250 epochs x 391 steps) per seed-equivalent from its measured group steps, per K.

    ``as_measured_h``: the group's ms/step / K x 250 x 391. The timed steps are a fresh search's first (archive
    empty, a_prev = a_t), so when a row's losses carry ``w_passes`` the ``worst_case_h`` scales by (3 + 1) / (passes
    + 1): the static step's passes all cost the same (every op is computed), and a step has at most 3 weight passes
    and one arch pass."""
    out: dict[str, Any] = {"epochs": EPOCHS, "steps_per_epoch": STEPS_PER_EPOCH, "per_K": {}}
    for r in rows:
        if r.get("method") != "e2nas" or "group_ms" not in r:
            continue
        h = r["group_ms"] / r["K"] * EPOCHS * STEPS_PER_EPOCH / 3.6e6
        entry = {"ms_per_seed_step": r["group_ms"] / r["K"], "as_measured_h": h}
        if r.get("w_passes"):
            entry["w_passes"] = r["w_passes"]
            entry["worst_case_h"] = h * 4.0 / (r["w_passes"] + 1.0)
        out["per_K"][str(r["K"])] = entry
    if out["per_K"]:
        best = min(out["per_K"].items(), key=lambda kv: kv[1].get("worst_case_h", kv[1]["as_measured_h"]))
        out["best_K"] = int(best[0])
        out["best_h"] = best[1].get("worst_case_h", best[1]["as_measured_h"])
    return out


def time_group_vs_single(
    method: str,
    K: int = 5,
    *,
    size: str = QUICK_PRESET,
    device: str | torch.device = "cpu",
    steps: int = 5,
    warmup: int = 1,
) -> dict[str, Any]:
    """The group step of K seeds against the K single-seed steps it replaces, interleaved in this process.

    Singles: one :class:`~nasbench_suite.timing.OurStepper` per seed (built after ``seed_everything(k)``, so its
    supernet is seed k's), each stepped on seed k's slice of the group's batches; one timed unit = all K of them in
    a row. Returns the medians (ms), ``ratio`` = singles / group (> 1: the group step is faster) and the median of
    the per-pair ratios."""
    device = torch.device(device)
    gs = GroupStepper(method, size, K, device)
    singles = []
    for k in range(K):
        seed_everything(k)
        singles.append(OurStepper(method, gs.config, device, seed=k))

    def run_singles(i: int) -> None:
        train, valid = gs.batches(i)
        with gs.numerics():
            for k, st in enumerate(singles):
                st.step((train[0][k], train[1][k]), (valid[0][k], valid[1][k]))

    for i in range(warmup):
        gs.step(i)
        run_singles(i)
    t_g, t_s = [], []
    for i in range(steps):
        j = warmup + i
        if i % 2 == 0:
            t_s.append(_timed(partial(run_singles, j), device))
            t_g.append(_timed(partial(gs.step, j), device))
        else:
            t_g.append(_timed(partial(gs.step, j), device))
            t_s.append(_timed(partial(run_singles, j), device))
    g_ms, s_ms = 1e3 * statistics.median(t_g), 1e3 * statistics.median(t_s)
    return {
        "method": method,
        "K": K,
        "size": size,
        "batch": gs.protocol.batch_size,
        "steps": steps,
        "group_ms": g_ms,
        "singles_ms": s_ms,
        "ratio": s_ms / g_ms,
        "pair_ratio": statistics.median(s / g for s, g in zip(t_s, t_g)),
        "group_all_ms": [1e3 * t for t in t_g],
        "singles_all_ms": [1e3 * t for t in t_s],
        "seed_losses": _seed_losses(gs.last),
        "note": "; ".join(gs.notes),
    }


def goals(rows: Sequence[dict[str, Any]], goal_k: int = 16, target: float = 20.0, hours: float = 1.0) -> dict:
    """Issue 17's goals from the vectorized rows: DARTS-V1 and GDAS at K = ``goal_k`` at least ``target`` x one
    reference process's steps/s, and a full E2NAS search at most ``hours`` per seed-equivalent (at its best K)."""
    out: dict[str, Any] = {}
    for m in ("darts-v1", "gdas"):
        r = next((r for r in rows if r.get("method") == m and r.get("K") == goal_k), None)
        v = None if r is None else r.get("ratio_vs_ref")
        if v is not None:
            why = None
        elif r is None:
            why = "no row for it (out of time, not vectorized, or the method failed: see the rows and skipped)"
        else:
            why = r.get("error") or "no reference timing in its row (xautodl missing?)"
        out[f"{m} K={goal_k} >= {target:g}x one reference process"] = {
            "measured": v,
            "met": None if v is None else v >= target,
            "why_not_measured": why,
        }
    proj = e2nas_projection(rows)
    best = proj.get("best_h")
    out[f"e2nas 250 epochs <= {hours:g} h per seed-equivalent"] = {
        "measured_h": best,
        "at_K": proj.get("best_K"),
        "met": None if best is None else best <= hours,
        "why_not_measured": None if best is not None else "no E2NAS group step measured",
    }
    return out
