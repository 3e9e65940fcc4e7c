"""CountRecall port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import count_recall as ref

import envs
from envs.popgym import count_recall
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.reference_decks import dealt_order_from_reference
from tests.envs.popgym.rollouts import Episodes, oracle_and_random_episodes

CASES = {
    "CountRecallEasy": ref.CountRecallEasy,
    "CountRecallMedium": ref.CountRecallMedium,
    "CountRecallHard": ref.CountRecallHard,
}
DIFFICULTIES = [
    "CountRecallEasy",
    pytest.param("CountRecallMedium", marks=pytest.mark.slow),
    pytest.param("CountRecallHard", marks=pytest.mark.slow),
]
# popgym: N cards, K kinds, M = N / K cards of each kind, actions 0..M.
SIZES = {  # env_id: (N, K, M)
    "CountRecallEasy": (52, 2, 26),  # colours, 1 deck
    "CountRecallMedium": (104, 4, 26),  # suits, 2 decks
    "CountRecallHard": (208, 13, 16),  # ranks, 4 decks
}
NUM_RANDOM = 300


def _translate(ref_env):
    n = ref_env.value_deck.num_cards
    return count_recall.EnvState(
        value_cards=dealt_order_from_reference(ref_env.value_deck.idx, n),
        query_cards=dealt_order_from_reference(ref_env.query_deck.idx, n),
        counts=np.asarray(ref_env.counts, np.int32),
        time=np.int32(0),
    )


def _oracle(env):
    # Counts the dealt value cards itself (not ``state.counts``), so that bookkeeping errors
    # in the port's reset or step show up as a return below 1.
    def act(state):
        kinds = env.kind_of(state.value_cards)
        dealt = jnp.arange(env.num_cards) <= state.time
        return jnp.sum(dealt & (kinds == env.kind_of(state.query_cards[state.time])))

    return act


@functools.cache
def _port_episodes(env_id: str) -> Episodes:
    """4 oracle and 300 random episodes of the port (shared by two tests: one compile)."""
    env, params = envs.make(env_id)
    return oracle_and_random_episodes(env, params, _oracle(env), 4, NUM_RANDOM, seed=0,
                                      max_len=env.num_cards - 1)


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reset_state(env_id):
    """The port's reset deals two independent shuffled decks and counts the first value card."""
    env, _ = envs.make(env_id)
    episodes = _port_episodes(env_id)  # their reset states come from vmapped, jitted resets
    obs, state = jax.tree.map(lambda x: x[:4], (episodes.reset_obs, episodes.reset_states))
    for value, query in zip(np.asarray(state.value_cards), np.asarray(state.query_cards),
                            strict=True):
        assert sorted(value) == sorted(query) == list(range(env.num_cards))
        assert not np.array_equal(value, query)
    kinds = np.asarray(env.kind_of(state.value_cards[:, 0]))
    np.testing.assert_array_equal(state.counts, np.eye(env.num_kinds, dtype=int)[kinds])
    np.testing.assert_array_equal(state.time, 0)
    np.testing.assert_array_equal(
        obs, np.stack([kinds, env.kind_of(state.query_cards[:, 0])], axis=1))


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on obs, reward, terminated and truncated over whole episodes."""
    port, _ = envs.make(env_id)
    n, k, m = SIZES[env_id]
    assert (port.num_cards, port.num_kinds, port.max_card_count) == (n, k, m)
    for seed in range(2):
        ref_env = CASES[env_id]()

        def sample(rng, ref_env=ref_env):
            # Half right answers (read from the reference), half uniform: both rewards occur.
            if rng.random() < 0.5:
                return int(ref_env.counts[ref_env.query])
            return int(rng.integers(0, m + 1))

        length = run_lockstep(ref_env, port, _translate, sample, seed)
        assert length == n - 1


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns match the reference (KS, alpha=1e-3, 300 eps)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), NUM_RANDOM, seed=0)
    episodes = _port_episodes(env_id)
    assert_same_distribution(ref_len, episodes.random_lengths, "episode lengths")
    assert_same_distribution(ref_ret, episodes.random_returns, "episode returns")


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reward_scale(env_id):
    """An oracle scores exactly 1 in N-1 steps; a random policy scores 2/(M+1)-1 on average."""
    # popgym: N - 1 steps pay +-1/(N-1) each, so an oracle scores exactly 1. A uniform
    # answer over M + 1 counts is right with probability p = 1/(M+1) whatever the true
    # count, so E[return] = 2p - 1: -25/27 = -0.926 (Easy, Medium), -15/17 = -0.882 (Hard),
    # with per-episode std 2 sqrt(p(1-p)/(N-1)).
    n, _, m = SIZES[env_id]
    episodes = _port_episodes(env_id)
    np.testing.assert_allclose(episodes.oracle_returns, 1.0, atol=1e-5)
    assert np.all(episodes.oracle_lengths == n - 1)
    p = 1 / (m + 1)
    se = 2 * np.sqrt(p * (1 - p) / (n - 1) / NUM_RANDOM)
    assert abs(episodes.random_returns.mean() - (2 * p - 1)) < 4 * se


def test_out_of_range_action_is_wrong_answer():
    """An action outside [0, M] is paid as a wrong answer, never as a right one."""
    env, params = envs.make("CountRecallEasy")
    _, state = env.reset(jax.random.key(0), params)
    right = int(_oracle(env)(state))
    _, _, r, *_ = env.step(jax.random.key(1), state, jnp.int32(right), params)
    assert float(r) == pytest.approx(1 / 51)
    # Counts never exceed M = 26, and negative counts do not exist.
    for bad in (27, 27 + right, -1, 1000):
        _, _, r, *_ = env.step(jax.random.key(1), state, jnp.int32(bad), params)
        assert float(r) == pytest.approx(-1 / 51)
