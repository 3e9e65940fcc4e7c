"""The one space gymnax lacks: MultiDiscrete (Battleship and MineSweeper actions, grid obs)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces


class MultiDiscrete(spaces.Space):
    """K independent integer choices, entry i in ``[0, nvec[i])``; int32 ``[K]``."""

    def __init__(self, nvec: Sequence[int]):
        self.nvec = tuple(int(n) for n in nvec)
        self.shape = (len(self.nvec),)
        self.dtype = jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, jnp.asarray(self.nvec)).astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return jnp.logical_and(jnp.all(x >= 0), jnp.all(x < np.asarray(self.nvec)))
