"""Battleship port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import battleship as ref_bs

import envs
from envs.popgym import battleship
from tests.envs.popgym.board_and_maze_rollouts import CompiledOnce, port_first_episodes
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)

CASES = {
    "BattleshipEasy": ref_bs.BattleshipEasy,
    "BattleshipMedium": ref_bs.BattleshipMedium,
    "BattleshipHard": ref_bs.BattleshipHard,
}


@functools.cache
def _port(env_id: str) -> CompiledOnce:
    """One port per id for the whole module, so its step compiles once."""
    return CompiledOnce(envs.make(env_id)[0])


@functools.cache
def _port_episodes(env_id: str, num_episodes: int = 2000):
    """Random-policy (lengths, returns) of the port, shared by the tests below."""
    size = _port(env_id).board_size
    return port_first_episodes(env_id, num_episodes, seed=0, max_steps=size**2)


def _translate(ref_env) -> battleship.EnvState:
    size = ref_env.board_size
    return battleship.EnvState(
        board=jnp.asarray(ref_env.board, bool),
        guesses=jnp.zeros((size, size), bool),
        hits=jnp.int32(0),
        last_hit=jnp.int32(0),
        time=jnp.int32(0),
    )


def _expected_random_return(size: int, needed: int = 12) -> float:
    """Exact mean return of uniform random shots, by dynamic programming over (shot, hits).

    A shot hits a new ship tile with probability ``(needed - h) / size**2`` whatever was
    fired before, because every ship tile fired at so far is one of the ``h`` hits.
    """
    tiles = size**2
    hit_r, miss_r = 1 / needed, -1 / (tiles - needed)
    probs = np.zeros(needed + 1)  # probs[h]: h ship tiles hit; probs[needed]: terminated
    probs[0] = 1.0
    total = 0.0
    for _ in range(tiles):
        p_hit = (needed - np.arange(needed + 1)) / tiles
        alive = probs.copy()
        alive[needed] = 0.0
        total += float(np.sum(alive * (p_hit * hit_r + (1 - p_hit) * miss_r)))
        new = alive * (1 - p_hit)
        new[1:] += (alive * p_hit)[:-1]
        new[needed] += probs[needed]
        probs = new
    return total


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on obs, reward, terminated, truncated over random episodes."""
    port = _port(env_id)
    size = port.board_size
    for seed in range(2):
        length = run_lockstep(CASES[env_id](), port, _translate,
                              lambda rng: rng.integers(0, size, size=2), seed)
        assert length == size**2  # random shots essentially never sink all 12 tiles


@pytest.mark.parametrize("env_id", ["BattleshipEasy", "BattleshipHard"])
def test_lockstep_sinking_everything(env_id):
    """Firing at ship tiles (one twice) agrees with the reference through the terminating hit."""
    ref = CASES[env_id]()
    for seed in range(2):
        ref.reset(seed=seed)
        tiles = [tuple(t) for t in np.argwhere(ref.board == 1)]
        actions = iter([tiles[0]] + tiles)  # the repeat is a miss
        length = run_lockstep(ref, _port(env_id), _translate,
                              lambda rng, it=actions: np.array(next(it)), seed)
        assert length == 13


def test_ship_placement_distribution():
    """Boards follow popgym's placement law (KS on touching pairs, border tiles, horizontals)."""
    n = 2000
    ref = ref_bs.BattleshipEasy()
    ref_boards = []
    for seed in range(n):
        ref.reset(seed=seed)
        ref_boards.append(ref.board.astype(bool))
    ref_boards = np.stack(ref_boards)
    keys = jax.random.split(jax.random.key(0), n)
    port_boards = np.asarray(jax.jit(jax.vmap(lambda k: battleship.place_ships(k, 8)))(keys))
    assert (port_boards.sum((1, 2)) == 12).all() and (ref_boards.sum((1, 2)) == 12).all()

    def adjacent_pairs(b):
        return (b[:, 1:, :] & b[:, :-1, :]).sum((1, 2)) + (b[:, :, 1:] & b[:, :, :-1]).sum((1, 2))

    def border_tiles(b):
        ring = np.ones((8, 8), bool)
        ring[1:-1, 1:-1] = False
        return (b & ring).sum((1, 2))

    def horizontal_pairs(b):
        return (b[:, :, 1:] & b[:, :, :-1]).sum((1, 2))

    for stat in (adjacent_pairs, border_tiles, horizontal_pairs):
        assert_same_distribution(stat(ref_boards), stat(port_boards), stat.__name__)
    # Per-tile occupancy (corners are rarer than the centre in both).
    np.testing.assert_allclose(port_boards.mean(0), ref_boards.mean(0), atol=0.05)


