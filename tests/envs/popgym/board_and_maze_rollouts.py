"""Rollout helpers for the Battleship, MineSweeper and labyrinth conformance tests.

``port_first_episodes``: random-policy episodes of a port with no length bias, in one
compiled call: each of ``num_episodes`` vmapped copies runs until its first episode ends
and only that episode is counted, so lengths and returns are i.i.d. draws of the
random-policy episode (``conformance.port_random_episodes`` keeps the first few episodes
of fewer copies, chunk after chunk).

``CompiledOnce``: ``run_lockstep`` wraps ``port_env.step`` in a fresh ``jax.jit`` on every
call, which compiles again for every seed (about 1 s each here); handing it this proxy,
whose ``step`` is one jitted function, makes later seeds reuse the compiled step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import envs


class CompiledOnce:
    """The port itself, except that ``step`` is one ``jax.jit``-ed function."""

    def __init__(self, env):
        self._env = env
        self.step = jax.jit(env.step)

    def __getattr__(self, name):
        return getattr(self._env, name)

    def get_obs(self, state, params=None, key=None):
        return self._env.get_obs(state, params, key)


def port_first_episodes(env_id: str, num_episodes: int, seed: int,
                        max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, returns) of ``num_episodes`` independent random-policy episodes.

    Args:
      env_id: a registered environment id.
      num_episodes: number of vmapped copies, one episode each.
      seed: seeds resets, actions and steps.
      max_steps: steps to run; must cover the longest possible episode.
    """
    env, params = envs.make(env_id)
    space = env.action_space(params)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(reset_key, num_episodes), params)

        def body(carry, key):
            state, ret, length, finished = carry
            k_act, k_step = jax.random.split(key)
            actions = jax.vmap(space.sample)(jax.random.split(k_act, num_episodes))
            _, state, r, term, trunc, _ = step(
                jax.random.split(k_step, num_episodes), state, actions, params)
            active = ~finished
            ret = ret + jnp.where(active, r, 0.0)
            length = length + active.astype(jnp.int32)
            return (state, ret, length, finished | term | trunc), None

        init = (state, jnp.zeros(num_episodes), jnp.zeros(num_episodes, jnp.int32),
                jnp.zeros(num_episodes, bool))
        (_, ret, length, finished), _ = jax.lax.scan(
            body, init, jax.random.split(key, max_steps))
        return length, ret, finished

    length, ret, finished = jax.device_get(run(jax.random.key(seed)))
    assert finished.all(), f"{(~finished).sum()} episodes longer than {max_steps} steps"
    return np.asarray(length), np.asarray(ret, dtype=np.float64)
