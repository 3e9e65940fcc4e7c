"""The actor-critic that wraps any backbone: encoder -> memory -> policy and value heads."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.base import Carry
from models.heads import ActionSpec, PolicyHead


class ActorCritic(nn.Module):
    """Observation encoder, a Memory backbone, a policy head and a value head.

    The PPO loop uses only ``apply(params, carry, obs, resets)`` and
    ``initialize_carry(batch_size)``; which backbone sits inside is invisible to it.
    """

    backbone: nn.Module
    action_spec: ActionSpec
    hidden_size: int = 128  # width of the encoder and of each head's hidden layer

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        return self.backbone.initialize_carry(batch_size)

    @nn.compact
    def __call__(self, carry: Carry, obs: jax.Array, resets: jax.Array):
        """Evaluate the policy over a sequence.

        Args:
          carry: the backbone carry before step 0 (leading dimension B).
          obs: ``[T, B, D]`` float32 encoded observations.
          resets: ``[T, B]`` bool, True where step t starts an episode.

        Returns:
          ``(carry, pi, value)``: the carry after step T-1, a distribution with batch
          shape ``[T, B]`` and the value estimates ``[T, B]`` float32.
        """
        dense = lambda n, scale: nn.Dense(n, kernel_init=nn.initializers.orthogonal(scale))
        x = nn.leaky_relu(dense(self.hidden_size, jnp.sqrt(2))(obs))
        carry, features = self.backbone(carry, x, resets)
        actor = nn.leaky_relu(dense(self.hidden_size, jnp.sqrt(2))(features))
        pi = PolicyHead(self.action_spec)(actor)
        critic = nn.leaky_relu(dense(self.hidden_size, jnp.sqrt(2))(features))
        value = dense(1, 1.0)(critic)[..., 0]
        return carry, pi, value
