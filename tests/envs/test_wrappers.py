"""The wrapper stack the agent sees (envs/wrappers.py ``make_training_env``), hand-checked on
the Clock stub (tests/envs/stubs.py): action clipping, one-hot observations, the previous
action and episode-start flag, the final observation, and the episode returns logged; and the
record it returns (action spec, truncation flag)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.registry import ENVS, EnvEntry
from envs.wrappers import make_training_env
from models.heads import ActionSpec
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


def _layers(env) -> list[str]:
    """The wrapper classes around the base environment, outermost first."""
    layers = []
    while hasattr(env, "_env"):
        layers.append(type(env).__name__)
        env = env._env
    return layers


def test_wrapper_stack_hand_checked(clock_box):
    """Two episodes of the Clock through the whole stack, every number written by hand:
    observations [one-hot count (4), previous action (2), start flag], the clipped action
    the Clock receives, the final observation of the truncating step, and the episode
    return (1 + 2 + 3 = 6) reported only on the step that ends the episode."""
    env, params, _, _ = make_training_env(clock_box)
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
    env, params, _, _ = make_training_env(clock_box, previous_action=False)
    obs, state = env.reset(jax.random.key(0), params)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0])
    obs, *_ = env.step(jax.random.key(1), state, jnp.asarray([0.3, 0.3]), params)
    np.testing.assert_array_equal(obs, [0, 1, 0, 0])


@pytest.mark.parametrize("env_id", ["BattleshipEasy", "MineSweeperEasy"])
def test_joint_action_is_one_categorical_over_every_cell(env_id):
    """With joint_action the agent acts with one index a over the S x S cells, read as
    (a // S, a % S) as popjaxrl reads it, and sees a one-hot of S^2 as its previous action;
    stepping with index r * S + c equals stepping the factorised env with (r, c)."""
    joint, params, joint_spec, _ = make_training_env(env_id, joint_action=True)
    split, _, split_spec, _ = make_training_env(env_id)
    size = 8 if env_id == "BattleshipEasy" else 4  # Easy: an 8 x 8 board, a 4 x 4 grid
    assert joint_spec == ActionSpec("discrete", (size * size,))
    assert joint.action_space(params).n == size * size
    assert split_spec == ActionSpec("multi_discrete", (size, size))
    obs_size = split.observation_space(params).shape[0] - 2 * size - 1
    assert joint.observation_space(params).shape == (obs_size + size * size + 1,)
    key = jax.random.key(4)
    _, joint_state = joint.reset(key, params)
    _, split_state = split.reset(key, params)
    for t, (row, col) in enumerate([(0, 0), (2, 3), (3, 1), (1, 2)]):
        step_key = jax.random.key(10 + t)
        j_obs, joint_state, j_reward, j_term, j_trunc, _ = joint.step(
            step_key, joint_state, jnp.int32(row * size + col), params)
        s_obs, split_state, s_reward, s_term, s_trunc, _ = split.step(
            step_key, split_state, jnp.array([row, col], jnp.int32), params)
        assert float(j_reward) == pytest.approx(float(s_reward), abs=1e-7)
        assert (bool(j_term), bool(j_trunc)) == (bool(s_term), bool(s_trunc))
        # the same observation, then the previous action: one-hot of the cell index (all
        # zeros when the step ended the episode: the observation is the next one's first)
        np.testing.assert_allclose(j_obs[:obs_size], s_obs[:obs_size], atol=0)
        one_hot = np.zeros(size * size)
        if not (j_term or j_trunc):
            one_hot[row * size + col] = 1.0
        np.testing.assert_array_equal(j_obs[obs_size:-1], one_hot)


def test_joint_action_leaves_other_action_spaces_alone():
    """joint_action changes nothing where the action is not MultiDiscrete."""
    joint, params, _, _ = make_training_env("RepeatFirstEasy", joint_action=True)
    plain = make_training_env("RepeatFirstEasy").env
    assert joint.action_space(params).n == plain.action_space(params).n == 4
    assert joint.observation_space(params).shape == plain.observation_space(params).shape
    assert "JointAction" not in _layers(joint), _layers(joint)



@pytest.mark.parametrize(("env_id", "spec", "truncates"), [
    # POPGym RepeatFirst: Discrete(4) actions, episodes end by their length (terminated)
    ("RepeatFirstEasy", ActionSpec("discrete", (4,)), False),
    # gymnax Pendulum: a Box(-2, 2, (1,)) torque, clipped (ClipAction), a 200-step limit
    ("Pendulum-v1", ActionSpec("continuous", (1,)), True),
    # POPGym Battleship: MultiDiscrete (row, column) on the 8 x 8 Easy board, a step limit
    ("BattleshipEasy", ActionSpec("multi_discrete", (8, 8)), True),
    # a meta suite: a Box(-1, 1, (4,)) action vector; meta-episodes end by termination only
    ("MetaControl", ActionSpec("continuous", (4,)), False),
])
def test_training_env_record_carries_the_action_spec_and_truncation_flag(env_id, spec,
                                                                         truncates):
    """make_training_env's record holds the wrapped env's action spec and its registry
    entry's truncates flag; a Box action space is clipped."""
    record = make_training_env(env_id)
    assert record.action_spec == spec
    assert record.truncates is truncates
    assert ("ClipAction" in _layers(record.env)) == (spec.kind == "continuous")


@pytest.mark.parametrize("truncates", [True, False])
def test_training_env_truncates_is_the_registry_entrys_flag(monkeypatch, truncates):
    """The record's truncates is what the environment was registered with, not a property
    of the environment: one Clock registered both ways gives both flags."""
    monkeypatch.setitem(ENVS, "ClockFlagged", EnvEntry(Clock, "probe", "ClockFlagged",
                                                       truncates=truncates))
    record = make_training_env("ClockFlagged")
    assert record.truncates is truncates
    assert record.action_spec == ActionSpec("discrete", (2,))
