"""The meta-RL wrapper (envs/meta_rl.py): tasks from keys, trials, resets, padding, mixed vmap."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import ENVS, make
from envs.meta_rl import (
    DEFAULT_HELD_OUT,
    RETURN_BOUNDS,
    STANDALONE_SUITES,
    SUITES,
    MetaEnv,
    make_meta_env,
    suite_env_kwargs,
    suite_names,
)
from envs.wrappers import make_training_env


@functools.cache
def _control() -> MetaEnv:
    return MetaEnv(SUITES["MetaControl"], num_trials=2, trial_length=4)


@functools.cache
def _control_step():
    env = _control()
    return jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))


def _bandit(num_trials: int = 3, **kwargs) -> MetaEnv:
    return MetaEnv(("DelayedBandit",), num_trials=num_trials, **kwargs)


def test_same_key_same_environment_and_matrices():
    """The same reset key gives the same base env, projections and observation; others differ."""
    env = _control()
    reset = jax.jit(env.reset)
    (obs_a, a), (obs_b, b) = reset(jax.random.key(3)), reset(jax.random.key(3))
    _, c = reset(jax.random.key(4))
    assert int(a.env_index) == int(b.env_index)
    np.testing.assert_array_equal(a.obs_matrix, b.obs_matrix)
    np.testing.assert_array_equal(a.action_matrix, b.action_matrix)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(a.obs_matrix, c.obs_matrix)
    assert not np.array_equal(a.action_matrix, c.action_matrix)


def test_trials_and_meta_episode_end_hand_checked():
    """Bandit, K = 3 trials of 2 steps: trial index, trial-start flag and end of step 6 exactly."""
    env = _bandit(num_trials=3)
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    # Pull arm 0 on purpose: choose u so that W_act u favours logit 0.
    u = jnp.clip(state.action_matrix[0] - state.action_matrix[1], -1, 1) * 10
    u = jnp.clip(u, -1.0, 1.0)
    assert obs[-1] == 1.0  # the first step of the first trial
    trials, flags, terminated, rewards = [], [], [], []
    for t in range(6):
        obs, state, reward, term, trunc, info = env.step(jax.random.key(t), state, u, params)
        trials.append(int(info["trial"]))
        flags.append(float(obs[-1]))
        terminated.append(bool(term))
        rewards.append(float(reward))
        assert not bool(trunc)
    assert trials == [0, 0, 1, 1, 2, 2]
    assert flags == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # after step 6: a new meta-episode's start
    assert terminated == [False] * 5 + [True]
    assert rewards == [1.0, 0.0] * 3  # DelayedBandit's return bound is 1: scale 1
    assert int(state.trial) == 0 and int(state.time) == 0  # auto-reset after the end


def test_trial_length_caps_base_episodes():
    """Pendulum capped at 4 steps, K = 2: the meta-episode ends at step 8 and not before."""
    env = MetaEnv(("Pendulum-v1",), num_trials=2, trial_length=4)
    assert env.trial_length == 4 and env.max_meta_steps == 8
    params = env.default_params
    _, state = env.reset(jax.random.key(1), params)
    step = jax.jit(env.step)
    ends, flags = [], []
    for t in range(8):
        obs, state, _, term, _, _ = step(jax.random.key(t), state, jnp.zeros(4), params)
        ends.append(bool(term))
        flags.append(float(obs[-1]))
    assert ends == [False] * 7 + [True]
    assert flags == [0, 0, 0, 1, 0, 0, 0, 1]


def test_carry_reset_flag_only_at_meta_episode_starts():
    """Through the training wrappers, PPO's reset flag fires every K trials, not every trial."""
    env, params, _, _ = make_training_env("ProjectedBandit", previous_action=False,
                                          num_trials=3)
    keys = jax.random.split(jax.random.key(0), 4)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    resets, trial_starts = [], []
    for t in range(18):
        action = jax.random.uniform(jax.random.key(t), (4, 4), minval=-1, maxval=1)
        obs, state, _, term, trunc, info = step(jax.random.split(jax.random.key(100 + t), 4),
                                                state, action, params)
        resets.append(np.asarray(term | trunc))
        trial_starts.append(np.asarray(obs[:, -1]))
    resets, trial_starts = np.stack(resets), np.stack(trial_starts)
    expected = np.zeros(18, bool)
    expected[5::6] = True  # a meta-episode is 3 trials x 2 steps
    assert (resets == expected[:, None]).all()
    assert (trial_starts[1::2] == 1.0).all() and (trial_starts[0::2] == 0.0).all()
    # EpisodeLog reports an episode (for the return curves) exactly where the carry resets.
    np.testing.assert_array_equal(np.asarray(info["episode_done"]), resets[-1])


