"""S5: the reset-aware associative scan equals the sequential scan and a plain-Python loop."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.linear_scan import scan_parallel, scan_sequential
from models.s5 import S5Config

T, B, P = 33, 4, 6


def _problem(seed: int, t: int = T):
    keys = jax.random.split(jax.random.key(seed), 6)
    # |lambda_bar| < 1, as after ZOH discretisation of a stable (Re < 0) eigenvalue.
    radius = jax.random.uniform(keys[0], (P,), minval=0.5, maxval=0.99)
    angle = jax.random.uniform(keys[1], (P,), minval=-np.pi, maxval=np.pi)
    lambda_bar = (radius * jnp.exp(1j * angle)).astype(jnp.complex64)
    bu = jax.lax.complex(jax.random.normal(keys[2], (t, B, P)),
                         jax.random.normal(keys[3], (t, B, P)))
    h0 = jax.lax.complex(jax.random.normal(keys[4], (B, P)), jnp.zeros((B, P)))
    resets = jax.random.bernoulli(keys[5], 0.2, (t, B))
    resets = resets.at[0, 0].set(True)  # a reset at t = 0 (the incoming carry is dropped)
    resets = resets.at[5:8, 1].set(True)  # back-to-back resets
    resets = resets.at[:, 2].set(False)  # one row that never resets
    return lambda_bar, bu, resets, h0


def _python_loop(lambda_bar, bu, resets, h0):
    lambda_bar, bu, resets, h0 = map(np.asarray, (lambda_bar, bu, resets, h0))
    xs = np.zeros_like(bu)
    for b in range(bu.shape[1]):
        x = h0[b]
        for t in range(bu.shape[0]):
            x = (0 if resets[t, b] else lambda_bar * x) + bu[t, b]
            xs[t, b] = x
    return xs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parallel_equals_sequential_equals_python(seed):
    """Associative scan == lax.scan == Python loop under random, t=0 and back-to-back resets."""
    problem = _problem(seed)
    expected = _python_loop(*problem)
    np.testing.assert_allclose(scan_sequential(*problem), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scan_parallel(*problem), expected, rtol=1e-5, atol=1e-5)


def test_parallel_equals_sequential_long_sequence():
    """At T = 4096 the two scans still agree (atol 1e-4: fp32 rounding grows with log T)."""
    problem = _problem(3, t=4096)
    np.testing.assert_allclose(scan_parallel(*problem), scan_sequential(*problem),
                               rtol=1e-4, atol=1e-4)


def test_s5_memory_evaluations_agree_with_shared_params():
    """The full stacked S5 gives the same outputs and carry with either evaluation."""
    base = S5Config.quick()
    parallel = dataclasses.replace(base, evaluation="parallel").build()
    sequential = dataclasses.replace(base, evaluation="sequential").build()
    x = jax.random.normal(jax.random.key(0), (T, B, 5))
    resets = jax.random.bernoulli(jax.random.key(1), 0.2, (T, B)).at[0].set(True)
    carry = parallel.initialize_carry(B)
    params = parallel.init(jax.random.key(2), carry, x, resets)
    carry_p, out_p = parallel.apply(params, carry, x, resets)
    carry_s, out_s = sequential.apply(params, carry, x, resets)
    np.testing.assert_allclose(out_p, out_s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry_p, carry_s, rtol=1e-5, atol=1e-5)
    assert carry_p.dtype == jnp.complex64 and carry_p.shape == (B, base.num_layers, 32)


def test_discretised_state_matrix_is_stable_at_init():
    """HiPPO init gives eigenvalues with negative real part, so |lambda_bar| < 1 (no blow-up)."""
    module = S5Config.quick().build()
    params = module.init(jax.random.key(0), module.initialize_carry(1), jnp.zeros((2, 1, 3)),
                         jnp.zeros((2, 1), bool))
    layers = params["params"]["layers"]["S5SSM_0"]
    assert np.all(np.asarray(layers["lambda_re"]) < 0)
    step = np.exp(np.asarray(layers["log_step"]))
    lam = np.asarray(layers["lambda_re"]) + 1j * np.asarray(layers["lambda_im"])
    assert np.all(np.abs(np.exp(lam * step)) < 1)


# HiPPO-LegS for N = 4 written out by hand: A_nk = -sqrt(2n+1) sqrt(2k+1) below the
# diagonal, -(n+1) on it, 0 above.
_R = np.sqrt
HIPPO_LEGS_4 = -np.array([
    [1.0, 0.0, 0.0, 0.0],
    [_R(3), 2.0, 0.0, 0.0],
    [_R(5), _R(15), 3.0, 0.0],
    [_R(7), _R(21), _R(35), 4.0],
])
# Its normal part S = A + p p^T with p_n = sqrt(n + 1/2): the diagonal becomes
# -(n+1) + (n + 1/2) = -1/2 and the off-diagonal +-sqrt((2n+1)(2k+1)) / 2, so S = -I/2 + K
# with K skew-symmetric. K's eigenvalues are +-i w with w^4 - s w^2 + Pf^2 = 0, where
# s = (3 + 5 + 7 + 15 + 21 + 35) / 4 = 21.5 (the squares of K's upper entries) and
# Pf = (sqrt(3 x 35) - sqrt(5 x 21) + sqrt(7 x 15)) / 4 = sqrt(105) / 4, so Pf^2 = 105 / 16:
# w^2 = (21.5 -+ sqrt(21.5^2 - 105/4)) / 2 = 0.309693 and 21.190307, w = 0.556501, 4.603293.
HIPPO_4_W = (0.5565011, 4.6032930)


def test_hippo_legs_matrix_hand_computed():
    """make_hippo_legs(4) is the hand-written HiPPO-LegS matrix."""
    from models.ssm_init import make_hippo_legs

    np.testing.assert_allclose(make_hippo_legs(4), HIPPO_LEGS_4, rtol=0, atol=1e-12)


def test_hippo_diagonalisation_hand_computed():
    """The DPLR eigenvalues of HiPPO-LegS (N = 4) are -1/2 +- i w with the hand-computed w,
    V diagonalises the normal part S = A + p p^T, and S5's initial Lambda (conjugate
    halving keeps the negative-imaginary half) is -1/2 - i (4.603293, 0.556501)."""
    from models.ssm_init import make_dplr_hippo, make_s5_init

    small, large = HIPPO_4_W
    eigenvalues, v = make_dplr_hippo(4)
    np.testing.assert_allclose(eigenvalues, -0.5 + 1j * np.array([-large, -small, small, large]),
                               rtol=0, atol=1e-6)
    p = np.sqrt(np.arange(4) + 0.5)
    normal = HIPPO_LEGS_4 + np.outer(p, p)
    np.testing.assert_allclose(normal @ v, v * eigenvalues, rtol=0, atol=1e-6)
    np.testing.assert_allclose(v.conj().T @ v, np.eye(4), rtol=0, atol=1e-12)

    init = make_s5_init(4)
    expected = -0.5 - 1j * np.array([large, small])
    np.testing.assert_allclose(init.eigenvalues, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(init.eigenvectors_inv @ init.eigenvectors, np.eye(2),
                               rtol=0, atol=1e-12)
    # ... and the S5 layer starts from exactly these values (float32).
    memory = S5Config(d_model=4, state_size=4, num_layers=1).build()
    params = memory.init(jax.random.key(0), memory.initialize_carry(1), jnp.zeros((1, 1, 4)),
                         jnp.ones((1, 1), bool))["params"]["layers"]["S5SSM_0"]
    np.testing.assert_allclose(params["lambda_re"][0], expected.real, rtol=0, atol=1e-6)
    np.testing.assert_allclose(params["lambda_im"][0], expected.imag, rtol=0, atol=1e-6)
