"""MineSweeper port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import minesweeper as ref_ms

import envs
from envs.popgym import minesweeper
from tests.envs.popgym.board_and_maze_rollouts import CompiledOnce, port_first_episodes
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)

CASES = {
    "MineSweeperEasy": ref_ms.MineSweeperEasy,
    "MineSweeperMedium": ref_ms.MineSweeperMedium,
    "MineSweeperHard": ref_ms.MineSweeperHard,
}


def _translate(ref_env):
    mines = jnp.asarray(ref_env.hidden_grid == ref_ms.HiddenSquare.MINE)
    return minesweeper.EnvState(
        mines=mines,
        viewed=jnp.zeros(mines.shape, bool),
        neighbors=minesweeper.count_neighbors(mines),
        hit_mine=jnp.bool_(False),
        last_obs=jnp.int32(0),
        time=jnp.int32(0),
    )


@functools.cache
def _port(env_id: str) -> CompiledOnce:
    """One port per id for the whole module, so its step compiles once."""
    return CompiledOnce(envs.make(env_id)[0])


@functools.cache
def _port_episodes(env_id: str, num_episodes: int = 2000):
    """Random-policy (lengths, returns) of the port, shared by the tests below."""
    length = _port(env_id).max_episode_length
    return port_first_episodes(env_id, num_episodes, seed=0, max_steps=length)


def _expected_random_return(cells: int, mines: int) -> float:
    """Exact mean return of uniform random clicks, by dynamic programming over (step, viewed).

    Each click is a mine with probability ``M/n``, a new clear tile with ``(L - v)/n`` and
    a viewed tile with ``v/n`` (``n`` tiles, ``L = n - M`` clear, ``v`` viewed so far).
    """
    clear = cells - mines
    win, lose, bad = 1 / clear, -0.5 - 1 / clear, -0.5 / (clear - 2)
    probs = np.zeros(clear + 1)  # probs[v]: alive with v tiles viewed
    probs[0] = 1.0
    total = 0.0
    for _ in range(clear):
        v = np.arange(clear + 1)
        p_new, p_bad = (clear - v) / cells, v / cells
        total += float(np.sum(probs * (mines / cells * lose + p_new * win + p_bad * bad)))
        new = probs * p_bad
        new[1:] += (probs * p_new)[:-1]
        new[clear] = 0.0  # every clear tile viewed: terminated
        probs = new
    return total


def test_neighbor_counts_match_reference():
    """Tile numbers count the mines in the 3 x 3 block including the tile, as popgym's do."""
    ref = ref_ms.MineSweeperHard()
    for seed in range(20):
        ref.reset(seed=seed)
        mines = jnp.asarray(ref.hidden_grid == ref_ms.HiddenSquare.MINE)
        np.testing.assert_array_equal(minesweeper.count_neighbors(mines), ref.neighbor_grid)


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on obs, reward, terminated, truncated over random episodes."""
    port = _port(env_id)
    h, w = port.dims
    for seed in range(4):
        length = run_lockstep(CASES[env_id](), port, _translate,
                              lambda rng: rng.integers(0, (h, w)), seed)
        assert length <= port.max_episode_length


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep_win_and_truncation(env_id):
    """Clicking every clear tile agrees with the reference to a win; one tile over and over, to
    truncation."""
    ref = CASES[env_id]()
    port = _port(env_id)
    for seed in range(2):
        ref.reset(seed=seed)
        clear = [tuple(t) for t in np.argwhere(ref.hidden_grid != ref_ms.HiddenSquare.MINE)]
        for actions in (clear, [clear[0]] * port.max_episode_length):
            it = iter(actions)
            length = run_lockstep(ref, port, _translate,
                                  lambda rng, it=it: np.array(next(it)), seed)
            assert length == port.max_episode_length


@pytest.mark.parametrize("env_id", [
    "MineSweeperEasy",
    pytest.param("MineSweeperMedium", marks=pytest.mark.slow),
    pytest.param("MineSweeperHard", marks=pytest.mark.slow),
])
def test_random_policy_statistics(env_id):
    """Random-policy lengths and returns match the reference (KS, alpha=1e-3, 400 vs 2000)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), 400, seed=0)
    port_len, port_ret = _port_episodes(env_id)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")