@pytest.mark.parametrize("env_id", [
    "BattleshipEasy",
    pytest.param("BattleshipMedium", marks=pytest.mark.slow),
    pytest.param("BattleshipHard", marks=pytest.mark.slow),
])
def test_random_policy_statistics(env_id):
    """Random-policy lengths and returns match the reference (KS, alpha=1e-3, 300 vs 2000)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), 300, seed=0)
    port_len, port_ret = _port_episodes(env_id)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")


@pytest.mark.parametrize("env_id,expected", [
    ("BattleshipEasy", -0.4489),
    pytest.param("BattleshipMedium", -0.4155, marks=pytest.mark.slow),
    pytest.param("BattleshipHard", -0.3995, marks=pytest.mark.slow),
])
def test_random_policy_mean_return(env_id, expected):
    """The random-policy mean return is popgym's (exact DP value, hand-checked)."""
    size = _port(env_id).board_size
    # Hand check, ignoring the (negligible) chance of sinking everything: 12 (1 - (1 - 1/N)^N)
    # distinct hits in N = size**2 shots, each +1/12, the other shots -1/(N - 12).
    hits = 12 * (1 - (1 - 1 / size**2) ** size**2)
    assert hits / 12 - (size**2 - hits) / (size**2 - 12) == pytest.approx(expected, abs=1e-3)
    assert _expected_random_return(size) == pytest.approx(expected, abs=1e-4)
    _, port_ret = _port_episodes(env_id)
    stderr = port_ret.std() / np.sqrt(len(port_ret))
    assert abs(port_ret.mean() - expected) < 4 * stderr


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_best_and_worst_returns(env_id):
    """Sinking every ship with no miss returns exactly 1; N misses return -N/(N - 12)."""
    env = _port(env_id)
    params, size = env.default_params, env.board_size
    ref = CASES[env_id]()
    ref.reset(seed=0)
    state = _translate(ref)
    total, t = 0.0, 0
    for tile in np.argwhere(np.asarray(state.board)):
        _, state, r, term, trunc, _ = env.step(jax.random.key(t), state, jnp.asarray(tile), params)
        total, t = total + float(r), t + 1
    assert bool(term) and not bool(trunc) and t == 12
    assert total == pytest.approx(1.0, abs=1e-5)

    state = _translate(ref)
    empty = jnp.asarray(np.argwhere(ref.board == 0)[0])
    total = 0.0
    for t in range(size**2):
        _, state, r, term, trunc, _ = env.step(jax.random.key(t), state, empty, params)
        total += float(r)
        assert bool(trunc) == (t == size**2 - 1) and not bool(term)
    assert total == pytest.approx(-(size**2) / (size**2 - 12), abs=1e-4)


def test_out_of_range_action_is_a_miss():
    """A shot off the board (too large or negative) is a miss: miss reward, obs 0, no wrap."""
    env = _port("BattleshipEasy")
    params = env.default_params
    board = jnp.zeros((8, 8), bool).at[7, 3].set(True).at[0, 0].set(True)
    state = battleship.EnvState(board=board, guesses=jnp.zeros((8, 8), bool),
                                hits=jnp.int32(0), last_hit=jnp.int32(0), time=jnp.int32(0))
    for action in ([-1, 3], [8, 0], [0, 8], [100, -100]):
        obs, new, r, *_ = env.step(jax.random.key(0), state, jnp.array(action), params)
        assert int(obs) == 0 and float(r) == pytest.approx(-1 / 52)
        assert not np.asarray(new.guesses).any() and int(new.hits) == 0 and int(new.time) == 1
    # The tiles a wrap-around would reach are ships: firing at them directly hits.
    obs, _, r, *_ = env.step(jax.random.key(0), state, jnp.array([7, 3]), params)
    assert int(obs) == 1 and float(r) == pytest.approx(1 / 12)


def test_spaces():
    """Spaces are popgym's (Discrete(2) obs, MultiDiscrete([S, S]) action)."""
    env, params = envs.make("BattleshipMedium")
    assert env.observation_space(params).n == 2
    assert env.action_space(params).nvec == (10, 10)
    assert params.max_steps_in_episode == 100
    # jit + vmap of reset and step: see port_first_episodes in the statistics tests.
