"""Numerical settings of a run that make its numbers machine-independent when asked (protocol keys ``dtype``,
``onednn``, ``deterministic``).

Why: float32 CPU kernels sum in an order that depends on the instruction set the kernel library picked (oneDNN's
convolutions, ATen's vectorised reductions), so the same run on an AVX2 and an AVX-512 machine differs at ~1e-7
per step, and a few epochs of training amplify that into different derived cells. The regression check therefore
runs in float64 with oneDNN off: summation-order noise drops to ~1e-16 per operation, and the measured spread
across instruction sets after two epochs stays many orders of magnitude below any behavioural change
(``docs/performance.md``, "Portable regression").

The defaults (float32, oneDNN on, no determinism switch) are the fast ones every real search uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a protocol ``dtype`` value."""
    return DTYPES[name]


@contextlib.contextmanager
def numerics(dtype: str = "float32", onednn: bool = True, deterministic: bool = False) -> Iterator[None]:
    """Run the enclosed code with ``dtype`` as torch's default floating dtype (every parameter, arch parameter,
    controller and noise tensor a method creates follows it), oneDNN on or off, and deterministic algorithms on
    if asked; everything is restored on exit, so runs in one process do not leak settings into each other."""
    old = (torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.enabled)
    torch.set_default_dtype(torch_dtype(dtype))
    if deterministic:
        torch.use_deterministic_algorithms(True)
    if not onednn:  # (mkldnn.flags() would also reset its TF32 flag, with a warning on CPU-only builds)
        torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_default_dtype(old[0])
        torch.use_deterministic_algorithms(old[1])
        torch.backends.mkldnn.enabled = old[2]
