"""The meta experiment (benchmark/experiments/meta_rl.py, `s5bench meta`): validation, cells, evaluation, probe.

In-context probe: ``ProjectedBandit`` (envs/meta_rl.py ``DelayedBandit``), K = 6 trials of a
pull and a blank step, a 1-d action read through a random per-meta-episode projection, so
the best action (+1 or -1) is fixed within a meta-episode and random across them; the
previous-action input is off so a memoryless policy cannot relay the outcome. Chance is 0.5
per trial; a policy that remembers the first pull scores 1 from trial 2 on. Budget: 98,304
env steps per seed (256 updates of 16 envs x 24 steps), 2 seeds, quick preset otherwise;
about 20 s per backbone on an idle 2-core CPU (mostly compilation). Observed there: gru and
s5 trial 1 ~0.5 and trials 2..6 ~0.98-1.0; mlp 0.46-0.54 on every trial.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.experiments.meta_rl import (
    MetaSettings,
    build_cells,
    evaluate,
    make_settings,
    trial_rows,
    trial_table_rows,
)
from benchmark.schema import TRIAL_COLUMNS
from benchmark.train.loop import run_training
from tests.cli_checks import assert_one_error_line

runner = CliRunner()

RISE = 0.3  # a memory backbone's later trials beat its first by at least this ...
FLAT = 0.1  # ... while mlp's rise stays below this


@pytest.mark.parametrize("args,needle", [
    (["--suite", "MetaNope"], "unknown meta suite 'MetaNope'; valid suites: MetaControl"),
    (["--held-out", "MetaControl"], "overlaps the training suite MetaControl"),
    (["--suite", "ProjectedCartPole", "--held-out", "ProjectedCartPole"], "overlaps"),
    (["--preset", "paper", "--held-out", "MetaControlHeldOut"],
     "--held-out: MetaCartPole has no held-out suite"),
    (["--trials", "0"], "--trials must be a positive integer, got 0"),
    (["--models", "s6"], "valid models: s5, gru"),
    (["--preset", "slow"], "valid presets: paper, quick"),
    (["--seeds", "0"], "--seeds must be a positive integer"),
    (["--set", "ppo.lrr=1"], "valid keys:"),
])
def test_bad_input_exits_2_with_one_line(args, needle, no_compile, tmp_path):
    """Bad `s5bench meta` input: exit 2, one line naming the problem, nothing written."""
    result = runner.invoke(cli.app, ["meta", *args, "--out", str(tmp_path)])
    assert_one_error_line(result, needle)
    assert not any(tmp_path.iterdir())


def test_settings_and_cells():
    """Presets pick K and trial caps; cells train the suite without the extra action input."""
    quick, paper = make_settings("quick"), make_settings("paper", held_out="none")
    assert (quick.num_trials, quick.trial_length, quick.held_out) == (
        4, 32, "MetaControlHeldOut")
    assert (paper.num_trials, paper.held_out) == (16, None)
    cells = build_cells(["gru", "mlp"], quick, "quick", 2, 5, 4096, ["ppo.lr=3e-4"])
    assert [c.labels for c in cells] == [{"model": m, "suite": "MetaControl"}
                                         for m in ("gru", "mlp")]
    for cell in cells:
        assert cell.config.env.env_id == "MetaControl"
        assert cell.config.env.previous_action is False
        assert cell.config.ppo.lr == 3e-4 and cell.config.seed == 5
        assert dict(cell.config.env.kwargs)["num_trials"] == 4
    assert [s for s, _, _ in quick.splits()] == ["train", "held-out"]


def test_trial_table_means_over_envs_and_seeds():
    """The printed table averages trial 1 and trial K over base envs and seeds per split."""
    rows = [{"model": "gru", "split": "train", "trial": t, "mean_return": v}
            for t, v in ((1, 0.0), (2, 1.0), (1, 0.5), (2, 0.5))]
    assert trial_table_rows(rows) == [("gru", "train", 2, 0.25, 0.75)]


@functools.cache
def _probe(model: str) -> np.ndarray:
    """Mean over seeds of the evaluated return per trial ``[K]`` after training ``model``."""
    settings = make_settings("quick", suite="ProjectedBandit", held_out=None, num_trials=6,
                             eval_episodes=256, include_action=False, action_size=1,
                             obs_size=4)
    cell = build_cells([model], settings, "quick", 2, 0, 98_304,
                       ["ppo.num_envs=16", "ppo.num_steps=24"])[0]
    result = run_training(cell.config)
    returns = evaluate(cell.config, result.runner.params, settings, "ProjectedBandit",
                       "DelayedBandit", jax.random.key(7))
    return returns.mean(axis=0)


def _rise(returns: np.ndarray) -> float:
    return float(returns[1:].mean() - returns[0])


@pytest.mark.slow
def test_in_context_probe_mlp_stays_flat():
    """Without memory, the return does not rise with the trial index (by less than FLAT)."""
    returns = _probe("mlp")
    assert _rise(returns) < FLAT, returns
    assert np.all(np.abs(returns - 0.5) < 0.15), returns


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gru", "s5"])
def test_in_context_probe_memory_rises_with_trial(model):
    """A memory backbone's return rises from trial 1 to trials 2..K by RISE, mlp's does not."""
    memory, control = _probe(model), _probe("mlp")
    assert _rise(memory) >= RISE, memory
    assert _rise(memory) - _rise(control) >= RISE, (memory, control)


def _untrained(settings: MetaSettings, num_seeds: int = 2):
    """A quick mlp cell's config and freshly initialised ``[S, ...]`` parameters."""
    from benchmark.train.loop import build_network
    from envs.meta_rl import MetaEnv
    from envs.wrappers import action_spec

    cell = build_cells(["mlp"], settings, "quick", num_seeds, 0, 4096, [])[0]
    env = MetaEnv(("DelayedBandit",), **settings.env_kwargs)
    network = build_network(cell.config, action_spec(env.action_space(env.default_params)))
    obs, _ = env.reset(jax.random.key(0), env.default_params)
    carry = network.initialize_carry(1)
    keys = jax.random.split(jax.random.key(1), num_seeds)
    params = jax.vmap(lambda k: network.init(k, carry, obs[None, None],
                                             np.ones((1, 1), bool)))(keys)
    return cell.config, params


