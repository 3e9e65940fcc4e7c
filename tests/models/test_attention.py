"""Full-episode self-attention (models/attention.py): its mask, positions and window against
plain-Python references. The Memory contract itself is checked for it in
test_memory_contract.py like for every backbone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.attention import AttentionConfig, attention_mask, episode_positions


def _resets(seed: int, steps: int, batch: int, p: float = 0.2) -> np.ndarray:
    resets = np.random.default_rng(seed).random((steps, batch)) < p
    resets[2, 0] = resets[3, 0] = True  # back-to-back episode starts
    return resets


@pytest.mark.parametrize("context", [1, 3, 40])
def test_mask_matches_a_python_loop(context):
    """Query i sees key j iff j <= i, i - j <= C, no reset in (j, i] (cache keys: none in
    [0, i]) and, for a cache slot, the slot is valid."""
    steps, batch = 9, 3
    resets = _resets(0, steps, batch)
    valid = np.random.default_rng(1).random((batch, context)) < 0.7
    mask = np.asarray(attention_mask(jnp.asarray(valid), jnp.asarray(resets), context))
    expected = np.zeros((batch, steps, context + steps), bool)
    for b in range(batch):
        for i in range(steps):
            for j in range(-context, steps):  # -C..-1: the cache, oldest first
                if j > i or i - j > context:
                    continue
                if resets[max(j + 1, 0): i + 1, b].any():
                    continue
                if j < 0 and not valid[b, j + context]:
                    continue
                expected[b, i, j + context] = True
    np.testing.assert_array_equal(mask, expected)


def test_positions_match_a_python_loop():
    """Position in the episode: 0 at a reset, +1 per step, carried across calls; a row
    with no step before the call starts at 0."""
    steps, batch = 8, 3
    resets = _resets(2, steps, batch)
    last = np.array([4, 0, 9], np.int32)
    started = np.array([True, False, True])
    out = np.asarray(episode_positions(jnp.asarray(resets), jnp.asarray(last),
                                       jnp.asarray(started)))
    for b in range(batch):
        position = last[b] if started[b] else -1
        for t in range(steps):
            position = 0 if resets[t, b] else position + 1
            assert out[t, b] == position, (t, b)


@pytest.mark.parametrize("context", [2, 5])
def test_a_step_sees_exactly_c_steps_back(context):
    """One layer: the output at t ignores inputs before t - C and depends on input t - C."""
    module = AttentionConfig(d_model=8, num_layers=1, num_heads=2, mlp_dim=16,
                             max_context=context).build()
    steps, t = 12, 10
    x = jax.random.normal(jax.random.key(0), (steps, 1, 3))
    resets = jnp.zeros((steps, 1), bool).at[0].set(True)
    params = module.init(jax.random.key(1), module.initialize_carry(1), x, resets)

    def output_at_t(x):
        return np.asarray(module.apply(params, module.initialize_carry(1), x, resets)[1][t])

    base = output_at_t(x)
    np.testing.assert_array_equal(output_at_t(x.at[t - context - 1].add(5.0)), base)
    assert not np.allclose(output_at_t(x.at[t - context].add(5.0)), base)
