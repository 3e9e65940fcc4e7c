"""`s5bench memory`: per-length configs, bad input before compiling, and the memory probe.

Probe budget (test_memory_probe_s5_beats_mlp): MemoryChain with memory length 8, 2 seeds,
16 envs x 32 steps per update, 65,536 env steps per seed (128 updates), quick preset
otherwise; about 15 s for s5 and 8 s for mlp on an idle 2-core CPU. Observed there: s5
final return 1.00, mlp -0.05 (chance is 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.config import make_preset
from benchmark.experiments.memory import (
    ENV_ID,
    SUCCESS_RETURN,
    build_cells,
    env_params,
    memory_config,
    rollout_length,
)
from benchmark.schema import CURVE_COLUMNS, SUMMARY_COLUMNS
from envs.wrappers import make_training_env
from tests.cli_checks import assert_one_error_line

runner = CliRunner()
PROBE_LENGTH = 8
PROBE_MARGIN = 0.5  # s5's final return must exceed mlp's by this much (returns in [-1, 1])
PROBE_ARGS = ["--lengths", str(PROBE_LENGTH), "--seeds", "2", "--set", "ppo.num_envs=16",
              "--set", "ppo.num_steps=32", "--total-steps", "65536"]


@pytest.mark.parametrize("length,preset_steps,expected", [
    (4, 128, 128), (127, 128, 128), (128, 128, 256), (1024, 128, 2048), (8, 16, 16),
    (16, 16, 32),
])
def test_rollout_length_covers_a_whole_episode(length, preset_steps, expected):
    """num_steps is the preset's, or the smallest power of two >= memory length + 1."""
    assert rollout_length(length, preset_steps) == expected


@pytest.mark.parametrize("preset,length,expected", [
    # quick: 32 envs x 128 steps = 4096 steps per update, 4 minibatches, 2^20 steps = 256
    # updates. (num_steps, num_envs, num_minibatches, steps per update, updates):
    ("quick", 4, (128, 32, 4, 4096, 256)),
    ("quick", 256, (512, 8, 4, 4096, 256)),
    ("quick", 1024, (2048, 2, 2, 4096, 256)),  # 2 envs: 2 minibatches of one env
    ("quick", 2048, (4096, 1, 1, 4096, 256)),
    # one episode (4097 steps, rollout 8192) outgrows the preset's update: the documented
    # exception, one environment per update
    ("quick", 4096, (8192, 1, 1, 8192, 128)),
    # paper: 64 x 1024 = 65536 steps per update, 8 minibatches, 15M // 65536 = 228 updates
    ("paper", 2048, (4096, 16, 8, 65536, 228)),
    ("paper", 8192, (16384, 4, 4, 65536, 228)),
])
def test_memory_config_keeps_the_presets_update_size(preset, length, expected):
    """A longer rollout takes fewer envs (and, below num_minibatches envs, fewer
    minibatches of one env each), so steps per update and the update count stay the
    preset's; numbers worked out by hand, the clamped lengths of issue 19 included."""
    (cell,) = build_cells(["s5"], [length], preset, seeds=1)
    ppo = cell.config.ppo
    assert (ppo.num_steps, ppo.num_envs, ppo.num_minibatches, ppo.steps_per_update,
            ppo.num_updates) == expected
    assert ppo.num_steps >= length + 1 and ppo.num_envs % ppo.num_minibatches == 0
    assert cell.config.env.env_id == ENV_ID and cell.config.env.previous_action is False


@pytest.mark.parametrize("length,expected", [(4, 32), (31, 32), (256, 257), (1024, 1025)])
def test_windows_reach_the_whole_episode(length, expected):
    """Transformer-XL's per-layer memory and the attention cache grow to the episode, L + 1
    steps (quick's 32 and 128 otherwise), so the cue, L - 1 steps before the decision, is
    always within reach; S5's config is unchanged."""
    config = memory_config(make_preset("quick", "trxl", ENV_ID), length)
    assert config.backbone.memory_length == expected
    attention = memory_config(make_preset("quick", "attention", ENV_ID), length)
    assert attention.backbone.max_context == max(128, length + 1)
    s5 = make_preset("quick", "s5", ENV_ID)
    assert memory_config(s5, length).backbone == s5.backbone


