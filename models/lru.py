"""LRU: the Linear Recurrent Unit of Orvieto et al. (ICML 2023), with episode resets.

"Resurrecting Recurrent Neural Networks for Long Sequences" (Orvieto, Smith, Gu, Fernando,
Gulcehre, Pascanu, De; arXiv 2303.06349) strips a deep state-space model down to a
diagonal complex linear RNN:

    h_t = lambda * h_{t-1} + gamma * (B x_t),    y_t = Re(C h_t) + D * x_t,

with ``lambda = exp(-exp(nu_log) + i exp(theta_log))`` (stable by construction: |lambda| < 1
for any ``nu_log``) and ``gamma = exp(gamma_log)``. The reference is the paper's appendix
code, also in NicolasZucchet/minimal-LRU ``lru/model.py``. The recurrence is S5's reset-aware
scan (``models/linear_scan.py``) with a fixed decay ``lambda``: a reset zeroes the state
before the step's input, and the incoming carry is folded into element 0.

What follows the paper:

- ring initialisation: ``|lambda|`` uniform on the ring ``r_min <= |lambda| <= r_max`` (area
  uniform: ``|lambda|^2`` uniform in ``[r_min^2, r_max^2]``), phase uniform in
  ``(0, max_phase]`` (the reference draws ``[0, max_phase)``, whose 0 gives a ``-inf``
  parameter; see ``theta_log_init``);
- normalisation: ``gamma_log`` initialised to ``log sqrt(1 - |lambda|^2)`` and then trained as
  a free parameter, as in the paper;
- ``B`` and ``C`` complex with Glorot-like normal entries: ``B`` std ``1/sqrt(2 H)`` per real
  and imaginary part, ``C`` std ``1/sqrt(N)``; ``D`` real, standard normal;
- the block: LRU -> GELU -> GLU (``W1 y * sigmoid(W2 y)``) -> residual, stacked
  ``num_layers`` times (minimal-LRU ``SequenceLayer``, no dropout).

Choices of s5bench:

- the block's normalisation is a pre-norm LayerNorm (``SequenceLayer(norm="layer",
  prenorm=True)``). minimal-LRU's models train with BatchNorm after the block by default
  (``StackedEncoderModel``/``ClassificationModel``: ``norm="batch"``, ``prenorm=False``);
  batch statistics would couple the environments of an RL batch and differ between acting
  (one step) and training (a sequence), so s5bench does not use them.

- ``r_min = 0.9``, ``r_max = 0.999`` rather than the reference's code defaults ``0, 1``.
  With ``r_min = 0`` most eigenvalues forget within a few steps; the paper shows the ring
  near the unit circle is what lets the LRU solve its long-range tasks, and it uses
  ``[0.9, 0.999]`` for most of them. RL memory tasks (recall over tens to hundreds of
  steps) are of that kind. ``max_phase = 2 pi`` is the paper's default (it lowers the
  phase only for its longest tasks). All three are config fields.
- the paper's LRA layers are wider than the state (``H > N``); the ``paper`` preset
  instead takes S5's sizes (H = 256, N = 128 complex states, 4 layers), so that the
  parameter count matches the paper's S5 (``s5bench models``).
- as in S5 here, inputs of another width than ``d_model`` first pass a Dense.

Every module reads its settings from one ``LRUConfig`` attribute.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.base import Carry, stacked_memory
from models.linear_scan import SCANS, Evaluation, check_evaluation, resolve_evaluation


def nu_log_init(key: jax.Array, shape: tuple[int, ...], r_min: float, r_max: float
                ) -> jax.Array:
    """``log(-log|lambda|)`` with ``|lambda|`` uniform (by area) on the ring [r_min, r_max].

    ``u ~ U[0, 1]``, ``|lambda|^2 = u (r_max^2 - r_min^2) + r_min^2``, so ``nu = -log|lambda|
    = -0.5 log(|lambda|^2)`` and the parameter is ``log(nu)`` (the paper's appendix).
    """
    u = jax.random.uniform(key, shape)
    return jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))


def theta_log_init(key: jax.Array, shape: tuple[int, ...], max_phase: float) -> jax.Array:
    """``log(phase)`` with the phase uniform in ``(0, max_phase]``.

    The reference's ``log(max_phase * u)`` with ``u ~ U[0, 1)`` is ``-inf`` when ``u`` is
    exactly 0 (probability 2^-23 per float32 draw), which makes the parameters non-finite
    and the seed diverged at its first update. ``u = 0`` is drawn as 1 instead: float32
    ``U[0, 1)`` takes the values ``k / 2^23``, ``k = 0 .. 2^23 - 1``, so this is uniform on
    ``k = 1 .. 2^23``, i.e. on ``(0, 1]``, and every other draw is unchanged.
    """
    u = jax.random.uniform(key, shape)
    return jnp.log(max_phase * jnp.where(u > 0, u, 1.0))


def eigenvalues(nu_log: jax.Array, theta_log: jax.Array) -> jax.Array:
    """``lambda = exp(-exp(nu_log) + i exp(theta_log))``, ``[N]`` complex64."""
    return jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(theta_log)))


def gamma_log_from(nu_log: jax.Array) -> jax.Array:
    """``log sqrt(1 - |lambda|^2)``; ``|lambda|^2 = exp(-2 exp(nu_log))``, so via expm1
    (exact near the unit circle, where ``1 - |lambda|^2`` is small)."""
    return 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log)))


class LRULayer(nn.Module):
    """The LRU recurrence with resets, ``[T, B, H] -> [T, B, H]`` (module docstring)."""

    config: LRUConfig

    @nn.compact
    def __call__(self, h0: jax.Array, u: jax.Array, resets: jax.Array):
        """Run the layer.

        Args:
          h0: ``[B, N]`` complex64, the state before step 0.
          u: ``[T, B, H]`` float32 inputs.
          resets: ``[T, B]`` bool.

        Returns:
          ``(h [B, N] complex64, y [T, B, H] float32)``: the state after the last step and
          the outputs ``Re(C h_t) + D u_t``.
        """
        cfg = self.config
        n, h = cfg.state_size, cfg.d_model
        nu_log = self.param("nu_log", nu_log_init, (n,), cfg.r_min, cfg.r_max)
        theta_log = self.param("theta_log", theta_log_init, (n,), cfg.max_phase)
        gamma_log = self.param("gamma_log", lambda _key: gamma_log_from(nu_log))
        b_init = nn.initializers.normal(stddev=1.0 / math.sqrt(2 * h))
        c_init = nn.initializers.normal(stddev=1.0 / math.sqrt(n))
        b_re, b_im = self.param("B_re", b_init, (n, h)), self.param("B_im", b_init, (n, h))
        c_re, c_im = self.param("C_re", c_init, (h, n)), self.param("C_im", c_init, (h, n))
        d = self.param("D", nn.initializers.normal(stddev=1.0), (h,))

        lam = eigenvalues(nu_log, theta_log)
        gamma = jnp.exp(gamma_log)[:, None]
        # u is real: gamma B u is two real matmuls, not one complex one on a promoted u.
        bu = jax.lax.complex(u @ (gamma * b_re).T, u @ (gamma * b_im).T)  # [T, B, N]
        hs = SCANS[cfg.resolved_evaluation](lam, bu, resets, h0)
        y = hs.real @ c_re.T - hs.imag @ c_im.T + d * u  # Re(C h) + D u
        return hs[-1], y


class LRUBlock(nn.Module):
    """Pre-norm LayerNorm -> LRU -> GELU -> GLU -> residual; ``(x, h0) -> (x, h)`` for
    ``nn.scan`` over layers."""

    config: LRUConfig

    @nn.compact
    def __call__(self, x: jax.Array, h0: jax.Array, resets: jax.Array):
        d_model = self.config.d_model
        h, y = LRULayer(self.config)(h0, nn.LayerNorm()(x), resets)
        y = nn.gelu(y)
        y = nn.Dense(d_model)(y) * jax.nn.sigmoid(nn.Dense(d_model)(y))
        return x + y, h


class LRUMemory(nn.Module):
    """Stacked LRU blocks behind the Memory contract (see ``models/base.py``).

    The carry is ``[B, L, N]`` complex64: one state per layer.
    """

    config: LRUConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        return jnp.zeros((batch_size, cfg.num_layers, cfg.state_size), jnp.complex64)

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        return stacked_memory(LRUBlock, self.config, carry, inputs, resets)


@dataclass(frozen=True, kw_only=True)
class LRUConfig:
    """Linear Recurrent Unit (LRU) settings (Orvieto and co-authors, ICML 2023).

    The model and its choices: ``models/lru.py``.

    Defaults: the paper's S5 sizes (H = 256, N = 128 complex states, 4 layers), about the
    paper's S5 parameter count; the ring ``[0.9, 0.999]`` and phases up to 2 pi.
    """

    d_model: int = 256  # H: width of each layer
    state_size: int = 128  # N: complex states per layer
    num_layers: int = 4  # L: stacked LRU blocks
    r_min: float = 0.9  # smallest initial |lambda|
    r_max: float = 0.999  # largest initial |lambda|
    max_phase: float = 2 * math.pi  # initial phases are uniform in [0, max_phase]
    evaluation: str = "auto"  # parallel | sequential | auto (sequential on CPU, parallel else)

    def __post_init__(self):
        check_evaluation("lru", self.evaluation)
        for name in ("d_model", "state_size", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"lru {name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.r_min <= self.r_max < 1.0:
            raise ValueError(f"lru needs 0 <= r_min <= r_max < 1, got r_min={self.r_min}, "
                             f"r_max={self.r_max}")
        if not self.max_phase > 0:
            raise ValueError(f"lru max_phase must be positive, got {self.max_phase}")

    @property
    def resolved_evaluation(self) -> Evaluation:
        """The evaluation that will run on the current default backend."""
        return resolve_evaluation(self.evaluation)

    @classmethod
    def quick(cls) -> LRUConfig:
        return cls(d_model=64, state_size=32, num_layers=2)

    def sized(self, d_model: int, num_layers: int) -> LRUConfig:
        """This config at another width and depth (the state keeps its ratio to the width)."""
        state_size = max(1, d_model * self.state_size // self.d_model)
        return dataclasses.replace(self, d_model=d_model, state_size=state_size,
                                   num_layers=num_layers)

    def build(self) -> LRUMemory:
        """The LRU stack, with ``evaluation="auto"`` resolved for the current backend."""
        return LRUMemory(dataclasses.replace(self, evaluation=self.resolved_evaluation))
