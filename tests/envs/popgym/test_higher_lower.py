"""HigherLower port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import higher_lower as ref

import envs
from envs.popgym import higher_lower
from envs.popgym.cards import rank_of
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.reference_decks import dealt_order_from_reference
from tests.envs.popgym.rollouts import Episodes, oracle_and_random_episodes

CASES = {
    "HigherLowerEasy": ref.HigherLowerEasy,
    "HigherLowerMedium": ref.HigherLowerMedium,
    "HigherLowerHard": ref.HigherLowerHard,
}
DIFFICULTIES = [
    "HigherLowerEasy",
    pytest.param("HigherLowerMedium", marks=pytest.mark.slow),
    pytest.param("HigherLowerHard", marks=pytest.mark.slow),
]
NUM_ORACLE = 256
NUM_RANDOM = 300


def _translate(ref_env):
    cards = dealt_order_from_reference(ref_env.deck.idx, ref_env.deck.num_cards)
    return higher_lower.EnvState(cards=cards, time=np.int32(0))


def _oracle(state):
    t = state.time
    return jnp.where(rank_of(state.cards[t + 1]) > rank_of(state.cards[t]), 0, 1)


@functools.cache
def _port_episodes(env_id: str) -> Episodes:
    """256 oracle and 300 random episodes of the port (shared by two tests: one compile)."""
    env, params = envs.make(env_id)
    return oracle_and_random_episodes(env, params, _oracle, NUM_ORACLE, NUM_RANDOM, seed=0,
                                      max_len=env.num_cards - 1)


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reset_state(env_id):
    """The port's reset deals a shuffled deck and shows the rank of its first card."""
    env, _ = envs.make(env_id)
    episodes = _port_episodes(env_id)  # their reset states come from vmapped, jitted resets
    obs, state = jax.tree.map(lambda x: x[:4], (episodes.reset_obs, episodes.reset_states))
    cards = np.asarray(state.cards)
    assert all(sorted(row) == list(range(env.num_cards)) for row in cards)
    assert len({tuple(row) for row in cards}) == 4
    np.testing.assert_array_equal(state.time, 0)
    np.testing.assert_array_equal(obs, cards[:, 0] // 4 % 13)


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on obs, reward, terminated and truncated over whole episodes."""
    port, _ = envs.make(env_id)
    for seed in range(2):
        length = run_lockstep(CASES[env_id](), port, _translate,
                              lambda rng: int(rng.integers(0, 2)), seed)
        assert length == port.num_cards - 1


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns match the reference (KS, alpha=1e-3, 300 eps)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), NUM_RANDOM, seed=0)
    episodes = _port_episodes(env_id)
    assert_same_distribution(ref_len, episodes.random_lengths, "episode lengths")
    assert_same_distribution(ref_ret, episodes.random_returns, "episode returns")


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reward_scale(env_id):
    """An oracle scores (N-1-ties)/N, 12/13 on average; a random policy scores 0 on average."""
    # popgym: each of the N - 1 guesses pays +-1/N, ties (same rank) pay 0. An oracle that
    # knows the next card scores (N - 1 - ties)/N exactly; consecutive cards tie with
    # probability (4d - 1)/(N - 1) (d decks), so E[ties] = 4d - 1 and the oracle's mean is
    # (N - 4d)/N = 12/13 = 0.923 for every d (per-episode std about 0.03 for one deck). A
    # random guess is right half the time on non-ties: mean 0, per-episode std <= 1/sqrt(N).
    n = envs.make(env_id)[0].num_cards
    episodes = _port_episodes(env_id)
    ranks = np.asarray(rank_of(episodes.reset_states.cards[:NUM_ORACLE]))
    ties = (ranks[:, 1:] == ranks[:, :-1]).sum(axis=1)
    np.testing.assert_allclose(episodes.oracle_returns, (n - 1 - ties) / n, atol=1e-5)
    assert np.all(episodes.oracle_lengths == n - 1)
    assert abs(episodes.oracle_returns.mean() - 12 / 13) < 0.01
    assert abs(episodes.random_returns.mean()) < 4 / np.sqrt(n * NUM_RANDOM)


def test_out_of_range_action_means_lower():
    """As in popgym, only action 0 guesses higher; any other action, even out of range, is lower."""
    env, params = envs.make("HigherLowerEasy")
    # Card j has rank j // 4 % 13: card 0 is an ace (0), card 47 a queen (11), 51 a king (12).
    cards = jnp.arange(52, dtype=jnp.int32)
    up = higher_lower.EnvState(cards=cards.at[0].set(0).at[1].set(51), time=jnp.int32(0))
    down = higher_lower.EnvState(cards=cards.at[0].set(51).at[1].set(47), time=jnp.int32(0))
    for state, higher in ((up, True), (down, False)):
        for action in (0, 1, 2, 7, -1):
            _, _, r, *_ = env.step(jax.random.key(1), state, jnp.int32(action), params)
            right = (action == 0) == higher
            assert float(r) == pytest.approx(1 / 52 if right else -1 / 52), (action, higher)
