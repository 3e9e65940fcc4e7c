"""Autoencode port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import autoencode as ref

import envs
from envs.popgym import autoencode
from envs.popgym.cards import suit_of
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.reference_decks import dealt_order_from_reference
from tests.envs.popgym.rollouts import Episodes, oracle_and_random_episodes

CASES = {
    "AutoencodeEasy": ref.AutoencodeEasy,
    "AutoencodeMedium": ref.AutoencodeMedium,
    "AutoencodeHard": ref.AutoencodeHard,
}
DIFFICULTIES = [
    "AutoencodeEasy",
    pytest.param("AutoencodeMedium", marks=pytest.mark.slow),
    pytest.param("AutoencodeHard", marks=pytest.mark.slow),
]
NUM_RANDOM = 300


def _translate(ref_env):
    cards = dealt_order_from_reference(ref_env.deck.idx, ref_env.deck.num_cards)
    return autoencode.EnvState(cards=cards, time=np.int32(0))


def _compare(ref_obs, port_obs):
    # popgym's Tuple(Discrete(2), Discrete(4)) -> the port's [mode, suit].
    np.testing.assert_array_equal(np.asarray(port_obs), np.asarray(ref_obs, dtype=np.int32))


def _oracle(env):
    def act(state):
        n, t = env.num_cards, state.time
        return jnp.where(t >= n - 1, suit_of(state.cards[jnp.clip(2 * n - 2 - t, 0, n - 1)]), 0)

    return act


@functools.cache
def _port_episodes(env_id: str) -> Episodes:
    """4 oracle and 300 random episodes of the port (shared by two tests: one compile)."""
    env, params = envs.make(env_id)
    return oracle_and_random_episodes(env, params, _oracle(env), 4, NUM_RANDOM, seed=0,
                                      max_len=2 * env.num_cards - 1)


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reset_state(env_id):
    """The port's reset deals a shuffled deck and shows its first suit in watch mode (mode 1)."""
    env, _ = envs.make(env_id)
    episodes = _port_episodes(env_id)  # their reset states come from vmapped, jitted resets
    obs, state = jax.tree.map(lambda x: x[:4], (episodes.reset_obs, episodes.reset_states))
    cards = np.asarray(state.cards)
    assert all(sorted(row) == list(range(env.num_cards)) for row in cards)
    assert len({tuple(row) for row in cards}) == 4
    np.testing.assert_array_equal(state.time, 0)
    np.testing.assert_array_equal(obs, np.stack([np.ones(4), cards[:, 0] % 4], axis=1))


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on obs, reward, terminated and truncated over whole episodes."""
    port, _ = envs.make(env_id)
    for seed in range(2):
        length = run_lockstep(CASES[env_id](), port, _translate,
                              lambda rng: int(rng.integers(0, 4)), seed, compare_obs=_compare)
        assert length == 2 * port.num_cards - 1


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns match the reference (KS, alpha=1e-3, 300 eps)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), NUM_RANDOM, seed=0)
    episodes = _port_episodes(env_id)
    assert_same_distribution(ref_len, episodes.random_lengths, "episode lengths")
    assert_same_distribution(ref_ret, episodes.random_returns, "episode returns")


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reward_scale(env_id):
    """An oracle scores exactly 1 in 2N-1 steps; a random policy scores -0.5 on average."""
    # popgym: N play steps pay +-1/N each, watch steps pay 0; a uniform guess over 4 suits
    # is right 1/4 of the time, so E[return] = 1/4 - 3/4 = -0.5, per-episode variance
    # 4 * N * (1/4)(3/4) / N^2 = 0.75 / N.
    n = envs.make(env_id)[0].num_cards
    episodes = _port_episodes(env_id)
    np.testing.assert_allclose(episodes.oracle_returns, 1.0, atol=1e-5)
    assert np.all(episodes.oracle_lengths == 2 * n - 1)
    assert abs(episodes.random_returns.mean() - (-0.5)) < 4 * np.sqrt(0.75 / n / NUM_RANDOM)


def test_out_of_range_action_is_wrong_answer():
    """An action outside [0, 4) is a wrong answer in the play phase and ignored while watching."""
    env, params = envs.make("AutoencodeEasy")
    _, state = env.reset(jax.random.key(0), params)
    _, _, r, *_ = env.step(jax.random.key(1), state, jnp.int32(9), params)
    assert float(r) == 0.0
    play = state.replace(time=jnp.int32(env.num_cards - 1))  # first play step: last card
    right = int(suit_of(state.cards[env.num_cards - 1]))
    _, _, r_right, *_ = env.step(jax.random.key(1), play, jnp.int32(right), params)
    assert float(r_right) == pytest.approx(1 / 52)
    for bad in (right + 4, right - 4, 100):
        _, _, r, *_ = env.step(jax.random.key(1), play, jnp.int32(bad), params)
        assert float(r) == pytest.approx(-1 / 52)
