"""S5 with episode resets folded into the scan: the backbone of Lu et al. (NeurIPS 2023).

An S5 layer is a diagonal, complex, linear state-space model discretised by zero-order
hold (Smith et al., ICLR 2023; reference lindermanlab/S5). Lu et al. ("Structured State
Space Models for In-Context Reinforcement Learning", arXiv 2303.03982) make it usable in
RL by adding a reset flag to each element of the associative scan so that no state flows
across an episode boundary; their code is luchris429/popjaxrl and purejaxrl ``s5.py``.

Two evaluations of the same recurrence (``models/linear_scan.py``, shared with the other
diagonal recurrences) are tested equal:

- ``scan_parallel``: ``jax.lax.associative_scan`` with the reset-aware operator, O(log T)
  depth: the fast path on accelerators.
- ``scan_sequential``: a plain ``jax.lax.scan``, O(T) depth: the reference, and often the
  faster one on a CPU where there is no parallelism to exploit.

Layers are stacked with ``nn.scan`` over a layer axis rather than unrolled, which keeps
the compiled program (and its compile time) the size of one layer. Every module reads its
settings from one ``S5Config`` attribute (as flax's ``examples/wmt`` passes one
``TransformerConfig``), so a new setting touches the config and the place that uses it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models.base import Carry, stacked_memory
from models.linear_scan import SCANS, Evaluation, check_evaluation, resolve_evaluation
from models.ssm_init import DiagonalHiPPO, make_s5_init

# ----------------------------------------------------------------------------- the scans

# The reset-aware recurrence x_t = (0 if resets[t] else lambda_bar * x_{t-1}) + bu_t, with
# the incoming carry folded into element 0, is models/linear_scan.py's ``SCANS`` (shared
# with the LRU, Mamba and minGRU backbones). For S5 ``a`` is the fixed ``lambda_bar [P]``.

# How C is drawn, as an ``[H, N, 2]`` real array (N the states before conjugate halving)
# that is then multiplied by the eigenvectors V. Names follow the reference's ``C_init``.
C_INITS = {
    # The paper's POPGym runs (popjaxrl ``ppo_s5.py``): jax's lecun_normal over the whole
    # [H, N, 2] array, whose fan-in is N x H: a truncated normal of std 1/sqrt(N H).
    "lecun_normal": nn.initializers.lecun_normal(),
    # The reference's ``trunc_standard_normal``: lecun_normal per output row, over a
    # [1, N, 2] shape, so fan-in N: std 1/sqrt(N), sqrt(H) times the above.
    "trunc_standard_normal": nn.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1, batch_axis=(0,)),
}


# ----------------------------------------------------------------------------- modules


@functools.lru_cache(maxsize=16)
def _cached_init(state_size: int, blocks: int, conj_sym: bool) -> DiagonalHiPPO:
    return make_s5_init(state_size, blocks, conj_sym)


class S5SSM(nn.Module):
    """One diagonal S5 state-space layer with resets, ``[T, B, H] -> [T, B, H]``.

    Parameters follow the reference: Lambda (real and imaginary parts) from HiPPO-LegS,
    ``B`` initialised as ``V^{-1} B`` with LeCun-normal ``B``, ``C`` as ``C V`` with ``C``
    drawn as ``c_init`` says (``C_INITS``), feed-through ``D`` standard normal, and a
    per-state log time step uniform in ``[log dt_min, log dt_max]``. Complex parameters
    are stored as trailing (real, imaginary) pairs so that optimisers see only real numbers.
    """

    config: S5Config

    @nn.compact
    def __call__(self, h0: jax.Array, u: jax.Array, resets: jax.Array):
        """Run the layer.

        Args:
          h0: ``[B, P]`` complex64, the state before step 0.
          u: ``[T, B, H]`` float32 inputs.
          resets: ``[T, B]`` bool.

        Returns:
          ``(h [B, P] complex64, y [T, B, H] float32)``: the state after the last step
          and the outputs.
        """
        cfg = self.config
        init = _cached_init(cfg.state_size, cfg.blocks, cfg.conj_sym)
        num_states = init.eigenvalues.shape[0]
        local_states = init.eigenvectors.shape[0]  # P before conjugate halving
        v = jnp.asarray(init.eigenvectors, jnp.complex64)
        v_inv = jnp.asarray(init.eigenvectors_inv, jnp.complex64)

        eigenvalues = init.eigenvalues
        lambda_re = self.param(
            "lambda_re", lambda _k, s: jnp.asarray(eigenvalues.real, jnp.float32), (num_states,)
        )
        lambda_im = self.param(
            "lambda_im", lambda _k, s: jnp.asarray(eigenvalues.imag, jnp.float32), (num_states,)
        )

        def init_b(key, shape):
            b = nn.initializers.lecun_normal()(key, (local_states, cfg.d_model))
            vb = v_inv @ b.astype(jnp.complex64)
            return jnp.stack([vb.real, vb.imag], axis=-1)

        def init_c(key, shape):
            c = C_INITS[cfg.c_init](key, (cfg.d_model, local_states, 2))
            cv = (c[..., 0] + 1j * c[..., 1]).astype(jnp.complex64) @ v
            return jnp.stack([cv.real, cv.imag], axis=-1)

        def init_log_step(key, shape):
            lo, hi = np.log(cfg.dt_min), np.log(cfg.dt_max)
            return jax.random.uniform(key, shape, minval=lo, maxval=hi)

        b = self.param("b", init_b, (num_states, cfg.d_model, 2))
        c = self.param("c", init_c, (cfg.d_model, num_states, 2))
        d = self.param("d", nn.initializers.normal(stddev=1.0), (cfg.d_model,))
        log_step = self.param("log_step", init_log_step, (num_states,))

        # Zero-order-hold discretisation: cheap elementwise work on P numbers.
        lam = jax.lax.complex(lambda_re, lambda_im)
        step = jnp.exp(log_step)
        lambda_bar = jnp.exp(lam * step)
        b_tilde = jax.lax.complex(b[..., 0], b[..., 1])
        b_bar = ((lambda_bar - 1.0) / lam)[:, None] * b_tilde  # [P, H]

        # Real matmuls for the input and output maps: u is real, so B_bar u needs two
        # real products rather than a complex one on a promoted u.
        bu = jax.lax.complex(u @ b_bar.real.T, u @ b_bar.imag.T)  # [T, B, P]
        xs = SCANS[cfg.resolved_evaluation](lambda_bar, bu, resets, h0)
        cx_real = xs.real @ c[..., 0].T - xs.imag @ c[..., 1].T  # Re(C x), [T, B, H]
        scale = 2.0 if cfg.conj_sym else 1.0
        y = scale * cx_real + d * u
        return xs[-1], y


class S5Block(nn.Module):
    """One S5 layer: SSM, GELU, gated linear unit, residual (and optional layer norm).

    ``activation``: ``full_glu`` (the paper's: ``W1 y * sigmoid(W2 y)``), ``half_glu``
    (``y * sigmoid(W y)``) or ``gelu`` (no gate). Written for ``nn.scan`` over layers:
    ``(x, h0) -> (x, h)``.
    """

    config: S5Config

    @nn.compact
    def __call__(self, x: jax.Array, h0: jax.Array, resets: jax.Array):
        cfg = self.config
        skip = x
        if cfg.layer_norm:  # pre-norm, as in the reference's prenorm=True setting
            x = nn.LayerNorm()(x)
        h, y = S5SSM(cfg)(h0, x, resets)
        y = nn.gelu(y)
        if cfg.activation == "full_glu":
            y = nn.Dense(cfg.d_model)(y) * jax.nn.sigmoid(nn.Dense(cfg.d_model)(y))
        elif cfg.activation == "half_glu":
            y = y * jax.nn.sigmoid(nn.Dense(cfg.d_model)(y))
        return skip + y, h


class S5Memory(nn.Module):
    """Stacked S5 layers behind the Memory contract (see ``models/base.py``).

    The carry is ``[B, L, P]`` complex64: one state per layer. The paper's stack takes its
    inputs as they come (its encoder already ends at ``d_model``); inputs of another width,
    or all inputs with ``input_projection``, first pass a Dense to ``d_model`` so that the
    residual connections line up.
    """

    config: S5Config

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        cfg = self.config
        return jnp.zeros((batch_size, cfg.num_layers, cfg.num_complex_states), jnp.complex64)

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, resets: jax.Array):
        return stacked_memory(S5Block, self.config, carry, inputs, resets,
                              project=self.config.input_projection)


@dataclass(frozen=True, kw_only=True)
class S5Config:
    """S5 backbone settings. Defaults are the paper's POPGym settings."""

    d_model: int = 256  # H: width of each layer
    state_size: int = 256  # P: states per layer before conjugate halving
    num_layers: int = 4  # L: stacked S5 layers
    blocks: int = 1  # HiPPO blocks in the block-diagonal initialisation
    conj_sym: bool = True  # keep one eigenvalue of each conjugate pair
    dt_min: float = 0.001  # smallest initial time step
    dt_max: float = 0.1  # largest initial time step
    c_init: str = "lecun_normal"  # how C is drawn (C_INITS); the paper's: lecun_normal
    activation: str = "full_glu"  # full_glu | half_glu | gelu
    layer_norm: bool = False  # pre-norm each layer (the paper's POPGym runs: off)
    # Dense to d_model before the first layer even when the inputs already have that width
    # (the paper's stack has none; inputs of another width are always projected).
    input_projection: bool = False
    evaluation: str = "auto"  # parallel | sequential | auto (sequential on CPU, parallel else)

    def __post_init__(self):
        check_evaluation("s5", self.evaluation)
        if self.c_init not in C_INITS:
            raise ValueError(
                f"s5 c_init must be one of {', '.join(C_INITS)}; got {self.c_init!r}")
        if self.activation not in ("full_glu", "half_glu", "gelu"):
            raise ValueError(
                f"s5 activation must be one of full_glu, half_glu, gelu; got {self.activation!r}"
            )
        for name in ("d_model", "state_size", "num_layers", "blocks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"s5 {name} must be positive, got {getattr(self, name)}")

    @property
    def resolved_evaluation(self) -> Evaluation:
        """The evaluation that will run on the current default backend."""
        return resolve_evaluation(self.evaluation)

    @property
    def num_complex_states(self) -> int:
        """States per layer after conjugate halving: the carry's last dimension."""
        return self.state_size // 2 if self.conj_sym else self.state_size

    @classmethod
    def quick(cls) -> S5Config:
        """CPU-sized. Keeps s5bench's first S5 (per-row C, an input projection) so that
        quick results stay comparable with the committed reference runs."""
        return cls(d_model=64, state_size=64, num_layers=2, c_init="trunc_standard_normal",
                   input_projection=True)

    def sized(self, d_model: int, num_layers: int) -> S5Config:
        """This config at another width and depth (state size follows the width)."""
        return dataclasses.replace(
            self, d_model=d_model, state_size=d_model, num_layers=num_layers
        )

    def build(self) -> S5Memory:
        """The S5 stack, with ``evaluation="auto"`` resolved for the current backend."""
        return S5Memory(dataclasses.replace(self, evaluation=self.resolved_evaluation))
