"""Causal self-attention over the whole episode: the paper's quadratic baseline.

Lu et al. (2023, Figure 1) compare S5 with "Transformer self-attention" on bsuite's memory
task: every step attends to every earlier step of its episode, so a sequence of T steps
costs O(T^2) time and memory where S5 and RNNs cost O(T). This backbone is that model,
behind the Memory contract: a pre-norm Transformer (Vaswani et al. 2017; layer norm before
each sub-layer, as in GPT-2) of ``num_layers`` layers, each multi-head causal
self-attention then a GELU MLP, with residual connections, no gating and no recurrence.
The input embedding adds a sinusoidal encoding of the step's position in its episode.

Acting reads a key/value cache held in the carry: per layer, the keys and values of the
last ``max_context`` steps (C, static; oldest first), which slots hold steps of the current
episode, and the episode position of the last step. A step attends to itself and to the
steps of its episode at most C steps back, in sequence mode and when acting alike, so one
call over T steps equals T calls of T = 1 and chunks compose. With C at least the episode
length (``s5bench memory`` sets C = L + 1) that is the whole episode. Sequence mode
computes the masked ``[T, C + T]`` attention matrix: its cost grows as T^2 (the point of
the baseline). ``TrXLConfig`` is the windowed, gated alternative whose cost is linear in T.
Every module reads its settings from one ``AttentionConfig`` attribute.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.base import MASKED_SCORE, Carry, transformer_sizes


def episode_positions(resets: jax.Array, last_position: jax.Array,
                      started: jax.Array) -> jax.Array:
    """Each step's position in its episode (0 at an episode start).

    Args:
      resets: ``[T, B]`` bool.
      last_position: ``[B]`` int32, the position of the step before this call.
      started: ``[B]`` bool, whether a step came before this call (else step 0 is 0 even
        without a reset flag).

    Returns:
      ``[T, B]`` int32.
    """
    steps = jnp.arange(resets.shape[0])[:, None]
    last_reset = jax.lax.cummax(jnp.where(resets, steps, -1), axis=0)
    carried = jnp.where(started, last_position + 1, 0)[None, :] + steps
    return jnp.where(last_reset >= 0, steps - last_reset, carried).astype(jnp.int32)


def sinusoid(positions: jax.Array, width: int) -> jax.Array:
    """``[..., width]`` sinusoidal embedding of integer positions (Vaswani et al. 2017)."""
    inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, width, 2, dtype=jnp.float32) / width))
    angles = positions[..., None].astype(jnp.float32) * inv_freq
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)[..., :width]


def attention_mask(valid: jax.Array, resets: jax.Array, max_context: int) -> jax.Array:
    """Which keys each query sees: ``[B, T, C + T]`` bool.

    Keys are the C cached steps (oldest first) then the T steps of the call. Query ``i``
    sees key ``j`` when ``j`` is not later than ``i``, at most C steps earlier, in the
    query's episode (no reset after it up to ``i``), and, for a cache slot, valid.

    Args:
      valid: ``[B, C]`` bool, cache slots holding steps of the episode in progress.
      resets: ``[T, B]`` bool.
      max_context: C.
    """
    num_steps = resets.shape[0]
    query = jnp.arange(num_steps)[:, None]
    key = jnp.arange(num_steps + max_context)[None, :] - max_context  # cache at -C..-1
    in_window = (key <= query) & (query - key <= max_context)  # [T, C + T]
    episode = jnp.cumsum(resets.astype(jnp.int32), axis=0).T  # [B, T]: resets so far
    key_episode = jnp.concatenate(
        [jnp.zeros((resets.shape[1], max_context), jnp.int32), episode], axis=1)
    same_episode = episode[:, :, None] == key_episode[:, None, :]  # [B, T, C + T]
    key_valid = jnp.concatenate([valid, jnp.ones_like(resets.T)], axis=1)  # [B, C + T]
    return in_window[None] & same_episode & key_valid[:, None, :]


class _AttentionLayer(nn.Module):
    """Pre-norm multi-head causal self-attention and MLP, each with a residual."""

    config: AttentionConfig

    @nn.compact
    def __call__(self, x, cache_k, cache_v, mask):
        """``x [B, T, D]``; cache ``[B, C, heads, D/heads]``; mask ``[B, T, C + T]``.

        Returns ``(y [B, T, D], k, v [B, T, heads, D/heads])``: the new steps' keys and
        values, which the caller appends to the cache.
        """
        cfg = self.config
        head_dim = cfg.d_model // cfg.num_heads
        dense = lambda name: nn.DenseGeneral((cfg.num_heads, head_dim), name=name)
        h = nn.LayerNorm(name="norm_attention")(x)
        q, k, v = dense("query")(h), dense("key")(h), dense("value")(h)
        keys = jnp.concatenate([cache_k, k], axis=1)
        values = jnp.concatenate([cache_v, v], axis=1)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, keys) / math.sqrt(head_dim)
        scores = jnp.where(mask[:, None], scores, MASKED_SCORE)
        weights = jax.nn.softmax(scores, axis=-1)
        attended = jnp.einsum("bhqk,bkhd->bqhd", weights, values)
        x = x + nn.DenseGeneral(cfg.d_model, axis=(-2, -1), name="out")(attended)
        h = nn.LayerNorm(name="norm_mlp")(x)
        h = nn.Dense(cfg.d_model, name="mlp_out")(nn.gelu(nn.Dense(cfg.mlp_dim,
                                                                  name="mlp_in")(h)))
        return x + h, k, v


class AttentionMemory(nn.Module):
    """Full-episode causal self-attention behind the Memory contract (module docstring).

    The carry is ``(keys [B, L, C, heads, D/heads], values [same], valid [B, C],
    position [B], started [B])``.
    """

    config: AttentionConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        head_dim = cfg.d_model // cfg.num_heads
        cache = jnp.zeros((batch_size, cfg.num_layers, cfg.max_context, cfg.num_heads,
                           head_dim), jnp.float32)
        return (cache, cache, jnp.zeros((batch_size, cfg.max_context), bool),
                jnp.zeros((batch_size,), jnp.int32), jnp.zeros((batch_size,), bool))

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        cfg = self.config
        cache_k, cache_v, valid, last_position, started = carry
        # The carry's dtypes are fixed here, whatever arithmetic a caller did on it.
        valid, started = valid.astype(bool), started.astype(bool)
        last_position = last_position.astype(jnp.int32)
        context = cfg.max_context
        positions = episode_positions(resets, last_position, started)  # [T, B]
        x = nn.Dense(cfg.d_model, name="embed")(inputs) + sinusoid(positions, cfg.d_model)
        x = jnp.swapaxes(x, 0, 1)  # [B, T, D]
        mask = attention_mask(valid, resets, context)
        new_k, new_v = [], []
        for layer in range(cfg.num_layers):
            x, k, v = _AttentionLayer(cfg, name=f"layer_{layer}")(
                x, cache_k[:, layer], cache_v[:, layer], mask)
            new_k.append(k)
            new_v.append(v)
        x = nn.LayerNorm(name="norm_out")(x)

        # The cache keeps the last C steps; a slot is valid when it belongs to the episode
        # of the call's last step (the next call's query masks by that). Invalid slots are
        # zeroed, so the carry depends on nothing from before the episode.
        resets_after = jnp.cumsum(resets[::-1].astype(jnp.int32), axis=0)[::-1].T  # [B, T]
        in_last_episode = jnp.concatenate(
            [valid & (resets_after[:, :1] == 0), resets_after <= resets.T.astype(jnp.int32)],
            axis=1)[:, -context:]

        def last_context(cached, new):
            kept = jnp.concatenate([cached, jnp.stack(new, axis=1)], axis=2)[:, :, -context:]
            return jnp.where(in_last_episode[:, None, :, None, None], kept, 0.0)

        carry = (last_context(cache_k, new_k), last_context(cache_v, new_v),
                 in_last_episode, positions[-1], jnp.ones_like(started))
        return carry, jnp.swapaxes(x, 0, 1)


@dataclass(frozen=True, kw_only=True)
class AttentionConfig:
    """Full-episode self-attention settings (the paper's Transformer baseline).

    Sized like ``TrXLConfig`` without its gates: 4 layers of width 128, 4 heads, MLP 256,
    563,072 backbone parameters, about half the paper's S5 (1,053,184; ``s5bench models``
    lists both). The cache keeps ``max_context`` = 1024 steps, as long as or longer than
    every POPGym episode (the longest, the Labyrinths', are 1023 steps); ``s5bench memory``
    raises it to the episode length. ``quick``'s cache is 128 steps, shorter than many
    POPGym episodes (CartPole 200-600, MultiarmedBandit 200-600, Labyrinths 1023,
    RepeatFirst Medium/Hard 415/831, Autoencode Medium/Hard 207/311, Concentration Medium
    208, CountRecall Hard 207, PositionOnlyPendulum and its noisy twin Easy/Medium 200/150,
    RepeatPrevious and HigherLower Hard 155, Battleship Hard 144 steps at most): there a
    step attends to the last 128 steps of its episode only.
    """

    d_model: int = 128  # D: width of the residual stream
    num_layers: int = 4  # L: stacked attention layers
    num_heads: int = 4  # attention heads; must divide d_model
    mlp_dim: int = 256  # hidden width of each MLP
    max_context: int = 1024  # C: steps of the episode a step can attend to (cache size)

    def __post_init__(self):
        for name in ("d_model", "num_layers", "num_heads", "mlp_dim", "max_context"):
            if getattr(self, name) <= 0:
                raise ValueError(f"attention {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"attention num_heads ({self.num_heads}) must divide d_model "
                             f"({self.d_model})")

    @classmethod
    def quick(cls) -> AttentionConfig:
        return cls(d_model=64, num_layers=2, num_heads=4, mlp_dim=128, max_context=128)

    def sized(self, d_model: int, num_layers: int) -> AttentionConfig:
        """This config at another width and depth (``models.base.transformer_sizes``)."""
        heads, mlp_dim = transformer_sizes(self.d_model, self.num_heads, self.mlp_dim, d_model)
        return dataclasses.replace(self, d_model=d_model, num_layers=num_layers,
                                   num_heads=heads, mlp_dim=mlp_dim)

    def with_reach(self, steps: int) -> AttentionConfig:
        """This config with a cache of at least ``steps`` steps (the whole episode)."""
        return dataclasses.replace(self, max_context=max(self.max_context, steps))

    def build(self) -> AttentionMemory:
        return AttentionMemory(self)
