"""The Memory contract (models/base.py), checked for every registered backbone."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import BACKBONES

T, B, D = 12, 3, 5
ATOL = RTOL = 1e-5  # fp32, T <= 64: see STYLE.md section 6


def _small_configs():
    """A small instance of every backbone (and every evaluation of those that have two)."""
    cases = {}
    for name, cls in BACKBONES.items():
        cfg = cls.quick().sized(16, 2)
        if "evaluation" in {f.name for f in dataclasses.fields(cfg)}:  # s5, lru, mamba, mingru
            cases[f"{name}-parallel"] = dataclasses.replace(cfg, evaluation="parallel")
            cases[f"{name}-sequential"] = dataclasses.replace(cfg, evaluation="sequential")
        elif name == "trxl":
            # M < T, so the multi-block banded path (with padding) runs, gated and plain.
            cases["trxl"] = dataclasses.replace(cfg, memory_length=5)
            cases["trxl-plain"] = dataclasses.replace(cfg, memory_length=5, gating=False)
        elif name == "attention":
            # C < T, so the window (and the cache's oldest-first order) is exercised.
            cases["attention"] = dataclasses.replace(cfg, max_context=5)
            cases["attention-whole-episode"] = dataclasses.replace(cfg, max_context=2 * T)
        else:
            cases[name] = cfg
    return cases


CASES = _small_configs()
# The newer linear recurrences run the contract on their parallel evaluation (the one
# accelerators use) in the fast suite; their own files test sequential == parallel under
# random resets, so the sequential contract cases run with --all only (suite time).
_SLOW_CASES = {"lru-sequential", "mamba-sequential", "mingru-sequential"}
CASE_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in _SLOW_CASES else name
               for name in sorted(CASES)]


def _random_resets(key, shape, p=0.25):
    return jax.random.bernoulli(key, p, shape)


@pytest.fixture(params=CASE_PARAMS, scope="module")
def model(request):
    """(module, params) for one backbone, initialised on random data."""
    module = CASES[request.param].build()
    key = jax.random.key(0)
    params = module.init(key, module.initialize_carry(B), jnp.zeros((T, B, D)), jnp.zeros((T, B), bool))
    return module, params


def _inputs(seed, t=T, b=B):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, (t, b, D))
    resets = _random_resets(k2, (t, b))
    return x, resets


def _assert_trees_close(a, b, atol=ATOL, rtol=RTOL):
    for leaf_a, leaf_b in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(leaf_a), np.asarray(leaf_b), atol=atol, rtol=rtol)


def test_shapes_and_initial_carry(model):
    """Outputs are [T, B, H], finite, and the initial carry is deterministic zeros with leading B."""
    module, params = model
    carry0 = module.initialize_carry(B)
    for leaf in jax.tree.leaves(carry0):
        assert leaf.shape[0] == B
        assert not np.any(np.asarray(leaf))
    x, resets = _inputs(1)
    carry, y = module.apply(params, carry0, x, resets)
    assert y.shape[:2] == (T, B) and y.ndim == 3
    assert np.all(np.isfinite(np.asarray(y)))
    assert jax.tree.structure(carry) == jax.tree.structure(carry0)


def test_sequence_equals_steps(model):
    """One call over T steps equals T calls of T=1 threading the carry (outputs and carry)."""
    module, params = model
    x, resets = _inputs(2)
    carry_seq, y_seq = module.apply(params, module.initialize_carry(B), x, resets)
    apply_step = jax.jit(module.apply)
    carry = module.initialize_carry(B)
    ys = []
    for t in range(T):
        carry, y = apply_step(params, carry, x[t : t + 1], resets[t : t + 1])
        ys.append(y[0])
    _assert_trees_close(y_seq, jnp.stack(ys))
    _assert_trees_close(carry_seq, carry)


@pytest.mark.parametrize("k", [1, 5, T - 1])
def test_chunks_compose(model, k):
    """A call over 0..T equals 0..k followed by k..T from the returned carry."""
    module, params = model
    x, resets = _inputs(3)
    carry_full, y_full = module.apply(params, module.initialize_carry(B), x, resets)
    carry_k, y_a = module.apply(params, module.initialize_carry(B), x[:k], resets[:k])
    carry_end, y_b = module.apply(params, carry_k, x[k:], resets[k:])
    _assert_trees_close(y_full, jnp.concatenate([y_a, y_b]))
    _assert_trees_close(carry_full, carry_end)


def test_inputs_before_reset_do_not_leak(model):
    """Changing inputs (and the incoming carry) before a reset leaves every output from it on unchanged."""
    module, params = model
    x, _ = _inputs(4)
    reset_at = 6
    resets = jnp.zeros((T, B), bool).at[reset_at].set(True)
    _, y = module.apply(params, module.initialize_carry(B), x, resets)
    x_perturbed = x.at[:reset_at].add(jax.random.normal(jax.random.key(9), x[:reset_at].shape))
    nonzero_carry = jax.tree.map(lambda c: c + 1.0, module.initialize_carry(B))
    _, y_perturbed = module.apply(params, nonzero_carry, x_perturbed, resets)
    _assert_trees_close(y[reset_at:], y_perturbed[reset_at:])


def test_reset_at_zero_ignores_incoming_carry(model):
    """With resets[0] all True, any incoming carry gives the same result as initialize_carry."""
    module, params = model
    x, resets = _inputs(5)
    resets = resets.at[0].set(True)
    carry_a, y_a = module.apply(params, module.initialize_carry(B), x, resets)
    noisy = jax.tree.map(
        lambda c: c + jax.random.normal(jax.random.key(1), c.shape).astype(c.dtype),
        module.initialize_carry(B),
    )
    carry_b, y_b = module.apply(params, noisy, x, resets)
    _assert_trees_close(y_a, y_b)
    _assert_trees_close(carry_a, carry_b)


def test_batch_rows_are_independent(model):
    """Perturbing one batch row leaves the outputs of the other rows unchanged."""
    module, params = model
    x, resets = _inputs(6)
    _, y = module.apply(params, module.initialize_carry(B), x, resets)
    x2 = x.at[:, 0].add(3.0)
    _, y2 = module.apply(params, module.initialize_carry(B), x2, resets)
    _assert_trees_close(y[:, 1:], y2[:, 1:])
    assert not np.allclose(np.asarray(y[:, 0]), np.asarray(y2[:, 0]))


def test_packed_equals_separate(model):
    """One long sequence with resets every k steps equals the episodes run separately from a fresh carry."""
    module, params = model
    k, n = 4, 3
    x = jax.random.normal(jax.random.key(7), (k * n, B, D))
    resets = jnp.zeros((k * n, B), bool).at[::k].set(True)
    _, y_packed = module.apply(params, module.initialize_carry(B), x, resets)
    for i in range(n):
        seg = slice(i * k, (i + 1) * k)
        _, y_sep = module.apply(params, module.initialize_carry(B), x[seg], jnp.zeros((k, B), bool))
        _assert_trees_close(y_packed[seg], y_sep)
