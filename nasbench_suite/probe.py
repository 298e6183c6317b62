"""Known-landscape probe of every method's search mechanism (``nas-suite probe-search``).

Does a method's arch update find a good cell at all, independently of supernet training? The probe swaps the
supernet for :class:`ProbeNet`, a stand-in with the same forward modes (``forward_mixture``, ``forward_hard``,
``forward_cell``) whose "loss" is a known, differentiable landscape, and runs each registered method's own
``search_step`` / ``end_epoch`` / ``derive`` on it, unchanged, for a fixed budget of steps from several seeds.

The landscape: an additive per-edge, per-op score ``s(cell) = b + sum_e W[e, cell_e]`` fitted by least squares
to the embedded benchmark's CIFAR-10 accuracies (all 15,625 cells), so its best cell is known (the argmax of
``W`` per edge) and every cell has a rank. The stand-in turns the method's own cell weights into a cost
``c = sum_{e,o} weights[e, o] C[e, o]``, ``C = (max_o W[e] - W[e, o]) / sigma`` (sigma: the score's spread over the
space), so that

* DARTS-V1/V2 and SETN's arch step see the softmax mixture ``sum softmax(alpha) C``,
* GDAS and E2NAS see their straight-through hard weights (the value of the chosen cell, the gradient through
  the probabilities, non-chosen entries included, as the real ``forward_hard``),
* ENAS's controller, SETN's and RSPS's candidate scoring see the discrete cell's cost.

A "batch" is ``x`` = per-sample thresholds ``q_i`` drawn uniformly from ``[0, c_max]`` and ``y = 0``; the logits are
``[0, c - q_i + w]``, so the cross-entropy is ``softplus(c - q_i)`` (smooth, increasing in ``c``) and the accuracy is
the share of samples with ``q_i > c``, i.e. about ``1 - c / c_max``: a graded reward for ENAS and the selection
scores. ``w`` is one weight held at 0 (the weight optimiser's learning rate is 0: the probe runs the arch update
alone); it exists so that weight steps and DARTS-V2's unrolled step have a weight gradient to take. With frozen
weights DARTS-V2's second-order term (proportional to the weight learning rate) is 0: here it equals DARTS-V1.

Reported per method and seed: the rank percentile of the derived cell after every epoch (100 * rank / 15,625, rank
1 = the surrogate's best; "top 5 %" = percentile <= 5) and the reached cell's benchmark accuracy and its percentile.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import torch.nn as nn

from .errors import ConfigError
from .space import NUM_CELLS, NUM_EDGES, NUM_OPS, Cell, all_ops_array

TOP = 5.0  # "top 5 %": the percentile the probe's goal is stated in


# -- the landscape ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Landscape:
    """The fitted additive score and everything derived from it (arrays indexed like :func:`all_ops_array`)."""

    W: np.ndarray  # (6, 5) per-edge op scores, each row centred
    bias: float
    r2: float  # of the least-squares fit on all cells
    score: np.ndarray  # (15625,) surrogate score of every cell
    acc: np.ndarray  # (15625,) the benchmark accuracy it was fitted to
    cost: np.ndarray  # (6, 5) C = (max_o W[e] - W[e, o]) / sigma, >= 0, 0 at the best op of each edge
    source: str

    @property
    def best(self) -> Cell:
        return Cell(tuple(int(o) for o in self.W.argmax(1)))

    def percentile(self, cell: Cell) -> float:
        """100 * rank / 15,625 under the surrogate (rank 1 = best; ties share the better rank)."""
        return 100.0 * (1 + int((self.score > self.score[cell.index] + 1e-9).sum())) / NUM_CELLS

    def acc_percentile(self, cell: Cell) -> float:
        """The same rank percentile under the benchmark's own accuracy."""
        return 100.0 * (1 + int((self.acc > self.acc[cell.index] + 1e-9).sum())) / NUM_CELLS


