"""The experiment seam: one config pipeline, configs that rebuild, sharded sweeps that merge."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.config import ConfigError, build_run_config, from_dict, to_dict
from benchmark.experiments import jobs
from benchmark.options import MemoryOptions, MetaOptions, PopgymOptions

runner = CliRunner()


def test_build_run_config_order_preset_adaptation_overrides_budget():
    """Each step sees the one before: the experiment's adaptation replaces the preset's
    values, the user's overrides replace the adaptation's, the budget comes last."""

    def adapt(config):
        ppo = dataclasses.replace(config.ppo, lr=0.125, num_steps=64, total_timesteps=8192)
        return dataclasses.replace(config, ppo=ppo)

    config = build_run_config("quick", "gru", "RepeatFirstEasy", num_seeds=3, seed=7,
                              adapt=adapt, assignments=["ppo.lr=0.5"], total_timesteps=4096)
    assert (config.num_seeds, config.seed, config.preset) == (3, 7, "quick")
    assert config.ppo.num_steps == 64  # the adaptation's (quick's is 128)
    assert config.ppo.lr == 0.5  # the override's, over the adaptation's 0.125
    assert config.ppo.total_timesteps == 4096  # the budget's, over the adaptation's 8192
    assert config.ppo.num_envs == 32  # the preset's, untouched
    with pytest.raises(ConfigError) as bad:
        build_run_config("quick", "gru", "RepeatFirstEasy", num_seeds=0)
    assert bad.value.field == "num_seeds"


OPTIONS = {
    "popgym": PopgymOptions(model=("s5", "mlp"), env=("RepeatFirstEasy", "CountRecallHard"),
                            seeds=2, overrides=("ppo.lr=3e-4",), seed=1),
    "memory": MemoryOptions(model=("trxl", "gru"), lengths="4..16", seeds=2,
                            total_steps=65536),
    "meta": MetaOptions(model=("lstm",), suite="MetaControl", eval_episodes=8,
                        preset="paper"),
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_experiments_config_json_rebuilds_its_cells(name):
    """Every run config.json holds rebuilds, through from_dict, into the cell that ran:
    the same config and the same labels (memory lengths and meta settings included)."""
    exp = jobs.experiment(name)
    plan = jobs.plan_job(exp, OPTIONS[name])
    doc = json.loads(json.dumps(jobs.config_document(exp, OPTIONS[name], plan)))
    assert len(doc["runs"]) == len(plan.cells) > 0
    for run, cell in zip(doc["runs"], plan.cells, strict=True):
        rebuilt = exp.make_cell(from_dict(run))
        assert rebuilt.config == cell.config
        assert dict(rebuilt.labels) == dict(cell.labels)
    if name == "memory":
        assert [c.config.env.params["memory_length"] for c in plan.cells] == [4, 8, 16] * 2
    if name == "meta":
        assert plan.cells[0].config.env.kwargs["num_trials"] == 16  # the paper preset's


def test_shard_selects_every_nth_cell_and_rejects_bad_shards():
    exp = jobs.experiment("popgym")
    options = dataclasses.replace(OPTIONS["popgym"], model=("s5", "mlp", "gru"))  # 6 cells
    whole = [c.labels for c in exp.plan(options).cells]
    parts = [[c.labels for c in jobs.plan_job(exp, dataclasses.replace(options, shard=f"{i}/4")).cells]
             for i in (1, 2, 3, 4)]
    assert parts == [whole[0::4], whole[1::4], whole[2::4], whole[3::4]]
    assert [len(p) for p in parts] == [2, 2, 1, 1]
    for bad in ("0/3", "4/3", "2", "a/b"):
        with pytest.raises(ConfigError, match="expected I/N"):
            jobs.plan_job(exp, dataclasses.replace(options, shard=bad))
    with pytest.raises(ConfigError, match="would train none"):
        jobs.plan_job(exp, dataclasses.replace(options, shard="7/7"))


TINY = ["--set", "ppo.num_envs=8", "--set", "ppo.num_steps=16", "--set",
        "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1", "--total-steps", "256"]
TIMING = {"wall_s", "compile_s", "env_steps_per_s", "total_wall_s", "mean_env_steps_per_s"}


def _table(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False)
    return frame[[c for c in frame.columns if c not in TIMING]]


def test_a_sweep_run_as_three_shards_merges_to_the_whole_sweep(tmp_path, clock_family):
    """popgym over mlp x {ClockEasy, ClockMedium, ClockHard} x 2 seeds, once whole and once
    as 3 shards merged: the same curves, summary and aggregate rows in the same order (the
    timing columns aside). Each cell is the same compiled program in both, on one machine,
    so the numbers are bit-equal. A missing shard is refused, naming it; so is a shard from
    another kind of device, unless --mixed-devices; meta.json records each shard's device."""
    sweep = ["popgym", "--model", "mlp", "--env", "Clock", "--seeds", "2", *TINY,
             "--out", str(tmp_path)]
    whole = runner.invoke(cli.app, [*sweep, "--run-id", "whole"])
    assert whole.exit_code == 0, whole.output
    for index in (1, 2):
        part = runner.invoke(cli.app, [*sweep, "--run-id", "sharded", "--shard", f"{index}/3"])
        assert part.exit_code == 0, part.output
    missing = runner.invoke(cli.app, ["merge", str(tmp_path / "sharded")])
    assert missing.exit_code == 2 and "shard(s) 3 of 3 missing" in missing.output
    part = runner.invoke(cli.app, [*sweep, "--run-id", "sharded", "--shard", "3/3"])
    assert part.exit_code == 0, part.output
    # a shard from another kind of device is refused unless asked for (kept for below)
    shard_meta = tmp_path / "sharded" / "shard-2-of-3" / "meta.json"
    own_meta = shard_meta.read_text()
    shard_meta.write_text(json.dumps({**json.loads(own_meta), "backend": "gpu",
                                      "device_kind": "NVIDIA H200", "device_count": 1}))
    mixed = runner.invoke(cli.app, ["merge", str(tmp_path / "sharded")])
    assert mixed.exit_code == 2 and "shard-2-of-3: NVIDIA H200 x1" in mixed.output
    assert "--mixed-devices" in mixed.output
    allowed = runner.invoke(cli.app, ["merge", str(tmp_path / "sharded"), "--mixed-devices"])
    assert allowed.exit_code == 0, allowed.output
    meta = json.loads((tmp_path / "sharded" / "meta.json").read_text())
    assert meta["backend"] == "mixed" and "NVIDIA H200 x1" in meta["device_kind"]
    assert meta["shard_devices"]["shard-2-of-3"]["device_kind"] == "NVIDIA H200"
    shard_meta.write_text(own_meta)
    merged = runner.invoke(cli.app, ["merge", str(tmp_path / "sharded")])
    assert merged.exit_code == 0, merged.output
    meta = json.loads((tmp_path / "sharded" / "meta.json").read_text())
    assert meta["backend"] == "cpu" and set(meta["shard_devices"]) == {
        f"shard-{i}-of-3" for i in (1, 2, 3)}

    for name in ("curves.csv", "summary.csv", "aggregate.csv"):
        a, b = _table(tmp_path / "whole" / name), _table(tmp_path / "sharded" / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    assert _table(tmp_path / "whole" / "summary.csv")["env"].tolist() == [
        "ClockEasy", "ClockEasy", "ClockMedium", "ClockMedium", "ClockHard", "ClockHard"]
    assert (json.loads((tmp_path / "sharded" / "config.json").read_text())["runs"]
            == json.loads((tmp_path / "whole" / "config.json").read_text())["runs"])
    for index in (1, 2, 3):
        shard = json.loads((tmp_path / "sharded" / f"shard-{index}-of-3" / "config.json")
                           .read_text())
        assert [to_dict(from_dict(run))["env"]["env_id"] for run in shard["runs"]] == [
            ["ClockEasy", "ClockMedium", "ClockHard"][index - 1]]
