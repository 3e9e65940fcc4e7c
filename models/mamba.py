"""A Mamba-style selective state-space backbone (Gu & Dao 2023), with episode resets.

"Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (Gu and Dao,
arXiv 2312.00752; reference state-spaces/mamba ``mamba_ssm/modules/mamba_simple.py``). One
block, on a residual stream of width H with E = ``expand`` x H inner channels and N states
per channel:

    x, z    = split(W_in RMSNorm(u))                          [T, B, E] each
    x       = SiLU(causal depthwise conv of width K over x)
    dt, B, C = split(W_x x)                                   dt [T, B, R], B, C [T, B, N]
    delta   = softplus(W_dt dt + b_dt)                        [T, B, E]
    h_t     = exp(delta_t A) * h_{t-1} + delta_t B_t x_t      [T, B, E, N], A = -exp(A_log)
    y_t     = C_t . h_t + D * x_t                             [T, B, E]
    out     = u + W_out (y * SiLU(z))

The SSM's decay ``exp(delta_t A)`` depends on the input (the "selection"), so it is a
per-step diagonal linear recurrence: S5's reset-aware scan (``models/linear_scan.py``)
evaluates it in parallel (``jax.lax.associative_scan``) or step by step (``lax.scan``).

Resets. A reset zeroes the SSM state before the step's input (the scan's operator), and
the causal convolution never reads across an episode start: a tap that would reach a
step of an earlier episode reads zero instead, as at the start of a sequence. The carry
holds, per layer, the last K - 1 conv inputs (zeroed where they belong to an episode
before the last step's) and the SSM state ``[E, N]``, so a call of T = 1 (acting) equals
the sequence evaluation.

What follows Mamba (``mamba_simple.py`` and ``MambaLMHeadModel``):

- sizes: ``expand = 2``, ``d_state = N = 16``, ``d_conv = K = 4``, ``dt_rank = ceil(H / 16)``;
- A: S4D-real, ``A[e, n] = -(n + 1)``, stored as ``A_log``; ``D`` ones;
- delta: ``W_dt`` uniform in ``+-dt_rank^-0.5``, ``b_dt = softplus^-1(dt)`` with ``dt``
  log-uniform in ``[dt_min, dt_max] = [0.001, 0.1]``, floored at ``1e-4``;
- the other linear maps have no bias and PyTorch's default init (uniform in
  ``+-1/sqrt(fan_in)``), the conv keeps its bias and PyTorch's default init, and ``W_out``
  is divided by ``sqrt(num_layers)`` (GPT-2-style rescaling of the residual branches);
- pre-norm residual blocks with RMSNorm, and a final RMSNorm after the stack.

What differs: the scan is the associative scan above, not Mamba's fused hardware-aware
kernel (same maths; the kernel is a CUDA-only speed-up); the conv and SSM reset at
episode starts (Mamba has no resets); float32 throughout; and the ``paper`` preset's
depth is chosen for a parameter count near the paper's S5 (``MambaConfig``).

Every module reads its settings from one ``MambaConfig`` attribute.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models.base import Carry, stacked_memory
from models.linear_scan import SCANS, Evaluation, check_evaluation, resolve_evaluation

# PyTorch's default for nn.Linear and nn.Conv1d weights (kaiming_uniform, a = sqrt 5):
# uniform in +-1/sqrt(fan_in), which is variance scaling 1/3 over fan_in.
_torch_default = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _uniform(bound: float):
    """Uniform in ``[-bound, bound]``."""
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, minval=-bound, maxval=bound)


def causal_conv(x: jax.Array, history: jax.Array, resets: jax.Array, weight: jax.Array,
                bias: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Causal depthwise convolution over time that never reads across an episode start.

    Output t is ``bias + sum_j weight[j] * x[t - (K - 1) + j]``, where an input before
    the call comes from ``history`` and an input from an earlier episode than step t's
    (a reset after it, up to t) counts as zero.

    Args:
      x: ``[T, B, E]`` inputs.
      history: ``[B, K - 1, E]``, the K - 1 inputs before step 0 (oldest first), zero
        where they are not of the episode in progress.
      resets: ``[T, B]`` bool.
      weight: ``[K, E]``; ``weight[K - 1]`` multiplies the current step.
      bias: ``[E]``.

    Returns:
      ``(y [T, B, E], history [B, K - 1, E])``: the outputs and the last K - 1 inputs,
      zeroed where they precede the last step's episode.
    """
    kernel, steps = weight.shape[0], x.shape[0]
    xs = jnp.concatenate([jnp.swapaxes(history, 0, 1), x], axis=0)  # [K - 1 + T, B, E]
    # Episode index of every position: the history is episode 0, a reset opens the next.
    episode = jnp.cumsum(resets.astype(jnp.int32), axis=0)
    episode = jnp.concatenate([jnp.zeros((kernel - 1, x.shape[1]), jnp.int32), episode])
    current = episode[kernel - 1:]  # [T, B]: step t's episode
    y = bias
    for j in range(kernel):
        same = (episode[j:j + steps] == current)[..., None]
        y = y + jnp.where(same, xs[j:j + steps], 0.0) * weight[j]
    tail = slice(xs.shape[0] - (kernel - 1), None)  # not -(K - 1): K = 1 keeps nothing
    keep = (episode[tail] == episode[-1])[..., None]
    return y, jnp.swapaxes(jnp.where(keep, xs[tail], 0.0), 0, 1)


