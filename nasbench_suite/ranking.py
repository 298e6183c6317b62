"""Supernet ranking quality and search dynamics: what the runner records in the epoch lines beside the search.

Ranking quality (protocol keys ``rank_cells``, ``rank_every``): a fixed sample of cells, the same for every
method, seed and epoch (the NB201 optima, a few known cells, then a seeded random sample), is scored with the
current supernet weights as a scored derive does (:meth:`OneShotMethod.score_cells`: eval mode, one selection batch
per cell, from its own seeded stream), and the scores are compared with the benchmark's test accuracy: Kendall tau,
Spearman rho (scipy.stats) and the overlap of the two top-10 sets. Eval mode with the protocol's batch statistics
updates no BN statistics, and the batches come from a stream of their own, so it never changes the search.

Search dynamics: the method's :meth:`OneShotMethod.arch_distribution` (6 x 5) and its mean per-edge entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .space import NUM_CELLS, Cell, as_cell

#: the seed of the ranking sample: one sample for every run, whatever its seed or method
RANK_SAMPLE_SEED = 201
#: cells always in the sample (first the NB201 test optima of CIFAR-10, CIFAR-100 and ImageNet16-120, then the
#: all-3x3, ResNet-like, all-skip (DARTS' collapse) and all-none cells)
KNOWN_CELLS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
)
#: size of the top set whose overlap is recorded
TOP_K = 10


def ranking_sample(n: int) -> list[Cell]:
    """The ``n`` cells scored for ranking quality: the known cells first, then distinct cells drawn with a fixed
    seed. The same list for every method, seed and epoch (a prefix of the same order for a smaller ``n``)."""
    known = [as_cell(a) for a in KNOWN_CELLS]
    if n <= len(known):
        return known[:n]
    taken = {c.ops for c in known}
    rng = np.random.default_rng(RANK_SAMPLE_SEED)
    cells = list(known)
    for i in rng.permutation(NUM_CELLS):
        cell = Cell.from_index(int(i))
        if cell.ops not in taken:
            taken.add(cell.ops)
            cells.append(cell)
            if len(cells) == n:
                break
    return cells


def ranking_truth_dataset(benchmark, dataset: str) -> str:
    """The benchmark dataset the scores are compared against: the search's own when the benchmark holds it, else
    the benchmark's first (CIFAR-10 for the embedded table, e.g. for the digits protocol)."""
    from .benchmarks.base import canonical_dataset
    from .errors import BenchmarkError

    try:
        return canonical_dataset(dataset, benchmark.datasets)
    except BenchmarkError:
        return benchmark.datasets[0]


def ranking_quality(scores: Sequence[float], truth: Sequence[float | None], k: int = TOP_K) -> dict[str, float | None]:
    """Kendall tau (tau-b, ties counted), Spearman rho and top-``k`` overlap (fraction of the ``k`` best by truth
    that are among the ``k`` best by score; ties broken by sample order) of ``scores`` against ``truth``.

    Cells without a truth (None: not in the benchmark) are left out; fewer than 3 left, or constant scores: None.
    """
    from scipy import stats

    pairs = [(float(s), float(t)) for s, t in zip(scores, truth) if t is not None]
    out: dict[str, float | None] = {"rank_kendall": None, "rank_spearman": None, "rank_top10": None}
    if len(pairs) < 3:
        return out
    s, t = np.array(pairs).T
    if np.ptp(s) > 0 and np.ptp(t) > 0:  # a constant side has no rank correlation (scipy would warn and give nan)
        out["rank_kendall"] = float(stats.kendalltau(s, t).statistic)
        out["rank_spearman"] = float(stats.spearmanr(s, t).statistic)
    kk = min(k, len(pairs))
    top_s = set(np.argsort(-s, kind="stable")[:kk].tolist())
    top_t = set(np.argsort(-t, kind="stable")[:kk].tolist())
    out["rank_top10"] = len(top_s & top_t) / kk
    return out


def distribution_entry(dist: Any) -> dict[str, Any]:
    """The epoch line's ``arch_probs`` (6 x 5 nested list, rows renormalised) and ``arch_entropy`` (mean over the
    edges of each edge's entropy, nats; log(5) = 1.609 is uniform, 0 is one op per edge) of a distribution."""
    if dist is None:
        return {}
    p = np.asarray(dist.detach().cpu().double() if hasattr(dist, "detach") else dist, dtype=np.float64)
    p = p / p.sum(-1, keepdims=True)
    ent = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1).mean()
    return {"arch_probs": np.round(p, 6).tolist(), "arch_entropy": float(ent)}
