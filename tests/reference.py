"""Helpers to build the xautodl reference networks (a test-only dependency)."""

from __future__ import annotations

import pytest

from nasbench_suite.space import OPS


def xautodl_net(kind: str, C: int = 16, N: int = 5, num_classes: int = 10, affine=False, track=True):
    """An xautodl NB201 search network: kind in {'darts', 'gdas', 'setn', 'random', 'enas'}."""
    pytest.importorskip("xautodl", reason="xautodl is the test-only reference (pip install --no-deps xautodl)")
    from xautodl.models.cell_searchs import search_model_darts, search_model_gdas, search_model_setn

    if kind == "darts":
        return search_model_darts.TinyNetworkDarts(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "gdas":
        return search_model_gdas.TinyNetworkGDAS(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "setn":
        return search_model_setn.TinyNetworkSETN(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "random":
        from xautodl.models.cell_searchs import search_model_random

        return search_model_random.TinyNetworkRANDOM(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "enas":
        from xautodl.models.cell_searchs import search_model_enas

        return search_model_enas.TinyNetworkENAS(C, N, 4, num_classes, list(OPS), affine, track)
    raise ValueError(kind)
