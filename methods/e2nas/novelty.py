"""E2NAS's exploration term (spec ``e2nas.md`` section 5): a GPND-style inlier log-likelihood of z under the
archive of recently visited cells, fitted per latent dimension as a generalized normal distribution.

The fit runs every arch step on the encoder means of the (up to 50) archived cells, so it must cost next to
nothing and stay on the device: ``scipy.stats.gennorm.fit`` (a numerical optimiser per dimension, on the host)
is far too slow. :func:`fit_gennorm` instead, per dimension, without any gradient:

1. shape beta by the method of moments on the ratio ``rho = E|x - m|^2 / E(x - m)^2`` (m = sample mean), which
   for a generalized normal equals ``Gamma(2/b)^2 / (Gamma(1/b) Gamma(3/b))``, strictly increasing in b
   (1/2 at the Laplace b = 1, 2/pi at the Gaussian b = 2, 3/4 as b -> inf). It is inverted by linear
   interpolation in a precomputed table on a log grid of b in [0.25, 4] (b clamped to that range: 50 points
   cannot tell larger shapes apart, and far from the cloud |u|^b with a large b overflows float32);
2. loc by a few iteratively-reweighted steps of the maximum-likelihood equation for fixed shape,
   ``loc = sum(w x) / sum(w)``, ``w = |x - loc|^(b - 2)`` (|x - loc| floored), started at the mean (exact ML for
   b = 2; for b <= 1 it moves towards the weighted median, as the ML estimate does);
3. scale by its closed-form ML estimate for fixed shape and loc, ``scale = (b * mean|x - loc|^b)^(1/b)``,
   floored at ``min_scale`` (an archive of one repeated cell has zero spread; the floor keeps the density finite).

Then ``logPz(z) = mean_d[log b - log(2 scale) - lgamma(1/b) - |(z - loc)/scale|^b]`` with ``|.|`` clamped away
from 0 (for b < 1 the gradient of |u|^b is unbounded at u = 0), differentiable in z. No Jacobian or
reconstruction-error terms of GPND are added (they would be constants in z here).

The archive holds the encoder means of its cells (cached per cell: a cell costs one batch-1 encode the first time
it is visited), so the per-step work is a few dozen small tensor operations on the device and no host round trip.
Precomputing all 15,625 means at setup is the other option; it is not used because on a CPU one batched encode
costs seconds per setup (minutes for a test suite that builds many methods), while a search visits a few hundred
distinct cells at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

SHAPE_MIN, SHAPE_MAX = 0.25, 4.0
_GRID_SIZE = 512
_ABS_FLOOR = 1e-6  # |(z - loc) / scale| is clamped to this


class GGDFit(NamedTuple):
    """Per-dimension generalized normal parameters, each a ``(d,)`` tensor."""

    shape: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor


def _moment_ratio(beta: torch.Tensor) -> torch.Tensor:
    """E|X - m|^2 / Var X of a generalized normal with shape ``beta``."""
    return torch.exp(2 * torch.lgamma(2 / beta) - torch.lgamma(1 / beta) - torch.lgamma(3 / beta))


_TABLES: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor, float, float]] = {}


def _table(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    # A constant lookup table (not state): built once per device in float64, then cast. Its end values are kept as
    # Python floats, read once here: reading them from the device tensor at every fit was a host sync per step.
    key = (str(device), dtype)
    if key not in _TABLES:
        beta = torch.logspace(math.log10(SHAPE_MIN), math.log10(SHAPE_MAX), _GRID_SIZE, dtype=torch.float64)
        ratios = _moment_ratio(beta).to(dtype)
        _TABLES[key] = (ratios.to(device), beta.to(device, dtype), float(ratios[0]), float(ratios[-1]))
    return _TABLES[key]


def shape_from_ratio(rho: torch.Tensor) -> torch.Tensor:
    """Invert :func:`_moment_ratio` by linear interpolation in the table (clamped to [SHAPE_MIN, SHAPE_MAX])."""
    ratios, betas, lo_end, hi_end = _table(rho.device, rho.dtype)
    r = rho.clamp(lo_end, hi_end)
    hi = torch.searchsorted(ratios, r.contiguous()).clamp(1, len(ratios) - 1)
    lo = hi - 1
    t = (r - ratios[lo]) / (ratios[hi] - ratios[lo])
    return betas[lo] + t * (betas[hi] - betas[lo])


@torch.no_grad()
def fit_gennorm(x: torch.Tensor, min_scale: torch.Tensor | float = 1e-3, loc_steps: int = 3) -> GGDFit:
    """Fit a generalized normal to each column of ``x`` (n, d); see the module docstring for the estimator."""
    x = x.detach()
    mean = x.mean(0)
    dev = x - mean
    m1 = dev.abs().mean(0)
    m2 = dev.pow(2).mean(0)
    degenerate = m2 <= 1e-12
    rho = torch.where(degenerate, torch.full_like(m2, 2 / math.pi), m1.pow(2) / m2.clamp_min(1e-12))
    shape = shape_from_ratio(rho)
    loc = mean
    floor = 1e-3 * m2.sqrt().clamp_min(1e-6)
    for _ in range(loc_steps):
        w = (x - loc).abs().clamp_min(floor).pow(shape - 2)
        loc = (w * x).sum(0) / w.sum(0)
    scale = (shape * (x - loc).abs().pow(shape).mean(0)).pow(1 / shape)
    scale = torch.maximum(scale, torch.as_tensor(min_scale, dtype=x.dtype, device=x.device))
    return GGDFit(shape, loc, scale)


def gennorm_logpdf_mean(z: torch.Tensor, fit: GGDFit) -> torch.Tensor:
    """``logPz(z)``: the per-dimension generalized-normal log density averaged over dimensions (last axis)."""
    b, loc, scale = fit
    u = ((z - loc) / scale).abs().clamp_min(_ABS_FLOOR)
    logp = torch.log(b) - torch.log(2 * scale) - torch.lgamma(1 / b) - u.pow(b)
    return logp.mean(-1)


class ArchiveNovelty:
    """FIFO archive of the last ``size`` visited cells and the novelty N(z) = logPz(z) under it.

    ``encode(index) -> (nz,)`` gives the encoder mean of cell ``Cell.from_index(index)`` on the search device. Means
    are cached per cell, so a cell costs one batch-1 encode the first time it is visited and nothing afterwards;
    the archive keeps the means of its cells, so a step gathers nothing from the host. ``N(z)`` is 0 until the
    archive is full, as in the spec.
    """

    def __init__(
        self,
        encode: Callable[[int], torch.Tensor],
        nz: int,
        size: int = 50,
        min_scale: torch.Tensor | float = 1e-3,
        device: torch.device | str = "cpu",
    ):
        if size < 2:
            raise ValueError("the archive needs room for at least 2 cells to fit a distribution")
        self.encode = encode
        self.size = int(size)
        self.min_scale = min_scale
        self.cells = [-1] * self.size  # cell indices by slot (host side: they are known there already)
        self.mu = torch.zeros(self.size, nz, device=device)
        self.count = 0  # cells appended so far (the slot of the next one is count % size)
        self._cache: dict[int, torch.Tensor] = {}

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def mean_of(self, cell_index: int) -> torch.Tensor:
        """Encoder mean of one cell (cached)."""
        idx = int(cell_index)
        if idx not in self._cache:
            self._cache[idx] = self.encode(idx).detach()
        return self._cache[idx]

    def append(self, cell_index: int) -> None:
        slot = self.count % self.size
        self.cells[slot] = int(cell_index)
        self.mu[slot] = self.mean_of(cell_index)
        self.count += 1

    def archived(self) -> list[int]:
        """Cell indices in the archive, oldest first."""
        if self.count <= self.size:
            return self.cells[: self.count]
        k = self.count % self.size
        return self.cells[k:] + self.cells[:k]

    def fit(self) -> GGDFit:
        """Generalized-normal fit to the encoder means of the archived cells (no gradient)."""
        return fit_gennorm(self.mu[: min(self.count, self.size)], self.min_scale)

    def __call__(self, z: torch.Tensor, grad: bool = True) -> torch.Tensor:
        """N(z): 0 until the archive is full, then logPz(z) (constant in z if ``grad`` is False)."""
        if not self.full:
            return z.new_zeros(())
        return gennorm_logpdf_mean(z if grad else z.detach(), self.fit())

    def state_dict(self) -> dict[str, Any]:
        return {"cells": list(self.cells), "mu": self.mu.clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cells = [int(c) for c in state["cells"]]
        self.mu.copy_(state["mu"].to(self.mu.device))
        self.count = int(state["count"])
