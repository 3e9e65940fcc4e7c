"""GAE and the PPO loss: pure functions of arrays and floats (no config objects)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bootstrap_values(
    values: jax.Array,
    last_value: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    final_values: jax.Array,
    bootstrap_truncated: bool = True,
) -> jax.Array:
    """The value each step bootstraps from.

    Args:
      values: ``[T, B]`` V(obs_t) from the rollout.
      last_value: ``[B]`` V of the observation after the last step.
      terminated: ``[T, B]`` bool; the episode ended in a terminal state: bootstrap 0.
      truncated: ``[T, B]`` bool; the episode was cut by a time limit.
      final_values: ``[T, B]`` V(info["final_observation"]) (used only where truncated
        episodes bootstrap).
      bootstrap_truncated: True: a truncated episode bootstraps from ``final_values``
        (gymnax 1.x semantics); False: it ends like a terminated one, with 0 (the paper's
        code, which sees one ``done`` flag).

    Returns:
      ``[T, B]``: 0 where terminated (and, unless ``bootstrap_truncated``, where
      truncated), ``final_values`` where truncated episodes bootstrap, else the value of
      the next step's observation.
    """
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    if not bootstrap_truncated:
        return jnp.where(jnp.logical_or(terminated, truncated), 0.0, next_values)
    next_values = jnp.where(truncated, final_values, next_values)
    return jnp.where(terminated, 0.0, next_values)


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    dones: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over a time-major rollout.

    ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}`` with
    ``delta_t = r_t + gamma * next_values_t - values_t``. The ``(1 - done_t)`` cut stops
    advantages flowing back across an episode boundary for terminations and truncations
    alike; what differs between the two is only ``next_values`` (see ``bootstrap_values``).

    Args:
      rewards, values, next_values: ``[T, B]`` float32.
      dones: ``[T, B]`` bool, terminated or truncated at step t.
      gamma, gae_lambda: floats.

    Returns:
      ``(advantages [T, B], returns [T, B])`` with ``returns = advantages + values``.
    """
    deltas = rewards + gamma * next_values - values
    continues = gamma * gae_lambda * (1.0 - dones.astype(jnp.float32))

    def step(next_advantage, inputs):
        delta, cont = inputs
        advantage = delta + cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        step, jnp.zeros_like(rewards[0]), (deltas, continues), reverse=True
    )
    return advantages, advantages + values


def ppo_loss(
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    value: jax.Array,
    old_value: jax.Array,
    advantages: jax.Array,
    returns: jax.Array,
    entropy: jax.Array,
    clip_eps: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss with a clipped value loss (as in purejaxrl).

    All array arguments have the same shape (e.g. ``[T, B]``); ``advantages`` should
    already be normalised if normalisation is wanted.

    Returns:
      ``(total_loss, aux)`` where aux holds the scalar ``policy_loss``, ``value_loss``,
      ``entropy`` and ``approx_kl`` (the curves.csv columns, ``schema.LOSS_COLUMNS``).
    """
    value_clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    value_loss = 0.5 * jnp.mean(
        jnp.maximum(jnp.square(value - returns), jnp.square(value_clipped - returns))
    )
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    surrogate = ratio * advantages
    surrogate_clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    policy_loss = -jnp.mean(jnp.minimum(surrogate, surrogate_clipped))
    mean_entropy = jnp.mean(entropy)
    total = policy_loss + vf_coef * value_loss - ent_coef * mean_entropy
    aux = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": mean_entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
    }
    return total, aux


def normalize(advantages: jax.Array, eps: float = 1e-8) -> jax.Array:
    return (advantages - advantages.mean()) / (advantages.std() + eps)
