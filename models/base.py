"""The Memory contract shared by every backbone.

A backbone is a flax module with two methods:

- ``initialize_carry(batch_size) -> carry``: deterministic zeros whose sizes come from
  the module's own fields (no key, no inputs). The carry is a pytree whose every leaf has
  a leading batch dimension B.
- ``__call__(carry, inputs, resets) -> (carry, outputs)`` with ``inputs`` ``[T, B, D]``,
  ``resets`` ``[T, B]`` bool and ``outputs`` ``[T, B, H]``: time-major throughout.

Reset semantics: ``resets[t, b]`` is True when step ``t`` is the first step of a new
episode in row ``b``. The carry of that row is replaced by ``initialize_carry`` *before*
``inputs[t]`` is consumed, so nothing before ``t`` can influence outputs at ``t`` or later.

Acting is the same call with T = 1; there is no separate step function that could drift
from the sequence evaluation. Consequently one call over T steps must equal T calls of
T = 1 threading the carry, and a call over ``0..T`` must equal ``0..k`` then ``k..T``
from the returned carry. ``tests/models/test_memory_contract.py`` checks all of this for
every registered backbone.
"""

from __future__ import annotations

from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

Carry = Any  # a pytree of arrays, each with a leading batch dimension B


class Memory(Protocol):
    """What the actor-critic and the PPO loop may assume of a backbone."""

    def initialize_carry(self, batch_size: int) -> Carry: ...

    def __call__(
        self, carry: Carry, inputs: jax.Array, resets: jax.Array
    ) -> tuple[Carry, jax.Array]: ...


def reset_carry(resets: jax.Array, carry: Carry, initial: Carry) -> Carry:
    """Replace the rows of ``carry`` flagged in ``resets`` by the rows of ``initial``.

    Args:
      resets: ``[B]`` bool, True where a new episode starts.
      carry: pytree whose leaves are ``[B, ...]``.
      initial: pytree with the same structure as ``carry`` (usually zeros).

    Returns:
      The carry with reset rows replaced; other rows are untouched.
    """

    def _select(init_leaf: jax.Array, leaf: jax.Array) -> jax.Array:
        mask = resets.reshape(resets.shape + (1,) * (leaf.ndim - 1))
        return jnp.where(mask, init_leaf, leaf)

    return jax.tree.map(_select, initial, carry)


def stacked_layers(block: type[nn.Module], num_layers: int, *args: Any,
                   name: str = "layers", **kwargs: Any) -> nn.Module:
    """``num_layers`` copies of ``block`` applied in turn, stacked with ``nn.scan``.

    The layer axis is scanned rather than unrolled, so the compiled program (and its compile
    time) stays the size of one layer; parameters gain a leading layer axis. ``block`` is
    called as ``(x, per_layer, shared) -> (x, per_layer_out)``: ``x`` flows from layer to
    layer, ``per_layer`` is taken layer-major (``[L, ...]``; a layer's carry, or GTrXL's
    memory of a layer's inputs) and ``shared`` is broadcast to every layer (the resets, or
    GTrXL's attention mask). Use inside an ``nn.compact`` method; ``args``/``kwargs`` are
    ``block``'s fields (a backbone's config, and GTrXL's block size).
    """
    return nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=(0, nn.broadcast), length=num_layers)(*args, name=name, **kwargs)



def stacked_memory(block: type[nn.Module], config: Any, carry: Carry, inputs: jax.Array,
                   resets: jax.Array, *, project: bool = False) -> tuple[Carry, jax.Array]:
    """The shell of the scan backbones (S5, LRU, Mamba, minGRU): project, stack, re-major.

    Inputs of another width than ``config.d_model`` (or all inputs, with ``project``) first
    pass a Dense named ``encoder``; then ``config.num_layers`` copies of ``block`` run through
    ``stacked_layers``. The carry is batch-major (``[B, L, ...]`` in every leaf, as the
    Memory contract asks) but the layer scan takes it layer-major (``[L, B, ...]``), so it is
    swapped on the way in and back on the way out. Call inside an ``nn.compact`` method: the
    Dense and the layers become that module's ``encoder`` and ``layers``.

    Args:
      block: the layer, called as ``(x [T, B, d_model], carry of one layer, resets [T, B])``.
      config: the backbone's config (``d_model``, ``num_layers``), passed to every layer.
      carry: ``[B, L, ...]`` leaves.
      inputs: ``[T, B, D]``.
      resets: ``[T, B]`` bool.

    Returns:
      ``(carry, outputs)``: the carry batch-major again, outputs ``[T, B, d_model]``.
    """
    x = inputs
    if project or inputs.shape[-1] != config.d_model:
        x = nn.Dense(config.d_model, name="encoder")(inputs)
    layers = stacked_layers(block, config.num_layers, config)
    x, carry = layers(x, jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), carry), resets)
    return jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), carry), x

# The score of a key a query may not see: finite, so that even a fully masked row could not
# give NaN (none exists in s5bench's attention: a step always sees itself).
MASKED_SCORE = -1e30


def transformer_sizes(d_model: int, num_heads: int, mlp_dim: int, new_width: int
                      ) -> tuple[int, int]:
    """``(num_heads, mlp_dim)`` for a Transformer rescaled from ``d_model`` to ``new_width``.

    The head width and the MLP's width ratio are kept: heads become ``new_width /
    head_dim``, lowered to the nearest divisor of ``new_width`` (at least 1).
    """
    head_dim = d_model // num_heads
    heads = max(1, min(new_width, round(new_width / head_dim)))
    while new_width % heads:
        heads -= 1
    return heads, max(1, round(new_width * mlp_dim / d_model))