def dt_bias_init(dt_min: float, dt_max: float, floor: float):
    """``softplus^-1(dt)``, ``dt`` log-uniform in ``[dt_min, dt_max]`` and at least ``floor``."""

    def init(key, shape, dtype=jnp.float32):
        log_dt = jax.random.uniform(key, shape, dtype, np.log(dt_min), np.log(dt_max))
        dt = jnp.maximum(jnp.exp(log_dt), floor)
        return dt + jnp.log(-jnp.expm1(-dt))  # inverse of softplus

    return init


class MambaMixer(nn.Module):
    """The selective SSM of one block, ``[T, B, H] -> [T, B, H]`` (module docstring)."""

    config: MambaConfig

    @nn.compact
    def __call__(self, carry, u: jax.Array, resets: jax.Array):
        """Run the mixer.

        Args:
          carry: ``(conv [B, K - 1, E], ssm [B, E, N])``, float32.
          u: ``[T, B, H]`` normalised inputs.
          resets: ``[T, B]`` bool.

        Returns:
          ``(carry, y [T, B, H])``.
        """
        cfg = self.config
        conv0, h0 = carry
        inner, n, rank = cfg.expand * cfg.d_model, cfg.d_state, cfg.resolved_dt_rank
        xz = nn.Dense(2 * inner, use_bias=False, kernel_init=_torch_default,
                      name="in_proj")(u)
        x, z = jnp.split(xz, 2, axis=-1)

        conv_bound = 1.0 / math.sqrt(cfg.d_conv)  # fan-in K: one input channel per group
        weight = self.param("conv_weight", _uniform(conv_bound), (cfg.d_conv, inner))
        bias = self.param("conv_bias", _uniform(conv_bound), (inner,))
        x, conv = causal_conv(x, conv0, resets, weight, bias)
        x = nn.silu(x)

        dt_bc = nn.Dense(rank + 2 * n, use_bias=False, kernel_init=_torch_default,
                         name="x_proj")(x)
        dt, b, c = jnp.split(dt_bc, [rank, rank + n], axis=-1)
        delta = nn.softplus(nn.Dense(
            inner, kernel_init=_uniform(rank**-0.5),
            bias_init=dt_bias_init(cfg.dt_min, cfg.dt_max, cfg.dt_init_floor),
            name="dt_proj")(dt))  # [T, B, E]
        a_log = self.param(
            "A_log", lambda _key, shape: jnp.log(jnp.broadcast_to(
                jnp.arange(1, n + 1, dtype=jnp.float32), shape)), (inner, n))
        d = self.param("D", nn.initializers.ones, (inner,))

        a = -jnp.exp(a_log)  # [E, N], S4D-real at init: -(n + 1)
        decay = jnp.exp(delta[..., None] * a)  # [T, B, E, N]
        drive = (delta * x)[..., None] * b[:, :, None, :]  # delta_t B_t x_t
        hs = SCANS[cfg.resolved_evaluation](decay, drive, resets, h0)
        y = jnp.einsum("tben,tbn->tbe", hs, c) + d * x
        y = y * nn.silu(z)
        out_init = nn.initializers.variance_scaling(
            1.0 / (3.0 * cfg.num_layers), "fan_in", "uniform")  # torch default / sqrt(L)
        y = nn.Dense(cfg.d_model, use_bias=False, kernel_init=out_init, name="out_proj")(y)
        return (conv, hs[-1]), y


