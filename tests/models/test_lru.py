"""LRU: ring initialisation, a plain-loop reference, and parallel == sequential under resets."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.lru import LRUConfig, LRULayer

T, B, H, N = 23, 4, 6, 5
TOL = 1e-5  # fp32, T <= 64 (STYLE.md section 6): different programs, never bit-equality


def _resets(key, t=T):
    resets = jax.random.bernoulli(key, 0.2, (t, B))
    # a reset at t = 0, back-to-back resets, and a row that never resets
    return resets.at[0, 0].set(True).at[5:8, 1].set(True).at[:, 2].set(False)


def _layer(evaluation="sequential", r_min=0.9, r_max=0.999, max_phase=2 * math.pi):
    return LRULayer(LRUConfig(d_model=H, state_size=N, r_min=r_min, r_max=r_max,
                              max_phase=max_phase, evaluation=evaluation))


def _init(layer, seed=0):
    h0 = jnp.zeros((B, N), jnp.complex64)
    return layer.init(jax.random.key(seed), h0, jnp.zeros((T, B, H)), jnp.zeros((T, B), bool))


def test_phase_draw_of_zero_is_the_largest_phase_not_minus_infinity(monkeypatch):
    """A uniform draw of exactly 0 (the one float32 value whose log is -inf) becomes the
    phase max_phase (log(2 pi) = 1.8379 for 2 pi); other draws are used as drawn
    (0.25 -> log(0.25 * 2 pi) = 0.4516)."""
    from models import lru

    monkeypatch.setattr(lru.jax.random, "uniform",
                        lambda key, shape: jnp.array([0.0, 0.25, 0.5])[: shape[0]])
    theta_log = np.asarray(lru.theta_log_init(jax.random.key(0), (3,), 2 * math.pi))
    np.testing.assert_allclose(theta_log, [1.8378771, 0.4515827, 1.1447299], rtol=1e-6)


def test_ring_initialisation():
    """|lambda| lies in [r_min, r_max], phases in [0, max_phase], and gamma = sqrt(1 - |lambda|^2)."""
    r_min, r_max, max_phase = 0.4, 0.8, math.pi / 3
    layer = LRULayer(LRUConfig(d_model=H, state_size=4096, r_min=r_min, r_max=r_max,
                               max_phase=max_phase, evaluation="sequential"))
    params = layer.init(jax.random.key(0), jnp.zeros((1, 4096), jnp.complex64),
                        jnp.zeros((1, 1, H)), jnp.zeros((1, 1), bool))["params"]
    nu, theta = np.exp(params["nu_log"]), np.exp(params["theta_log"])
    modulus, phase = np.exp(-nu), theta
    assert modulus.min() >= r_min - 1e-6 and modulus.max() <= r_max + 1e-6
    assert phase.min() >= 0 and phase.max() <= max_phase + 1e-6
    # Uniform on the ring by area: |lambda|^2 is uniform in [r_min^2, r_max^2], mean 0.4.
    assert abs(np.mean(modulus**2) - (r_min**2 + r_max**2) / 2) < 0.01
    np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1 - modulus**2),
                               rtol=1e-5)


def test_degenerate_ring_gives_the_hand_computed_lambda():
    """With r_min = r_max = 0.5, |lambda| = 0.5 and gamma = sqrt(1 - 0.25) = 0.8660 for every state."""
    params = _init(_layer(r_min=0.5, r_max=0.5))["params"]
    np.testing.assert_allclose(np.exp(-np.exp(params["nu_log"])), 0.5, rtol=1e-6)
    np.testing.assert_allclose(np.exp(params["gamma_log"]), math.sqrt(0.75), rtol=1e-6)


def _python_loop(params, h0, u, resets):
    """The paper's equations, one step and one row at a time in numpy (complex128)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    c = p["C_re"] + 1j * p["C_im"]
    u, resets, h0 = np.asarray(u, np.float64), np.asarray(resets), np.asarray(h0)
    ys = np.zeros(u.shape)
    hs = np.zeros((u.shape[0], u.shape[1], lam.shape[0]), complex)
    for row in range(u.shape[1]):
        h = h0[row]
        for t in range(u.shape[0]):
            h = (0 if resets[t, row] else lam * h) + b @ u[t, row]
            hs[t, row] = h
            ys[t, row] = (c @ h).real + p["D"] * u[t, row]
    return hs[-1], ys


@pytest.mark.parametrize("evaluation", ["parallel", "sequential"])
def test_layer_equals_python_loop(evaluation):
    """The LRU layer (either scan) equals a plain loop over h_t = lambda h_{t-1} + gamma B u_t, y = Re(C h) + D u."""
    layer = _layer(evaluation, r_min=0.5, r_max=0.99)
    params = _init(layer)
    keys = jax.random.split(jax.random.key(1), 3)
    u = jax.random.normal(keys[0], (T, B, H))
    h0 = jax.lax.complex(jax.random.normal(keys[1], (B, N)), jax.random.normal(keys[2], (B, N)))
    resets = _resets(jax.random.key(2))
    h, y = layer.apply(params, h0, u, resets)
    h_ref, y_ref = _python_loop(params["params"], h0, u, resets)
    np.testing.assert_allclose(y, y_ref, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(h, h_ref, rtol=TOL, atol=TOL)


def test_memory_parallel_equals_sequential():
    """The stacked LRU gives the same outputs and carry with the associative scan and lax.scan."""
    base = LRUConfig.quick()
    parallel = dataclasses.replace(base, evaluation="parallel").build()
    sequential = dataclasses.replace(base, evaluation="sequential").build()
    x = jax.random.normal(jax.random.key(0), (T, B, 7))
    resets = _resets(jax.random.key(1))
    carry = jax.lax.complex(jax.random.normal(jax.random.key(3), (B, base.num_layers, 32)),
                            jnp.zeros((B, base.num_layers, 32)))
    params = parallel.init(jax.random.key(2), carry, x, resets)
    carry_p, out_p = parallel.apply(params, carry, x, resets)
    carry_s, out_s = sequential.apply(params, carry, x, resets)
    np.testing.assert_allclose(out_p, out_s, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(carry_p, carry_s, rtol=TOL, atol=TOL)
    assert carry_p.dtype == jnp.complex64 and carry_p.shape == (B, base.num_layers, 32)


def test_config_rejects_a_bad_ring():
    """r_max >= 1 (an unstable or marginal eigenvalue) or r_min > r_max is refused with a named error."""
    with pytest.raises(ValueError, match="r_min <= r_max < 1"):
        LRUConfig(r_max=1.0)
    with pytest.raises(ValueError, match="r_min <= r_max < 1"):
        LRUConfig(r_min=0.99, r_max=0.9)
    with pytest.raises(ValueError, match="lru evaluation"):
        LRUConfig(evaluation="fast")
