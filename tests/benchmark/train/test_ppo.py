"""The PPO loop: minibatches keep whole environment rollouts, and training runs end to end."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmark.config import make_preset, override, with_total_timesteps
from benchmark.train.loop import run_training
from benchmark.train.ppo import split_minibatches


def test_minibatch_sequences_are_whole_contiguous_env_rollouts():
    """Each minibatch column is one env's rollout, contiguous in t, with that env's carry."""
    num_steps, num_envs, num_minibatches = 7, 12, 3
    t_tag = jnp.broadcast_to(jnp.arange(num_steps)[:, None], (num_steps, num_envs))
    env_tag = jnp.broadcast_to(jnp.arange(num_envs)[None, :], (num_steps, num_envs))
    carry = {"h": jnp.arange(num_envs)[:, None] * jnp.ones((1, 4)), "c": jnp.arange(num_envs)}
    mb_carry, (mb_t, mb_env) = split_minibatches(
        jax.random.key(3), carry, (t_tag, env_tag), num_minibatches
    )
    size = num_envs // num_minibatches
    assert mb_t.shape == (num_minibatches, num_steps, size)
    seen = []
    for m in range(num_minibatches):
        for j in range(size):
            envs_in_column = np.unique(np.asarray(mb_env[m, :, j]))
            assert envs_in_column.size == 1, "a training sequence mixes environments"
            env = int(envs_in_column[0])
            np.testing.assert_array_equal(mb_t[m, :, j], np.arange(num_steps))
            assert int(mb_carry["c"][m, j]) == env, "sequence re-run from another env's carry"
            np.testing.assert_array_equal(mb_carry["h"][m, j], np.full(4, env))
            seen.append(env)
    assert sorted(seen) == list(range(num_envs)), "every environment appears exactly once"


def test_minibatch_shuffle_depends_on_key():
    """Different keys give different environment orders (the split is not a fixed slicing)."""
    tags = jnp.broadcast_to(jnp.arange(16)[None, :], (2, 16))
    _, a = split_minibatches(jax.random.key(0), jnp.arange(16), tags, 4)
    _, b = split_minibatches(jax.random.key(1), jnp.arange(16), tags, 4)
    assert not np.array_equal(a, b)


def _tiny(model: str, env_id: str, **overrides):
    config = make_preset("quick", model, env_id)
    config = override(config, ["ppo.num_envs=8", "ppo.num_steps=16", "ppo.num_minibatches=2",
                               "ppo.update_epochs=2"])
    config = with_total_timesteps(config, 8 * 16 * 4)
    return dataclasses.replace(config, **overrides)


@pytest.mark.parametrize("env_id", ["RepeatFirstEasy", "CartPole-v1"])
def test_training_runs_and_reports_every_update(env_id):
    """A tiny run (terminating and truncating envs) reports finite losses for every update."""
    config = _tiny("gru", env_id, num_seeds=2)
    reports = []
    result = run_training(config, reports.append)
    updates = config.ppo.num_updates
    assert result.mean_return.shape == (2, updates)
    assert sum(r.losses["loss"].shape[1] for r in reports) == updates
    for report in reports:
        assert np.all(np.isfinite(report.losses["loss"]))
        # Where no episode ended the mean is NaN (written as an empty cell), never 0/0 noise.
        assert np.all(np.isnan(report.mean_return) == (report.episodes == 0))
    assert result.compile_s > 0 and result.train_s > 0


def test_training_compiles_once_and_reuses_the_program_for_every_chunk(monkeypatch):
    """run_training compiles through training.compile_trainer once: run_chunk is traced once, the
    one compiled executable (lower().compile()) serves all 4 chunks, and XLA compiles
    nothing once the first chunk has run."""
    from benchmark.train import loop as training

    config = override(_tiny("mlp", "RepeatFirstEasy"), ["ppo.updates_per_chunk=1"])
    traces, compiled, calls, compiles = [], [], [], []
    real_build, real_compile = training.build_trainer, training.compile_trainer

    def build_trainer(*args, **kwargs):
        trainer, network = real_build(*args, **kwargs)

        def run_chunk(state):
            traces.append(1)  # a Python side effect: runs once per trace, never per call
            return trainer.run_chunk(state)

        return trainer._replace(run_chunk=run_chunk), network

    def compile_trainer(*args, **kwargs):
        init, run_chunk, keys, plan = real_compile(*args, **kwargs)
        compiled.append(run_chunk)

        def counted(state):
            calls.append(len(compiles))  # XLA compiles seen before this chunk started
            return run_chunk(state)

        return init, counted, keys, plan

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    monkeypatch.setattr(training, "build_trainer", build_trainer)
    monkeypatch.setattr(training, "compile_trainer", compile_trainer)
    reports = []
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        training.run_training(config, reports.append)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert len(reports) == len(calls) == 4
    assert len(compiled) == 1 and isinstance(compiled[0], jax.stages.Compiled)
    assert len(traces) == 1, f"run_chunk traced {len(traces)} times"
    assert len(compiles) == calls[1], "XLA compiled something after the first chunk"


def test_same_seed_same_numbers():
    """Training is a pure function of the seed: two runs give identical returns and params,
    and another seed (the same compiled program) gives other parameters."""
    config = _tiny("s5", "RepeatPreviousEasy")
    first, second = run_training(config), run_training(config)
    np.testing.assert_array_equal(first.mean_return, second.mean_return)
    for a, b in zip(jax.tree.leaves(first.runner.params), jax.tree.leaves(second.runner.params),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    other = run_training(dataclasses.replace(config, seed=1))
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(first.runner.params), jax.tree.leaves(other.runner.params), strict=True))


class _SumNetwork:
    """A network whose values are worked out by hand: the carry is the sum of the step
    counts (the Clock's one-hot observation) seen since the episode began, V is that carry
    after the step's input (+ w, 0 at init), and the policy is uniform over 2 actions."""

    def initialize_carry(self, batch_size):
        return jnp.zeros(batch_size)

    def init(self, key, carry, obs, resets):
        return {"w": jnp.zeros(())}

    def apply(self, params, carry, obs, resets):
        from models.heads import Categorical

        counts = obs[..., :4] @ jnp.arange(4.0)

        def step(total, inputs):
            count, reset = inputs
            total = jnp.where(reset, 0.0, total) + count
            return total, total

        carry, totals = jax.lax.scan(step, carry, (counts, resets))
        logits = jnp.zeros((*totals.shape, 2)) + params["w"]
        return carry, Categorical(logits), totals + params["w"]


@pytest.mark.parametrize("bootstrap_truncated,returns", [
    # Clock: rewards 1, 2, 3 and a truncation after step 2, then a new episode (reward 1).
    # V = 0, 1 (0 + 1), 3 (0 + 1 + 2), 0 (reset); after the last step V(obs 1) = 1.
    # At the truncation V(final observation 3) from the carry that saw step 2 (3) is 3 + 3
    # = 6. gamma 0.5, lambda 1: R3 = 1 + 0.5 x 1 = 1.5,
    # bootstrapping: R2 = 3 + 0.5 x 6 = 6, R1 = 2 + 0.5 x 6 = 5, R0 = 1 + 0.5 x 5 = 3.5;
    # ending the return: R2 = 3, R1 = 2 + 0.5 x 3 = 3.5, R0 = 1 + 0.5 x 3.5 = 2.75.
    (True, [3.5, 5.0, 6.0, 1.5]),
    (False, [2.75, 3.5, 3.0, 1.5]),
])
def test_rollout_bootstraps_truncation_from_the_carry_that_saw_the_step(
        bootstrap_truncated, returns, monkeypatch):
    """The rollout's return targets, hand-computed: a truncated episode bootstraps from
    V(final observation) evaluated from the carry after the truncating step (6 here; the
    carry before it would give 4, the next episode's first observation 3), or, with
    ppo.bootstrap_truncated off, ends like a termination; the logged return is the sum."""
    import benchmark.train.ppo as ppo
    from benchmark.config import PPOConfig
    from envs.wrappers import EncodeObservation, EpisodeLog
    from tests.envs.stubs import Clock

    seen = {}

    def record(name, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            jax.debug.callback(lambda a, o: seen.setdefault(name, (a, o)), args, out)
            return out
        return wrapped

    monkeypatch.setattr(ppo, "bootstrap_values", record("bootstrap", ppo.bootstrap_values))
    monkeypatch.setattr(ppo, "compute_gae", record("gae", ppo.compute_gae))
    config = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, update_epochs=1,
                       total_timesteps=16, updates_per_chunk=2, gamma=0.5, gae_lambda=1.0,
                       bootstrap_truncated=bootstrap_truncated)
    env = EpisodeLog(EncodeObservation(Clock()))
    trainer = ppo.make_train(config, _SumNetwork(), env, env.default_params)
    _, metrics = jax.jit(trainer.run_chunk)(trainer.init(jax.random.key(0)))
    (values, last_value, terminated, truncated, final_values, *_), next_values = seen["bootstrap"]
    np.testing.assert_array_equal(values[:, 0], [0.0, 1.0, 3.0, 0.0])
    np.testing.assert_array_equal(truncated[:, 0], [False, False, True, False])
    assert not terminated.any() and last_value[0] == 1.0
    if bootstrap_truncated:
        assert final_values[2, 0] == 6.0
    np.testing.assert_array_equal(next_values[:, 0],
                                  [1.0, 3.0, 6.0 if bootstrap_truncated else 0.0, 1.0])
    _, (_, targets) = seen["gae"]
    np.testing.assert_allclose(targets, np.repeat(np.array(returns)[:, None], 2, axis=1))
    # One episode ends per env in each update (at steps 2 and 5), returning 1 + 2 + 3 = 6.
    np.testing.assert_array_equal(metrics["episodes"], [2, 2])
    np.testing.assert_array_equal(metrics["return_sum"], [12.0, 12.0])
