"""The regression baseline holds on every x86 machine: the stored numbers are reproduced under three CPU dispatch
settings (the kernels a CPU without AVX, an AVX2 CPU and this machine's native instruction set would run).

Each setting runs ``nas-suite regress --json`` in its own process (the dispatch is fixed when torch loads), all three
at once; each must agree with ``results/regression`` within the baseline's tolerance, cells exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: name -> environment: ATen's vectorised kernels, oneDNN and MKL all capped alike
SETTINGS = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "native": {},
}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_regression_baseline_holds_under_three_cpu_dispatch_settings():
    base_env = {k: v for k, v in os.environ.items() if k not in {k for s in SETTINGS.values() for k in s}}
    base_env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "nasbench_suite.cli", "regress", "--json"],
            cwd=REPO,
            env={**base_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, env in SETTINGS.items()
    }
    isas = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=1400)
        assert out.strip(), f"{name}: no output; stderr:\n{err[-3000:]}"
        rep = json.loads(out)
        isas[name] = rep["machine"]["isa"]
        diffs = "\n".join(f"  {d}" for d in rep["diffs"])
        assert rep["ok"] and proc.returncode == 0, f"{name} ({rep['machine']}):\n{diffs}\nerrors: {rep['errors']}"
        assert sorted(rep["checked"]) == sorted(json.loads(p.read_text())["method"] for p in _baselines())
    # the settings really changed the dispatch (on a machine without AVX2, avx2 and native fall back to default)
    assert isas["default"] == "DEFAULT", isas


def _baselines() -> list[Path]:
    return [p for p in (REPO / "results" / "regression").glob("*.json") if p.name != "plan.json"]
