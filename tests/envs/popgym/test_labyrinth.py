"""The shared labyrinth core: JAX hunt-and-kill mazes against mazelib, view and moves against popgym."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import labyrinth_escape as ref_escape

import envs
from envs.popgym import labyrinth
from tests.envs.popgym.conformance import assert_same_distribution
from tests.envs.popgym.maze_helpers import maze_statistics, mazelib_mazes, quiet

STATISTICS = ("dead_ends", "junctions", "open_fraction", "unvisited_rooms", "exit_path")


def _port_mazes(rooms: int, n: int, seed: int, budget: int | None = None):
    @jax.jit
    @jax.vmap
    def draw(key):
        maze_key, entrance_key = jax.random.split(key)
        grid = labyrinth.generate_maze(maze_key, rooms, rooms, budget)
        return (grid, *labyrinth.draw_entrances(entrance_key, rooms, rooms))

    grids, starts, ends = jax.device_get(draw(jax.random.split(jax.random.key(seed), n)))
    return [(g, tuple(s), tuple(e)) for g, s, e in zip(grids, starts, ends, strict=True)]


def _compare(ref_mazes, port_mazes, names=STATISTICS):
    ref = [maze_statistics(*m) for m in ref_mazes]
    port = [maze_statistics(*m) for m in port_mazes]
    for name in names:
        assert_same_distribution(np.array([s[name] for s in ref]),
                                 np.array([s[name] for s in port]), name)
    return ref, port


@pytest.mark.parametrize("rooms", [5, pytest.param(7, marks=pytest.mark.slow), 9])
def test_maze_statistics_match_mazelib(rooms):
    """Dead ends, junctions, open fraction, unvisited rooms and exit path length match mazelib's (KS, 400 mazes each)."""
    n = 400 if rooms < 9 else 250
    ref, port = _compare(mazelib_mazes(rooms, n, seed=0), _port_mazes(rooms, n, seed=0))
    # Hunt-and-kill makes long corridors: a dead end in roughly every 10th room here.
    assert 0.05 < np.mean([s["dead_ends"] for s in port]) / rooms**2 < 0.2


def test_unfinished_mazes_match_mazelib():
    """With a small hunt budget (mazes left unfinished) the visited-room counts match mazelib's (KS, 400 mazes)."""
    ref, port = _compare(mazelib_mazes(5, 400, seed=1, budget=6),
                         _port_mazes(5, 400, seed=1, budget=6),
                         names=("unvisited_rooms", "dead_ends"))
    # The budget must bite, or this test would not exercise the hunt's stopping rule.
    assert np.mean([s["unvisited_rooms"] > 0 for s in ref]) > 0.3


def test_port_mazes_are_trees():
    """Every finished maze is a spanning tree of the rooms: 2 * rooms - 1 open cells, all connected."""
    for grid, start, end in _port_mazes(7, 50, seed=3):
        stats = maze_statistics(grid, start, end)
        assert stats["unvisited_rooms"] == 0 and stats["exit_path"] > 0
        assert (grid == 0).sum() == 2 * 49 - 1
        assert start[0] in (0, 14) or start[1] in (0, 14)
        assert abs(start[0] - end[0]) == 14 or abs(start[1] - end[1]) == 14  # opposite walls


def test_local_view_and_moves_match_reference_everywhere():
    """At every cell of reference mazes the 3 x 3 view and each move's result equal popgym's."""
    ref = quiet(ref_escape.LabyrinthEscapeEasy)
    port, _ = envs.make("LabyrinthEscapeEasy")
    view = jax.jit(labyrinth.local_view)
    move = jax.jit(port.move)
    for seed in range(2):
        ref.reset(seed=seed)
        grid = jnp.asarray(ref.maze.grid, jnp.int32)
        for y in range(grid.shape[0]):
            for x in range(grid.shape[1]):
                ref.position = (y, x)
                position = jnp.array([y, x], jnp.int32)
                np.testing.assert_array_equal(
                    view(grid, position), ref.local_view(ref.maze.grid).reshape(9),
                    err_msg=f"view at {(y, x)}")
                state = labyrinth.EnvState(grid=grid, explored=jnp.zeros(grid.shape, bool),
                                           position=position, last_action=jnp.int32(4),
                                           time=jnp.int32(0))
                for action in range(4):
                    new, shown = move(state, action)
                    assert tuple(np.asarray(new)) == ref.move(action), (y, x, action)
                    assert int(shown) == action


@pytest.mark.parametrize("env_id", ["LabyrinthEscapeHard", "LabyrinthExploreHard"])
def test_spaces_and_jit_vmap(env_id):
    """Spaces are popgym's (MultiDiscrete([5] * 10) obs, Discrete(4) action); reset/step jit and vmap."""
    env, params = envs.make(env_id)
    assert env.observation_space(params).nvec == (5,) * 10
    assert env.action_space(params).n == 4
    assert params.max_steps_in_episode == 1023
    keys = jax.random.split(jax.random.key(0), 8)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert obs.shape == (8, 10) and obs.dtype == jnp.int32
    assert state.grid.shape == (8, 19, 19)
    assert (np.asarray(obs)[:, 9] == 4).all()
    actions = jax.vmap(env.action_space(params).sample)(keys)
    obs, *_ = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(keys, state, actions, params)
    assert obs.shape == (8, 10) and obs.dtype == jnp.int32
    assert env.observation_space(params).contains(obs[0])
