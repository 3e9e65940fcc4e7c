"""MetaCartPole against the paper's definition (popjaxrl ``meta_cartpole.py`` at 12e5d42).

The hand-worked tests check the observation layout, the reward at a fall, the restart
state, the trial count and the projection's orthogonality and scale. The last test restates
the paper's code (its ``NoisyStatelessCartPole`` with noise 0 and ``NoisyStatelessMetaCartPole``
under gymnax 0.0.6's auto-resetting ``step``) and steps both side by side.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from envs import make
from envs.meta_cartpole import MetaCartPole
from envs.meta_rl import STANDALONE_SUITES, make_meta_env, suite_members

THETA_LIMIT = 12 * 2 * math.pi / 360


def _rollout(env, key, actions):
    """Step ``env`` from ``reset(key)`` with ``actions``; returns obs, rewards, dones, infos."""
    params = env.default_params
    obs, state = env.reset(key, params)
    step = jax.jit(env.step)
    out = {"obs": [obs], "reward": [], "terminated": [], "trial_done": [], "state": [state]}
    for i, action in enumerate(actions):
        obs, state, reward, terminated, _, info = step(
            jax.random.fold_in(key, i), state, jnp.int32(action), params)
        for name, value in (("obs", obs), ("reward", reward), ("terminated", terminated),
                            ("trial_done", info["trial_done"]), ("state", state)):
            out[name].append(value)
    return out


def test_registered_as_the_papers_suite():
    """MetaCartPole is a registered, standalone meta suite: itself its only member."""
    assert "MetaCartPole" in STANDALONE_SUITES
    assert suite_members("MetaCartPole") == ("MetaCartPole",)
    env, _ = make("MetaCartPole", num_trials=3)
    assert isinstance(env, MetaCartPole) and env.num_trials == 3
    assert isinstance(make_meta_env("MetaCartPole"), MetaCartPole)


def test_reset_observation_layout_and_projection():
    """Reset shows [W [x, theta], 0, 0, 1] (7 floats) with the start state in (-0.05, 0.05)."""
    env = MetaCartPole()
    obs, state = env.reset(jax.random.key(3), env.default_params)
    assert obs.shape == (7,) and env.observation_space().shape == (7,)
    start = state.start
    values = np.array([start.x, start.x_dot, start.theta, start.theta_dot])
    assert np.all(np.abs(values) < 0.05)
    np.testing.assert_allclose(state.start_obs, [start.x, start.theta], rtol=0, atol=0)
    np.testing.assert_allclose(obs[:4], np.asarray(state.start_obs) @ np.asarray(state.kernel),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(obs[4:], [0.0, 0.0, 1.0])
    assert env.action_space().n == 2


def test_projection_is_orthogonal_with_scale_sqrt2():
    """The 2 -> 4 kernel's rows are orthogonal with norm sqrt 2: K K^T = 2 I (flax's
    orthogonal(sqrt 2) on a [2, 4] kernel); it differs between meta-episodes."""
    env = MetaCartPole()
    kernels = [np.asarray(env.reset(jax.random.key(k), env.default_params)[1].kernel)
               for k in range(5)]
    for kernel in kernels:
        assert kernel.shape == (2, 4)
        np.testing.assert_allclose(kernel @ kernel.T, 2.0 * np.eye(2), atol=1e-5)
    assert not np.allclose(kernels[0], kernels[1])


def test_a_fall_pays_one_two_hundredth_and_restarts_from_the_first_state():
    """Pushing left until the pole falls: every step pays 1/200, the falling step too (the
    paper's reward_transform gives -1 only to a step taken from a terminal state, and the
    meta env never takes one); the fall shows [W o_0, 0, 1, 0] and the state is the start
    state again, bit for bit."""
    env = MetaCartPole()
    run = _rollout(env, jax.random.key(0), [0] * 60)
    done = np.asarray(run["trial_done"])
    fall = int(np.argmax(done))  # the step (0-based) on which the first trial ended
    assert done[fall] and not done[:fall].any() and 5 < fall < 60
    np.testing.assert_array_equal(run["reward"], np.float32(1.0 / 200))
    before = run["state"][fall]  # state before the falling step: still inside the limits
    assert abs(float(before.cartpole.theta)) <= THETA_LIMIT
    after = run["state"][fall + 1]
    start = run["state"][0].start
    for name in ("x", "x_dot", "theta", "theta_dot", "time"):
        assert np.asarray(getattr(after.cartpole, name)) == np.asarray(getattr(start, name))
    assert int(after.trial) == 1
    kernel = np.asarray(after.kernel)
    np.testing.assert_allclose(run["obs"][fall + 1][:4],
                               np.asarray(after.start_obs) @ kernel, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(run["obs"][fall + 1][4:], [0.0, 1.0, 0.0])
    # a step that does not end a trial: [W o, a, 0, 0] with a the action taken (0 here)
    np.testing.assert_array_equal(run["obs"][1][4:], [0.0, 0.0, 0.0])


def test_time_limit_ends_a_trial_and_the_meta_episode_ends_after_k_trials():
    """With a 3-step trial limit the pole cannot fall, so trials end at steps 3, 6, 9 and
    with K = 3 the meta-episode terminates on step 9; each step pays 1/3 (3 steps x 1/3 =
    1 per trial), and the action shown is the one taken (1, the push right)."""
    env = MetaCartPole(num_trials=3, trial_length=3)
    run = _rollout(env, jax.random.key(1), [1] * 9)
    np.testing.assert_array_equal(np.asarray(run["trial_done"]),
                                  [0, 0, 1, 0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(np.asarray(run["terminated"]), [0] * 8 + [1])
    np.testing.assert_allclose(run["reward"], 1.0 / 3, rtol=1e-7)
    assert float(run["obs"][1][4]) == 1.0
    assert env.max_meta_steps == 9


def test_the_papers_settings_through_the_meta_experiment():
    """--preset paper trains MetaCartPole with 16 trials of 200 steps and evaluates 32, with
    the paper's 4-wide projection; quick keeps MetaControl."""
    from benchmark.experiments.meta_rl import make_settings

    paper = make_settings("paper")
    assert (paper.suite, paper.held_out, paper.num_trials, paper.trial_length,
            paper.evaluated_trials) == ("MetaCartPole", None, 16, 200, 32)
    assert paper.env_kwargs == {"num_trials": 16, "trial_length": 200, "obs_size": 4}
    assert make_settings("quick").suite == "MetaControl"
    with pytest.raises(ValueError, match="no held-out"):
        make_settings("paper", held_out="MetaControlHeldOut")


