"""Shared machinery for checking a JAX port against the reference ``popgym`` package.

Lockstep: reset the reference with a seed, translate its state into the port's state,
then apply the same random actions to both until the episode ends and compare
observations, rewards, terminated and truncated at every step. The port is stepped with
the full gymnax ``step`` (auto-reset included), so its pre-reset observation is read from
``info["final_observation"]`` on the last step.

Statistics: under a uniformly random policy, compare the distributions of episode
lengths and returns of both implementations with a two-sample test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import envs


def run_lockstep(
    ref_env,
    port_env,
    translate: Callable[[Any], Any],
    sample_action: Callable[[np.random.Generator], Any],
    seed: int,
    compare_obs: Callable[[Any, Any], None] | None = None,
    reward_atol: float = 1e-6,
    max_steps: int = 100_000,
    resync: Callable[[Any, Any], Any] | None = None,
) -> int:
    """Step reference and port together through one episode; return its length.

    Args:
      ref_env: a reference popgym env instance.
      port_env: the JAX port (gymnax Environment).
      translate: maps the freshly reset reference env to the port's ``EnvState``.
      sample_action: draws an action (numpy) valid for both implementations.
      seed: seeds the reference reset and the action sequence.
      compare_obs: asserts two observations equal (default: exact equality).
      reward_atol: tolerance on rewards (floating-point dynamics may need more).
      resync: ``(ref_env, port_state) -> port_state``: after every step the port goes on
        from the reference's state (rounded to float32) instead of its own. For dynamics
        that amplify rounding (a pendulum driven by random torques, a falling pole), a
        free-running port drifts from a float64 reference by an amount that depends on
        the CPU's instruction set and grows with every step; resynced, every comparison
        is one float32 step from the same state, whose error is bounded by construction,
        while a wrong equation still shows at the step where it acts.
    """
    rng = np.random.default_rng(seed)
    ref_obs, _ = ref_env.reset(seed=seed)
    params = port_env.default_params
    state = translate(ref_env)
    port_obs = port_env.get_obs(state, params) if _has_get_obs(port_env) else None
    compare = compare_obs or _assert_equal
    if port_obs is not None:
        compare(ref_obs, port_obs)
    step = jax.jit(port_env.step)
    key = jax.random.key(seed)
    for t in range(max_steps):
        action = sample_action(rng)
        ref_obs, ref_reward, ref_term, ref_trunc, _ = ref_env.step(action)
        key, subkey = jax.random.split(key)
        _, state, reward, term, trunc, info = step(subkey, state, jnp.asarray(action), params)
        compare(ref_obs, info["final_observation"])
        np.testing.assert_allclose(float(reward), float(ref_reward), atol=reward_atol,
                                   err_msg=f"reward at step {t}")
        assert bool(term) == bool(ref_term), f"terminated differs at step {t}"
        assert bool(trunc) == bool(ref_trunc), f"truncated differs at step {t}"
        if ref_term or ref_trunc:
            return t + 1
        if resync is not None:
            state = resync(ref_env, state)
    raise AssertionError("episode did not end")


def _has_get_obs(env) -> bool:
    return hasattr(type(env), "get_obs")


def _assert_equal(ref_obs, port_obs):
    np.testing.assert_array_equal(np.asarray(port_obs), np.asarray(ref_obs))


def reference_random_episodes(ref_env, num_episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, returns) of ``num_episodes`` random-policy episodes of the reference."""
    ref_env.action_space.seed(seed)
    lengths, returns = [], []
    for i in range(num_episodes):
        ref_env.reset(seed=seed + i)
        total, n, done = 0.0, 0, False
        while not done:
            _, r, term, trunc, _ = ref_env.step(ref_env.action_space.sample())
            total += float(r)
            n += 1
            done = term or trunc
        lengths.append(n)
        returns.append(total)
    return np.asarray(lengths), np.asarray(returns)


