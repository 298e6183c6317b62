"""List the functions and methods whose body is longer than a limit (default 60 lines: from the first statement,
the docstring included, to the last line; the signature not counted), longest first, with the length from the
``def`` line in brackets: ``python scripts/long_functions.py [--limit 60] [PATH ...]`` (default: the three
installed trees)."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def long_functions(paths: list[Path], limit: int) -> list[tuple[int, int, str]]:
    """(body lines, lines from the ``def``, ``file:qualified.name``) of every function whose body is longer than
    ``limit`` lines under ``paths``."""
    out = []
    for path in paths:
        for f in sorted(path.rglob("*.py") if path.is_dir() else [path]):
            tree = ast.parse(f.read_text())
            stack = [(tree, "")]
            while stack:
                node, prefix = stack.pop()
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        name = f"{prefix}{child.name}"
                        if not isinstance(child, ast.ClassDef):
                            body = child.end_lineno - child.body[0].lineno + 1
                            if body > limit:
                                total = child.end_lineno - child.lineno + 1
                                out.append((body, total, f"{f.relative_to(ROOT)}:{name}"))
                        stack.append((child, name + "."))
    return sorted(out, reverse=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("paths", nargs="*", type=Path)
    a = ap.parse_args()
    trees = a.paths or [ROOT / "nasbench_suite", ROOT / "baselines", ROOT / "methods"]
    for body, total, where in long_functions(trees, a.limit):
        print(f"{body:4d} ({total:3d})  {where}")
