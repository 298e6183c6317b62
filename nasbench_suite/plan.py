"""Turn the command line's request (methods x seeds x grid points) into a list of run specs."""

from __future__ import annotations

from typing import Iterable, Mapping

from .config import RunSpec
from .errors import ConfigError
from .method import get_method


def build_plan(
    methods: Iterable[str],
    seeds: Iterable[int],
    protocol: str,
    dataset: str | None = None,
    overrides: Mapping[str, str] | None = None,
    grid: str | None = None,
) -> list[RunSpec]:
    """One :class:`RunSpec` per (method, grid point, seed); grid points add their settings to ``overrides``."""
    seeds = list(seeds)
    plan: list[RunSpec] = []
    for name in methods:
        cls = get_method(name)
        points: list[dict[str, str]] = [{}]
        if grid:
            if grid not in cls.grids:
                have = ", ".join(sorted(cls.grids)) or "none"
                raise ConfigError(f"method {cls.name} has no grid {grid!r} (its grids: {have})")
            points = cls.grids[grid]
        for point in points:
            merged = {**(overrides or {}), **{k: str(v) for k, v in point.items()}}
            for seed in seeds:
                plan.append(RunSpec(cls.name, seed, protocol, tuple(sorted(merged.items())), dataset))
    return plan
