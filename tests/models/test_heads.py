"""Policy distributions (models/heads.py) against hand-computed log-probabilities and entropies."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.heads import ActionSpec, Categorical, DiagGaussian, PolicyHead

LOG_2PI = math.log(2 * math.pi)


def test_categorical_log_prob_and_entropy_by_hand():
    """p = (0.2, 0.3, 0.5): log p(2) = ln 0.5; H = -(0.2 ln 0.2 + 0.3 ln 0.3 + 0.5 ln 0.5)
    = 1.0297; logits shifted by a constant give the same numbers."""
    p = np.array([0.2, 0.3, 0.5])
    for shift in (0.0, 7.0):
        pi = Categorical(jnp.log(jnp.asarray(p, jnp.float32)) + shift)
        np.testing.assert_allclose(pi.log_prob(jnp.int32(2)), math.log(0.5), rtol=1e-6)
        np.testing.assert_allclose(pi.log_prob(jnp.int32(0)), math.log(0.2), rtol=1e-6)
        np.testing.assert_allclose(pi.entropy(), 1.0296530, rtol=1e-6)
        assert int(pi.mode()) == 2


def test_diag_gaussian_log_prob_and_entropy_by_hand():
    """mean (0, 1), std (1, 2), action (1, 1): log p = (-0.5 - 0 - ln sqrt(2 pi)) +
    (0 - ln 2 - ln sqrt(2 pi)) = -3.0310; H = sum(ln std + 0.5 (1 + ln 2 pi)) = 3.5310."""
    pi = DiagGaussian(jnp.array([0.0, 1.0]), jnp.log(jnp.array([1.0, 2.0])))
    expected = (-0.5 - 0.5 * LOG_2PI) + (-math.log(2.0) - 0.5 * LOG_2PI)
    np.testing.assert_allclose(pi.log_prob(jnp.array([1.0, 1.0])), expected, rtol=1e-6)
    np.testing.assert_allclose(expected, -3.0310242, rtol=1e-6)
    np.testing.assert_allclose(pi.entropy(), math.log(2.0) + 1.0 + LOG_2PI, rtol=1e-6)
    np.testing.assert_allclose(pi.entropy(), 3.5310242, rtol=1e-6)


def test_multi_discrete_head_never_picks_a_missing_slot_and_sums_over_choices():
    """Sizes (2, 3): the first choice's third slot does not exist (never sampled, no
    probability, no entropy); log-probabilities and entropies add over the choices."""
    head = PolicyHead(ActionSpec("multi_discrete", (2, 3)))
    x = jnp.ones((5, 4))
    params = head.init(jax.random.key(0), x)
    pi = head.apply(params, x)
    samples = pi.sample(jax.random.key(1))
    assert samples.shape == (5, 2) and int(samples[:, 0].max()) <= 1
    log_p = jax.nn.log_softmax(pi.logits)
    assert float(jnp.exp(log_p[:, 0, 2]).max()) == 0.0
    action = jnp.array([[1, 2]] * 5)
    np.testing.assert_allclose(pi.log_prob(action), log_p[:, 0, 1] + log_p[:, 1, 2], rtol=1e-6)
    per_choice = [-(jnp.exp(log_p[:, k, :n]) * log_p[:, k, :n]).sum(-1)
                  for k, n in enumerate((2, 3))]
    np.testing.assert_allclose(pi.entropy(), per_choice[0] + per_choice[1], rtol=1e-6)
    # Near-uniform at initialisation (the head's small gain): ln 2 + ln 3.
    np.testing.assert_allclose(pi.entropy(), math.log(6.0), rtol=1e-3)


@pytest.mark.parametrize("kind,sizes", [("discrete", (4,)), ("continuous", (3,))])
def test_policy_head_starts_near_uniform_or_unit_gaussian(kind, sizes):
    """The 0.01-gain final layer gives an almost uniform categorical (entropy ln 4) or a
    Gaussian with mean near 0 and std 1 (log_std starts at 0)."""
    head = PolicyHead(ActionSpec(kind, sizes))
    x = jax.random.normal(jax.random.key(2), (8, 16))
    pi = head.apply(head.init(jax.random.key(3), x), x)
    if kind == "discrete":
        np.testing.assert_allclose(pi.entropy(), math.log(4.0), rtol=5e-3)
    else:
        assert float(jnp.abs(pi.mean).max()) < 0.2
        np.testing.assert_array_equal(pi.log_std, jnp.zeros(3))
