"""GAE and the PPO loss against plain-Python references and hand-worked numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmark.train.losses import bootstrap_values, compute_gae, normalize, ppo_loss


def _gae_reference(rewards, values, last_value, terminated, truncated, final_values,
                   gamma, lam):
    """Textbook GAE, one environment and one step at a time, in plain Python."""
    num_steps, num_envs = rewards.shape
    advantages = np.zeros((num_steps, num_envs))
    for b in range(num_envs):
        running = 0.0
        for t in reversed(range(num_steps)):
            if terminated[t, b]:
                next_value, cut = 0.0, True
            elif truncated[t, b]:
                next_value, cut = final_values[t, b], True
            else:
                next_value = values[t + 1, b] if t + 1 < num_steps else last_value[b]
                cut = False
            delta = rewards[t, b] + gamma * next_value - values[t, b]
            running = delta + (0.0 if cut else gamma * lam * running)
            advantages[t, b] = running
    return advantages, advantages + values


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (1.0, 0.0)])
def test_gae_matches_python_loop_with_terminations_and_truncations(gamma, lam):
    """compute_gae(bootstrap_values(...)) equals a per-step Python GAE with both episode ends."""
    rng = np.random.default_rng(0)
    num_steps, num_envs = 40, 6
    rewards = rng.normal(size=(num_steps, num_envs)).astype(np.float32)
    values = rng.normal(size=(num_steps, num_envs)).astype(np.float32)
    final_values = rng.normal(size=(num_steps, num_envs)).astype(np.float32)
    last_value = rng.normal(size=num_envs).astype(np.float32)
    terminated = rng.random((num_steps, num_envs)) < 0.1
    truncated = rng.random((num_steps, num_envs)) < 0.1
    terminated[3, 0] = truncated[3, 0] = True  # both at once (gymnax can): termination wins
    next_values = bootstrap_values(values, last_value, terminated, truncated, final_values)
    dones = terminated | truncated
    advantages, returns = compute_gae(rewards, values, next_values, dones, gamma, lam)
    expected_adv, expected_ret = _gae_reference(
        rewards, values, last_value, terminated, truncated, final_values, gamma, lam
    )
    np.testing.assert_allclose(advantages, expected_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns, expected_ret, rtol=1e-5, atol=1e-5)


def test_terminated_and_truncated_together_bootstrap_zero():
    """When a step is both terminated and truncated (gymnax sets both), the bootstrap is 0."""
    values = jnp.array([[1.0], [2.0]])
    out = bootstrap_values(values, jnp.array([3.0]), jnp.array([[True], [False]]),
                           jnp.array([[True], [False]]), jnp.array([[9.0], [9.0]]))
    np.testing.assert_allclose(out, [[0.0], [3.0]])


def test_gae_hand_worked_example():
    """Three steps, gamma 0.5, lambda 1, truncated after step 1 (bootstrap 4), hand-computed."""
    rewards = jnp.array([[1.0], [1.0], [1.0]])
    values = jnp.array([[0.0], [2.0], [0.0]])
    terminated = jnp.zeros((3, 1), bool)
    truncated = jnp.array([[False], [True], [False]])
    final_values = jnp.array([[0.0], [4.0], [0.0]])
    next_values = bootstrap_values(values, jnp.array([8.0]), terminated, truncated, final_values)
    advantages, _ = compute_gae(rewards, values, next_values, terminated | truncated, 0.5, 1.0)
    # step 2: delta = 1 + 0.5*8 - 0 = 5 -> A2 = 5
    # step 1 (truncated): delta = 1 + 0.5*4 - 2 = 1 -> A1 = 1 (no flow from step 2)
    # step 0: delta = 1 + 0.5*2 - 0 = 2 -> A0 = 2 + 0.5*1 = 2.5
    np.testing.assert_allclose(advantages[:, 0], [2.5, 1.0, 5.0])


@pytest.mark.parametrize("bootstrap_truncated,expected", [
    # step 3: delta = 1 + 0.5*8 - 0 = 5                          -> A3 = 5
    # step 2 (terminated): delta = 1 + 0 - 1 = 0, no flow back     -> A2 = 0
    # step 1 (truncated, bootstrap V(final) = 4): 1 + 0.5*4 - 2 = 1 -> A1 = 1
    # step 0: delta = 1 + 0.5*2 - 0 = 2                           -> A0 = 2 + 0.5*1 = 2.5
    (True, [2.5, 1.0, 0.0, 5.0]),
    # the paper's rule: step 1 ends the return like a termination: 1 + 0 - 2 = -1
    # step 0: 2 + 0.5*(-1) = 1.5
    (False, [1.5, -1.0, 0.0, 5.0]),
])
def test_gae_hand_worked_termination_and_truncation_under_both_rules(bootstrap_truncated,
                                                                      expected):
    """gamma 0.5, lambda 1; truncated after step 1, terminated after step 2: the truncation
    bootstraps from V(final) = 4 or ends the return, the termination always ends it."""
    rewards = jnp.ones((4, 1))
    values = jnp.array([[0.0], [2.0], [1.0], [0.0]])
    terminated = jnp.array([[False], [False], [True], [False]])
    truncated = jnp.array([[False], [True], [False], [False]])
    final_values = jnp.array([[0.0], [4.0], [0.0], [0.0]])
    next_values = bootstrap_values(values, jnp.array([8.0]), terminated, truncated,
                                   final_values, bootstrap_truncated)
    advantages, _ = compute_gae(rewards, values, next_values, terminated | truncated, 0.5, 1.0)
    np.testing.assert_allclose(advantages[:, 0], expected)


def test_ppo_loss_hand_worked_example():
    """Two samples: one ratio inside the clip range, one clipped; value clipping by hand."""
    log_prob = jnp.log(jnp.array([1.1, 1.5]))
    old_log_prob = jnp.zeros(2)
    advantages = jnp.array([1.0, 1.0])
    value, old_value, returns = jnp.array([1.0, 0.0]), jnp.array([0.5, 0.0]), jnp.array([2.0, 0.0])
    total, aux = ppo_loss(log_prob, old_log_prob, value, old_value, advantages, returns,
                          entropy=jnp.array([0.3, 0.5]), clip_eps=0.2, vf_coef=0.5,
                          ent_coef=0.1)
    # policy: -mean(min(1.1, 1.1), min(1.5, 1.2)) = -(1.1 + 1.2) / 2 = -1.15
    np.testing.assert_allclose(aux["policy_loss"], -1.15, rtol=1e-6)
    # value: sample 0 unclipped (1-2)^2 = 1, clipped 0.7 -> (0.7-2)^2 = 1.69; max = 1.69
    # sample 1: 0. value_loss = 0.5 * mean(1.69, 0) = 0.4225
    np.testing.assert_allclose(aux["value_loss"], 0.4225, rtol=1e-6)
    np.testing.assert_allclose(total, -1.15 + 0.5 * 0.4225 - 0.1 * 0.4, rtol=1e-6)


def test_normalize_zero_mean_unit_std():
    """Normalised advantages have mean 0 and standard deviation 1."""
    x = jax.random.normal(jax.random.key(0), (64,)) * 3 + 5
    y = normalize(x)
    np.testing.assert_allclose([y.mean(), y.std()], [0.0, 1.0], atol=1e-5)
