"""The shared reset-aware linear recurrence: per-step decays and any state shape."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.linear_scan import scan_parallel, scan_sequential

T, B = 29, 4


def _problem(seed: int, state_shape: tuple[int, ...], per_step: bool):
    keys = jax.random.split(jax.random.key(seed), 4)
    a_shape = (T, B, *state_shape) if per_step else state_shape
    a = jax.random.uniform(keys[0], a_shape, minval=0.3, maxval=0.999)
    b = jax.random.normal(keys[1], (T, B, *state_shape))
    h0 = jax.random.normal(keys[2], (B, *state_shape))
    resets = jax.random.bernoulli(keys[3], 0.2, (T, B))
    resets = resets.at[0, 0].set(True).at[5:8, 1].set(True).at[:, 2].set(False)
    return a, b, resets, h0


def _python_loop(a, b, resets, h0):
    a, b, resets, h0 = map(np.asarray, (a, b, resets, h0))
    a = np.broadcast_to(a, b.shape)
    hs = np.zeros_like(b)
    for row in range(b.shape[1]):
        h = h0[row]
        for t in range(b.shape[0]):
            h = (0 if resets[t, row] else a[t, row] * h) + b[t, row]
            hs[t, row] = h
    return hs


@pytest.mark.parametrize("state_shape", [(6,), (3, 5)], ids=["vector", "matrix"])
@pytest.mark.parametrize("per_step", [False, True], ids=["fixed", "per-step"])
def test_scans_equal_python_loop(state_shape, per_step):
    """Associative scan == lax.scan == Python loop, fixed or per-step decay, [P] or [H, N] states."""
    problem = _problem(0, state_shape, per_step)
    expected = _python_loop(*problem)
    np.testing.assert_allclose(scan_sequential(*problem), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scan_parallel(*problem), expected, rtol=1e-5, atol=1e-5)


def test_reset_rows_forget_the_incoming_carry():
    """A row that resets at step 0 gives the same states whatever h0 it came in with."""
    a, b, _, h0 = _problem(1, (6,), True)
    resets = jnp.zeros((T, B), bool).at[0].set(True)
    for scan in (scan_parallel, scan_sequential):
        np.testing.assert_array_equal(scan(a, b, resets, h0), scan(a, b, resets, 0 * h0))
