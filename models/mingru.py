"""minGRU: the minimal GRU of Feng et al. (2024), trained in parallel, with episode resets.

"Were RNNs All We Needed?" (Feng, Tung, Ahmed, Bengio, Hajimirsadegh; arXiv 2410.01201)
drops the GRU's dependence of its gates on the previous state and its output range
constraint, leaving

    z_t = sigmoid(Linear_z(x_t)),   h~_t = Linear_h(x_t),   h_t = (1 - z_t) h_{t-1} + z_t h~_t.

Nothing on the right depends on ``h_{t-1}`` but the recurrence itself, which is linear:
``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t`` and ``b_t = z_t h~_t``. S5's reset-aware
scan (``models/linear_scan.py``) evaluates it in parallel (associative scan) for training
or step by step (``lax.scan``); acting is the same call with T = 1. A reset zeroes the
state before the step's input, so ``h_t = z_t h~_t`` at an episode start.

What follows the paper: the minGRU cell above, in its plain form (``h~`` without an
activation, ``h_0 = 0``), with a state width (``state_size``) that may differ from the input's.

What differs, and why:

- no log-space evaluation. The paper evaluates the scan in log space because its parallel
  algorithm (a cumulative sum of logs, then a log-cumsum-exp) divides by running products
  of ``a``. The associative scan here only multiplies ``a``s (products underflow to 0,
  which is the right limit), so plain float32 is stable and the paper's ``g`` activation
  (which keeps ``h~`` positive for the logarithm) is not needed. ``1 - z_t`` is computed
  as ``sigmoid(-k)``, exact where ``z_t`` is near 1.
- the stack is s5bench's: each layer is two pre-norm residual sub-layers, LayerNorm ->
  minGRU (-> Dense back to ``d_model`` if the state width differs) -> residual, then
  LayerNorm -> MLP (GELU) -> residual, with a final LayerNorm after the stack. The paper
  stacks minGRUs with normalisation, residual connections and MLPs in the manner of
  Transformer and Mamba blocks for its language-model experiments; the residual and the
  norms are always on here (not options).
- layers and initialisation are flax's: every Dense has a bias (LeCun normal weights,
  zero biases), the norms are LayerNorm and the MLP's GELU is flax's default, the tanh
  approximation. lucidrains' minGRU-pytorch (``minGRU.py``, ``minGRULM.py``) has no bias
  in the cell's input projection or its output projection (``out`` here), uses RMSNorm,
  the exact (erf) GELU and PyTorch's default initialisation.
- the ``paper`` preset's sizes (H = 256, MLP 256, 4 layers) are chosen for a parameter
  count near the paper's S5 (``s5bench models``).

Every module reads its settings from one ``MinGRUConfig`` attribute.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.base import Carry, stacked_memory
from models.linear_scan import SCANS, Evaluation, check_evaluation, resolve_evaluation


class MinGRU(nn.Module):
    """The minGRU recurrence with resets, ``[T, B, D] -> [T, B, state_size]``."""

    config: MinGRUConfig

    @nn.compact
    def __call__(self, h0: jax.Array, x: jax.Array, resets: jax.Array):
        """Run the cell over a sequence.

        Args:
          h0: ``[B, state_size]`` float32, the state before step 0.
          x: ``[T, B, D]`` float32 inputs.
          resets: ``[T, B]`` bool.

        Returns:
          ``(h [B, state_size], hs [T, B, state_size])``: the last state and every state.
        """
        cfg = self.config
        gate = nn.Dense(cfg.state_size, name="gate")(x)  # z_t = sigmoid(gate)
        candidate = nn.Dense(cfg.state_size, name="candidate")(x)  # h~_t
        keep = jax.nn.sigmoid(-gate)  # 1 - z_t, without cancellation
        hs = SCANS[cfg.resolved_evaluation](keep, jax.nn.sigmoid(gate) * candidate, resets, h0)
        return hs[-1], hs


class MinGRUBlock(nn.Module):
    """Pre-norm minGRU and MLP sub-layers, each with a residual; ``(x, h0) -> (x, h)``."""

    config: MinGRUConfig

    @nn.compact
    def __call__(self, x: jax.Array, h0: jax.Array, resets: jax.Array):
        cfg = self.config
        h, y = MinGRU(cfg)(h0, nn.LayerNorm()(x), resets)
        if cfg.state_size != cfg.d_model:
            y = nn.Dense(cfg.d_model, name="out")(y)
        x = x + y
        y = nn.Dense(cfg.mlp_dim, name="mlp_in")(nn.LayerNorm()(x))
        return x + nn.Dense(cfg.d_model, name="mlp_out")(nn.gelu(y)), h


class MinGRUMemory(nn.Module):
    """Stacked minGRU blocks behind the Memory contract (see ``models/base.py``).

    The carry is ``[B, L, state_size]`` float32: one state per layer.
    """

    config: MinGRUConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        return jnp.zeros((batch_size, cfg.num_layers, cfg.state_size), jnp.float32)

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        carry, x = stacked_memory(MinGRUBlock, self.config, carry, inputs, resets)
        return carry, nn.LayerNorm(name="norm_out")(x)


@dataclass(frozen=True, kw_only=True)
class MinGRUConfig:
    """Minimal GRU (minGRU) settings (Feng and co-authors, 2024).

    The model and its choices: ``models/mingru.py``.

    Defaults: 4 layers of width 256 with a minGRU of 256 and an MLP of 256, about the
    paper's S5 parameter count.
    """

    d_model: int = 256  # H: width of the residual stream
    state_size: int = 256  # minGRU state width (a Dense maps it back to H if it differs)
    mlp_dim: int = 256  # hidden width of each MLP
    num_layers: int = 4  # L: stacked blocks
    evaluation: str = "auto"  # parallel | sequential | auto (sequential on CPU, parallel else)

    def __post_init__(self):
        check_evaluation("mingru", self.evaluation)
        for name in ("d_model", "state_size", "mlp_dim", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"mingru {name} must be positive, got {getattr(self, name)}")

    @property
    def resolved_evaluation(self) -> Evaluation:
        """The evaluation that will run on the current default backend."""
        return resolve_evaluation(self.evaluation)

    @classmethod
    def quick(cls) -> MinGRUConfig:
        return cls(d_model=64, state_size=64, mlp_dim=64, num_layers=2)

    def sized(self, d_model: int, num_layers: int) -> MinGRUConfig:
        """This config at another width and depth (state and MLP keep their ratios)."""
        return dataclasses.replace(
            self, d_model=d_model, num_layers=num_layers,
            state_size=max(1, d_model * self.state_size // self.d_model),
            mlp_dim=max(1, d_model * self.mlp_dim // self.d_model))

    def build(self) -> MinGRUMemory:
        """The minGRU stack, with ``evaluation="auto"`` resolved for the current backend."""
        return MinGRUMemory(dataclasses.replace(self, evaluation=self.resolved_evaluation))
