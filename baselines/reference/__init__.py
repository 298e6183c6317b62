"""The reference step of every baseline: the original implementation (xautodl's NB201 search networks, driven per
step as the NB201 search scripts of D-X-Y/AutoDL-Projects, commit f46486e, ``exps/NAS-Bench-201-algos/*.py``, drive
them), one module per baseline, each a :class:`~.base.ReferenceStep`.

A method names its reference in its class (``reference = "<package>.reference.gdas:GDASReference"``), so the core
names no method: the step-timing harness (:mod:`nasbench_suite.timing`) times exactly these steps against ours, and
the reference tests (``tests/test_baselines_reference.py``) compare ours with exactly these, step by step. So the
timed reference is the tested one. They live beside the baselines they check, not in the core: they are about those
methods, and a method package of its own can ship its reference the same way.

xautodl is optional (test and timing only): it is imported when a reference is built, and its absence is one
:class:`~nasbench_suite.timing.ReferenceMissing` error saying how to install it.
"""

from .base import XAUTODL_HINT, ReferenceStep, require_xautodl, structure, xautodl_network

__all__ = ["XAUTODL_HINT", "ReferenceStep", "require_xautodl", "structure", "xautodl_network"]
