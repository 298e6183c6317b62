"""The fixed 12-vertex DAG that the E2NAS autoencoder reads and writes (spec ``e2nas.md`` section 1).

Operations sit on vertices; the topology never changes, only the types of the six op vertices do::

    vertex  type        inputs    meaning
    0       START       -         cell input
    1       ADD         0         node 0
    2       op(1<-0)    1         edge e0
    3       ADD         2         node 1
    4       op(2<-0)    1         edge e1
    5       op(2<-1)    3         edge e2
    6       ADD         4, 5      node 2
    7       op(3<-0)    1         edge e3
    8       op(3<-1)    3         edge e4
    9       op(3<-2)    6         edge e5
    10      ADD         7, 8, 9   node 3
    11      END         10        output

Vertex types: the 5 NB201 ops (0..4, ``nasbench_suite.space.OPS`` order), ``START = 5``, ``ADD = 6``,
``END = 7``. Vertex ids are already a topological order, so the forward order is ``0..11`` and the reverse
order ``11..0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell

START: int = NUM_OPS  # 5
ADD: int = NUM_OPS + 1  # 6
END: int = NUM_OPS + 2  # 7
NUM_TYPES: int = NUM_OPS + 3  # 8
NUM_VERTICES: int = 12

#: Vertex holding edge ``e`` (``EDGES[e]`` order), i.e. ``OP_VERTICES[e]``.
OP_VERTICES: tuple[int, ...] = (2, 4, 5, 7, 8, 9)
#: Predecessors of each vertex (the "inputs" column of the table).
PREDECESSORS: tuple[tuple[int, ...], ...] = (
    (),
    (0,),
    (1,),
    (2,),
    (1,),
    (3,),
    (4, 5),
    (1,),
    (3,),
    (6,),
    (7, 8, 9),
    (10,),
)
#: Topological order (vertex ids are one already) and its reverse, for the backward encoder pass.
TOPO_ORDER: tuple[int, ...] = tuple(range(NUM_VERTICES))
REVERSE_ORDER: tuple[int, ...] = tuple(reversed(TOPO_ORDER))
#: Types of the vertices that never change; ``None`` marks an op vertex.
FIXED_TYPES: tuple[int | None, ...] = (START, ADD, None, ADD, None, None, ADD, None, None, None, ADD, END)


def _successors() -> tuple[tuple[int, ...], ...]:
    succ: list[list[int]] = [[] for _ in range(NUM_VERTICES)]
    for v, preds in enumerate(PREDECESSORS):
        for p in preds:
            succ[p].append(v)
    return tuple(tuple(s) for s in succ)


#: Successors of each vertex, derived from :data:`PREDECESSORS` so the two can never disagree.
SUCCESSORS: tuple[tuple[int, ...], ...] = _successors()


def _as_ops_tensor(cells: Cell | Sequence[Cell] | Sequence[Sequence[int]] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """Normalise the accepted inputs to a ``(B, 6)`` int64 tensor of op ids, validating the range."""
    if isinstance(cells, Cell):
        cells = [cells]
    if isinstance(cells, torch.Tensor):
        ops = cells.to(torch.long)
    elif isinstance(cells, np.ndarray):
        ops = torch.as_tensor(cells, dtype=torch.long)
    else:
        cells = list(cells)
        rows = [c.ops if isinstance(c, Cell) else tuple(int(o) for o in c) for c in cells]
        ops = torch.tensor(rows, dtype=torch.long).reshape(len(rows), NUM_EDGES)
    if ops.dim() == 1:
        ops = ops.unsqueeze(0)
    if ops.dim() != 2 or ops.shape[1] != NUM_EDGES:
        raise ValueError(f"expected op ids of shape (B, {NUM_EDGES}), got {tuple(ops.shape)}")
    if ops.numel() and (int(ops.min()) < 0 or int(ops.max()) >= NUM_OPS):
        raise ValueError(f"op ids must lie in 0..{NUM_OPS - 1}")
    return ops


def cell_to_types(cells: Cell | Sequence[Cell] | Sequence[Sequence[int]] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """Vertex types ``(B, 12)`` (int64) of cells given as Cells, op-id rows, an array or a tensor ``(B, 6)``."""
    ops = _as_ops_tensor(cells)
    types = torch.empty(ops.shape[0], NUM_VERTICES, dtype=torch.long)
    for v, t in enumerate(FIXED_TYPES):
        if t is not None:
            types[:, v] = t
    types[:, list(OP_VERTICES)] = ops
    return types


def types_to_ops(types: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`cell_to_types`: the ``(B, 6)`` op ids read off the op vertices."""
    return types[:, list(OP_VERTICES)]
