"""Methods from other packages: an entry point in group ``nas_suite.methods`` makes a method a first-class one."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from nasbench_suite import method as method_mod
from nasbench_suite.analysis import render_report
from nasbench_suite.cli import cli, main
from nasbench_suite.errors import ConfigError
from nasbench_suite.method import canonical_name, get_method, method_aliases, method_names
from tests.plugin_demo import DIST, MODULE, NAME, installed_plugin

TINY = (("epochs", "2"), ("steps_per_epoch", "2"), ("select_candidates", "3"), ("C", "4"))


def test_a_plugin_lists_runs_and_reports_like_a_builtin(tmp_path):
    assert NAME not in method_names()
    with installed_plugin():
        assert NAME in method_names() and "rsps" in method_names()
        assert get_method(NAME).__module__ == DIST and get_method(NAME).name == NAME
        listing = CliRunner().invoke(cli, ["methods"])
        assert listing.exit_code == 0 and f"{NAME}: Demo plugin" in listing.output  # listed like a built-in
        res = CliRunner().invoke(
            cli,
            [
                "run",
                "--methods",
                NAME,
                "--results",
                str(tmp_path),
                "--quiet",
                *[a for k, v in TINY for a in ("--set", f"{k}={v}")],
            ],
        )
        assert res.exit_code == 0, res.output
        text = render_report(tmp_path, published=False)
        assert "| Demo plugin | 1 |" in text
    assert NAME not in method_names()  # uninstalled again: nothing leaks into other tests


@pytest.mark.parametrize(
    "entry, module, taken, owner",
    [
        (f"rsps = {DIST}:DemoPlugin\n", MODULE, "name 'rsps'", "'rsps' (nasbench_suite_baselines.rsps.RSPS)"),
        (
            f"{NAME} = {DIST}\n",
            MODULE.replace(
                "from nasbench_suite.space", "from nasbench_suite.method import register\nfrom nasbench_suite.space"
            ).replace("class DemoPlugin", f"@register({NAME!r}, aliases=('dp', 'darts'))\nclass DemoPlugin"),
            "alias 'darts'",
            "'darts-v1' (nasbench_suite_baselines.darts_v1.DartsV1)",
        ),
    ],
    ids=["name", "alias"],
)
def test_a_plugin_taking_a_builtin_name_or_alias_is_refused(entry, module, taken, owner, monkeypatch, capsys):
    before = method_aliases()
    with installed_plugin(entry, module):
        with pytest.raises(ConfigError) as err:
            method_names()
        msg = str(err.value)
        assert taken in msg and owner in msg and DIST in msg and "uninstall" in msg, msg
        with pytest.raises(ConfigError):  # still refused on the next call, not silently half-loaded
            canonical_name("rsps")
        assert "dp" not in method_mod._ALIASES and method_mod._ALIASES["darts"] == "darts-v1"  # nothing half-done
        monkeypatch.setattr("sys.argv", ["nas-suite", "methods"])
        with pytest.raises(SystemExit) as ex:
            main()
        err_text = capsys.readouterr().err
        assert ex.value.code == 2 and err_text.startswith("error: method plugin") and len(err_text.splitlines()) == 1
    assert method_aliases() == before