# ------------------------------------------------------- the paper's code, restated


class _PaperMetaAugNetwork(nn.Module):
    """popjaxrl ``MetaAugNetwork``."""

    out_size: int = 4

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.out_size, kernel_init=nn.initializers.orthogonal(np.sqrt(2)),
                        bias_init=nn.initializers.constant(0.0))(x)


_GRAVITY, _MASSPOLE, _TOTAL_MASS, _LENGTH = 9.8, 0.1, 1.1, 0.5
_POLEMASS_LENGTH, _FORCE_MAG, _TAU, _X_LIMIT, _STEPS = 0.05, 10.0, 0.02, 2.4, 200
_HIGH = jnp.array([_X_LIMIT * 2, THETA_LIMIT * 2])
_AUG = _PaperMetaAugNetwork(4)


def _paper_is_terminal(s):
    x, _, theta, _, time = s
    return ((x < -_X_LIMIT) | (x > _X_LIMIT) | (theta < -THETA_LIMIT) | (theta > THETA_LIMIT)
            | (time >= _STEPS))


def _paper_cartpole_step(s, action):
    """popjaxrl ``NoisyStatelessCartPole.step_env`` (noise 0)."""
    x, x_dot, theta, theta_dot, time = s
    prev_terminal = _paper_is_terminal(s)
    force = _FORCE_MAG * action - _FORCE_MAG * (1 - action)
    costheta, sintheta = jnp.cos(theta), jnp.sin(theta)
    temp = (force + _POLEMASS_LENGTH * theta_dot**2 * sintheta) / _TOTAL_MASS
    thetaacc = (_GRAVITY * sintheta - costheta * temp) / (
        _LENGTH * (4.0 / 3.0 - _MASSPOLE * costheta**2 / _TOTAL_MASS))
    xacc = temp - _POLEMASS_LENGTH * thetaacc * costheta / _TOTAL_MASS
    new = (x + _TAU * x_dot, x_dot + _TAU * xacc, theta + _TAU * theta_dot,
           theta_dot + _TAU * thetaacc, time + 1)
    reward = 1.0 - prev_terminal
    reward = jnp.where(jnp.isclose(reward, 0), -1.0, 1.0 / _STEPS)
    obs = jnp.clip(jnp.array([new[0], new[2]]), -_HIGH, _HIGH)
    return obs, new, reward, _paper_is_terminal(new)