def test_padding_never_leaks_into_observations():
    """Projection columns/rows past a base env's sizes are zero; padded slots cannot reach obs."""
    env = _control()
    keys = jax.random.split(jax.random.key(5), 64)
    index, obs_matrix, action_matrix = jax.jit(jax.vmap(env.sample_task))(keys)
    obs_dims = np.asarray(env.obs_dims)[np.asarray(index)]
    act_dims = np.asarray(env.action_dims)[np.asarray(index)]
    for row in range(64):
        assert not np.any(np.asarray(obs_matrix[row])[:, obs_dims[row]:])
        assert np.all(np.asarray(obs_matrix[row])[:, : obs_dims[row]] != 0)
        assert not np.any(np.asarray(action_matrix[row])[act_dims[row]:])
    # Garbage in the padded slots of a base observation changes nothing the agent sees.
    for i, dim in enumerate(env.obs_dims):
        row = int(np.flatnonzero(np.asarray(index) == i)[0])
        base = env._pad(jnp.arange(1.0, dim + 1.0), i)
        assert base.shape == (env.obs_pad,) and not np.any(np.asarray(base[dim:]))
        garbage = base.at[dim:].set(123.0)
        np.testing.assert_array_equal(obs_matrix[row] @ base, obs_matrix[row] @ garbage)


# The README's action mapping, written out by hand for one action projection. With
# W_act = HAND_MATRIX (rows past a base env's action size are zero, as sampled) the agent's
# u gives v = W_act u; a continuous base action is clip(mid + half-width * v[:a]), a
# discrete one argmax(v[:n]).
HAND_MATRIX = np.array([[1.2, 0.3, 0.0, 0.0], [0.0, -0.5, 0.5, 0.5]], np.float32)
HAND_U = {
    # u -> v = (1.2 + 0.3, -0.5 + 0.15 - 0.35) = (1.5, -0.7): the first slot is clipped
    "clipped": (np.array([1.0, 1.0, 0.3, -0.7], np.float32), {
        "Pendulum-v1": [2.0],  # box [-2, 2]: clip(0 + 2 * 1.5)
        "MountainCarContinuous-v0": [1.0],  # box [-1, 1]: clip(1.5)
        "Reacher-misc": [1.0, -0.7],  # box [-1, 1]^2
        "Swimmer-misc": [1.0, -0.7],
        "PositionOnlyPendulumEasy": [2.0],  # box [-2, 2]
    }),
    # u -> v = (1.2 * 0.2 + 0.3 * 0.03, -0.5 * 0.03 + 0.5 * -0.4 + 0.5 * 0.1)
    #        = (0.249, -0.165): inside every box, so only mid + half-width * v acts
    "inside": (np.array([0.2, 0.03, -0.4, 0.1], np.float32), {
        "Pendulum-v1": [0.498],
        "MountainCarContinuous-v0": [0.249],
        "Reacher-misc": [0.249, -0.165],
        "Swimmer-misc": [0.249, -0.165],
        "PositionOnlyPendulumEasy": [0.498],
    }),
}


@pytest.mark.parametrize("case", sorted(HAND_U))
def test_mixed_base_envs_under_one_vmap_match_each_env_alone(case):
    """One vmap runs every suite member; each row equals its base env stepped alone with
    the action the README's mapping gives, written out by hand (clip(mid + half-width x v))."""
    env = _control()
    params = env.default_params
    keys = jax.random.split(jax.random.key(2), 32)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert set(np.asarray(state.env_index).tolist()) == set(range(len(env.bases)))
    assert env.action_pad == HAND_MATRIX.shape[0]
    state = state.replace(action_matrix=jnp.broadcast_to(HAND_MATRIX, state.action_matrix.shape))
    u, expected = HAND_U[case]
    actions = jnp.broadcast_to(u, (32, 4))
    step_keys = jax.random.split(jax.random.key(10), 32)
    obs2, state2, reward, *_ = _control_step()(step_keys, state, actions, params)
    assert obs2.shape == (32, env.observation_space(params).shape[0])
    assert np.isfinite(np.asarray(obs2)).all()
    for i, base_id in enumerate(env.base_ids):
        row = int(np.flatnonzero(np.asarray(state.env_index) == i)[0])
        base_state = jax.tree.map(lambda x, r=row: x[r], state.base_states[i])
        base_action = jnp.asarray(expected[base_id], jnp.float32)
        base_obs, moved, base_reward, *_ = env.bases[i].step(
            step_keys[row], base_state, base_action, env.base_params[i])
        np.testing.assert_allclose(reward[row], base_reward * env.scales[i], rtol=1e-5,
                                   atol=1e-7)
        np.testing.assert_allclose(obs2[row, : env.obs_size],
                                   state.obs_matrix[row] @ env._pad(base_obs, i),
                                   rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x, r=row: x[r],
                                                     state2.base_states[i])),
                        jax.tree.leaves(moved), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=base_id)