EVAL_SETTINGS = MetaSettings(suite="ProjectedBandit", held_out=None, num_trials=3,
                             trial_length=4, eval_episodes=64, include_action=False,
                             action_size=1, obs_size=2)


def test_evaluate_credits_each_step_to_its_trial_hand_checked():
    """CartPole capped at 4 steps pays 1/4 per step whatever the policy (the pole cannot fall
    from its start in 4 steps), so every trial of every meta-episode returns exactly 1.0;
    a trial index off by one, or a step missed, moves a trial off 1."""
    config, params = _untrained(EVAL_SETTINGS)
    returns = evaluate(config, params, EVAL_SETTINGS, "ProjectedCartPole", "CartPole-v1",
                       jax.random.key(2))
    assert returns.shape == (2, 3)
    np.testing.assert_allclose(returns, 1.0, rtol=0, atol=1e-6)


def test_evaluate_a_constant_policy_scores_alike_in_every_trial():
    """A constant action u = 0.5 pulls the same arm in every trial of a meta-episode (its
    projection is fixed within it), so each trial's mean over 64 meta-episodes is the same;
    the arm is arm 0 in about half the meta-episodes (a fresh projection each), so the
    mean is neither 0 nor 1. A policy that samples its action would break the equality."""
    config, params = _untrained(EVAL_SETTINGS)
    head = params["params"]["PolicyHead_0"]
    head = {**head, "Dense_0": {"kernel": jnp.zeros_like(head["Dense_0"]["kernel"]),
                                "bias": jnp.full_like(head["Dense_0"]["bias"], 0.5)},
            "log_std": jnp.full_like(head["log_std"], -30.0)}
    params = {"params": {**params["params"], "PolicyHead_0": head}}
    returns = evaluate(config, params, EVAL_SETTINGS, "ProjectedBandit", "DelayedBandit",
                       jax.random.key(2))
    assert returns.shape == (2, 3)
    # per seed, k / 64 meta-episodes pulled arm 0: the same k in every trial
    np.testing.assert_array_equal(returns, returns[:, :1].repeat(3, axis=1))
    counts = returns[:, 0] * 64
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    assert np.all((counts > 0) & (counts < 64)), counts
    random = evaluate(config, _untrained(EVAL_SETTINGS)[1], EVAL_SETTINGS,
                      "ProjectedBandit", "DelayedBandit", jax.random.key(2))
    assert not np.array_equal(random, random[:, :1].repeat(3, axis=1)), random


