"""minGRU: the paper's recurrence in a plain loop, reset values by hand, parallel == sequential."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.mingru import MinGRU, MinGRUConfig

T, B, D, STATE = 23, 4, 5, 6
TOL = 1e-5  # fp32, T <= 64 (STYLE.md section 6): different programs, never bit-equality


def _resets(key, t=T):
    resets = jax.random.bernoulli(key, 0.2, (t, B))
    # a reset at t = 0, back-to-back resets, and a row that never resets
    return resets.at[0, 0].set(True).at[5:8, 1].set(True).at[:, 2].set(False)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _python_loop(params, h0, x, resets):
    """z = sigmoid(W_z x + b_z), h~ = W_h x + b_h, h = (1 - z) h + z h~, one step and row at a time."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x, resets, h0 = np.asarray(x, np.float64), np.asarray(resets), np.asarray(h0, np.float64)
    hs = np.zeros((x.shape[0], x.shape[1], h0.shape[-1]))
    for row in range(x.shape[1]):
        h = h0[row]
        for t in range(x.shape[0]):
            if resets[t, row]:
                h = np.zeros_like(h)
            z = _sigmoid(x[t, row] @ p["gate"]["kernel"] + p["gate"]["bias"])
            candidate = x[t, row] @ p["candidate"]["kernel"] + p["candidate"]["bias"]
            h = (1 - z) * h + z * candidate
            hs[t, row] = h
    return hs


@pytest.mark.parametrize("evaluation", ["parallel", "sequential"])
def test_cell_equals_python_loop(evaluation):
    """The minGRU cell (either scan) equals the paper's recurrence written as a plain loop."""
    cell = MinGRU(MinGRUConfig(state_size=STATE, evaluation=evaluation))
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (T, B, D))
    h0 = jax.random.normal(keys[1], (B, STATE))
    resets = _resets(keys[2])
    params = cell.init(jax.random.key(1), h0, x, resets)
    h, hs = cell.apply(params, h0, x, resets)
    expected = _python_loop(params["params"], h0, x, resets)
    np.testing.assert_allclose(hs, expected, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(h, expected[-1], rtol=TOL, atol=TOL)


def test_reset_step_is_the_gated_candidate():
    """At an episode start h_t = z_t h~_t (here z = sigmoid(0) = 0.5, h~ = 2: h = 1), whatever came before."""
    cell = MinGRU(MinGRUConfig(state_size=1, evaluation="parallel"))
    params = {"params": {"gate": {"kernel": jnp.zeros((1, 1)), "bias": jnp.zeros(1)},
                         "candidate": {"kernel": jnp.ones((1, 1)), "bias": jnp.zeros(1)}}}
    x = jnp.array([2.0, 2.0, 2.0]).reshape(3, 1, 1)
    resets = jnp.array([False, False, True]).reshape(3, 1)
    _, hs = cell.apply(params, jnp.full((1, 1), 8.0), x, resets)
    # h0 = 8: h_0 = 0.5 * 8 + 0.5 * 2 = 5; h_1 = 0.5 * 5 + 1 = 3.5; reset: h_2 = 0.5 * 2 = 1.
    np.testing.assert_allclose(hs[:, 0, 0], [5.0, 3.5, 1.0], rtol=1e-6)


def test_memory_parallel_equals_sequential():
    """The stacked minGRU gives the same outputs and carry with the associative scan and lax.scan."""
    base = MinGRUConfig.quick()
    parallel = dataclasses.replace(base, evaluation="parallel").build()
    sequential = dataclasses.replace(base, evaluation="sequential").build()
    x = jax.random.normal(jax.random.key(0), (T, B, 7))
    resets = _resets(jax.random.key(1))
    carry = jax.random.normal(jax.random.key(3), (B, base.num_layers, base.state_size))
    params = parallel.init(jax.random.key(2), carry, x, resets)
    carry_p, out_p = parallel.apply(params, carry, x, resets)
    carry_s, out_s = sequential.apply(params, carry, x, resets)
    np.testing.assert_allclose(out_p, out_s, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(carry_p, carry_s, rtol=TOL, atol=TOL)


def test_state_width_other_than_the_stream():
    """A minGRU state wider than d_model is projected back: outputs [T, B, d_model], carry [B, L, state]."""
    module = MinGRUConfig(d_model=8, state_size=12, mlp_dim=8, num_layers=2).build()
    x = jnp.ones((3, B, 8))
    params = module.init(jax.random.key(0), module.initialize_carry(B), x, jnp.zeros((3, B), bool))
    carry, y = module.apply(params, module.initialize_carry(B), x, jnp.zeros((3, B), bool))
    assert y.shape == (3, B, 8) and carry.shape == (B, 2, 12)
