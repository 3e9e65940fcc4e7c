"""The registry's ``truncates`` flag says truthfully whether an environment can return
``truncated``.

The flag only decides whether the PPO loop evaluates V(final observation) at each step;
the return targets are ``ppo.bootstrap_truncated``'s alone. A flag that says False for an
environment that truncates would silently skip that bootstrap, so: every environment
flagged False is stepped (random actions, 4 copies) well past its longest episode and
must never truncate, while its episodes do end; every environment flagged True must report
``truncated`` once its step counter reaches its time limit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.registry import ENVS, families

NUM_ENVS = 4
NEVER_REACHED = 100_000  # ports whose limit is 1,000,000: "never reached"
STEPS_PAST = 1_100  # longer than the longest terminating episode of any such port


def _ids(flag: bool, fast_suites=("popgym", "probe")) -> list:
    """One variant per family in the fast suite (a family shares its flag); the rest slow."""
    params = []
    for ids in families().values():
        for i, env_id in enumerate(ids):
            entry = ENVS[env_id]
            if entry.truncates != flag or entry.suite == "gymnax":
                continue
            fast = i == 0 and entry.suite in fast_suites
            params.append(env_id if fast else pytest.param(env_id, marks=pytest.mark.slow))
    return params


def _random_episodes(env, params, num_steps: int):
    """``(terminated, truncated)`` ``[num_steps, NUM_ENVS]`` under uniformly random actions."""
    space = env.action_space(params)

    def run(key):
        keys = jax.random.split(key, NUM_ENVS)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def step(state, key):
            act_key, step_key = jax.random.split(key)
            actions = jax.vmap(space.sample)(jax.random.split(act_key, NUM_ENVS))
            _, state, _, terminated, truncated, _ = jax.vmap(
                env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, NUM_ENVS), state, actions, params)
            return state, (terminated, truncated)

        _, flags = jax.lax.scan(step, state, jax.random.split(key, num_steps))
        return flags

    terminated, truncated = jax.jit(run)(jax.random.key(0))
    return np.asarray(terminated), np.asarray(truncated)


@pytest.mark.parametrize("env_id", [*_ids(False), "MemoryChain-bsuite"])
def test_environments_flagged_never_truncating_never_truncate(env_id):
    """Stepped past its longest episode, an environment flagged False ends episodes by
    termination only."""
    env, params = envs.make(env_id)
    assert not ENVS[envs.resolve(env_id)].truncates
    limit = getattr(params, "max_steps_in_episode", NEVER_REACHED)
    if hasattr(env, "max_meta_steps"):  # a whole meta-episode, every trial at its limit
        num_steps = env.max_meta_steps + 2
    else:
        num_steps = STEPS_PAST if limit >= NEVER_REACHED else limit + 2
    terminated, truncated = _random_episodes(env, params, num_steps)
    # gymnax may raise both flags on the step that terminates at the limit (DelayedBandit):
    # that episode ended by termination, so its return ends there under either rule.
    cut = truncated & ~terminated
    assert not cut.any(), f"{env_id} truncated though flagged as never truncating"
    assert terminated.any(axis=0).all(), f"{env_id}: an episode never ended in {num_steps}"


@pytest.mark.parametrize("env_id", _ids(True))
def test_environments_flagged_truncating_truncate_at_their_limit(env_id):
    """An environment flagged True reports truncated when its step counter reaches its
    limit (set on a fresh state: random play would rarely survive CartPole that long)."""
    env, params = envs.make(env_id)
    # A limit set "never reached" cannot truncate: such an environment must say False.
    assert params.max_steps_in_episode < NEVER_REACHED, env_id
    _, state = env.reset(jax.random.key(0), params)
    at_limit = state.replace(time=jnp.asarray(params.max_steps_in_episode, state.time.dtype))
    before = state.replace(time=jnp.asarray(params.max_steps_in_episode - 1, state.time.dtype))
    assert bool(env.is_truncated(at_limit, params)), env_id
    assert not bool(env.is_truncated(before, params)), env_id