def fit_landscape(accuracies: dict[int, float] | None = None, source: str = "") -> Landscape:
    """Least-squares additive fit ``acc ~ b + sum_e W[e, op_e]`` over all cells (default: the embedded table)."""
    if accuracies is None:
        from .benchmarks import EmbeddedBenchmark

        bench = EmbeddedBenchmark()  # its table: one row per cell (Cell.index), one column per dataset
        col = bench.table[:, bench.datasets.index("cifar10")]
        accuracies, source = {i: float(a) for i, a in enumerate(col)}, bench.provenance
    ops = all_ops_array()
    if len(accuracies) != NUM_CELLS:
        raise ConfigError(f"the landscape needs accuracies of all {NUM_CELLS} cells, got {len(accuracies)}")
    acc = np.array([accuracies[i] for i in range(NUM_CELLS)], dtype=np.float64)
    X = np.zeros((NUM_CELLS, NUM_EDGES * NUM_OPS))
    X[np.arange(NUM_CELLS)[:, None], np.arange(NUM_EDGES) * NUM_OPS + ops] = 1.0
    X = np.hstack([X, np.ones((NUM_CELLS, 1))])
    coef, *_ = np.linalg.lstsq(X, acc, rcond=None)  # rank-deficient (each edge's one-hot sums to 1): min-norm
    W = coef[:-1].reshape(NUM_EDGES, NUM_OPS)
    shift = W.mean(1, keepdims=True)
    W = W - shift
    bias = float(coef[-1] + shift.sum())
    score = bias + W[np.arange(NUM_EDGES), ops].sum(1)
    r2 = 1.0 - float(((acc - score) ** 2).sum() / ((acc - acc.mean()) ** 2).sum())
    cost = (W.max(1, keepdims=True) - W) / score.std()
    return Landscape(W, bias, r2, score, acc, cost, source)


