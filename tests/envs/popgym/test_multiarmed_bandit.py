"""MultiarmedBandit port against the reference popgym package."""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import multiarmed_bandit as ref

import envs
from envs.popgym import multiarmed_bandit
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.rollouts import Episodes, oracle_and_random_episodes

CASES = {
    "MultiarmedBanditEasy": ref.MultiarmedBanditEasy,
    "MultiarmedBanditMedium": ref.MultiarmedBanditMedium,
    "MultiarmedBanditHard": ref.MultiarmedBanditHard,
}
DIFFICULTIES = [
    "MultiarmedBanditEasy",
    pytest.param("MultiarmedBanditMedium", marks=pytest.mark.slow),
    pytest.param("MultiarmedBanditHard", marks=pytest.mark.slow),
]
SIZES = {  # env_id: (bandits B, episode length L)
    "MultiarmedBanditEasy": (10, 200),
    "MultiarmedBanditMedium": (20, 400),
    "MultiarmedBanditHard": (30, 600),
}
NUM_ORACLE = 256
NUM_RANDOM = 300


def round_down_f32(u: np.ndarray) -> np.ndarray:
    """float64 -> the largest float32 not above it, so ``u < p`` is kept for float32 ``p``."""
    d = u.astype(np.float32)
    return np.where(d.astype(np.float64) > u, np.nextafter(d, np.float32(-np.inf)), d)


def _translate(ref_env):
    # popgym draws one float64 uniform per step from ``np_random``: replay them from a copy.
    draws = copy.deepcopy(ref_env.np_random).random(ref_env.max_episode_length)
    return multiarmed_bandit.EnvState(
        bandits=np.asarray(ref_env.bandits, np.float32),
        draws=round_down_f32(draws),
        last_payout=np.int32(0),
        time=np.int32(0),
    )


def _oracle(state):
    return jnp.argmax(state.bandits)


@functools.cache
def _port_episodes(env_id: str) -> Episodes:
    """256 oracle and 300 random episodes of the port (shared by two tests: one compile)."""
    env, params = envs.make(env_id)
    return oracle_and_random_episodes(env, params, _oracle, NUM_ORACLE, NUM_RANDOM, seed=0,
                                      max_len=env.episode_length)


def test_round_down_keeps_comparisons():
    """Rounding draws down to float32 keeps ``u < p`` for float32 p; nearest rounding would not."""
    p = np.float32(0.3)
    u_below = np.nextafter(np.float64(p), -np.inf)  # u < p, but float32(u) == p
    assert u_below < p and not np.float32(u_below) < p
    assert round_down_f32(np.array([u_below]))[0] < p
    u = np.random.default_rng(0).random(100_000)
    ps = np.random.default_rng(1).random(100_000, dtype=np.float32)
    np.testing.assert_array_equal(round_down_f32(u) < ps, u < ps)


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reset_state(env_id):
    """The port's reset draws B probabilities and L step draws in [0, 1) and observes 0."""
    env, _ = envs.make(env_id)
    b, length_limit = SIZES[env_id]
    episodes = _port_episodes(env_id)  # their reset states come from vmapped, jitted resets
    obs, state = jax.tree.map(lambda x: x[:4], (episodes.reset_obs, episodes.reset_states))
    assert state.bandits.shape == (4, b) and state.draws.shape == (4, length_limit)
    for x in (state.bandits, state.draws):
        assert x.dtype == jnp.float32 and np.all((x >= 0) & (x < 1))
        assert len(np.unique(np.asarray(x))) > 0.99 * x.size  # fresh draws (float32 may tie)
    np.testing.assert_array_equal(state.time, 0)
    ref_obs, _ = CASES[env_id]().reset(seed=0)
    np.testing.assert_array_equal(obs, np.full(4, ref_obs))


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree on obs, reward, terminated and truncated over whole episodes."""
    port, params = envs.make(env_id)
    b, length_limit = SIZES[env_id]
    assert (port.num_bandits, params.max_steps_in_episode) == (b, length_limit)
    for seed in range(2):
        length = run_lockstep(CASES[env_id](), port, _translate,
                              lambda rng: int(rng.integers(0, b)), seed)
        assert length == length_limit


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns match the reference (KS, alpha=1e-3, 300 eps)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), NUM_RANDOM, seed=0)
    episodes = _port_episodes(env_id)
    assert_same_distribution(ref_len, episodes.random_lengths, "episode lengths")
    assert_same_distribution(ref_ret, episodes.random_returns, "episode returns")


@pytest.mark.parametrize("env_id", DIFFICULTIES)
def test_reward_scale(env_id):
    """An oracle pulling the best arm scores (B-1)/(B+1) on average; a random policy scores 0."""
    # popgym: each of L steps pays +1/L on a payout, else -1/L. Pulling arm a pays out with
    # probability p[a], p ~ U[0, 1)^B. An oracle pulling argmax p scores 2 max(p) - 1 in
    # expectation, and E[max p] = B/(B+1), so its mean is (B-1)/(B+1) (9/11 = 0.818 for
    # Easy), per-episode std 2 sqrt(Var max p + 1/(4L)) <= 0.18. A random pull pays with
    # probability E[p] = 1/2: mean 0, per-episode std 2 sqrt(1/12 + 1/(4L)) <= 0.58.
    b, length_limit = SIZES[env_id]
    episodes = _port_episodes(env_id)
    assert np.all(episodes.oracle_lengths == length_limit)
    assert np.all(episodes.random_lengths == length_limit)
    # Per episode, the oracle's return is 2 * (payout fraction) - 1, close to 2 max(p) - 1.
    expected = 2 * np.asarray(episodes.reset_states.bandits[:NUM_ORACLE]).max(axis=1) - 1
    assert np.abs(episodes.oracle_returns - expected).mean() < 0.1
    assert abs(episodes.oracle_returns.mean() - (b - 1) / (b + 1)) < 4 * 0.18 / np.sqrt(NUM_ORACLE)
    assert abs(episodes.random_returns.mean()) < 4 * 0.58 / np.sqrt(NUM_RANDOM)


def test_out_of_range_action_never_pays():
    """An action outside [0, B) pulls an arm that never pays: reward -1/L and observation 0."""
    env, params = envs.make("MultiarmedBanditEasy")
    _, state = env.reset(jax.random.key(0), params)
    sure = state.replace(bandits=jnp.ones(10, jnp.float32))  # every real arm always pays
    obs, _, r, *_ = env.step(jax.random.key(1), sure, jnp.int32(3), params)
    assert int(obs) == 1 and float(r) == pytest.approx(1 / 200)
    for bad in (10, -1, 1000):
        obs, _, r, *_ = env.step(jax.random.key(1), sure, jnp.int32(bad), params)
        assert int(obs) == 0 and float(r) == pytest.approx(-1 / 200)