def port_random_episodes(env_id: str, num_episodes: int, seed: int, num_envs: int = 64,
                         max_steps: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, returns) of ``num_episodes`` random-policy episodes of the port.

    ``num_envs`` copies run under ``vmap``, their states carried from one 256-step chunk to
    the next, and the first ``ceil(num_episodes / num_envs)`` episodes of every copy are
    kept, in order: whether an episode counts never depends on its length. (Counting the
    episodes that end inside each freshly reset chunk, as this helper once did, drops the
    ones a chunk edge cuts, which are the long ones: it shortened CartPole's mean random
    episode from 22.2 to 21.7 steps; KS on 20,000 reference against 80,000 port episodes
    gave p = 3e-5 before this fix and 0.5 after it.)
    """
    env, params = envs.make(env_id)
    space = env.action_space(params)
    per_env = -(-num_episodes // num_envs)
    chunk = 256

    @jax.jit
    def rollout(carry):
        def body(carry, _):
            state, ret, length, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            actions = jax.vmap(space.sample)(jax.random.split(k_act, num_envs))
            _, state, r, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, num_envs), state, actions, params)
            ret, length = ret + r, length + 1
            done = term | trunc
            out = (done, ret, length)
            ret, length = jnp.where(done, 0.0, ret), jnp.where(done, 0, length)
            return (state, ret, length, key), out

        return jax.lax.scan(body, carry, None, length=chunk)

    key, reset_key = jax.random.split(jax.random.key(seed))
    _, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), params)
    carry = (state, jnp.zeros(num_envs), jnp.zeros(num_envs, jnp.int32), key)
    lengths = [[] for _ in range(num_envs)]
    returns = [[] for _ in range(num_envs)]
    steps = 0
    while min(len(kept) for kept in lengths) < per_env:
        assert steps < max_steps, f"fewer than {per_env} episodes per copy in {steps} steps"
        carry, (done, ret, length) = rollout(carry)
        done, ret, length = jax.device_get((done, ret, length))
        for e in range(num_envs):
            ends = np.flatnonzero(done[:, e])
            lengths[e].extend(length[ends, e].tolist())
            returns[e].extend(ret[ends, e].tolist())
        steps += chunk
    lengths = np.concatenate([np.asarray(kept[:per_env]) for kept in lengths])
    returns = np.concatenate([np.asarray(kept[:per_env], np.float64) for kept in returns])
    return lengths[:num_episodes], returns[:num_episodes]


def assert_same_distribution(a: np.ndarray, b: np.ndarray, what: str, alpha: float = 1e-3,
                             decimals: int = 4):
    """Two-sample Kolmogorov-Smirnov test at level ``alpha`` (identical constants pass).

    Values are rounded to ``decimals`` first: the port sums rewards in float32 and the
    reference in float64, and KS would otherwise count -27/51 in each as distinct values.
    """
    a, b = np.round(a, decimals), np.round(b, decimals)
    if np.all(a == a[0]) and np.all(b == b[0]):
        assert a[0] == b[0], f"{what}: reference always {a[0]}, port always {b[0]}"
        return
    result = stats.ks_2samp(a, b)
    assert result.pvalue > alpha, (
        f"{what} differ (KS p={result.pvalue:.2g}): reference mean {a.mean():.4f}, "
        f"port mean {b.mean():.4f}"
    )


def wrapped_noisy_rollouts(env_ids: list[str], num_envs: int, steps: int,
                           sample_action: Callable[[jax.Array], jax.Array], seed: int = 0
                           ) -> dict[str, np.ndarray]:
    """Random-action rollouts through ``make_training_env``: what the agent sees.

    ``env_ids`` are one noisy family's difficulties (they differ only in ``EnvParams``, so
    one compiled program is vmapped over their params). Returns numpy arrays with a leading
    difficulty axis: ``obs [E, T + 1, N, D]`` (the reset observation first), the noise-free
    observation ``clean`` and the drawn ``noise`` ``[E, T + 1, N, 2]`` read from the port's
    own state under the wrappers, and ``action [E, T, N, ...]``, ``done [E, T, N]``.
    """
    from envs.wrappers import make_training_env

    env = make_training_env(env_ids[0]).env
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(v) for v in leaves]),
                           *[make_training_env(i).params for i in env_ids])
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    clean_obs = jax.vmap(env.clean_obs)  # delegated through the wrappers to the port

    def seen(state):
        port = state.env_state.env_state  # under EpisodeLog and PreviousActionObservation
        return clean_obs(port), port.noise

    def rollout(key, params):
        key, reset_key = jax.random.split(key)
        obs, state = reset(jax.random.split(reset_key, num_envs), params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = jax.vmap(sample_action)(jax.random.split(act_key, num_envs))
            obs, state, _, terminated, truncated, _ = step(
                jax.random.split(step_key, num_envs), state, action, params)
            return state, (obs, *seen(state), action, terminated | truncated)

        _, (obs_t, clean_t, noise_t, action, done) = jax.lax.scan(
            body, state, jax.random.split(key, steps))
        first = (obs, *seen(state))
        obs, clean, noise = (jnp.concatenate([a[None], b]) for a, b in
                             zip(first, (obs_t, clean_t, noise_t), strict=True))
        return {"obs": obs, "clean": clean, "noise": noise, "action": action, "done": done}

    run = jax.jit(jax.vmap(rollout, in_axes=(None, 0)))
    return jax.device_get(run(jax.random.key(seed), stacked))