def _paper_reset(key):
    """popjaxrl ``NoisyStatelessMetaCartPole.reset_env``."""
    env_key, obs_key = jax.random.split(key)
    init = jax.random.uniform(env_key, minval=-0.05, maxval=0.05, shape=(4,))
    s = (init[0], init[1], init[2], init[3], 0)
    env_obs = jnp.clip(jnp.array([s[0], s[2]]), -_HIGH, _HIGH)
    obs_params = _AUG.init(obs_key, env_obs[None, :])
    test = _AUG.apply(obs_params, env_obs[None, :])[0]
    state = {"obs_params": obs_params, "trial_num": 0, "env_state": s, "init_state": s,
             "init_obs": env_obs}
    return jnp.concatenate([test, jnp.array([0.0, 0.0, 1.0])]), state


def _paper_step(key, state, action, num_trials=16):
    """gymnax 0.0.6 ``Environment.step`` around popjaxrl's ``step_env``."""
    key, key_reset = jax.random.split(key)
    env_obs_st, env_state_st, reward, env_done = _paper_cartpole_step(state["env_state"],
                                                                      action)
    env_state = jax.tree.map(lambda x, y: jax.lax.select(env_done, x, y),
                             state["init_state"], env_state_st)
    env_obs = jax.lax.select(env_done, state["init_obs"], env_obs_st)
    env_obs = _AUG.apply(state["obs_params"], env_obs[None, :])[0]
    trial_num = state["trial_num"] + env_done
    done = trial_num >= num_trials
    obs_st = jnp.concatenate([env_obs, jnp.array([action, env_done, 0.0])])
    state_st = {**state, "trial_num": trial_num, "env_state": env_state}
    obs_re, state_re = _paper_reset(key_reset)
    state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
    obs = jax.lax.select(done, obs_re, obs_st)
    return obs, state, reward, done, env_state_st


def test_steps_as_the_papers_code_does():
    """600 steps of random actions (about 30 trials: a meta-episode of 16 ends and the next
    begins) from one key: observations and rewards agree with the restated paper's code to
    float32 rounding (each trial restarts from a stored state, so rounding cannot grow past
    one trial of a few dozen steps), trial ends and meta-episode ends exactly (no step comes
    near a threshold, checked)."""
    env = MetaCartPole()
    params = env.default_params
    key = jax.random.key(11)
    reset_key, action_key = jax.random.split(key)
    actions = jax.random.bernoulli(action_key, 0.5, (600,)).astype(jnp.int32)

    def ours(carry, inputs):
        state = carry
        step_key, action = inputs
        obs, state, reward, terminated, _, info = env.step(step_key, state, action, params)
        return state, (obs, reward, terminated, info["trial_done"])

    def paper(carry, inputs):
        state = carry
        step_key, action = inputs
        obs, state, reward, done, moved = _paper_step(step_key, state, action)
        return state, (obs, reward, done, (moved[0], moved[2]))

    step_keys = jax.random.split(jax.random.key(12), actions.shape[0])
    obs0, state0 = env.reset(reset_key, params)
    paper_obs0, paper_state0 = _paper_reset(reset_key)
    np.testing.assert_allclose(obs0, paper_obs0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state0.kernel,
                               paper_state0["obs_params"]["params"]["Dense_0"]["kernel"],
                               rtol=0, atol=1e-7)
    _, (obs, reward, terminated, trial_done) = jax.jit(
        lambda: jax.lax.scan(ours, state0, (step_keys, actions)))()
    _, (p_obs, p_reward, p_done, (p_x, p_theta)) = jax.jit(
        lambda: jax.lax.scan(paper, paper_state0, (step_keys, actions)))()
    # Trial ends are compared exactly below: a fall is a threshold test, which rounding could
    # flip only for a state within rounding of a threshold; no step here comes within 1e-4.
    margin = np.minimum(np.abs(np.abs(np.asarray(p_x)) - 2.4),
                        np.abs(np.abs(np.asarray(p_theta)) - THETA_LIMIT))
    assert margin.min() > 1e-4, margin.min()
    np.testing.assert_array_equal(np.asarray(terminated), np.asarray(p_done))
    assert int(np.sum(terminated)) >= 1, "the comparison must cross a meta-episode end"
    np.testing.assert_allclose(reward, p_reward, rtol=0, atol=1e-7)
    np.testing.assert_allclose(obs, p_obs, rtol=1e-5, atol=1e-5)
    # a trial end inside a meta-episode shows d = 1 in both
    inside = ~np.asarray(terminated)
    np.testing.assert_array_equal(np.asarray(trial_done)[inside].astype(float),
                                  np.asarray(p_obs)[inside, 5])
