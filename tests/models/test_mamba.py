"""Mamba: the reset-aware causal conv by hand, a plain-loop reference, parallel == sequential."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.mamba import MambaConfig, MambaMixer, causal_conv

T, B, H = 19, 3, 8
TOL = 1e-5  # fp32, T <= 64 (STYLE.md section 6): different programs, never bit-equality


def _resets(key, t=T):
    resets = jax.random.bernoulli(key, 0.2, (t, B))
    # a reset at t = 0, back-to-back resets, and a row that never resets
    return resets.at[0, 0].set(True).at[5:8, 1].set(True).at[:, 2].set(False)


def test_causal_conv_hand_computed():
    """K = 3, weights (1, 10, 100), history (7, 8), x = 1..5, reset at t = 3: 187, 218, 321, 400, 540."""
    weight = jnp.array([[1.0], [10.0], [100.0]])  # weight[K - 1] multiplies the current step
    history = jnp.array([[[7.0], [8.0]]])  # [B=1, K-1=2, E=1], oldest first
    x = jnp.arange(1.0, 6.0).reshape(5, 1, 1)
    resets = jnp.zeros((5, 1), bool).at[3].set(True)
    y, tail = causal_conv(x, history, resets, weight, jnp.zeros(1))
    # t=0: 7 + 10*8 + 100*1; t=1: 8 + 10*1 + 100*2; t=2: 1 + 10*2 + 100*3;
    # t=3 starts an episode: 100*4 only; t=4: 10*4 + 100*5.
    np.testing.assert_array_equal(y[:, 0, 0], [187.0, 218.0, 321.0, 400.0, 540.0])
    np.testing.assert_array_equal(tail[0, :, 0], [4.0, 5.0])
    # A reset at the last step: the carried tail keeps only that step, the other slot is 0.
    _, tail = causal_conv(x, history, resets.at[4].set(True), weight, jnp.zeros(1))
    np.testing.assert_array_equal(tail[0, :, 0], [0.0, 5.0])


def test_causal_conv_does_not_look_across_a_reset():
    """Changing the history and every input before a reset leaves the conv's outputs from the reset on unchanged."""
    keys = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(keys[0], (T, B, 5))
    history = jax.random.normal(keys[1], (B, 3, 5))
    weight, bias = jax.random.normal(keys[2], (4, 5)), jax.random.normal(keys[3], (5,))
    reset_at = 7
    resets = jnp.zeros((T, B), bool).at[reset_at].set(True)
    y, tail = causal_conv(x, history, resets, weight, bias)
    x2 = x.at[:reset_at].add(5.0)
    y2, tail2 = causal_conv(x2, history + 3.0, resets, weight, bias)
    np.testing.assert_array_equal(y[reset_at:], y2[reset_at:])
    np.testing.assert_array_equal(tail, tail2)
    assert not np.allclose(y[:reset_at], y2[:reset_at])


def _mixer(evaluation="sequential", **overrides):
    settings = dict(d_model=H, d_state=4, d_conv=4, expand=2, dt_rank=2, dt_min=0.001,
                    dt_max=0.1, dt_init_floor=1e-4, num_layers=2, evaluation=evaluation)
    return MambaMixer(MambaConfig(**{**settings, **overrides}))


def _silu(v):
    return v / (1 + np.exp(-v))


