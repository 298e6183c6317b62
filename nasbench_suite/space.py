"""The NAS-Bench-201 cell space: 5 operations on 6 edges of a 4-node DAG.

A :class:`Cell` holds one op id per edge, edges in the official order ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``.
It parses and formats the official arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

``Cell.index`` is this module's own enumeration order (base-5 digits of the op ids, edge 0 most
significant). It is *not* the benchmark's official index, which is the position in the benchmark's
``meta_archs`` list and only known to a benchmark adapter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ArchStringError

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
OP_INDEX: dict[str, int] = {name: i for i, name in enumerate(OPS)}
NUM_OPS = len(OPS)
#: the op id of ``none`` (its output is zero)
NONE = OP_INDEX["none"]
NUM_NODES = 4
#: (to_node, from_node) per edge, in the official order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)
#: edges leaving each source node, as edge ids in the official order
OUT_EDGES: tuple[tuple[int, ...], ...] = tuple(
    tuple(e for e, (_, src) in enumerate(EDGES) if src == j) for j in range(NUM_NODES - 1)
)
#: edges entering each node (node 0 has none), as edge ids
IN_EDGES: tuple[tuple[int, ...], ...] = tuple(
    tuple(e for e, (dst, _) in enumerate(EDGES) if dst == i) for i in range(NUM_NODES)
)
NUM_CELLS = NUM_OPS**NUM_EDGES

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


@dataclass(frozen=True, order=True)
class Cell:
    """One NB201 cell: ``ops[e]`` is the op id on edge ``EDGES[e]``."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = tuple(int(o) for o in self.ops)
        if len(ops) != NUM_EDGES or any(not 0 <= o < NUM_OPS for o in ops):
            raise ArchStringError(f"a cell needs {NUM_EDGES} op ids in 0..{NUM_OPS - 1}, got {self.ops!r}")
        object.__setattr__(self, "ops", ops)

    # -- conversions -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Cell:
        """Parse the official arch string; raise :class:`ArchStringError` saying what is wrong."""
        if not isinstance(text, str):
            raise ArchStringError(f"an arch string must be a str, got {type(text).__name__}")
        s = text.strip()
        example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        nodes = s.split("+")
        if len(nodes) != NUM_NODES - 1:
            raise ArchStringError(
                f"not an NB201 arch string (expected 3 '+'-separated nodes, like {example}): {text!r}"
            )
        ops: list[int] = []
        for node, part in enumerate(nodes, start=1):
            if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
                raise ArchStringError(f"node {node} must be written |op~j|...|, got {part!r} in {text!r}")
            tokens = part[1:-1].split("|")
            if len(tokens) != node:
                raise ArchStringError(f"node {node} needs {node} input edge(s), got {len(tokens)} in {text!r}")
            for j, tok in enumerate(tokens):
                m = _TOKEN.match(tok)
                if not m:
                    raise ArchStringError(f"edge token {tok!r} is not 'op~input' in {text!r}")
                name, src = m.group(1), int(m.group(2))
                if name not in OP_INDEX:
                    raise ArchStringError(f"unknown op {name!r} in {text!r}; ops are {', '.join(OPS)}")
                if src != j:
                    raise ArchStringError(f"node {node}'s edge {j} must read from node {j}, got ~{src} in {text!r}")
                ops.append(OP_INDEX[name])
        return cls(tuple(ops))

    @property
    def arch_str(self) -> str:
        """The official arch string."""
        parts, e = [], 0
        for node in range(1, NUM_NODES):
            toks = []
            for j in range(node):
                toks.append(f"{OPS[self.ops[e]]}~{j}")
                e += 1
            parts.append("|" + "|".join(toks) + "|")
        return "+".join(parts)

    def __str__(self) -> str:
        return self.arch_str

    @property
    def index(self) -> int:
        """This module's enumeration index (not the benchmark's official index)."""
        i = 0
        for o in self.ops:
            i = i * NUM_OPS + o
        return i

    @classmethod
    def from_index(cls, index: int) -> Cell:
        """Inverse of :attr:`index`."""
        if not 0 <= int(index) < NUM_CELLS:
            raise ArchStringError(f"cell index must be in 0..{NUM_CELLS - 1}, got {index}")
        ops, i = [], int(index)
        for _ in range(NUM_EDGES):
            ops.append(i % NUM_OPS)
            i //= NUM_OPS
        return cls(tuple(reversed(ops)))

    def op_names(self) -> tuple[str, ...]:
        """Op names per edge."""
        return tuple(OPS[o] for o in self.ops)

    def with_op(self, edge: int, op: int) -> Cell:
        """A copy with edge ``edge`` set to ``op``."""
        ops = list(self.ops)
        ops[edge] = op
        return Cell(tuple(ops))


def as_cell(value: Cell | str | Sequence[int]) -> Cell:
    """Accept a Cell, an arch string or a sequence of 6 op ids."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, str):
        return Cell.parse(value)
    return Cell(tuple(value))


def all_cells() -> Iterator[Cell]:
    """All 15,625 cells in :attr:`Cell.index` order."""
    for i in range(NUM_CELLS):
        yield Cell.from_index(i)


def all_ops_array() -> np.ndarray:
    """``(15625, 6)`` int64 array of op ids, row ``i`` = ``Cell.from_index(i).ops``."""
    idx = np.arange(NUM_CELLS)
    digits = [(idx // NUM_OPS**p) % NUM_OPS for p in range(NUM_EDGES - 1, -1, -1)]
    return np.stack(digits, axis=1).astype(np.int64)


def sample_cell(rng: np.random.Generator) -> Cell:
    """A uniformly random cell drawn from ``rng`` (seeded by the caller)."""
    return Cell(tuple(int(o) for o in rng.integers(0, NUM_OPS, size=NUM_EDGES)))
