"""The CLI's read-only commands and the happy path of run + report."""

import json

from click.testing import CliRunner

from nasbench_suite.cli import cli


def test_methods_lists_registered_methods_and_presets():
    res = CliRunner().invoke(cli, ["methods", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    names = {m["name"] for m in data["methods"]}
    assert {"rsps", "darts-v1"} <= names
    darts = next(m for m in data["methods"] if m["name"] == "darts-v1")
    assert "darts" in darts["aliases"]
    assert {"quick", "nb201", "nats"} <= set(data["presets"])


def test_query_through_the_real_nats_fixture(nats_fixture_dir):
    from nasbench_suite.benchmarks import NatsBenchmark

    arch = NatsBenchmark(nats_fixture_dir).arch_str(11)
    res = CliRunner().invoke(cli, ["query", arch, "--benchmark", str(nats_fixture_dir), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)["results"]
    got = {ds: (round(v["valid"], 2), round(v["test"], 2)) for ds, v in r.items()}
    assert got == {"cifar10": (87.94, 91.58), "cifar100": (67.45, 67.61), "ImageNet16-120": (30.41, 30.17)}
    text = CliRunner().invoke(cli, ["query", arch, "--benchmark", str(nats_fixture_dir)]).output
    assert "valid  87.94  test 91.58" in text