# -- the stand-in supernet --------------------------------------------------------------------------------------
class ProbeNet(nn.Module):
    """A stand-in for :class:`~nasbench_suite.supernet.Supernet` whose output encodes the landscape's cost of the
    cell weights it is given (see the module docstring)."""

    num_search_cells = 1

    def __init__(self, cost: np.ndarray):
        super().__init__()
        self.register_buffer("C", torch.as_tensor(cost, dtype=torch.get_default_dtype()))
        self.w = nn.Parameter(torch.zeros(()))  # held at 0 (lr 0); gives weight steps a gradient to take

    def _logits(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = c - q + self.w
        return torch.stack([torch.zeros_like(t), t], 1)

    def forward_mixture(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self._logits(x, (weights * self.C).sum())

    def forward_hard(self, x: torch.Tensor, hardwts: torch.Tensor, index) -> torch.Tensor:
        return self._logits(x, (hardwts * self.C).sum())

    def cell_cost(self, cell: Cell) -> torch.Tensor:
        return self.C[torch.arange(NUM_EDGES), torch.tensor(cell.ops)].sum()

    def forward_cell(self, x: torch.Tensor, cell: Cell | Sequence[Cell]) -> torch.Tensor:
        cells = [cell] if isinstance(cell, Cell) else list(cell)
        return self._logits(x, torch.stack([self.cell_cost(c) for c in cells]).mean())

    forward = forward_cell

    # the weight step's per-(edge, op) SGD bookkeeping (nasbench_suite/sgd.py): one plain parameter, always updated
    def begin_weight_step(self, semantics: str) -> None:
        pass

    def sgd_row_masks(self) -> tuple[dict, set]:
        return {}, set()


def threshold_batches(n: int, c_max: float, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless probe batches: ``n`` thresholds uniform in [0, c_max], labels 0, from a generator seeded by ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    y = torch.zeros(n, dtype=torch.long)
    while True:
        yield torch.rand(n, generator=gen) * c_max, y


# -- one probe run ----------------------------------------------------------------------------------------------
@dataclass
class ProbeRun:
    """One method (with its overrides) from one seed: the derived cell's percentile after each epoch."""

    label: str
    method: str
    overrides: dict[str, str]
    seed: int
    steps_per_epoch: int
    cells: list[str] = field(default_factory=list)
    percentiles: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def steps_to(self, top: float = TOP) -> int | None:
        """Arch steps until the derived cell was first within the top ``top`` percent (None: never)."""
        for k, p in enumerate(self.percentiles):
            if p <= top:
                return (k + 1) * self.steps_per_epoch
        return None

    def at_step(self, step: int) -> float:
        """The percentile of the cell derived at the last epoch end at or before ``step``."""
        k = min(max(step // self.steps_per_epoch, 1), len(self.percentiles))
        return self.percentiles[k - 1]


def probe_one(
    method: str,
    seed: int,
    land: Landscape,
    epochs: int,
    steps_per_epoch: int,
    protocol: str = "quick",
    overrides: dict[str, str] | None = None,
    label: str | None = None,
) -> ProbeRun:
    """Run ``method``'s own search steps on :class:`ProbeNet` for ``epochs`` x ``steps_per_epoch`` steps."""
    from .config import RunSpec, resolve
    from .method import get_method, make_context
    from .runner import seed_everything

    cls = get_method(method)
    over = dict(overrides or {})
    over.update(epochs=str(epochs))
    spec = RunSpec(cls.name, seed, protocol, tuple(sorted(over.items())))
    config = resolve(spec, cls.Hparams, cls.name)
    p = config.protocol
    seed_everything(seed)
    net = ProbeNet(land.cost)
    c_max = float(land.cost.max(1).sum())  # the worst cell's cost
    streams = [threshold_batches(p.batch_size, c_max, 2 * seed + k) for k in (1, 2)]
    ctx = make_context(
        net,
        p,
        seed=seed,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        w_optimizer=torch.optim.SGD(net.parameters(), lr=0.0),  # the arch update alone: weights never move
        selection_batches=lambda epoch, augment=None, salt=0: threshold_batches(
            p.select_batch_size, c_max, 10_000 * (seed + 1) + epoch + 1_000_003 * salt
        ),
    )
    m = cls(config.hparams)
    m.setup(ctx)
    run = ProbeRun(label or m.variant(), cls.name, dict(overrides or {}), seed, steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        m.begin_epoch(epoch)
        for step in range(steps_per_epoch):
            m.search_step(next(streams[0]), next(streams[1]), epoch, step)
        m.end_epoch(epoch)
        cell = m.derive(epoch)
        run.cells.append(cell.arch_str)
        run.percentiles.append(land.percentile(cell))
    run.wall_s = time.perf_counter() - t0
    return run


# -- the probe over methods and seeds ---------------------------------------------------------------------------
def default_entries() -> list[tuple[str, dict[str, str]]]:
    """Every registered method at its defaults, plus E2NAS with gamma = 0 and E2NAS (official code)."""
    from .method import method_names

    out: list[tuple[str, dict[str, str]]] = [(m, {}) for m in method_names()]
    if "e2nas" in method_names():
        out += [("e2nas", {"gamma": "static:0"}), ("e2nas", {"official": "true"})]
    return out


def entry_label(method: str, overrides: dict[str, str]) -> str:
    from .method import get_method

    cls = get_method(method)
    base = cls(_hparams(cls, overrides)).variant()
    extra = {k: v for k, v in overrides.items() if k != "official"}
    return base + (" [" + ", ".join(f"{k}={v}" for k, v in sorted(extra.items())) + "]" if extra else "")


def _hparams(cls, overrides: dict[str, str]):
    from .config import RunSpec, resolve

    return resolve(RunSpec(cls.name, 0, "quick", tuple(sorted(overrides.items()))), cls.Hparams, cls.name).hparams


def probe_search(
    entries: Sequence[tuple[str, dict[str, str]]] | None = None,
    seeds: int = 10,
    epochs: int = 40,
    steps_per_epoch: int = 5,
    protocol: str = "quick",
    land: Landscape | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Probe ``entries`` (method, overrides) from ``seeds`` seeds; returns the landscape summary, every run, and a
    summary row per entry (see :func:`summarise`)."""
    land = land or fit_landscape()
    entries = list(entries) if entries is not None else default_entries()
    runs: list[ProbeRun] = []
    for method, over in entries:
        label = entry_label(method, over)
        for seed in range(seeds):
            r = probe_one(method, seed, land, epochs, steps_per_epoch, protocol, over, label)
            runs.append(r)
            if echo:
                echo(f"{label:40s} seed {seed}: {r.percentiles[-1]:7.3f} % {r.cells[-1]} ({r.wall_s:.1f}s)")
    return {
        "landscape": {
            "best": land.best.arch_str,
            "r2": land.r2,
            "W": land.W.round(4).tolist(),
            "bias": land.bias,
            "source": land.source,
            "best_acc": float(land.acc[land.best.index]),
            "best_acc_percentile": land.acc_percentile(land.best),
        },
        "budget": {
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "steps": epochs * steps_per_epoch,
            "protocol": protocol,
            "seeds": seeds,
        },
        "runs": [asdict(r) for r in runs],
        "summary": summarise(runs, land),
    }


def summarise(runs: Sequence[ProbeRun], land: Landscape, reference: str = "DARTS-V1") -> list[dict[str, Any]]:
    """One row per label: final percentile (median, mean), seeds in the top 5 % at the end and within the steps
    ``reference`` needs to get all its seeds there, median steps to the top 5 %, the reached cells' accuracy."""
    labels = list(dict.fromkeys(r.label for r in runs))
    ref_runs = [r for r in runs if r.label == reference]
    ref_need = [r.steps_to() for r in ref_runs]
    budget = max(ref_need) if ref_runs and all(s is not None for s in ref_need) else None
    rows = []
    for label in labels:
        rs = [r for r in runs if r.label == label]
        final = [r.percentiles[-1] for r in rs]
        need = [r.steps_to() for r in rs]
        reached = [s for s in need if s is not None]
        accs = [float(land.acc[Cell.parse(r.cells[-1]).index]) for r in rs]
        rows.append(
            {
                "label": label,
                "method": rs[0].method,
                "seeds": len(rs),
                "final_percentile_median": statistics.median(final),
                "final_percentile_mean": statistics.fmean(final),
                "final_percentile_max": max(final),
                "seeds_top5_final": sum(p <= TOP for p in final),
                "seeds_top5_within_ref_budget": None if budget is None else sum(r.at_step(budget) <= TOP for r in rs),
                "ref_budget_steps": budget,
                "steps_to_top5_median": statistics.median(reached) if len(reached) * 2 > len(rs) else None,
                "acc_mean": statistics.fmean(accs),
                "distinct_final_cells": len({r.cells[-1] for r in rs}),
                "wall_s": sum(r.wall_s for r in rs),
            }
        )
    return rows


def markdown_table(result: dict[str, Any]) -> str:
    """The summary as a Markdown table."""
    b = result["budget"]
    head = (
        f"| method | final percentile, median (max) | seeds in top 5 % at {b['steps']} steps | "
        f"within DARTS-V1's steps | median steps to top 5 % | reached cells' acc. (mean) | distinct cells |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in result["summary"]:
        within = (
            "n/a"
            if r["seeds_top5_within_ref_budget"] is None
            else (f"{r['seeds_top5_within_ref_budget']}/{r['seeds']} ({r['ref_budget_steps']})")
        )
        steps = "-" if r["steps_to_top5_median"] is None else f"{r['steps_to_top5_median']:.0f}"
        lines.append(
            f"| {r['label']} | {r['final_percentile_median']:.2f} ({r['final_percentile_max']:.2f}) | "
            f"{r['seeds_top5_final']}/{r['seeds']} | {within} | {steps} | {r['acc_mean']:.2f} | "
            f"{r['distinct_final_cells']} |"
        )
    return "\n".join(lines)


def figure(result: dict[str, Any], path: Path) -> Path:
    """Median (and range over seeds) of the derived cell's percentile against arch steps, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    runs = result["runs"]
    for label in dict.fromkeys(r["label"] for r in runs):
        rs = [r for r in runs if r["label"] == label]
        per = np.array([r["percentiles"] for r in rs])
        steps = (np.arange(per.shape[1]) + 1) * rs[0]["steps_per_epoch"]
        line = ax.plot(steps, np.median(per, 0), label=label)[0]
        ax.fill_between(steps, per.min(0), per.max(0), color=line.get_color(), alpha=0.12)
    ax.axhline(TOP, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("arch steps")
    ax.set_ylabel("rank percentile of the derived cell (%)")
    ax.set_title(f"probe-search: surrogate landscape, {result['budget']['seeds']} seeds (median, min-max)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- CLI ----------------------------------------------------------------------------------------------------------
@click.command("probe-search")
@click.option("--methods", default=None, help="comma-separated methods (default: all, plus E2NAS gamma=0 and official)")
@click.option("--seeds", type=int, default=10, show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True, help="epochs (schedules run over these)")
@click.option("--steps", type=int, default=5, show_default=True, help="arch steps per epoch")
@click.option(
    "--protocol",
    default="quick",
    show_default=True,
    help="preset whose method settings are used (quick: ENAS's controller phase scaled down)",
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a method setting (all methods)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="folder for probe.json, probe.md, probe.png")
@click.option("--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def probe_search_cmd(methods, seeds, epochs, steps, protocol, sets, out, quiet, as_json) -> None:
    """Run each method's arch update alone on a known additive landscape; report the reached cells' rank."""
    from .config import parse_set
    from .method import canonical_name

    if seeds < 1 or epochs < 1 or steps < 1:
        raise ConfigError("--seeds, --epochs and --steps must be at least 1")
    over = parse_set(sets)
    if methods:
        entries = [(canonical_name(n), dict(over)) for n in (s.strip() for s in methods.split(",")) if n]
    else:
        entries = [(m, {**over, **o}) for m, o in default_entries()]
    for m, o in entries:  # every entry resolves before anything runs
        from .method import get_method

        _hparams(get_method(m), o)
    say = (lambda s: None) if quiet or as_json else (lambda s: click.echo(s, err=True))
    torch.set_num_threads(1)  # the stand-in's tensors are tiny: one thread is fastest (and not fought over)
    result = probe_search(entries, seeds, epochs, steps, protocol, echo=say)
    table = markdown_table(result)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.json").write_text(json.dumps(result, indent=1))
        (out / "probe.md").write_text(table + "\n")
        figure(result, out / "probe.png")
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        lb = result["landscape"]
        click.echo(
            f"landscape: additive fit, R^2 {lb['r2']:.3f}; best cell {lb['best']} "
            f"(benchmark acc {lb['best_acc']:.2f}, top {lb['best_acc_percentile']:.2f} %)"
        )
        click.echo(table)
