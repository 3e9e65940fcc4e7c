"""The command line: bad input exits 2 with one line before compiling; runs write CSVs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.experiment import CURVE_COLUMNS, SUMMARY_COLUMNS

runner = CliRunner()

TINY = ["--set", "ppo.num_envs=8", "--set", "ppo.num_steps=16", "--set",
        "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1", "--total-steps", "256"]


@pytest.mark.parametrize("args,needle", [
    (["popgym", "--model", "s6"], "valid models: s5, gru, lstm"),
    (["popgym", "--env", "RepeatFrist"], "unknown environment 'RepeatFrist'"),
    (["popgym", "--env", ""], "no environment given"),
    (["popgym", "--env", " , "], "no environment given"),
    (["popgym", "--model", ""], "no model given"),
    (["popgym", "--seeds", "0"], "--seeds must be a positive integer"),
    (["popgym", "--set", "ppo.lrr=1"], "valid keys:"),
    (["popgym", "--preset", "slow"], "valid presets: paper, quick"),
    (["popgym", "--total-steps", "-5"], "--total-steps must be a positive integer"),
    (["envs", "--suite", "nope"], "valid suites:"),
])
def test_bad_input_exits_2_with_one_line(args, needle, no_compile, tmp_path):
    """Bad input: exit status 2 and a single line naming the problem and the valid choices."""
    result = runner.invoke(cli.app, [*args, "--out", str(tmp_path)] if args[0] == "popgym"
                           else args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_popgym_writes_run_folder(tmp_path):
    """`s5bench popgym` writes config.json, meta.json, curves.csv and summary.csv."""
    result = runner.invoke(cli.app, ["popgym", "--model", "mlp,gru", "--env", "RepeatFirstEasy",
                                     "--seeds", "2", *TINY, "--out", str(tmp_path),
                                     "--run-id", "t"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "t"
    curves, summary = pd.read_csv(run / "curves.csv"), pd.read_csv(run / "summary.csv")
    assert list(curves.columns) == ["model", "env", *CURVE_COLUMNS]
    assert list(summary.columns) == ["model", "env", *SUMMARY_COLUMNS]
    assert len(curves) == 2 * 2 * 2  # models x seeds x updates
    assert set(summary.status) == {"ok"} and len(summary) == 4
    config = json.loads((run / "config.json").read_text())
    assert [r["model"] for r in config["runs"]] == ["mlp", "gru"]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["backend"] == "cpu" and "jax" in meta["versions"] and meta["git_commit"]
    assert "results:" in result.output

    again = runner.invoke(cli.app, ["popgym", "--model", "mlp", *TINY, "--out", str(tmp_path),
                                    "--run-id", "t"])
    assert again.exit_code == 2 and "--force" in again.output


def test_models_and_envs_list_one_line_each():
    """`models` lists every backbone with parameter counts; `envs` lists ports and aliases."""
    from models import BACKBONES

    models = runner.invoke(cli.app, ["models"])
    assert models.exit_code == 0
    lines = models.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(BACKBONES)
    assert all("params" in line for line in lines)
    envs = runner.invoke(cli.app, ["envs", "--suite", "popgym"])
    assert envs.exit_code == 0
    assert len(envs.output.strip().splitlines()) == 48
    assert "StatelessCartPoleEasy" in envs.output
