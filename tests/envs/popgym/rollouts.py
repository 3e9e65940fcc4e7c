"""Whole-episode returns of a port under an oracle policy and under a uniformly random one.

The reward-scale tests need the best achievable return (an oracle policy that reads the
hidden state) and the random-policy baseline; the statistics tests need i.i.d. random
episodes. Both kinds run side by side in one compiled, vmapped call, so each environment
compiles once. Each copy plays one episode, stepped with ``step_env`` (no auto-reset), so
lengths are not biased towards short episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Episodes(NamedTuple):
    oracle_returns: np.ndarray  # [num_oracle] float64
    oracle_lengths: np.ndarray  # [num_oracle] int
    random_returns: np.ndarray  # [num_random] float64
    random_lengths: np.ndarray  # [num_random] int
    reset_states: Any  # the batched reset states, oracle episodes first
    reset_obs: Any  # the batched reset observations, same order


def oracle_and_random_episodes(env, params, oracle: Callable, num_oracle: int,
                               num_random: int, seed: int, max_len: int) -> Episodes:
    """Play ``num_oracle`` episodes with ``oracle(state) -> action`` and ``num_random`` with
    uniform actions from the action space. Every episode must end within ``max_len`` steps
    (asserted)."""
    space = env.action_space(params)

    def one(key, use_oracle):
        key, k_reset = jax.random.split(key)
        obs, state = env.reset(k_reset, params)

        def body(carry, k):
            state, done, ret, length = carry
            k_act, k_step = jax.random.split(k)
            action = jnp.where(use_oracle, oracle(state), space.sample(k_act))
            _, new_state, r, term, _ = env.step_env(k_step, state, action, params)
            ret = ret + jnp.where(done, 0.0, r)
            length = length + jnp.where(done, 0, 1)
            done = done | term | env.is_truncated(new_state, params)
            return (new_state, done, ret, length), None

        init = (state, jnp.bool_(False), jnp.float32(0.0), jnp.int32(0))
        (_, done, ret, length), _ = jax.lax.scan(body, init, jax.random.split(key, max_len))
        return done, ret, length, state, obs

    keys = jax.random.split(jax.random.key(seed), num_oracle + num_random)
    use_oracle = jnp.arange(num_oracle + num_random) < num_oracle
    done, ret, length, first, first_obs = jax.device_get(jax.jit(jax.vmap(one))(keys, use_oracle))
    assert np.all(done), "an episode did not end within max_len steps"
    ret, length = np.asarray(ret, np.float64), np.asarray(length)
    k = num_oracle
    return Episodes(ret[:k], length[:k], ret[k:], length[k:], first, first_obs)
