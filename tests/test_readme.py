"""Every command in the README's code blocks runs as typed on a fresh copy of the checkout (issue 18 item 9).

The commands are read from the README itself (indented and fenced code blocks; a ``# ...`` comment ends a
command), so commands added later are covered too. Each runs with ``bash`` in a temporary copy of the tracked
files, with ``../shared`` beside it, in the order written (later commands may use what earlier ones stored).
Two kinds of step are not re-executed: ``pip install ...`` (this test runs in the installed environment) and
``python -m pytest`` (this suite itself).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, SHARED

pytestmark = pytest.mark.timeout(3600)  # subprocesses: a hung one fails the test instead of the CI run

NOT_RERUN = (re.compile(r"^pip install\b"), re.compile(r"^python -m pytest\b"))


SHELL_FENCES = ("", "bash", "sh", "shell", "console")


def readme_commands(text: str) -> list[str]:
    """The shell commands of a Markdown text's code blocks: 4-space indented blocks (after a blank line) and
    fenced blocks without a language or marked as shell; a ``text`` (or other) fence is not commands."""
    cmds: list[str] = []
    fence: str | None = None  # the open fence's language
    prev = "blank"  # what the previous line was: blank, code or prose
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            prev = "blank"
            continue
        if fence is not None:
            code = line if fence in SHELL_FENCES else ""
        elif line.startswith("    ") and prev in ("blank", "code"):
            code = line[4:]
        else:
            prev = "blank" if not stripped else "prose"
            continue
        prev = "code"
        code = re.sub(r"\s+#\s.*$", "", code).strip()
        if code and not code.startswith("#"):
            cmds.append(code)
    return cmds


def _steps(command: str) -> str:
    """The command with the steps this test does not re-execute taken out of its ``&&`` chain."""
    parts = [p.strip() for p in command.split("&&")]
    return " && ".join(p for p in parts if not any(r.match(p) for r in NOT_RERUN))


COMMANDS = readme_commands((REPO_ROOT / "README.md").read_text())


def test_readme_has_commands_and_parsing_keeps_them_whole():
    assert any(c.startswith("nas-suite run") for c in COMMANDS)
    assert any(c.startswith("nas-suite report") for c in COMMANDS)
    for c in COMMANDS:  # nothing the parser would mangle: no placeholders, no prose
        assert "..." not in c and not c.startswith(("-", "|")), c
    text = "intro\n\n    a --x   # note\n    b 'q#1'\n\nprose\n```\nc && pip install z\n```\n```text\nlayout/\n```\n"
    assert readme_commands(text) == ["a --x", "b 'q#1'", "c && pip install z"]
    assert _steps("pip install torch==2.13.0 && pip install -e . && nas-suite run && nas-suite report") == (
        "nas-suite run && nas-suite report"
    )


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A copy of the tracked files (as in the working tree) with ../shared beside it."""
    if not SHARED.is_dir():
        from .conftest import skip_unless_ci

        skip_unless_ci(f"{SHARED} is absent: the README's NATS-Bench example needs ../shared")
    base = tmp_path_factory.mktemp("readme")
    clone = base / "nas-suite"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    (base / "shared").symlink_to(SHARED)
    return clone


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_typed(fresh_clone: Path, command: str):
    steps = _steps(command)
    if not steps:
        pytest.skip(f"only installation or the test suite itself: {command}")
    proc = subprocess.run(["bash", "-c", steps], cwd=fresh_clone, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, f"`{steps}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
