"""GRU and LSTM backbones behind the Memory contract (flax cells, reset on episode start).

The recurrence is an ``nn.scan`` over time of a step that first replaces the carry of
rows whose episode starts at this step (``models.base.reset_carry``) and then applies
the stacked cells: the same reset rule as purejaxrl's ``ScannedRNN``. Both modules read
their settings from one ``GRUConfig`` or ``LSTMConfig`` attribute (which names the cell).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.base import Carry, reset_carry

_CELLS = {"gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}


class _ResettingStep(nn.Module):
    """One time step of ``num_layers`` stacked cells with the reset applied first.

    The carry is ``[B, L, H]`` for a GRU and a pair ``(c, h)`` of ``[B, L, H]`` for an LSTM.
    """

    config: _RecurrentConfig

    @nn.compact
    def __call__(self, carry: Carry, step_inputs):
        cfg = self.config
        x, reset = step_inputs
        initial = jax.tree.map(jnp.zeros_like, carry)
        carry = reset_carry(reset, carry, initial)
        new_layers = []
        for layer in range(cfg.num_layers):
            cell = _CELLS[cfg.cell_type](features=cfg.d_model, name=f"cell_{layer}")
            layer_carry = jax.tree.map(lambda leaf, i=layer: leaf[:, i], carry)
            layer_carry, x = cell(layer_carry, x)
            new_layers.append(layer_carry)
        carry = jax.tree.map(lambda *leaves: jnp.stack(leaves, axis=1), *new_layers)
        return carry, x


class RecurrentMemory(nn.Module):
    """A GRU or LSTM stack behind the Memory contract (see ``models/base.py``)."""

    config: _RecurrentConfig  # a GRUConfig or an LSTMConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        zeros = jnp.zeros((batch_size, cfg.num_layers, cfg.d_model), jnp.float32)
        return (zeros, zeros) if cfg.cell_type == "lstm" else zeros

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        scanned = nn.scan(
            _ResettingStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=0,
            out_axes=0,
        )(self.config, name="rnn")
        return scanned(carry, (inputs, resets))


@dataclass(frozen=True, kw_only=True)
class _RecurrentConfig:
    d_model: int = 256  # H: cell width (the paper's POPGym runs: 256)
    num_layers: int = 1  # L: stacked cells

    cell_type = "gru"

    def __post_init__(self):
        for name in ("d_model", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.cell_type} {name} must be positive")

    @classmethod
    def quick(cls):
        return cls(d_model=64)

    def sized(self, d_model: int, num_layers: int):
        return dataclasses.replace(self, d_model=d_model, num_layers=num_layers)

    def build(self) -> RecurrentMemory:
        return RecurrentMemory(self)


@dataclass(frozen=True, kw_only=True)
class GRUConfig(_RecurrentConfig):
    """GRU backbone settings (flax ``GRUCell``)."""

    cell_type = "gru"


@dataclass(frozen=True, kw_only=True)
class LSTMConfig(_RecurrentConfig):
    """LSTM backbone settings (flax ``OptimizedLSTMCell``)."""

    cell_type = "lstm"
