"""The optional-import guard shared by the method registry and the CLI's lazy commands (torch-free)."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str) -> ModuleType | None:
    """Import ``module``, or return None when that module itself (or a package above it) is not installed.

    A missing dependency inside a module that exists is a real error and is raised: only the optional part itself
    may be absent.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if not module.startswith(e.name or "\0"):
            raise
        return None
