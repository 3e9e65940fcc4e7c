"""Transformer-XL in the GTrXL arrangement, with an episode-masked sliding-window memory.

Parisotto et al., "Stabilizing Transformers for Reinforcement Learning" (ICML 2020,
arXiv 1910.06764) make Transformer-XL (Dai et al., ACL 2019, arXiv 1901.02860) trainable
by RL with two changes, both here:

- identity-map reordering: layer norm moves to the input of each sub-layer (pre-norm) and
  a ReLU is applied to each sub-layer's output, so an identity path runs from the input
  embedding to the output;
- a GRU-type gate replaces each residual connection (``gating=False`` gives the paper's
  plain TrXL-I with residual connections instead).

Attention uses Transformer-XL's relative positions: sinusoidal embeddings of the distance
``i - j`` projected by a learned matrix, and the learned global content and position
biases ``u`` and ``v``, so that ``score(i, j) = (q_i + u) . k_j + (q_i + v) . W_r R_{i-j}``.

The Memory contract (``models/base.py``) asks for more than segment recurrence. Step
``t`` attends to itself and to at most M earlier steps of its own episode, whether they
come from the carry or from earlier in the same call: a sliding window of width M plus an
episode mask. So one call over T steps equals T calls of T = 1, and chunks compose. The
carry is ``(memory [B, M, L, D], valid [B, M])``: per layer, that layer's *inputs* over
the last M steps (oldest first), and which slots hold steps of the current episode.

Sequence mode is banded, O(T M) in time and memory: the T queries are split into blocks
of C = min(T, M) steps; a block attends to its own steps and to the M steps before it
(the carried memory for the first block), i.e. a window of C + M keys. Acting (T = 1) is
one attention over the M memory slots and the step itself. ``attention="dense"`` is the
slow reference: one block of all T queries against all M + T keys, with the mask built a
second way (from episode numbers), O(T^2); the tests check that the two agree.

Every module reads its settings from one ``TrXLConfig`` attribute; a layer is also told the
call's query block size C, which depends on the call's length.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models.base import MASKED_SCORE, Carry, stacked_layers, transformer_sizes

# ----------------------------------------------------------------------------- layout helpers


@functools.lru_cache(maxsize=32)
def _relative_sinusoid(memory_length: int, d_model: int) -> np.ndarray:
    """Transformer-XL's sinusoidal embedding of the distances ``0..M``.

    Returns:
      ``[M + 1, D]`` float32: row ``d`` embeds distance ``d`` as ``[sin(d w), cos(d w)]``
      with frequencies ``w = 10000^(-2k / D)`` (Dai et al. 2019, as in Vaswani et al.).
    """
    distance = np.arange(memory_length + 1, dtype=np.float64)
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, d_model, 2, dtype=np.float64) / d_model))
    angles = distance[:, None] * inv_freq[None, :]
    emb = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)[:, :d_model]
    return emb.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _relative_distance(block_size: int, memory_length: int) -> np.ndarray:
    """Distance from query ``a`` of a block to key ``b`` of its window, clipped to ``[0, M]``.

    A block's keys start M steps before its first query, so the distance is ``M + a - b``;
    outside ``[0, M]`` the pair is masked and the clipped value is never used.

    Returns:
      ``[C, C + M]`` int32.
    """
    a = np.arange(block_size)[:, None]
    b = np.arange(block_size + memory_length)[None, :]
    return np.clip(memory_length + a - b, 0, memory_length).astype(np.int32)


def _key_windows(s: jax.Array, block_size: int, memory_length: int) -> jax.Array:
    """Overlapping key windows, one per query block.

    Args:
      s: ``[B, M + N*C, ...]``: the memory followed by the (padded) steps of the call.
      block_size: C; either the whole call (N = 1) or equal to M.
      memory_length: M.

    Returns:
      ``[B, N, C + M, ...]``: window ``n`` is ``s[:, n*C : n*C + C + M]``.
    """
    num_blocks = (s.shape[1] - memory_length) // block_size
    if num_blocks == 1:
        return s[:, None]
    # C == M here, so the windows are pairs of consecutive M-blocks: a reshape and a
    # concatenation, no gather (and no T x T intermediate).
    blocks = s.reshape(s.shape[0], num_blocks + 1, block_size, *s.shape[2:])
    return jnp.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=2)


def _banded_mask(valid, resets, block_size, memory_length):
    """Which keys each query may see, in the banded layout.

    Args:
      valid: ``[B, M]`` bool, the carried memory's validity.
      resets: ``[B, N*C]`` bool (padded with False).
      block_size: C.
      memory_length: M.

    Returns:
      ``[B, N, C, C + M]`` bool: key ``b`` of window ``n`` is visible to query ``a`` of
      block ``n`` when it is at most M steps back (the band), not before the query's
      episode start, and (for memory slots) valid.
    """
    batch, padded = resets.shape
    num_blocks = padded // block_size
    steps = jnp.arange(padded)
    # Index (in memory + steps coordinates) of the first step of each query's episode: the
    # last reset at or before it, or 0 (the memory's start) when the episode began earlier.
    last_reset = jax.lax.cummax(jnp.where(resets, steps, -1), axis=1)
    start = jnp.where(last_reset >= 0, memory_length + last_reset, 0)
    start = start.reshape(batch, num_blocks, block_size)
    key_valid = jnp.concatenate([valid, jnp.ones((batch, padded), bool)], axis=1)
    key_valid = _key_windows(key_valid, block_size, memory_length)  # [B, N, C + M]
    window = block_size + memory_length
    key_index = np.arange(num_blocks)[:, None] * block_size + np.arange(window)[None, :]
    distance = memory_length + np.arange(block_size)[:, None] - np.arange(window)[None, :]
    band = (distance >= 0) & (distance <= memory_length)  # [C, C + M], static
    return (
        band[None, None]
        & (key_index[None, :, None, :] >= start[..., None])
        & key_valid[:, :, None, :]
    )


def _dense_mask(valid, resets, memory_length):
    """The same visibility as ``_banded_mask``, for one block of all T queries, derived
    independently: query and key must carry the same episode number (resets counted so far).

    Args:
      valid: ``[B, M]`` bool.
      resets: ``[B, T]`` bool.
      memory_length: M.

    Returns:
      ``[B, 1, T, M + T]`` bool.
    """
    batch, steps = resets.shape
    episode = jnp.cumsum(resets.astype(jnp.int32), axis=1)  # [B, T]
    key_episode = jnp.concatenate([jnp.zeros((batch, memory_length), jnp.int32), episode], 1)
    key_valid = jnp.concatenate([valid, jnp.ones((batch, steps), bool)], axis=1)
    query_index = memory_length + np.arange(steps)
    distance = query_index[:, None] - np.arange(memory_length + steps)[None, :]
    in_window = (distance >= 0) & (distance <= memory_length)
    mask = (
        in_window[None]
        & (key_episode[:, None, :] == episode[:, :, None])
        & key_valid[:, None, :]
    )
    return mask[:, None]


def _final_validity(valid, resets, memory_length):
    """Validity of the returned memory: the last M of (memory, steps) in the last episode.

    Args:
      valid: ``[B, M]`` bool, the incoming validity.
      resets: ``[B, T]`` bool.
      memory_length: M.

    Returns:
      ``[B, M]`` bool.
    """
    batch, steps = resets.shape
    last_reset = jnp.max(jnp.where(resets, jnp.arange(steps), -1), axis=1)
    start = jnp.where(last_reset >= 0, memory_length + last_reset, 0)
    key_valid = jnp.concatenate([valid, jnp.ones((batch, steps), bool)], axis=1)
    key_valid &= jnp.arange(memory_length + steps)[None, :] >= start[:, None]
    return key_valid[:, steps:]


# ----------------------------------------------------------------------------- modules


class _Gate(nn.Module):
    """Combine the residual stream ``x`` with a sub-layer output ``y`` (both ``[..., D]``).

    With ``gating``, the GRU-type gate of GTrXL (Parisotto et al., eq. 8-11):
    ``r = s(W_r y + U_r x)``, ``z = s(W_z y + U_z x - b_g)``, ``h = tanh(W_g y + U_g (r x))``,
    ``out = (1 - z) x + z h``. ``b_g`` starts at ``gate_bias`` > 0, so the gate starts near
    the identity map ``x`` (the paper's key to stable early training). Without it, the
    plain residual ``x + y`` of TrXL-I.
    """

    config: TrXLConfig

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        cfg = self.config
        if not cfg.gating:
            return x + y
        dense = functools.partial(nn.Dense, use_bias=False)
        wy_r, wy_z, wy_g = jnp.split(dense(3 * cfg.d_model, name="w")(y), 3, axis=-1)
        ux_r, ux_z = jnp.split(dense(2 * cfg.d_model, name="u")(x), 2, axis=-1)
        b_g = self.param("gate_bias", nn.initializers.constant(cfg.gate_bias), (cfg.d_model,))
        r = jax.nn.sigmoid(wy_r + ux_r)
        z = jax.nn.sigmoid(wy_z + ux_z - b_g)
        h = jnp.tanh(wy_g + dense(cfg.d_model, name="u_g")(r * x))
        return (1.0 - z) * x + z * h


class TrXLBlock(nn.Module):
    """One GTrXL layer over the query blocks of a call, written for ``nn.scan`` over layers.

    Pre-norm attention with relative positions, ReLU, gate (or residual); then pre-norm
    MLP, ReLU, gate (or residual): Parisotto et al.'s identity-map-reordered layer.
    """

    config: TrXLConfig
    block_size: int  # C: queries per block (set per call; see TrXLMemory.__call__)

    @nn.compact
    def __call__(self, x: jax.Array, memory: jax.Array, mask: jax.Array):
        """Apply the layer to every step of a call at once.

        Args:
          x: ``[B, N*C, D]`` float32, this layer's inputs (the call padded to N blocks of C).
          memory: ``[B, M, D]`` float32, this layer's inputs over the M steps before the call.
          mask: ``[B, N, C, C + M]`` bool, which keys of its window each query may see.

        Returns:
          ``(out [B, N*C, D], x)``: the layer's outputs, and its inputs unchanged (the
          carry stores them for the next call).
        """
        cfg = self.config
        batch, padded, _ = x.shape
        m, c, nh, dh = cfg.memory_length, self.block_size, cfg.num_heads, cfg.head_dim
        num_blocks = padded // c
        dense = functools.partial(nn.Dense, use_bias=False)
        gate = functools.partial(_Gate, cfg)

        # Layer norm is per position, so normalising memory and steps together (as the
        # paper does for [stop_grad(memory), E]) equals normalising each separately.
        h = nn.LayerNorm(name="attention_norm")(jnp.concatenate([memory, x], axis=1))
        # Keys and values are projected once over memory + steps and then windowed, so
        # each step is projected once even though it appears in two windows.
        q = dense(cfg.d_model, name="query")(h[:, m:])
        q = q.reshape(batch, num_blocks, c, nh, dh)
        kv = dense(2 * cfg.d_model, name="key_value")(h).reshape(batch, m + padded, 2, nh, dh)
        kv = _key_windows(kv, c, m)  # [B, N, C + M, 2, nh, dh]
        k, v = kv[..., 0, :, :], kv[..., 1, :, :]

        r = dense(cfg.d_model, name="position")(_relative_sinusoid(m, cfg.d_model))
        r = r.reshape(m + 1, nh, dh)
        u = self.param("content_bias", nn.initializers.normal(0.02), (nh, dh))
        pos_bias = self.param("position_bias", nn.initializers.normal(0.02), (nh, dh))

        content = jnp.einsum("bnqhd,bnkhd->bnhqk", q + u, k)
        distance = _relative_distance(c, m)  # [C, C + M]
        if cfg.attention == "banded":
            # Score each query against the M + 1 distances once, then pick each key's
            # distance: O(C (M + 1)) per block instead of O(C (C + M) dh) for embeddings.
            by_distance = jnp.einsum("bnqhd,rhd->bnhqr", q + pos_bias, r)
            position = jnp.take_along_axis(by_distance, distance[None, None, None], axis=-1)
        else:
            # Reference: embed every (query, key) distance and take the dot products.
            position = jnp.einsum("bnqhd,qkhd->bnhqk", q + pos_bias, r[distance])
        scores = (content + position) / np.sqrt(dh).astype(np.float32)
        scores = jnp.where(mask[:, :, None], scores, MASKED_SCORE)
        weights = jax.nn.softmax(scores, axis=-1)
        attended = jnp.einsum("bnhqk,bnkhd->bnqhd", weights, v).reshape(batch, padded, -1)
        y = dense(cfg.d_model, name="attention_out")(attended)
        x_attn = gate(name="attention_gate")(x, nn.relu(y))

        y = nn.LayerNorm(name="mlp_norm")(x_attn)
        y = nn.relu(nn.Dense(cfg.mlp_dim, name="mlp_hidden")(y))
        y = nn.Dense(cfg.d_model, name="mlp_out")(y)
        out = gate(name="mlp_gate")(x_attn, nn.relu(y))
        return out, x


class TrXLMemory(nn.Module):
    """Stacked GTrXL layers behind the Memory contract (see ``models/base.py``).

    The carry is ``(memory [B, M, L, D] float32, valid [B, M] bool)``: the inputs of each
    layer over the last M steps of the current episode (oldest first), and which slots
    hold such steps. Inputs are first projected to ``d_model``; outputs are ``[T, B, D]``.
    """

    config: TrXLConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        memory = jnp.zeros(
            (batch_size, cfg.memory_length, cfg.num_layers, cfg.d_model), jnp.float32
        )
        return memory, jnp.zeros((batch_size, cfg.memory_length), bool)

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        """Run the stack over a sequence.

        Args:
          carry: ``(memory [B, M, L, D] float32, valid [B, M] bool)`` before step 0.
          inputs: ``[T, B, D_in]`` float32.
          resets: ``[T, B]`` bool, True where step t starts a new episode.

        Returns:
          ``(carry, outputs [T, B, D] float32)``: the carry after step T - 1 (memory of
          invalid slots zeroed, so equal histories give equal carries) and the outputs.
        """
        cfg = self.config
        steps, batch = resets.shape
        m = cfg.memory_length
        memory, valid = carry
        valid = valid.astype(bool)
        memory = jnp.transpose(memory, (2, 0, 1, 3))  # [L, B, M, D]: scanned over layers
        resets = jnp.swapaxes(resets, 0, 1).astype(bool)  # [B, T]
        x = jnp.swapaxes(nn.Dense(cfg.d_model, name="encoder")(inputs), 0, 1)  # [B, T, D]

        if cfg.attention == "dense":
            block_size = steps
            mask = _dense_mask(valid, resets, m)
        else:
            # One block when the call fits in the memory window (acting: T = 1 -> M + 1
            # keys); otherwise blocks of M, padded at the end. Padded steps come after
            # every real query, so the band hides them, and their outputs are dropped.
            block_size = min(steps, m)
            pad = -steps % block_size
            x = jnp.pad(x, ((0, 0), (0, pad), (0, 0)))
            mask = _banded_mask(valid, jnp.pad(resets, ((0, 0), (0, pad))), block_size, m)

        # Each layer reads its own memory (scanned over the layer axis) and the shared mask.
        layers = stacked_layers(TrXLBlock, cfg.num_layers, cfg, block_size)
        y, layer_inputs = layers(x, memory, mask)  # [B, T', D], [L, B, T', D]

        new_valid = _final_validity(valid, resets, m)
        history = jnp.concatenate([memory, layer_inputs[:, :, :steps]], axis=2)
        new_memory = jnp.where(new_valid[None, :, :, None], history[:, :, steps:], 0.0)
        new_carry = (jnp.transpose(new_memory, (1, 2, 0, 3)), new_valid)
        return new_carry, jnp.swapaxes(y[:, :steps], 0, 1)


@dataclass(frozen=True, kw_only=True)
class TrXLConfig:
    """GTrXL backbone settings. The defaults are the ``paper`` preset.

    Parisotto et al. do not give a POPGym-sized model, so the defaults match the S5
    default's parameter budget instead: S5's depth of 4 layers, width 128, 4 heads of 32,
    MLP 256, gated. That is 1,390,208 parameters against S5Config()'s 1,069,824 (ratio
    1.30), both counted with a 64-wide input (the gates are 12 D^2 of the 21 D^2 per
    layer; ``gating=False`` gives 602,752). A memory of M = 128 steps per layer is twice
    RepeatPreviousHard's 64-step lag and keeps acting at one 129-key attention per layer;
    stacked layers reach L * M = 512 steps back. Tasks that recall a whole long episode
    (Autoencode Hard) may want a larger ``memory_length``: the cost is linear in it.
    """

    d_model: int = 128  # D: width of the residual stream
    num_layers: int = 4  # L: stacked GTrXL layers
    num_heads: int = 4  # attention heads; must divide d_model
    mlp_dim: int = 256  # hidden width of each position-wise MLP
    memory_length: int = 128  # M: earlier steps of the episode each step can attend to
    gating: bool = True  # GRU-type gates (GTrXL); False: plain residual (TrXL-I)
    gate_bias: float = 2.0  # initial b_g of the gates (> 0 starts near the identity)
    attention: str = "banded"  # banded (O(T M)) | dense (the O(T^2) reference)

    def __post_init__(self):
        for name in ("d_model", "num_layers", "num_heads", "mlp_dim", "memory_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"trxl {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"trxl num_heads ({self.num_heads}) must divide d_model ({self.d_model})"
            )
        if self.attention not in ("banded", "dense"):
            raise ValueError(f"trxl attention must be banded or dense; got {self.attention!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @classmethod
    def quick(cls) -> TrXLConfig:
        return cls(d_model=64, num_layers=2, num_heads=4, mlp_dim=128, memory_length=32)

    def with_reach(self, steps: int) -> TrXLConfig:
        """This config with every layer attending at least ``steps`` steps back.

        A task that needs a memory ``steps`` long (``s5bench memory``) is then within
        reach by construction, instead of failing for want of a window.
        """
        return dataclasses.replace(self, memory_length=max(self.memory_length, steps))

    def sized(self, d_model: int, num_layers: int) -> TrXLConfig:
        """This config at another width and depth (``models.base.transformer_sizes``)."""
        heads, mlp_dim = transformer_sizes(self.d_model, self.num_heads, self.mlp_dim, d_model)
        return dataclasses.replace(
            self, d_model=d_model, num_layers=num_layers, num_heads=heads, mlp_dim=mlp_dim
        )

    def build(self) -> TrXLMemory:
        return TrXLMemory(self)
