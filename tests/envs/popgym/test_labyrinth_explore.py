"""LabyrinthExplore port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import labyrinth_explore as ref_lx

import envs
from envs.popgym import labyrinth
from tests.envs.popgym.board_and_maze_rollouts import CompiledOnce, port_first_episodes
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.maze_helpers import quiet, tour, translate

CASES = {
    "LabyrinthExploreEasy": ref_lx.LabyrinthExploreEasy,
    "LabyrinthExploreMedium": ref_lx.LabyrinthExploreMedium,
    "LabyrinthExploreHard": ref_lx.LabyrinthExploreHard,
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
def test_lockstep_full_tour(env_id):
    """Along a depth-first tour of the maze, port and reference agree step by step, ending in termination."""
    ref, port = quiet(CASES[env_id]), _port(env_id)
    for seed in range(2):
        ref.reset(seed=seed)
        path = tour(ref.maze.grid, ref.position)
        actions = iter(path)
        length = run_lockstep(ref, port, translate, lambda rng, actions=actions: next(actions), seed)
        assert length == len(path)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(CASES))
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns agree with the reference (KS, alpha=1e-3, 300 vs 1000 episodes).

    Slow: 300 reference episodes of up to 1023 steps take about 13 s on Easy.
    """
    ref_len, ref_ret = reference_random_episodes(quiet(CASES[env_id]), 300, seed=0)
    port_len, port_ret = _port_episodes(env_id)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")


def test_random_policy_reward_scale():
    """Random returns stay within [-1, 1]: F new cells pay 1/F each, every other step -1/1024."""
    lengths, returns = _port_episodes("LabyrinthExploreEasy")
    assert (returns <= 1 + 1e-5).all() and (returns >= -1).all()
    # A 5 x 5 maze has F = 49 free cells (25 rooms, 24 passages; the start door is coded 2);
    # a 1023-step walk that found k of them returns k/49 - (1023 - k)/1024.
    truncated = lengths == 1023
    assert truncated.mean() > 0.5
    found = (returns[truncated] + 1023 / 1024) / (1 / 49 + 1 / 1024)
    np.testing.assert_allclose(found, np.round(found), atol=1e-3)
    assert (np.round(found) <= 49).all() and returns.mean() > -1


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_best_return(env_id):
    """A full tour of S steps collects exactly 1 for the F free cells and returns 1 - (S - F)/1024."""
    env = _port(env_id)
    params = env.default_params
    ref = quiet(CASES[env_id])
    ref.reset(seed=0)
    state = translate(ref)
    grid = np.asarray(state.grid)
    actions = tour(grid, tuple(np.asarray(state.position)))
    free = int((grid == labyrinth.FREE).sum())
    rooms = env.rooms[0] * env.rooms[1]
    assert free == 2 * rooms - 1  # a spanning tree's rooms and passages (the start is a door)
    total = 0.0
    for t, action in enumerate(actions):
        _, state, r, term, trunc, _ = env.step(jax.random.key(t), state, jnp.asarray(action),
                                               params)
        total += float(r)
        assert bool(term) == (t == len(actions) - 1)
    assert total == pytest.approx(1 - (len(actions) - free) / 1024, abs=1e-5)


def test_out_of_range_action_does_not_move():
    """An action outside [0, 4) leaves the agent in place, costs -1/1024 and shows as 4 in the observation."""
    env = _port("LabyrinthExploreEasy")
    params = env.default_params
    ref = quiet(CASES["LabyrinthExploreEasy"])
    ref.reset(seed=0)
    state = translate(ref)
    for action in (-1, 4, 7, 1000):
        obs, new, r, term, trunc, _ = env.step(jax.random.key(2), state, jnp.asarray(action), params)
        np.testing.assert_array_equal(new.position, state.position)
        np.testing.assert_array_equal(new.explored, state.explored)
        assert float(r) == pytest.approx(-1 / 1024) and not bool(term)
        assert int(obs[9]) == 4 and int(new.time) == 1
    obs, *_ = env.step(jax.random.key(2), state, jnp.int32(2), params)
    assert int(obs[9]) == 2
