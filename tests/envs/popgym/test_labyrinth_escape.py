"""LabyrinthEscape port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import labyrinth_escape as ref_le

import envs
from envs.popgym import labyrinth
from tests.envs.popgym.board_and_maze_rollouts import CompiledOnce, port_first_episodes
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.maze_helpers import quiet, shortest_path, translate

CASES = {
    "LabyrinthEscapeEasy": ref_le.LabyrinthEscapeEasy,
    "LabyrinthEscapeMedium": ref_le.LabyrinthEscapeMedium,
    "LabyrinthEscapeHard": ref_le.LabyrinthEscapeHard,
}


@functools.cache
def _port(env_id: str) -> CompiledOnce:
    """One port per id for the whole module, so its step compiles once."""
    return CompiledOnce(envs.make(env_id)[0])


@functools.cache
def _port_episodes(env_id: str, num_episodes: int = 1000):
    return port_first_episodes(env_id, num_episodes, seed=0, max_steps=1023)


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep_random(env_id):
    """Port and reference give identical obs, rewards, terminated and truncated over whole random episodes."""
    for seed in range(2):
        length = run_lockstep(quiet(CASES[env_id]), _port(env_id), translate,
                              lambda rng: int(rng.integers(0, 4)), seed)
        assert length <= 1023


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep_escape(env_id):
    """Following the shortest path to the exit, port and reference agree step by step, ending in termination."""
    ref, port = quiet(CASES[env_id]), _port(env_id)
    params = port.default_params
    for seed in range(2):
        ref.reset(seed=seed)
        path = shortest_path(ref.maze.grid, ref.position, ref.maze.end)
        actions = iter(path)
        length = run_lockstep(ref, port, translate, lambda rng, actions=actions: next(actions), seed)
        assert length == len(path)
    assert params.max_steps_in_episode == 1023


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(CASES))
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns agree with the reference (KS, alpha=1e-3, 300 vs 1000 episodes).

    Slow: 300 reference episodes of up to 1023 steps take about 10 s on Easy.
    """
    ref_len, ref_ret = reference_random_episodes(quiet(CASES[env_id]), 300, seed=0)
    port_len, port_ret = _port_episodes(env_id)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")


def test_random_policy_reward_scale():
    """Random episodes return 1 - L/1024 when they escape in L steps and exactly -1023/1024 when they do not."""
    lengths, returns = _port_episodes("LabyrinthEscapeEasy")
    escaped = returns > 0  # even an escape on the last (1023rd) step returns 1/1024
    assert 0.05 < escaped.mean() < 0.5  # a random walk escapes a 5 x 5 maze now and then
    np.testing.assert_allclose(returns[escaped], 1 - lengths[escaped] / 1024, atol=1e-5)
    np.testing.assert_allclose(returns[~escaped], -1023 / 1024, atol=1e-5)
    assert (lengths[~escaped] == 1023).all()
    assert -1 < returns.mean() < 0


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_best_return(env_id):
    """The shortest escape of L steps returns exactly 1 - L/1024, the best achievable."""
    env = _port(env_id)
    params = env.default_params
    ref = quiet(CASES[env_id])
    ref.reset(seed=0)
    state = translate(ref)
    grid = np.asarray(state.grid)
    goal = tuple(np.argwhere(grid == labyrinth.GOAL)[0])
    actions = shortest_path(grid, tuple(np.asarray(state.position)), goal)
    total = 0.0
    for t, action in enumerate(actions):
        _, state, r, term, trunc, _ = env.step(jax.random.key(t), state, jnp.asarray(action),
                                               params)
        total += float(r)
        assert bool(term) == (t == len(actions) - 1)
    assert total == pytest.approx(1 - len(actions) / 1024, abs=1e-6)


def test_out_of_range_action_does_not_move():
    """An action outside [0, 4) leaves the agent in place, costs -1/1024 and shows as 4 in the observation."""
    env = _port("LabyrinthEscapeEasy")
    params = env.default_params
    ref = quiet(CASES["LabyrinthEscapeEasy"])
    ref.reset(seed=0)
    state = translate(ref)
    # Step off the border into the maze first, so that every move is informative.
    inward = {0: 3, 10: 2}.get(int(state.position[0]), 1 if int(state.position[1]) == 0 else 0)
    _, state, *_ = env.step(jax.random.key(1), state, jnp.asarray(inward), params)
    for action in (-1, 4, 7, 1000):
        obs, new, r, term, trunc, _ = env.step(jax.random.key(2), state, jnp.asarray(action), params)
        np.testing.assert_array_equal(new.position, state.position)
        assert float(r) == pytest.approx(-1 / 1024) and not bool(term)
        assert int(obs[9]) == 4 and int(new.time) == int(state.time) + 1
        np.testing.assert_array_equal(obs[:9], env.get_obs(state)[:9])
    obs, *_ = env.step(jax.random.key(2), state, jnp.int32(0), params)
    assert int(obs[9]) == 0
