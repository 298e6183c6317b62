"""The CLI answers at once: --help, query and report never import torch; extra commands load lazily.

(``methods`` still does: it lists each method's hyperparameters, which live on classes in modules built on torch.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nasbench_suite.cli import LAZY_COMMANDS, cli

REPO = Path(__file__).resolve().parents[1]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

pytestmark = pytest.mark.timeout(300)  # subprocesses: a hung one fails the test instead of the CI run

# Run a CLI command in a fresh interpreter and report which heavy modules it imported.
PROBE = """
import sys
from nasbench_suite.cli import main
sys.argv = ["nas-suite", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("IMPORTED", sorted(m for m in ("torch", "sklearn", "matplotlib") if m in sys.modules), "EXIT", code)
"""


def _probe(*args: str) -> str:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    return res.stdout + res.stderr


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, nasbench_suite.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["query", ARCH],
        ["query", ARCH, "--json"],
        ["report", "--results", "RESULTS", "--no-published"],
    ],
    ids=["help", "query", "query-json", "report"],
)
def test_quick_commands_do_not_import_torch(args, tmp_path):
    if "RESULTS" in args:  # a stored run to report on, written without torch by this test
        from tests.test_analysis import GOOD, bench, write_run

        write_run(tmp_path, "rsps", "RSPS", 0, [bench(90.0, 60.0)], [GOOD])
        args = [str(tmp_path) if a == "RESULTS" else a for a in args]
    out = _probe(*args)
    assert "IMPORTED [] EXIT 0" in out, out


def test_lazy_commands_listed_with_their_own_short_help():
    ctx = click.Context(cli)
    for name, (_, short) in LAZY_COMMANDS.items():
        cmd = cli.get_command(ctx, name)  # imports the module now
        assert cmd is not None and cmd.name == name
        assert cmd.get_short_help_str(1000) == short, name  # the static text must not drift from the command
    text = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"  {name} " in text for name in [*LAZY_COMMANDS, "run", "report", "methods", "query"])


def test_lazy_command_runs_and_unknown_command_is_one_line():
    assert "--baseline" in CliRunner().invoke(cli, ["regress", "--help"]).output
    out = _probe("nosuch")
    assert "No such command 'nosuch'" in out and "EXIT 2" in out
