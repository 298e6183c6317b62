"""Turn the command line's request (methods x seeds x grid points) into a list of run specs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .config import PROTOCOL_KEYS, RunSpec
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
    """One :class:`RunSpec` per (method, grid point, seed); grid points add their settings to ``overrides``.

    A method-specific override (e.g. E2NAS's ``eps``) goes to the methods that have that setting; a key that no
    selected method has (nor the protocol) goes to all, so that :func:`~nasbench_suite.config.resolve` refuses it.
    """
    seeds = list(seeds)
    methods = list(methods)
    overrides = dict(overrides or {})
    own = {name: _settings(get_method(name)) for name in methods}
    # A key no selected method has stays with every method, so resolving the plan refuses it with the usual message.
    unknown = {k for k in overrides if k not in PROTOCOL_KEYS and not any(k in keys for keys in own.values())}
    plan: list[RunSpec] = []
    for name in methods:
        cls = get_method(name)
        mine = {k: v for k, v in overrides.items() if k in PROTOCOL_KEYS or k in own[name] or k in unknown}
        points: list[dict[str, str]] = [{}]
        if grid:
            if grid not in cls.grids:
                have = ", ".join(sorted(cls.grids)) or "none"
                raise ConfigError(f"method {cls.name} has no grid {grid!r} (its grids: {have})")
            points = cls.grids[grid]
        for point in points:
            merged = {**mine, **{k: str(v) for k, v in point.items()}}
            for seed in seeds:
                plan.append(RunSpec(cls.name, seed, protocol, tuple(sorted(merged.items())), dataset))
    return plan


def _settings(cls) -> set[str]:
    """The names of a method's own settings (its Hparams fields)."""
    import dataclasses

    return {f.name for f in dataclasses.fields(cls.Hparams)}