class MambaBlock(nn.Module):
    """``u + Mixer(RMSNorm(u))``; ``(x, carry) -> (x, carry)`` for ``nn.scan`` over layers."""

    config: MambaConfig

    @nn.compact
    def __call__(self, x: jax.Array, carry, resets: jax.Array):
        carry, y = MambaMixer(self.config, name="mixer")(
            carry, nn.RMSNorm(epsilon=1e-5, name="norm")(x), resets)
        return x + y, carry


class MambaMemory(nn.Module):
    """Stacked Mamba blocks behind the Memory contract (see ``models/base.py``).

    The carry is ``(conv [B, L, K - 1, E], ssm [B, L, E, N])`` float32.
    """

    config: MambaConfig

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        inner = cfg.expand * cfg.d_model
        return (jnp.zeros((batch_size, cfg.num_layers, cfg.d_conv - 1, inner), jnp.float32),
                jnp.zeros((batch_size, cfg.num_layers, inner, cfg.d_state), jnp.float32))

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        carry, x = stacked_memory(MambaBlock, self.config, carry, inputs, resets)
        return carry, nn.RMSNorm(epsilon=1e-5, name="norm_f")(x)


@dataclass(frozen=True, kw_only=True)
class MambaConfig:
    """Mamba-style selective state-space settings (Gu and Dao, 2023).

    The model and its choices: ``models/mamba.py``.

    Defaults: Mamba's block (expand 2, N = 16, conv 4) at H = 256 with 3 layers, 1.31M
    parameters against the paper's S5's 1.05M (4 layers would give 1.75M; 2, 0.88M).
    """

    d_model: int = 256  # H: width of the residual stream
    num_layers: int = 3  # L: stacked blocks
    d_state: int = 16  # N: SSM states per inner channel
    d_conv: int = 4  # K: causal depthwise conv width
    expand: int = 2  # inner channels E = expand x d_model
    dt_rank: int = 0  # R: rank of the delta projection; 0 = ceil(d_model / 16) (Mamba's auto)
    dt_min: float = 0.001  # smallest initial delta
    dt_max: float = 0.1  # largest initial delta
    dt_init_floor: float = 1e-4  # initial deltas are at least this
    evaluation: str = "auto"  # parallel | sequential | auto (sequential on CPU, parallel else)

    def __post_init__(self):
        check_evaluation("mamba", self.evaluation)
        for name in ("d_model", "num_layers", "d_state", "d_conv", "expand"):
            if getattr(self, name) <= 0:
                raise ValueError(f"mamba {name} must be positive, got {getattr(self, name)}")
        if self.dt_rank < 0:
            raise ValueError(f"mamba dt_rank must be >= 0 (0: automatic), got {self.dt_rank}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"mamba needs 0 < dt_min <= dt_max, got {self.dt_min}, "
                             f"{self.dt_max}")

    @property
    def resolved_evaluation(self) -> Evaluation:
        """The evaluation that will run on the current default backend."""
        return resolve_evaluation(self.evaluation)

    @property
    def resolved_dt_rank(self) -> int:
        """``dt_rank``, or Mamba's automatic ``ceil(d_model / 16)`` when it is 0."""
        return self.dt_rank or math.ceil(self.d_model / 16)

    @classmethod
    def quick(cls) -> MambaConfig:
        return cls(d_model=64, num_layers=2)

    def sized(self, d_model: int, num_layers: int) -> MambaConfig:
        return dataclasses.replace(self, d_model=d_model, num_layers=num_layers)

    def build(self) -> MambaMemory:
        """The Mamba stack, with ``dt_rank=0`` and ``evaluation="auto"`` resolved."""
        return MambaMemory(dataclasses.replace(self, dt_rank=self.resolved_dt_rank,
                                               evaluation=self.resolved_evaluation))
