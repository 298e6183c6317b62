"""Architecture complementation (spec ``e2nas.md`` section 4): the extra cells of E2NAS's weight step.

Against the supernet forgetting what it learnt for earlier cells, each weight step also trains on the previous
cell ``a_prev`` and a "complementary" cell ``a_bar``:

    a_bar[e] = a uniformly random op != a_prev[e]   if a_prev[e] == a_t[e]
             = a_t[e]                               otherwise

    L_w = (1 - eps) * CE(w; a_t) + (eps / 2) * (CE(w; a_prev) + CE(w; a_bar))

so ``a_bar`` differs from ``a_prev`` on every edge, and from ``a_t`` exactly on the edges where the search did
not move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasbench_suite.space import NUM_EDGES, NUM_OPS

Ops = tuple[int, ...]


def complementary_cell(a_prev: Sequence[int], a_t: Sequence[int], rng: np.random.Generator) -> Ops:
    """The complementary cell of ``a_t`` given the previous cell ``a_prev`` (op ids per edge).

    Always draws ``NUM_EDGES`` numbers from ``rng`` (whatever the cells), so the generator's stream, and with it
    a resumed run, does not depend on how many edges happened to agree.
    """
    if len(a_prev) != NUM_EDGES or len(a_t) != NUM_EDGES:
        raise ValueError(f"cells need {NUM_EDGES} op ids, got {len(a_prev)} and {len(a_t)}")
    draws = rng.integers(0, NUM_OPS - 1, size=NUM_EDGES)  # 0..3; shifted past a_prev[e] -> uniform over the others
    out = []
    for e in range(NUM_EDGES):
        p, t = int(a_prev[e]), int(a_t[e])
        if p == t:
            r = int(draws[e])
            out.append(r + (r >= p))
        else:
            out.append(t)
    return tuple(out)


def weight_terms(a_t: Ops, a_prev: Ops, a_bar: Ops, eps: float) -> list[tuple[Ops, float]]:
    """The weight loss as ``[(cell, coefficient), ...]`` with each distinct cell once.

    ``L_w = sum(coef * CE(w; cell))`` has exactly the gradient of the three-term formula; merging equal cells saves
    a forward/backward pass whenever a_prev == a_t (e.g. the first step, and whenever the search stands still) or
    a_bar == a_t (a_prev differs from a_t on every edge). ``eps == 0`` is the plain single-cell update.
    """
    if eps == 0:
        return [(a_t, 1.0)]
    terms: dict[Ops, float] = {a_t: 1.0 - eps}
    for cell in (a_prev, a_bar):
        terms[cell] = terms.get(cell, 0.0) + eps / 2.0
    return list(terms.items())
