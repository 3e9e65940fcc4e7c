"""The feed-forward control: a backbone with no memory at all.

Every memory task must be won by a memory backbone *against* this one; if ``mlp`` does as
well, the task (or its wrappers) leaks the answer into the current observation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.base import Carry


class MLPMemory(nn.Module):
    """Per-step MLP behind the Memory contract. Its carry is an empty ``[B, 0]`` array."""

    config: MLPConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        return jnp.zeros((batch_size, 0), jnp.float32)

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        del resets  # nothing is remembered, so there is nothing to reset
        x = inputs
        for _ in range(self.config.num_layers):
            x = nn.gelu(nn.Dense(self.config.d_model)(x))
        return carry, x


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    """Feed-forward control settings."""

    d_model: int = 256  # H: layer width
    num_layers: int = 2  # L: hidden layers

    def __post_init__(self):
        for name in ("d_model", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"mlp {name} must be positive")

    @classmethod
    def quick(cls) -> MLPConfig:
        return cls(d_model=64)

    def sized(self, d_model: int, num_layers: int) -> MLPConfig:
        return dataclasses.replace(self, d_model=d_model, num_layers=num_layers)

    def build(self) -> MLPMemory:
        return MLPMemory(self)