def _python_loop(params, carry, u, resets):
    """Mamba's equations one step and one row at a time in numpy (float64)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    w_in, w_x = p["in_proj"]["kernel"], p["x_proj"]["kernel"]
    w_dt, b_dt = p["dt_proj"]["kernel"], p["dt_proj"]["bias"]
    w_out, a = p["out_proj"]["kernel"], -np.exp(p["A_log"])
    kernel, n, rank = p["conv_weight"].shape[0], a.shape[1], w_dt.shape[0]
    conv0, h0 = (np.asarray(c, np.float64) for c in carry)
    u, resets = np.asarray(u, np.float64), np.asarray(resets)
    out = np.zeros(u.shape)
    tails, states = np.zeros_like(conv0), np.zeros_like(h0)
    for row in range(u.shape[1]):
        history, h = conv0[row], h0[row]
        for t in range(u.shape[0]):
            if resets[t, row]:  # a new episode: empty conv history, zero state
                history, h = np.zeros_like(history), np.zeros_like(h)
            x, z = np.split(u[t, row] @ w_in, 2)
            window = np.concatenate([history, x[None]])  # [K, E], oldest first
            history = window[1:]
            x = _silu((window * p["conv_weight"]).sum(0) + p["conv_bias"])
            dbc = x @ w_x
            dt, b_t, c_t = dbc[:rank], dbc[rank:rank + n], dbc[rank + n:]
            delta = np.logaddexp(0.0, dt @ w_dt + b_dt)  # softplus
            h = np.exp(delta[:, None] * a) * h + (delta * x)[:, None] * b_t[None, :]
            y = (h @ c_t + p["D"] * x) * _silu(z)
            out[t, row] = y @ w_out
        tails[row], states[row] = history[-(kernel - 1):], h
    return (tails, states), out


@pytest.mark.parametrize("evaluation", ["parallel", "sequential"])
def test_mixer_equals_python_loop(evaluation):
    """The selective SSM (either scan) equals a plain loop over conv, SiLU, delta, exp(delta A), C h + D x, gate, out."""
    mixer = _mixer(evaluation)
    keys = jax.random.split(jax.random.key(1), 3)
    u = jax.random.normal(keys[0], (T, B, H))
    carry = (jax.random.normal(keys[1], (B, 3, 2 * H)), jax.random.normal(keys[2], (B, 2 * H, 4)))
    resets = _resets(jax.random.key(2))
    params = mixer.init(jax.random.key(0), carry, u, resets)
    (tail, state), y = mixer.apply(params, carry, u, resets)
    (tail_ref, state_ref), y_ref = _python_loop(params["params"], carry, u, resets)
    np.testing.assert_allclose(y, y_ref, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(state, state_ref, rtol=TOL, atol=TOL)
    # The loop empties its history at a reset, as the module zeroes earlier episodes' slots.
    np.testing.assert_allclose(tail, tail_ref, rtol=TOL, atol=TOL)


def test_initialisation_follows_mamba():
    """A = -(n + 1) for every channel (S4D-real), D = 1, and softplus(dt bias) in [dt_min, dt_max]."""
    mixer = _mixer(dt_min=0.001, dt_max=0.1)
    carry = (jnp.zeros((1, 3, 2 * H)), jnp.zeros((1, 2 * H, 4)))
    params = mixer.init(jax.random.key(0), carry, jnp.zeros((1, 1, H)),
                        jnp.zeros((1, 1), bool))["params"]
    np.testing.assert_allclose(-np.exp(params["A_log"]), -np.tile([1.0, 2.0, 3.0, 4.0], (2 * H, 1)),
                               rtol=1e-6)
    np.testing.assert_array_equal(params["D"], np.ones(2 * H))
    dt = np.asarray(jax.nn.softplus(params["dt_proj"]["bias"]))
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)


def test_memory_parallel_equals_sequential():
    """The stacked Mamba gives the same outputs and carry with the associative scan and lax.scan."""
    base = MambaConfig.quick().sized(16, 2)
    parallel = dataclasses.replace(base, evaluation="parallel").build()
    sequential = dataclasses.replace(base, evaluation="sequential").build()
    x = jax.random.normal(jax.random.key(0), (T, B, 7))
    resets = _resets(jax.random.key(1))
    carry = jax.tree.map(lambda c: jax.random.normal(jax.random.key(3), c.shape),
                         parallel.initialize_carry(B))
    params = parallel.init(jax.random.key(2), carry, x, resets)
    carry_p, out_p = parallel.apply(params, carry, x, resets)
    carry_s, out_s = sequential.apply(params, carry, x, resets)
    np.testing.assert_allclose(out_p, out_s, rtol=TOL, atol=TOL)
    for leaf_p, leaf_s in zip(carry_p, carry_s, strict=True):
        np.testing.assert_allclose(leaf_p, leaf_s, rtol=TOL, atol=TOL)
    conv, ssm = carry_p
    assert conv.shape == (B, 2, 3, 32) and ssm.shape == (B, 2, 32, 16)


def test_config_resolves_dt_rank_and_rejects_bad_sizes():
    """dt_rank 0 means ceil(d_model / 16), as Mamba's 'auto'; a non-positive size is refused."""
    assert MambaConfig(d_model=256).build().config.dt_rank == 16
    assert MambaConfig(d_model=17).build().config.dt_rank == 2
    assert MambaConfig(dt_rank=3).build().config.dt_rank == 3
    with pytest.raises(ValueError, match="mamba d_conv must be positive"):
        MambaConfig(d_conv=0)