def test_evaluation_never_sees_training_keys_and_training_never_sees_eval_trials(monkeypatch):
    """Every meta-episode reset is recorded with its key and the trial count of the env that
    made it: evaluation (trial_rows) resets only with keys training never used, and the
    training program only ever builds the trained K = 2 (eval_trials is a sentinel, 3)."""
    from envs.meta_rl import MetaEnv

    records = []
    real = MetaEnv.reset_env

    def reset_env(self, key, params):
        jax.debug.callback(
            lambda data, trials=self.num_trials: records.append(
                (trials, np.asarray(data).reshape(-1, 2))), jax.random.key_data(key))
        return real(self, key, params)

    monkeypatch.setattr(MetaEnv, "reset_env", reset_env)
    settings = MetaSettings(suite="ProjectedBandit", held_out=None, num_trials=2,
                            eval_trials=3, eval_episodes=4, include_action=False,
                            action_size=1, obs_size=2)
    (cell,) = build_cells(["mlp"], settings, "quick", 2, 0, 32, [
        "ppo.num_envs=4", "ppo.num_steps=8", "ppo.num_minibatches=1", "ppo.update_epochs=1"])
    result = run_training(cell.config)
    training = list(records)
    records.clear()
    rows = list(trial_rows(cell.config, result.runner.params, settings, "mlp"))
    evaluation = list(records)
    assert training and evaluation
    assert {trials for trials, _ in training} == {2}
    assert {trials for trials, _ in evaluation} == {3}
    train_keys = {tuple(k) for _, keys in training for k in keys.tolist()}
    eval_keys = {tuple(k) for _, keys in evaluation for k in keys.tolist()}
    # 2 seeds x 4 envs x (1 + 8 steps) resets in training, 2 x 4 x (1 + 6) in evaluation
    assert len(train_keys) == 2 * 4 * 9 and len(eval_keys) == 2 * 4 * 7
    assert not train_keys & eval_keys
    assert sorted({row["trial"] for row in rows}) == [1, 2, 3] and len(rows) == 2 * 3


@pytest.mark.slow
def test_meta_command_writes_run_folder(tmp_path):
    """`s5bench meta` trains, evaluates train and held-out suites, and writes trials.csv."""
    result = runner.invoke(cli.app, [
        "meta", "--models", "mlp", "--trials", "2", "--trial-length", "4",
        "--eval-episodes", "4", "--set", "ppo.num_envs=8", "--set", "ppo.num_steps=8",
        "--set", "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1",
        "--total-steps", "128", "--out", str(tmp_path), "--run-id", "t"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "t"
    trials = pd.read_csv(run / "trials.csv")
    assert list(trials.columns) == list(TRIAL_COLUMNS)
    assert set(trials.split) == {"train", "held-out"}
    assert set(trials.trial) == {1, 2}
    assert len(trials) == 2 * (5 + 2)  # trials x (train + held-out base envs), one seed
    config = json.loads((run / "config.json").read_text())
    assert config["command"] == "meta" and config["num_trials"] == 2
    assert (run / "curves.csv").is_file() and (run / "summary.csv").is_file()


def test_meta_figures_from_csvs_only(tmp_path):
    """`draw_figures` draws meta_trials and meta_curves from a meta run's CSVs alone."""
    from benchmark.figures import draw_figures
    from benchmark.schema import CURVE_COLUMNS

    run = tmp_path / "results" / "meta" / "r"
    run.mkdir(parents=True)
    trials = [{"model": m, "seed": s, "split": split, "suite": "S", "env": e, "trial": t,
               "mean_return": 0.1 * t + s, "meta_episodes": 4}
              for m in ("s5", "gru") for s in (0, 1) for split, e in (("train", "A"),
                                                                       ("held-out", "B"))
              for t in (1, 2, 3)]
    pd.DataFrame(trials, columns=TRIAL_COLUMNS).to_csv(run / "trials.csv", index=False)
    curves = [{"model": m, "suite": "S", "seed": s, "update": u, "env_steps": 100 * u,
               "mean_return": float(u), **{c: 0.0 for c in CURVE_COLUMNS[5:]}}
              for m in ("s5", "gru") for s in (0, 1) for u in (1, 2, 3)]
    pd.DataFrame(curves).to_csv(run / "curves.csv", index=False)
    report = draw_figures(tmp_path / "results", tmp_path / "figures")
    kinds = sorted(f.kind for f in report.figures)
    assert kinds == ["meta_curves", "meta_trials"], report.skipped
    assert all(path.is_file() for f in report.figures for path in f.files)
    assert "meta_trials_meta-r" in (tmp_path / "figures" / "index.md").read_text()