@pytest.mark.parametrize("u,arm", [((1.0, 1.0, 0.3, -0.7), 0), ((-0.5, 0.2, 1.0, 0.0), 1)])
def test_discrete_base_action_is_the_argmax_of_the_projected_vector(u, arm):
    """CartPole through the projection: v = W_act u is read as logits, argmax picks the push;
    v = (1.5, -0.7) pushes left (0), v = (-0.6 + 0.06, -0.1 + 0.5) = (-0.54, 0.4) right (1)."""
    env = MetaEnv(("CartPole-v1",), num_trials=2, trial_length=4)
    params = env.default_params
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(action_matrix=jnp.asarray(HAND_MATRIX))
    _, after, *_ = env.step(jax.random.key(1), state, jnp.asarray(u, jnp.float32), params)
    base, base_params = env.bases[0], env.base_params[0]
    pushed = {a: base.step(jax.random.key(1), state.base_states[0], jnp.int32(a),
                           base_params)[1] for a in (0, 1)}
    # a push changes x_dot by about 10 N x 0.02 s / 1.1 kg = 0.18 either way
    assert abs(float(pushed[1].x_dot) - float(pushed[0].x_dot)) > 0.3
    # another compiled program than the base env's own step: equal to float32 rounding
    assert float(after.base_states[0].x_dot) == pytest.approx(float(pushed[arm].x_dot),
                                                             abs=1e-6)


def test_suites_registered_and_held_out_disjoint():
    """Every suite is a registered `meta` env with scaled rewards; held-out never trains."""
    from benchmark.describe import env_lines

    lines, _ = env_lines("meta")
    listed = "\n".join(lines)
    for name, members in SUITES.items():
        assert ENVS[name].suite == "meta" and name in listed
        assert all(member in RETURN_BOUNDS for member in members)
    for train, held_out in DEFAULT_HELD_OUT.items():
        assert len(SUITES[held_out]) >= 2
        assert not set(SUITES[train]) & set(SUITES[held_out])
    env, _ = make("ProjectedCartPole", num_trials=2)
    assert env.discrete == [True] and env.base_ids == ("CartPole-v1",)


def test_bad_settings_raise():
    """Zero trials, an unknown suite and an env without a reward bound are errors."""
    with pytest.raises(ValueError, match="num_trials"):
        MetaEnv(("DelayedBandit",), num_trials=0)
    with pytest.raises(ValueError, match="unknown meta suite"):
        make_meta_env("Nope")
    with pytest.raises(ValueError, match="RETURN_BOUNDS"):
        MetaEnv(("Acrobot-v1",))


@pytest.mark.parametrize("same_start", [True, False])
def test_trials_restart_from_the_first_start_state_only_with_same_start(same_start):
    """With same_start (ProjectedCartPole's default, as in the paper's code) each trial
    restarts CartPole from the meta-episode's first state; without it, from a fresh one."""
    env = MetaEnv(("CartPole-v1",), num_trials=3, trial_length=4, same_start=same_start)
    params = env.default_params

    def run(key):
        obs, state = env.reset(key, params)

        def step(state, key):
            obs, state, _, _, _, info = env.step(key, state, jnp.zeros(4), params)
            return state, (obs, state.base_states[0], info["trial_done"])

        _, out = jax.lax.scan(step, state, jax.random.split(key, 8))
        return obs, state.base_states[0], out

    first_obs, first, (obs, states, done) = jax.jit(run)(jax.random.key(5))
    restarts = np.flatnonzero(np.asarray(done))
    assert restarts.tolist() == [3, 7]  # trials of 4 steps (the time limit)
    for t in restarts:
        start = jax.tree.map(lambda x, t=t: x[t], states)
        same = all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(start), jax.tree.leaves(first), strict=True))
        assert same == same_start
        # the projected observation of the restart (slots before the reward and flag)
        assert np.array_equal(obs[t][: env.obs_size], first_obs[: env.obs_size]) == same_start


def test_projected_cartpole_restarts_trials_and_paper_evaluates_32_trials():
    """ProjectedCartPole trials share a start state; the paper preset evaluates 32 trials
    (trained on 16), as the paper's code does."""
    from benchmark.experiments.meta_rl import make_settings

    assert make_meta_env("ProjectedCartPole").same_start
    assert not make_meta_env("MetaControl").same_start
    paper = make_settings("paper", "ProjectedCartPole", "none")
    assert (paper.num_trials, paper.evaluated_trials, paper.same_start) == (16, 32, True)
    quick = make_settings("quick", "MetaControl")
    assert quick.evaluated_trials == quick.num_trials == 4 and not quick.same_start


@pytest.mark.parametrize("suite", suite_names())
def test_suite_env_kwargs_build_every_suite_with_its_settings(suite):
    """suite_env_kwargs gives each suite's class exactly the settings it takes: every suite
    builds from them, and the ones it keeps are the ones given."""
    kwargs = suite_env_kwargs(suite, num_trials=3, trial_length=20, obs_size=8, action_size=2,
                              include_action=False, same_start=True)
    env = make_meta_env(suite, **kwargs)
    assert env.num_trials == 3 and env.obs_size == 8
    if suite in STANDALONE_SUITES:  # MetaCartPole: no action projection to size
        assert set(kwargs) == set(STANDALONE_SUITES[suite].SETTINGS)
    else:
        assert (env.action_size, env.include_action, env.same_start) == (2, False, True)
