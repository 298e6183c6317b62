"""The installed layout: ``baselines/`` and ``methods/`` install as ``nasbench_suite_baselines`` and
``nasbench_suite_methods`` (setuptools ``package-dir``), so that no generic top-level name is taken in a user's
environment; every package folder is listed in ``pyproject.toml``, and no code imports the folders' own names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from .conftest import skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
SOURCES = ("nasbench_suite", "baselines", "methods", "tests", "scripts")


def _folder_packages() -> set[str]:
    """Every folder of the three installed trees that holds a module or package data, as an installed name."""
    to_name = {folder: name for name, folder in CONFIG["package-dir"].items()}
    out = set()
    for top in ("nasbench_suite", "baselines", "methods"):
        for d in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if d.name == "__pycache__" or not any(f.is_file() for f in d.iterdir()):
                continue
            parts = d.relative_to(ROOT).parts
            out.add(".".join((to_name.get(parts[0], parts[0]), *parts[1:])))
    return out


def test_every_package_folder_is_listed():
    assert set(CONFIG["packages"]) == _folder_packages()


def test_no_code_imports_the_folders_names():
    """``import baselines`` works in a checkout only by accident (the working directory on ``sys.path``); an
    installed suite has no such module. (A module imported under both names would also register twice.)"""
    bad = []
    for top in SOURCES:
        for f in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bad += [f"{f.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("baselines", "methods")]
    assert not bad


def test_wheel_holds_only_the_projects_names(tmp_path):
    """The built wheel's top-level names and its package data (presets, the committed autoencoder). Built from a
    copy of the sources: setuptools' build/ folder in a checkout can hold files the tree no longer has."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for top in ("nasbench_suite", "baselines", "methods"):
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", tmp_path],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        # (a machine without the build backend offline skips; CI installs it, so there a failed build fails)
        skip_unless_ci(f"cannot build a wheel here: {res.stderr.strip()[-200:]}")
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"nasbench_suite", "nasbench_suite_baselines", "nasbench_suite_methods"}
    assert "nasbench_suite_methods/e2nas/weights/graph_vae.pt" in names
    assert "nasbench_suite/presets/nb201.yaml" in names
    assert "nasbench_suite_baselines/reference/__init__.py" in names
