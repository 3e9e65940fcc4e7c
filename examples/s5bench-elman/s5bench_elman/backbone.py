"""An Elman RNN (Elman 1990) behind s5bench's Memory contract: h_t = tanh(W x_t + b + U h_t-1),
the carry back to zeros at every reset (``leaky.py``: a broken variant that keeps it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp


class ElmanMemory(nn.Module):
    config: ElmanConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.config.num_layers, self.config.d_model))

    @nn.compact
    def __call__(self, carry, inputs, resets):  # [B, L, H], [T, B, D], [T, B] bool
        cfg, x, last = self.config, inputs, []
        for layer in range(cfg.num_layers):
            x = nn.Dense(cfg.d_model, name=f"input_{layer}")(x)  # W x_t + b, every t at once
            u = self.param(f"recurrent_{layer}", nn.initializers.orthogonal(),
                           (cfg.d_model, cfg.d_model))

            def step(h, xs, u=u):
                x_t, reset_t = xs
                if cfg.honours_resets:  # a new episode starts from the zero carry
                    h = jnp.where(reset_t[:, None], 0.0, h)
                h = jnp.tanh(x_t + h @ u)
                return h, h

            h, x = jax.lax.scan(step, carry[:, layer], (x, resets))
            last.append(h)
        return jnp.stack(last, axis=1), x  # carry [B, L, H], outputs [T, B, H]


@dataclass(frozen=True, kw_only=True)
class ElmanConfig:
    """Elman RNN backbone settings (an example plugin)."""

    d_model: int = 256  # H: hidden width
    num_layers: int = 1  # L: stacked recurrent layers
    honours_resets: bool = True  # False only in leaky.py's broken example

    @classmethod
    def quick(cls) -> ElmanConfig:
        return cls(d_model=64)

    def sized(self, d_model: int, num_layers: int) -> ElmanConfig:
        return dataclasses.replace(self, d_model=d_model, num_layers=num_layers)

    def build(self) -> ElmanMemory:
        return ElmanMemory(self)

