"""Shared test fixtures.

``shared_dir`` points at ``../shared`` beside the checkout (reference data, NATS fixture). Tests that need it
skip with a stated reason when it is absent, except under ``CI=true``, where its absence is a failure: CI always
has it, so a skip there would hide a broken path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One intra-op thread: results are bit-reproducible whatever the core count, and small test networks run much
# faster than with threads fighting over 2 shared cores.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def skip_unless_ci(msg: str) -> None:
    """Skip with ``msg``; under CI=true fail instead (CI always has what these tests need, so a skip there would
    hide a broken install or path)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " (CI=true, where it must be present)")
    pytest.skip(msg)


def require_shared(relative: str = "") -> Path:
    """Return ``../shared/<relative>``; skip (or fail under CI=true) when it does not exist."""
    path = SHARED / relative
    if not path.exists():
        skip_unless_ci(f"{path} is absent: this test needs the project's ../shared folder (reference data)")
    return path


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture
def nats_fixture_dir() -> Path:
    return require_shared("fixtures/NATS-tss-v1_0-3ffb9-simple")


@pytest.fixture
def reference_csv() -> Path:
    return require_shared("reference/nb201_test_accuracy.csv")
