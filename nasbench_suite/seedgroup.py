"""K seeds of one method as one vectorized search (``nas-suite run --vectorize``).

The K runs of a group are ordinary :class:`~nasbench_suite.runner.Run` objects, each built exactly as it is alone
(its own seed, data streams, supernet initialisation, method state, RNG streams); only the search steps of an epoch
run together: before the epoch the K supernets and their SGD states are stacked into one
:class:`~nasbench_suite.stacked.StackedSupernet`, the method's :meth:`~nasbench_suite.method.OneShotMethod.group_step`
takes every seed's step at once, and after the epoch each seed's slice is written back. Everything else of an epoch
(the method's ``end_epoch``, the architecture distribution, ranking quality, derivation, the benchmark query, the
metrics line, the checkpoint) then runs per seed, through the same code as a single run, under that seed's own RNG
state. So every seed's record is its single run's record (cells equal, losses equal to float rounding: grouped
kernels), a group resumes from its members' ordinary checkpoints, and a record tells how it ran only in its
timings (``vectorized_seeds``, the search time as the group's time / K).

A method's ``group_step`` gets a :class:`SeedGroup`: the stacked network, the members (the K method objects, whose
arch parameters and optimisers stay their own), per-seed torch RNG (:meth:`SeedGroup.rng`), the per-seed weight step
(:meth:`SeedGroup.weight_step`: per-seed clipping, the exact per-op SGD of every seed) and per-seed losses.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .method import OneShotMethod, protocol_sgd
from .runner import Run, _rng_restore, _rng_snapshot
from .sgd import masked_sgd_step
from .stacked import StackedSupernet

log = logging.getLogger(__name__)

#: ``--vectorize`` values: ``auto`` = on a GPU, vectorize the seeds of every method that can (on a CPU every seed
#: runs alone: there a batch-64 step is compute-bound, and the measured vectorized step is no faster for DARTS and
#: slower for the discrete methods, whose static step computes every op: docs/performance.md); ``on`` = vectorize
#: on any device, a method that cannot is an error; ``off`` = every seed its own run
VECTORIZE_MODES = ("auto", "on", "off")


def vectorize_reason(cls: type[OneShotMethod], hparams: Any, protocol: Any) -> str:
    """Why K seeds of ``cls`` under these settings cannot run as one vectorized search ("" = they can)."""
    if protocol.compile != "off":
        return "compile is set (the compiled forward is per network)"
    if protocol.channels_last:
        return "channels_last is set (the stacked network runs NCHW)"
    return cls.vectorize_reason(hparams)


class SeedGroup:
    """What :meth:`OneShotMethod.group_step` works with (see the module docstring)."""

    def __init__(self, runs: Sequence[Run], net: StackedSupernet, w_optimizer: torch.optim.Optimizer):
        self.runs = list(runs)
        self.K = len(runs)
        self.net = net
        self.w_optimizer = w_optimizer
        self.protocol = runs[0].protocol
        #: the K method objects, seed order
        self.members: list[OneShotMethod] = [r.method for r in runs]
        self._torch_rng: list[dict[str, Any]] = [{} for _ in runs]

    # -- per-seed random numbers ------------------------------------------------------------------------------
    def set_torch_rng(self, k: int, state: dict[str, Any]) -> None:
        """Seed k's torch RNG state (``{"torch": cpu_state, "cuda": [...]}``, from :func:`runner._rng_snapshot`)."""
        self._torch_rng[k] = {key: state[key] for key in ("torch", "cuda") if key in state}

    @contextlib.contextmanager
    def rng(self, k: int) -> Iterator[None]:
        """Inside: torch's global RNG is seed k's own stream (what its single run draws from at this point)."""
        saved = torch.get_rng_state()
        cuda = torch.cuda.is_available() and "cuda" in self._torch_rng[k]
        saved_cuda = torch.cuda.get_rng_state_all() if cuda else None
        torch.set_rng_state(self._torch_rng[k]["torch"])
        if cuda:
            torch.cuda.set_rng_state_all(self._torch_rng[k]["cuda"])
        try:
            yield
        finally:
            self._torch_rng[k]["torch"] = torch.get_rng_state()
            if cuda:
                self._torch_rng[k]["cuda"] = torch.cuda.get_rng_state_all()
                torch.cuda.set_rng_state_all(saved_cuda)
            torch.set_rng_state(saved)

    # -- losses and the weight step -----------------------------------------------------------------------------
    @staticmethod
    def ce_and_acc(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per seed: the cross-entropy (mean over its batch) and the top-1 accuracy (%), both (K,).
        ``logits`` (K, B, classes), ``target`` (K, B)."""
        K, B, n = logits.shape
        loss = F.cross_entropy(logits.reshape(K * B, n), target.reshape(-1), reduction="none").view(K, B).mean(1)
        acc = (logits.detach().argmax(-1) == target).to(logits.dtype).mean(1) * 100.0
        return loss, acc

    def weight_step(
        self,
        losses: torch.Tensor,
        also_clip: Sequence[Sequence[torch.Tensor]] | None = None,
        keep_also_clip_grads: bool = False,
        clip: bool = True,
    ) -> None:
        """Every seed's :meth:`SearchContext.weight_step` at once: backward of the K losses, each seed's gradient
        clipped by its own norm (its weights and ``also_clip[k]``: the arch parameters the reference's clip sees),
        then the per-op exact SGD step of every seed (:meth:`StackedSupernet.sgd_row_masks`)."""
        net, K = self.net, self.K
        net.begin_weight_step(self.protocol.sgd_semantics)
        self.w_optimizer.zero_grad(set_to_none=True)
        extra = [list(ts) for ts in also_clip] if also_clip is not None else [[] for _ in range(K)]
        if not keep_also_clip_grads:
            for ts in extra:
                for t in ts:
                    t.grad = None
        losses.sum().backward()
        if clip and self.protocol.grad_clip > 0:
            sq = net.seed_grad_norms().pow(2)
            sq = sq + torch.stack(
                [sum((t.grad.pow(2).sum() for t in ts if t.grad is not None), sq.new_zeros(())) for ts in extra]
            )
            # torch.nn.utils.clip_grad_norm_'s arithmetic, per seed
            coef = (self.protocol.grad_clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            for p in net.parameters():
                if p.grad is not None:
                    p.grad.mul_(coef.view(K, *([1] * (p.dim() - 1))))
            for k, ts in enumerate(extra):
                for t in ts:
                    if t.grad is not None:
                        t.grad.mul_(coef[k])
        masked_sgd_step(self.w_optimizer, net.sgd_row_masks(), set())

    @staticmethod
    def logs(**columns: torch.Tensor | Sequence[float] | float) -> list[dict[str, float]]:
        """Per-seed log dicts from (K,) columns (one host transfer per column); a plain number is every seed's."""
        cols = {
            k: (v.detach().tolist() if isinstance(v, torch.Tensor) else v if isinstance(v, list | tuple) else None)
            for k, v in columns.items()
        }
        K = max(len(v) for v in cols.values() if v is not None)
        return [{k: float(columns[k] if v is None else v[i]) for k, v in cols.items()} for i in range(K)]


# --- stacking the seeds' SGD states -------------------------------------------------------------------------------
def stack_optimizer(runs: Sequence[Run], net: StackedSupernet) -> torch.optim.Optimizer:
    """The protocol's SGD over the stacked parameters, with every seed's momentum buffers (zeros where a seed has
    none yet: the same next step, see :mod:`nasbench_suite.sgd`) and the current learning rate."""
    opt = protocol_sgd(net.parameters(), runs[0].protocol)
    opt.param_groups[0]["lr"] = runs[0].w_optimizer.param_groups[0]["lr"]
    per_run = [list(r.supernet.parameters()) for r in runs]
    for i, p in enumerate(net.parameters()):
        bufs = [r.w_optimizer.state.get(ps[i], {}).get("momentum_buffer") for r, ps in zip(runs, per_run)]
        if all(b is None for b in bufs):
            continue
        with torch.no_grad():
            stacked = torch.stack([torch.zeros_like(ps[i]) if b is None else b for b, ps in zip(bufs, per_run)])
        opt.state[p]["momentum_buffer"] = stacked
    return opt


def unstack_optimizer(opt: torch.optim.Optimizer, net: StackedSupernet, runs: Sequence[Run]) -> None:
    """Write every seed's slice of the stacked momentum buffers back into its run's SGD."""
    per_run = [list(r.supernet.parameters()) for r in runs]
    for i, p in enumerate(net.parameters()):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is None:
            continue
        for k, (r, ps) in enumerate(zip(runs, per_run)):
            r.w_optimizer.state[ps[i]]["momentum_buffer"] = buf[k].detach().clone()


# --- one epoch of a group ---------------------------------------------------------------------------------------
def run_group_epoch(runs: Sequence[Run], epoch: int, snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Epoch ``epoch`` of every run of the group; ``snapshots[k]``: run k's RNG state (updated in place).
    Returns each run's metrics line."""
    cls = runs[0].method_cls
    K = len(runs)
    with runs[0].numerics():
        t0 = time.perf_counter()
        for k, r in enumerate(runs):
            _rng_restore(snapshots[k])
            r.begin_epoch(epoch)
            snapshots[k] = _rng_snapshot()
        net = StackedSupernet([r.supernet for r in runs])
        net.train()
        group = SeedGroup(runs, net, stack_optimizer(runs, net))
        for k in range(K):
            group.set_torch_rng(k, snapshots[k])
        sums: list[dict[str, float]] = [{} for _ in runs]
        for step in range(runs[0].steps_per_epoch):
            batches = [r.next_batches() for r in runs]
            train = (torch.stack([b[0][0] for b in batches]), torch.stack([b[0][1] for b in batches]))
            valid = (torch.stack([b[1][0] for b in batches]), torch.stack([b[1][1] for b in batches]))
            outs = cls.group_step(group, train, valid, epoch, step)
            for k, r in enumerate(runs):
                r.add_step(sums[k], outs[k], epoch, step)
        net.write_back([r.supernet for r in runs])
        unstack_optimizer(group.w_optimizer, net, runs)
        for k in range(K):
            snapshots[k].update(group._torch_rng[k])
        if runs[0].device.type == "cuda":
            torch.cuda.synchronize()
        shared = (time.perf_counter() - t0) / K  # each seed's share of the vectorized steps
        lines = []
        for k, r in enumerate(runs):
            _rng_restore(snapshots[k])
            t1 = time.perf_counter()
            r.method.end_epoch(epoch)
            lines.append(r.finish_epoch(epoch, sums[k], shared + time.perf_counter() - t1))
            snapshots[k] = _rng_snapshot()
    return lines


def execute_group(runs: Sequence[Run], progress=None, stop_after: int | None = None) -> list[dict[str, Any] | None]:
    """Run (or resume) every run of the group to the end as one vectorized search; returns the records.

    Runs resume from their own checkpoints; a run behind the others (killed between two members' checkpoints) first
    catches up alone. ``stop_after=k``: stop after epoch k's checkpoints, as a killed process (returns Nones)."""
    runs = list(runs)
    for r in runs:
        r.vectorized_seeds = len(runs)
    resumed, snapshots = [], []
    for r in runs:
        resumed.append(r.start(progress))
        if not resumed[-1]:  # a fresh run starts from the RNG state its construction left (seed_everything(seed))
            _rng_restore(r._initial_rng)
        snapshots.append(_rng_snapshot())
    target = max(len(r.epochs_done) for r in runs)
    for k, r in enumerate(runs):
        _rng_restore(snapshots[k])
        while len(r.epochs_done) < target:
            r.end_epoch(r.run_epoch(len(r.epochs_done)))
        snapshots[k] = _rng_snapshot()
    for epoch in range(target, runs[0].protocol.epochs):
        if stop_after is not None and epoch >= stop_after:
            return [None] * len(runs)
        lines = run_group_epoch(runs, epoch, snapshots)
        for k, (r, line) in enumerate(zip(runs, lines)):
            _rng_restore(snapshots[k])  # the checkpoint holds this run's own RNG state
            r.end_epoch(line)
    return [r.finish(res) for r, res in zip(runs, resumed)]


# --- groups in a plan, and their ownership ------------------------------------------------------------------------
def group_plan(plan: Sequence[Any], vectorize: str, device: str = "cpu") -> list[list[Any]]:
    """The plan as units of work: the seeds of one method and configuration together (in plan order) when
    ``vectorize`` is ``on``, or ``auto`` on a CUDA ``device``, and the method can (``on``: a ConfigError naming one
    that cannot); each run alone otherwise. Units come in the order of their first run in the plan."""
    import dataclasses

    from .config import resolve
    from .errors import ConfigError
    from .method import get_method

    if vectorize not in VECTORIZE_MODES:
        raise ConfigError(f"--vectorize must be one of {', '.join(VECTORIZE_MODES)}, got {vectorize!r}")
    if vectorize == "off" or (vectorize == "auto" and not str(device).startswith("cuda")):
        return [[spec] for spec in plan]
    units: list[list[Any]] = []
    unit_of: dict[Any, int] = {}
    reasons: dict[Any, str] = {}
    for spec in plan:
        key = dataclasses.replace(spec, seed=0)  # the seed plays no part in the configuration
        if key not in reasons:
            cls = get_method(spec.method)
            cfg = resolve(spec, cls.Hparams, cls.name)
            reasons[key] = vectorize_reason(cls, cfg.hparams, cfg.protocol)
            if reasons[key] and vectorize == "on":
                raise ConfigError(f"--vectorize on: {spec.method} cannot run its seeds as one search ({reasons[key]})")
        if not reasons[key] and key in unit_of:
            units[unit_of[key]].append(spec)
            continue
        if not reasons[key]:
            unit_of[key] = len(units)
        units.append([spec])
    return units


def run_group(specs: Sequence[Any], options: Any, progress=None, benchmark=None) -> list[tuple[str, Any]]:
    """Execute the runs of one unit as one vectorized search, each under its own claim
    (:func:`nasbench_suite.ownership.claim_run`, as a run alone): a finished run is returned as stored (not rerun), a
    run another live process holds is left to it. Returns ``(status, record or error)`` per spec: ``skipped`` /
    ``claimed`` / ``done``. ``benchmark``: the open benchmark (else opened once here)."""
    from .benchmarks import open_benchmark
    from .claims import ClaimHeld
    from .ownership import claim_run, heartbeat_progress

    results: dict[str, tuple[str, Any]] = {}
    claims = {}
    try:
        for spec in specs:
            try:
                record, claim = claim_run(spec, options)
            except ClaimHeld as e:
                results[spec.run_id] = ("claimed", e)
                continue
            if claim is None:
                results[spec.run_id] = ("skipped", record)
            else:
                claims[spec.run_id] = claim
        todo = [spec for spec in specs if spec.run_id in claims]
        if todo:
            bench = benchmark if benchmark is not None else open_benchmark(options.benchmark)
            runs = [Run(spec, options, bench) for spec in todo]
            for spec, record in zip(todo, execute_group(runs, heartbeat_progress(claims, progress))):
                results[spec.run_id] = ("done", record)
    finally:
        for c in claims.values():
            c.release()
    return [results[spec.run_id] for spec in specs]