def test_cells_carry_labels_and_env_params():
    """One cell per (model, length), labelled for the CSVs, with MemoryChain's EnvParams."""
    cells = build_cells(["s5", "mlp"], [4, 16], "quick", seeds=3)
    assert [dict(c.labels) for c in cells] == [
        {"model": m, "memory_length": n} for m in ("s5", "mlp") for n in (4, 16)]
    assert dict(cells[1].config.env.params) == {"memory_length": 16, "max_steps_in_episode": 18}
    assert all(c.config.num_seeds == 3 for c in cells)


def test_an_override_shorter_than_an_episode_is_rejected():
    """--set ppo.num_steps below memory length + 1 is an error naming both numbers."""
    with pytest.raises(ValueError, match="ppo.num_steps: 8 does not cover .* length 16"):
        build_cells(["s5"], [16], "quick", seeds=1, assignments=["ppo.num_steps=8"])


def test_env_params_set_the_memory_length():
    """With env_params, a MemoryChain episode lasts memory length + 1 steps, reward at the end."""
    length = 6
    env, params, _, _ = make_training_env(ENV_ID, previous_action=False,
                                          env_params=env_params(length))
    assert params.memory_length == length
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    rewards, dones = [], []
    for _ in range(length + 1):
        key, step_key = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = env.step(
            step_key, state, jnp.int32(0), params)
        rewards.append(float(reward))
        dones.append(bool(terminated))
        assert not bool(truncated)
    assert dones == [False] * length + [True]
    assert rewards[:-1] == [0.0] * length and abs(rewards[-1]) == 1.0


@pytest.mark.parametrize("args,needle", [
    (["--lengths", "0..8"], "not a positive power of two"),
    (["--lengths", "4..12"], "12 is not a positive power of two"),
    (["--lengths", "0"], "not positive"),
    (["--lengths", "64..4"], "reversed"),
    (["--models", "s6"], "valid models: s5, gru, lstm"),
    (["--seeds", "0"], "--seeds must be a positive integer"),
    (["--total-steps", "0"], "--total-steps must be a positive integer"),
    (["--preset", "slow"], "valid presets: paper, quick"),
    (["--set", "ppo.lrr=1"], "valid keys:"),
])
def test_bad_input_exits_2_with_one_line(args, needle, no_compile, tmp_path):
    """Bad input to `s5bench memory`: exit 2, one line naming the problem, nothing written."""
    result = runner.invoke(cli.app, ["memory", *args, "--out", str(tmp_path)])
    assert_one_error_line(result, needle)
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_memory_probe_s5_beats_mlp(tmp_path):
    """End to end at memory length 8: s5 succeeds, mlp does not, by PROBE_MARGIN of return."""
    result = runner.invoke(cli.app, ["memory", "--models", "s5,mlp", *PROBE_ARGS,
                                     "--out", str(tmp_path), "--run-id", "probe"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "probe"
    assert {p.name for p in run.iterdir()} >= {"config.json", "meta.json", "curves.csv",
                                               "summary.csv"}
    curves, summary = pd.read_csv(run / "curves.csv"), pd.read_csv(run / "summary.csv")
    assert list(curves.columns) == ["model", "memory_length", *CURVE_COLUMNS]
    assert list(summary.columns) == ["model", "memory_length", *SUMMARY_COLUMNS, "success"]
    assert (summary["status"] == "ok").all() and (summary["memory_length"] == 8).all()
    final = summary.groupby("model")["final_return"].mean()
    assert final["s5"] >= SUCCESS_RETURN, summary
    assert final["s5"] - final["mlp"] >= PROBE_MARGIN, summary
    success = summary.groupby("model")["success"].all()
    assert success["s5"] and not summary.loc[summary["model"] == "mlp", "success"].any()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gru", "lstm"])
def test_memory_probe_recurrent_backbones_at_length_16(model, tmp_path):
    """GRU and LSTM also solve memory length 16 within 131,072 steps (slow: ~30 s each)."""
    result = runner.invoke(cli.app, ["memory", "--models", model, "--lengths", "16",
                                     "--seeds", "2", "--set", "ppo.num_envs=16", "--set",
                                     "ppo.num_steps=32", "--total-steps", "131072",
                                     "--out", str(tmp_path), "--run-id", "probe"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "probe" / "summary.csv")
    assert summary["final_return"].mean() >= SUCCESS_RETURN, summary
