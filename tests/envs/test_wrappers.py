"""The wrapper stack the agent sees (envs/wrappers.py ``make_training_env``), hand-checked on
the Clock stub (tests/envs/stubs.py): action clipping, one-hot observations, the previous
action and episode-start flag, the final observation, and the episode returns logged."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.registry import ENVS, EnvEntry
from envs.wrappers import make_training_env
from tests.envs.stubs import Clock


@pytest.fixture
def clock_box(monkeypatch):
    """The Clock with a Box(-1, 1, (2,)) action, registered as ``ClockBox`` for the test."""
    monkeypatch.setitem(ENVS, "ClockBox", EnvEntry(functools.partial(Clock, continuous=True),
                                                   "probe", "ClockBox"))
    return "ClockBox"


def _inner(state):
    """The Clock's own state under EpisodeLog and PreviousActionObservation."""
    return state.env_state.env_state


def test_wrapper_stack_hand_checked(clock_box):
    """Two episodes of the Clock through the whole stack, every number written by hand:
    observations [one-hot count (4), previous action (2), start flag], the clipped action
    the Clock receives, the final observation of the truncating step, and the episode
    return (1 + 2 + 3 = 6) reported only on the step that ends the episode."""
    env, params = make_training_env(clock_box)
    assert env.observation_space(params).shape == (7,)
    obs, state = env.reset(jax.random.key(0), params)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0, 0, 0, 1])  # count 0, no action, start
    step = jax.jit(env.step)
    actions = [[5.0, -0.25], [0.5, -3.0], [-0.1, 0.2], [2.0, 2.0]]
    expected = [
        # (obs after the step, action the Clock received, reward, done, logged return)
        ([0, 1, 0, 0, 5.0, -0.25, 0], [1.0, -0.25], 1.0, False, None),
        ([0, 0, 1, 0, 0.5, -3.0, 0], [0.5, -1.0], 2.0, False, None),
        # the time limit (3): the next observation is the new episode's first (count 0,
        # no previous action, start flag 1); the final one is count 3 after this action
        ([1, 0, 0, 0, 0, 0, 1], [-0.1, 0.2], 3.0, True, 6.0),
        ([0, 1, 0, 0, 2.0, 2.0, 0], [1.0, 1.0], 1.0, False, None),
    ]
    for t, (action, (want_obs, received, reward, done, logged)) in enumerate(
            zip(actions, expected, strict=True)):
        obs, state, r, terminated, truncated, info = step(
            jax.random.key(t), state, jnp.asarray(action), params)
        np.testing.assert_allclose(obs, want_obs, rtol=0, atol=1e-7, err_msg=f"step {t}")
        if not done:  # after a reset the Clock's state is the new episode's
            np.testing.assert_allclose(_inner(state).last_action, received, rtol=0, atol=1e-7)
        assert (float(r), bool(truncated), bool(terminated)) == (reward, done, False)
        assert bool(info["episode_done"]) == done
        if done:
            np.testing.assert_allclose(info["final_observation"],
                                       [0, 0, 0, 1, -0.1, 0.2, 0], rtol=0, atol=1e-7)
            assert float(info["episode_return"]) == logged
            assert int(info["episode_length"]) == 3
    # the second episode's return restarted from 0: 1 so far
    assert float(state.episode_return) == 1.0 and int(state.episode_length) == 1


def test_without_previous_action_the_observation_is_the_encoding_alone(clock_box):
    """previous_action=False leaves the one-hot observation alone (meta and memory runs)."""
    env, params = make_training_env(clock_box, previous_action=False)
    obs, state = env.reset(jax.random.key(0), params)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0])
    obs, *_ = env.step(jax.random.key(1), state, jnp.asarray([0.3, 0.3]), params)
    np.testing.assert_array_equal(obs, [0, 1, 0, 0])
