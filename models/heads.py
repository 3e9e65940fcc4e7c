"""Policy distributions and heads: categorical, multi-categorical and diagonal Gaussian.

A few lines of jax instead of distrax, whose TensorFlow-Probability dependency drifts
between nightly builds and warns on import. Each distribution is a pytree (a flax struct
dataclass), so the network can return it from ``apply`` and ``jit``/``vmap`` see arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

_LOG_2PI = math.log(2 * math.pi)


@struct.dataclass
class Categorical:
    """One categorical choice. ``logits`` ``[..., A]``; actions are int32 ``[...]``."""

    logits: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits)
        return jnp.take_along_axis(log_p, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


@struct.dataclass
class MultiCategorical:
    """K independent categorical choices of possibly different sizes.

    ``logits`` is ``[..., K, N]`` with N the largest size; slots past a choice's own size
    hold a large negative number (not -inf, so that ``p log p`` stays 0, never NaN).
    Actions are int32 ``[..., K]``; log-probabilities and entropies sum over K.
    """

    logits: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits)
        chosen = jnp.take_along_axis(log_p, action[..., None].astype(jnp.int32), axis=-1)
        return jnp.sum(chosen[..., 0], axis=-1)

    def entropy(self) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=(-2, -1))

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


@struct.dataclass
class DiagGaussian:
    """Independent Gaussians. ``mean`` ``[..., A]``, ``log_std`` broadcastable to it."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, action: jax.Array) -> jax.Array:
        z = (action - self.mean) * jnp.exp(-self.log_std)
        per_dim = -0.5 * z**2 - self.log_std - 0.5 * _LOG_2PI
        return jnp.sum(per_dim, axis=-1)

    def entropy(self) -> jax.Array:
        per_dim = jnp.broadcast_to(self.log_std + 0.5 * (1.0 + _LOG_2PI), self.mean.shape)
        return jnp.sum(per_dim, axis=-1)

    def mode(self) -> jax.Array:
        return self.mean


@dataclass(frozen=True)
class ActionSpec:
    """What the policy head must produce.

    Attributes:
      kind: ``discrete`` (one choice of ``sizes[0]``), ``multi_discrete`` (one choice per
        entry of ``sizes``) or ``continuous`` (a real vector of length ``sizes[0]``).
      sizes: see ``kind``.
    """

    kind: Literal["discrete", "multi_discrete", "continuous"]
    sizes: tuple[int, ...]


_NEG = -1e9  # logit of a slot that does not exist (see MultiCategorical)


class PolicyHead(nn.Module):
    """Maps features ``[..., H]`` to the distribution an ``ActionSpec`` asks for."""

    spec: ActionSpec
    kernel_scale: float = 0.01  # small final layer: a near-uniform initial policy

    @nn.compact
    def __call__(self, x: jax.Array):
        init = nn.initializers.orthogonal(self.kernel_scale)
        if self.spec.kind == "discrete":
            return Categorical(nn.Dense(self.spec.sizes[0], kernel_init=init)(x))
        if self.spec.kind == "multi_discrete":
            sizes = self.spec.sizes
            width = max(sizes)
            flat = nn.Dense(len(sizes) * width, kernel_init=init)(x)
            logits = flat.reshape(*flat.shape[:-1], len(sizes), width)
            valid = np.arange(width)[None, :] < np.asarray(sizes)[:, None]  # [K, N], static
            return MultiCategorical(jnp.where(valid, logits, _NEG))
        if self.spec.kind == "continuous":
            mean = nn.Dense(self.spec.sizes[0], kernel_init=init)(x)
            log_std = self.param("log_std", nn.initializers.zeros, (self.spec.sizes[0],))
            return DiagGaussian(mean, log_std)
        raise ValueError(f"unknown action kind {self.spec.kind!r}")
