"""Concentration port against the reference popgym package."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import concentration as ref

import envs
from envs.popgym import concentration
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.rollouts import Episodes, oracle_and_random_episodes

CASES = {
    "ConcentrationEasy": ref.ConcentrationEasy,
    "ConcentrationMedium": ref.ConcentrationMedium,
    "ConcentrationHard": ref.ConcentrationHard,
}
DIFFICULTIES = [
    "ConcentrationEasy",
    pytest.param("ConcentrationMedium", marks=pytest.mark.slow),
    pytest.param("ConcentrationHard", marks=pytest.mark.slow),
]
# popgym: L = ceil(2N - N/(2N-1)); success 1/(N//2); failure -1/L.
SIZES = {  # env_id: (N, kinds, L)
    "ConcentrationEasy": (52, 2, 104),  # colours, 1 deck
    "ConcentrationMedium": (104, 2, 208),  # colours, 2 decks
    "ConcentrationHard": (52, 13, 104),  # ranks, 1 deck
}
# Random-policy mean returns of the reference (300 episodes, seed 0; per-episode std in
# brackets): Easy -0.189 (0.106), Medium -0.183 (0.072), Hard -0.829 (0.094). Hand check
# for Hard: about 52 two-flip turns, each matching with probability about 3/51, give about
# 3 matches (+3/26 = +0.12) and 49 misses (49 * 2/104 = -0.94), -0.82 in all.
RANDOM_MEAN = {"ConcentrationEasy": (-0.189, 0.106), "ConcentrationMedium": (-0.183, 0.072),
               "ConcentrationHard": (-0.829, 0.094)}
NUM_RANDOM = 300


def _translate(ref_env):
    n = ref_env.deck.num_cards
    return concentration.EnvState(
        cards=np.asarray(ref_env.deck.idx, np.int32),
        face_up=np.zeros(n, bool),
        pending=np.int32(-1),
        shown=np.full(2, -1, np.int32),
        time=np.int32(0),
    )


def _reference_oracle(ref_env) -> int:
    """The flip a perfect-memory player makes, read from the reference's hidden state."""
    kinds = ref_env.state
    face_up = set(ref_env.deck["face_up_idx"])
    in_play = ref_env.deck["in_play_idx"]
    free = [q for q in range(len(kinds)) if q not in face_up]
    if in_play:
        p = in_play[0]
        return next(q for q in free if q != p and kinds[q] == kinds[p])
    return free[0]


def _oracle(env):
    def act(state):
        kinds = env.kind_of(state.cards)
        first = jnp.maximum(state.pending, 0)
        free = ~state.face_up
        partner = free & (kinds == kinds[first]) & (jnp.arange(env.num_cards) != first)
        return jnp.argmax(jnp.where(state.pending >= 0, partner, free))

    return act


@functools.cache
def _port_episodes(env_id: str) -> Episodes:
    """4 oracle and 300 random episodes of the port (shared by two tests: one compile)."""
    env, params = envs.make(env_id)
    return oracle_and_random_episodes(env, params, _oracle(env), 4, NUM_RANDOM, seed=0,
                                      max_len=env.episode_length)


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reset_state(env_id):
    """The port's reset lays out a shuffled deck face down, as the reference's reset does."""
    env, _ = envs.make(env_id)
    episodes = _port_episodes(env_id)  # their reset states come from vmapped, jitted resets
    obs, state = jax.tree.map(lambda x: x[:4], (episodes.reset_obs, episodes.reset_states))
    cards = np.asarray(state.cards)
    assert all(sorted(row) == list(range(env.num_cards)) for row in cards)
    assert len({tuple(row) for row in cards}) == 4
    assert not np.any(state.face_up)
    np.testing.assert_array_equal(state.pending, -1)
    np.testing.assert_array_equal(state.shown, -1)
    np.testing.assert_array_equal(state.time, 0)
    ref_obs, _ = CASES[env_id]().reset(seed=0)
    np.testing.assert_array_equal(obs, np.broadcast_to(ref_obs, obs.shape))  # all face down


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on a random (truncated) and a mostly-oracle (terminated) episode."""
    port, _ = envs.make(env_id)
    n, kinds, length_limit = SIZES[env_id]
    assert (port.num_cards, port.num_kinds, port.episode_length) == (n, kinds, length_limit)
    for seed, p_oracle in ((0, 0.0), (1, 0.8)):
        ref_env = CASES[env_id]()

        def sample(rng, ref_env=ref_env, p_oracle=p_oracle):
            if rng.random() < p_oracle:
                return _reference_oracle(ref_env)
            return int(rng.integers(0, n))

        length = run_lockstep(ref_env, port, _translate, sample, seed)
        if p_oracle == 0.0:
            assert length == length_limit  # random play never clears the table
        else:
            assert length < length_limit  # the table was cleared: termination was compared


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns match the reference (KS, alpha=1e-3, 300 eps)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), NUM_RANDOM, seed=0)
    episodes = _port_episodes(env_id)
    assert_same_distribution(ref_len, episodes.random_lengths, "episode lengths")
    assert_same_distribution(ref_ret, episodes.random_returns, "episode returns")


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reward_scale(env_id):
    """A perfect-memory oracle scores exactly 1 in N steps; random play gets the reference mean."""
    # popgym: N/2 matches pay 1/(N//2) each, so a perfect-memory oracle scores exactly 1 in
    # N steps (two flips per pair). Random play: see RANDOM_MEAN.
    n, _, length_limit = SIZES[env_id]
    episodes = _port_episodes(env_id)
    np.testing.assert_allclose(episodes.oracle_returns, 1.0, atol=1e-5)
    assert np.all(episodes.oracle_lengths == n)
    mean, std = RANDOM_MEAN[env_id]
    assert abs(episodes.random_returns.mean() - mean) < 4 * std * np.sqrt(2 / NUM_RANDOM)
    assert np.all(episodes.random_lengths == length_limit)


def test_out_of_range_action_is_invalid_flip():
    """An action outside [0, N) pays like flipping a face-up card, ends the turn, shows nothing."""
    env, params = envs.make("ConcentrationHard")
    fail = -1 / 104
    _, state = env.reset(jax.random.key(0), params)
    for bad in (52, -1, 1000):
        obs, s1, r, term, trunc, _ = env.step(jax.random.key(1), state, jnp.int32(bad), params)
        assert float(r) == pytest.approx(fail)  # one card in play: the invalid one
        assert int(s1.pending) == -1 and not bool(term)
        assert np.all(np.asarray(obs) == 13)  # everything still face down
    _, s1, r, *_ = env.step(jax.random.key(1), state, jnp.int32(5), params)  # a valid first flip
    assert float(r) == 0.0 and int(s1.pending) == 5
    obs, s2, r, *_ = env.step(jax.random.key(2), s1, jnp.int32(52), params)
    assert float(r) == pytest.approx(2 * fail)  # two cards in play
    assert int(s2.pending) == -1 and not np.any(np.asarray(s2.face_up))
    visible = np.flatnonzero(np.asarray(obs) != 13)
    assert visible.tolist() == [5]  # the first card is shown as it turns back down
