"""The command line: bad input exits 2 with one line before compiling; runs write CSVs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.schema import CURVE_COLUMNS, SUMMARY_COLUMNS
from tests.cli_checks import assert_one_error_line

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
    assert_one_error_line(result, needle)
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


# The 16 POPGym families (DESIGN.md), each with Easy, Medium and Hard: `--env all`.
POPGYM_FAMILIES = (
    "Autoencode", "Battleship", "Concentration", "CountRecall", "HigherLower",
    "LabyrinthEscape", "LabyrinthExplore", "MineSweeper", "MultiarmedBandit",
    "NoisyPositionOnlyCartPole", "NoisyPositionOnlyPendulum", "PositionOnlyCartPole",
    "PositionOnlyPendulum", "RepeatFirst", "RepeatPrevious", "VelocityOnlyCartPole")


def test_env_all_runs_every_popgym_env_and_writes_aggregate(tmp_path, monkeypatch):
    """`--env all` makes one cell per POPGym environment (48: 16 families x Easy, Medium,
    Hard), aggregate.csv averages over them, and meta.json records which S5 evaluation
    `auto` chose on this backend and each cell's device layout. Training is replaced by
    injected returns (env number i of 48 returns i/100 + seed/10) so nothing compiles."""
    import numpy as np

    import benchmark.experiments.cells as experiment
    from benchmark.train.loop import RunResult
    from benchmark.train.sharding import choose_mesh

    trained = []

    def run_training(config, on_chunk, *, on_compiled, **kwargs):
        trained.append(config.env.env_id)
        shape = choose_mesh(config.num_seeds, config.ppo.num_envs, 1)
        on_compiled(shape, 0.5)
        value = (len(trained) - 1) / 100 + np.arange(2)[:, None] / 10
        return RunResult(runner=None, compile_s=0.5, train_s=2.0, host_s=0.0,
                         memory_bytes=None, env_steps=1024, mean_return=np.tile(value, 10),
                         diverged_at=np.zeros(2, int), mesh=shape)

    monkeypatch.setattr(experiment, "run_training", run_training)
    result = runner.invoke(cli.app, ["popgym", "--model", "s5", "--env", "all", "--seeds", "2",
                                     *TINY, "--out", str(tmp_path), "--run-id", "t"])
    assert result.exit_code == 0, result.output
    expected = {f"{family}{d}" for family in POPGYM_FAMILIES for d in ("Easy", "Medium", "Hard")}
    assert len(trained) == 48 and set(trained) == expected
    run = tmp_path / "t"
    summary = pd.read_csv(run / "summary.csv")
    assert len(summary) == 96 and set(summary.env) == expected
    (aggregate,) = pd.read_csv(run / "aggregate.csv").to_dict("records")
    # per env, the seed mean of the MMER is i/100 + 0.05; over i = 0..47: 0.235 + 0.05;
    # each cell took 2 s (48 x 2 = 96 s); 1024 steps / 2 s per seed, x 2 seeds = 1024/s
    head = {k: aggregate[k] for k in list(aggregate)[:8]}
    assert head == {"model": "s5", "envs": 48, "seeds": 2, "mean_mmer": pytest.approx(0.285),
                    "mean_final_return": pytest.approx(0.285), "total_wall_s": 96.0,
                    "mean_env_steps_per_s": 1024.0, "failed": 0}
    # normalised: (x + 1) / 2 on [-1, 1]; the three CartPole families' [0, 1] keep x
    cartpoles = ("PositionOnlyCartPole", "VelocityOnlyCartPole", "NoisyPositionOnlyCartPole")
    normalised = [(i / 100 + 0.05 - low) / (1 - low) for i, env in enumerate(trained)
                  for low in [0.0 if env.startswith(cartpoles) else -1.0]]
    assert (aggregate["scored_envs"], aggregate["runs"]) == (48, 96)
    assert aggregate["mmer_mean"] == pytest.approx(np.mean(normalised))
    assert aggregate["mmer_mean_lo"] <= aggregate["mmer_mean"] <= aggregate["mmer_mean_hi"]
    assert not (run / "comparison.csv").exists()  # one backbone: no pair to compare
    config = json.loads((run / "config.json").read_text())
    assert {r["backbone"]["evaluation"] for r in config["runs"]} == {"auto"}
    meta = json.loads((run / "meta.json").read_text())
    assert meta["s5_evaluation"] == "sequential"  # auto on a CPU
    cell = meta["cells"]["s5 · RepeatFirstHard"]
    assert cell["devices"] == {"devices": 1, "seed_shards": 1, "env_shards": 1}
    assert cell["compile_s"] == 0.5 and len(meta["cells"]) == 48


def test_s5_evaluation_auto_is_sequential_on_cpu_and_parallel_elsewhere(monkeypatch):
    """`evaluation=auto` resolves by backend (the one setting meta.json records), and the
    built S5 runs the resolved evaluation; an explicit one is kept everywhere."""
    import models.s5 as s5
    from models.s5 import S5Config

    auto = S5Config()
    assert auto.evaluation == "auto"
    assert (auto.resolved_evaluation, auto.build().config.evaluation) == ("sequential", "sequential")
    monkeypatch.setattr(s5.jax, "default_backend", lambda: "gpu")
    assert (auto.resolved_evaluation, auto.build().config.evaluation) == ("parallel", "parallel")
    assert S5Config(evaluation="sequential").build().config.evaluation == "sequential"
    from benchmark.experiments.jobs import _resolved_settings
    from benchmark.experiments.types import Cell

    config = type("C", (), {"model": "s5", "backbone": auto})
    assert _resolved_settings([Cell({}, config)]) == {"s5_evaluation": "parallel"}


def test_family_run_end_to_end_with_a_failing_cell(tmp_path, monkeypatch, clock_family):
    """`--env Clock` expands to its three difficulties; a cell that errors (injected in
    ClockMedium) is `error` rows and exit status 1 while the others train; curves.csv
    reports the episode returns the Clock pays (6) and the episodes counted by hand;
    aggregate.csv averages the finished envs and counts the failed seeds."""
    import benchmark.train.loop as training

    real = training.build_trainer

    def build_trainer(config, *args, **kwargs):
        if config.env.env_id == "ClockMedium":
            raise RuntimeError("injected failure")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(training, "build_trainer", build_trainer)
    result = runner.invoke(cli.app, ["popgym", "--model", "mlp", "--env", "Clock",
                                     "--seeds", "2", *TINY, "--out", str(tmp_path),
                                     "--run-id", "t"])
    assert result.exit_code == 1, result.output
    run_dir = tmp_path / "t"
    summary = pd.read_csv(run_dir / "summary.csv")
    assert summary.env.tolist() == ["ClockEasy"] * 2 + ["ClockMedium"] * 2 + ["ClockHard"] * 2
    failed = summary[summary.env == "ClockMedium"]
    assert (failed.status == "error").all()
    assert (failed.message == "RuntimeError: injected failure").all()
    curves = pd.read_csv(run_dir / "curves.csv")
    assert set(curves.env) == {"ClockEasy", "ClockHard"}
    # 8 envs x 16 steps per update; episodes end at steps 2, 5, 8, 11, 14, then 17, 20, 23,
    # 26, 29: 5 per env in each update, 40 in all, each returning 6.
    for env in ("ClockEasy", "ClockHard"):
        rows = curves[curves.env == env]
        assert rows["update"].tolist() == [1, 2, 1, 2]
        assert rows["env_steps"].tolist() == [128, 256] * 2
        assert (rows.episodes == 40).all() and (rows.mean_return == 6.0).all()
        ok = summary[summary.env == env]
        assert (ok.status == "ok").all() and (ok.mmer == 6.0).all()
        assert (ok.final_return == 6.0).all()
    (aggregate,) = pd.read_csv(run_dir / "aggregate.csv").to_dict("records")
    walls = summary[summary.status == "ok"].groupby("env").wall_s.first()
    assert aggregate["envs"] == 3 and aggregate["seeds"] == 2 and aggregate["failed"] == 2
    assert aggregate["mean_mmer"] == aggregate["mean_final_return"] == 6.0
    assert aggregate["total_wall_s"] == pytest.approx(walls.sum(), abs=2e-3)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert set(meta["cells"]) == {"mlp · ClockEasy", "mlp · ClockHard"}
    import jax

    if jax.device_count() == 1:  # the layout the run used: 2 seeds, 8 envs, one device
        assert meta["cells"]["mlp · ClockEasy"]["devices"] == {
            "devices": 1, "seed_shards": 1, "env_shards": 1}