@pytest.mark.parametrize("env_id,expected", [
    ("MineSweeperEasy", -0.2311),
    pytest.param("MineSweeperMedium", -0.4009, marks=pytest.mark.slow),
    pytest.param("MineSweeperHard", -0.4323, marks=pytest.mark.slow),
])
def test_random_policy_mean_return(env_id, expected):
    """The random-policy mean return is popgym's (exact DP value)."""
    env = _port(env_id)
    cells = env.dims[0] * env.dims[1]
    assert _expected_random_return(cells, env.num_mines) == pytest.approx(expected, abs=1e-4)
    _, port_ret = _port_episodes(env_id)
    stderr = port_ret.std() / np.sqrt(len(port_ret))
    assert abs(port_ret.mean() - expected) < 4 * stderr


def test_expected_return_by_hand():
    """Hand check of the DP: Easy's first click pays (2 lose + 14 win) / 16 in expectation."""
    first_step = (2 * (-0.5 - 1 / 14) + 14 * (1 / 14)) / 16
    assert first_step == pytest.approx(-0.0089286, abs=1e-6)
    # A one-click game (L = 1 clear tile of n = 3, M = 2) is exactly such a first step.
    assert _expected_random_return(3, 2) == pytest.approx((2 * (-0.5 - 1) + 1 * 1) / 3)


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_best_and_worst_returns(env_id):
    """Clicking every clear tile returns exactly 1; a view, L - 2 repeats and a mine return -1."""
    env = _port(env_id)
    params = env.default_params
    ref = CASES[env_id]()
    ref.reset(seed=0)
    mines = ref.hidden_grid == ref_ms.HiddenSquare.MINE
    clear, mine = np.argwhere(~mines), np.argwhere(mines)[0]
    for actions, expected in ((clear, 1.0), ([clear[0]] * (len(clear) - 1) + [mine], -1.0)):
        state = _translate(ref)
        total = 0.0
        for t, action in enumerate(actions):
            _, state, r, term, trunc, _ = env.step(jax.random.key(t), state,
                                                   jnp.asarray(action), params)
            total += float(r)
            assert bool(term) == (t == len(actions) - 1) and not bool(trunc)
        assert total == pytest.approx(expected, abs=1e-5)


def test_out_of_range_action_is_a_bad_click():
    """A click off the board pays the repeat penalty, observes 0 and never wraps onto a mine."""
    env = _port("MineSweeperEasy")
    params = env.default_params
    mines = jnp.zeros((4, 4), bool).at[3, 3].set(True).at[0, 3].set(True)
    state = minesweeper.EnvState(mines=mines, viewed=jnp.zeros((4, 4), bool),
                                 neighbors=minesweeper.count_neighbors(mines),
                                 hit_mine=jnp.bool_(False), last_obs=jnp.int32(0),
                                 time=jnp.int32(0))
    for action in ([-1, -1], [4, 0], [0, -1], [7, 9]):
        obs, new, r, term, *_ = env.step(jax.random.key(0), state, jnp.array(action), params)
        assert int(obs) == 0 and float(r) == pytest.approx(-0.5 / 12)
        assert not bool(term) and not np.asarray(new.viewed).any() and int(new.time) == 1
    _, _, r, term, _, info = env.step(jax.random.key(0), state, jnp.array([3, 3]), params)
    assert bool(term) and float(r) == pytest.approx(-0.5 - 1 / 14, abs=1e-6)
    assert int(info["final_observation"]) == 1  # the mine counts itself


def test_spaces():
    """Spaces are popgym's (Discrete(min(M + 1, 10)) obs, MultiDiscrete([h, w]) action)."""
    for env_id, n_obs, nvec in (("MineSweeperEasy", 3, (4, 4)), ("MineSweeperHard", 10, (8, 8))):
        env, params = envs.make(env_id)
        assert env.observation_space(params).n == n_obs
        assert env.action_space(params).nvec == nvec
    assert params.max_steps_in_episode == 54
    # jit + vmap of reset and step: see port_first_episodes in the statistics tests.
