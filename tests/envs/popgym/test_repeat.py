"""RepeatFirst and RepeatPrevious ports against the reference popgym package."""

from __future__ import annotations

import numpy as np
import pytest
from popgym.envs import repeat_first as ref_rf
from popgym.envs import repeat_previous as ref_rp

import envs
from envs.popgym import repeat_first, repeat_previous
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    port_random_episodes,
    reference_random_episodes,
    run_lockstep,
)
from tests.envs.popgym.reference_decks import dealt_order_from_reference

CASES = {
    "RepeatFirstEasy": (ref_rf.RepeatFirstEasy, repeat_first),
    "RepeatFirstMedium": (ref_rf.RepeatFirstMedium, repeat_first),
    "RepeatFirstHard": (ref_rf.RepeatFirstHard, repeat_first),
    "RepeatPreviousEasy": (ref_rp.RepeatPreviousEasy, repeat_previous),
    "RepeatPreviousMedium": (ref_rp.RepeatPreviousMedium, repeat_previous),
    "RepeatPreviousHard": (ref_rp.RepeatPreviousHard, repeat_previous),
}


def _translate(module):
    def translate(ref_env):
        cards = dealt_order_from_reference(ref_env.deck.idx, ref_env.deck.num_cards)
        return module.EnvState(cards=cards, time=np.int32(0))

    return translate


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference give identical obs, rewards, terminated and truncated over whole episodes."""
    ref_cls, module = CASES[env_id]
    port, _ = envs.make(env_id)
    for seed in range(2):
        length = run_lockstep(ref_cls(), port, _translate(module),
                              lambda rng: int(rng.integers(0, 4)), seed)
        assert length == port.num_cards - 1


@pytest.mark.parametrize("env_id", ["RepeatFirstEasy", "RepeatPreviousEasy"])
def test_random_policy_statistics(env_id):
    """Random-policy episode lengths and returns agree with the reference (KS test, alpha=1e-3, 300 episodes)."""
    ref_cls, _ = CASES[env_id]
    ref_len, ref_ret = reference_random_episodes(ref_cls(), 300, seed=0)
    port_len, port_ret = port_random_episodes(env_id, 300, seed=0)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")
    assert abs(port_ret.mean() - (-0.5)) < 0.05  # hand-checked: 1/4 right, 3/4 wrong


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_oracle_scores_one(env_id):
    """An oracle that always answers right scores exactly 1 (popgym's normalisation)."""
    import jax
    import jax.numpy as jnp

    env, params = envs.make(env_id)
    obs, state = env.reset(jax.random.key(0), params)
    k = getattr(env, "k", None)
    total, done, t = 0.0, False, 0
    while not done:
        index = 0 if k is None else max(t + 1 - k, 0)
        action = state.cards[index] % 4
        obs, state_new, r, term, trunc, info = env.step(jax.random.key(t), state, action, params)
        total += float(r)
        done = bool(term | trunc)
        state, t = state_new, t + 1
    assert total == pytest.approx(1.0, abs=1e-5)
    assert jnp.ndim(obs) == 0


def test_out_of_range_action_is_wrong_answer():
    """An action outside [0, 4) is paid as a wrong answer, never as a right one."""
    import jax

    env, params = envs.make("RepeatFirstEasy")
    _, state = env.reset(jax.random.key(0), params)
    _, _, r, *_ = env.step(jax.random.key(1), state, 7, params)
    assert float(r) == pytest.approx(-1 / 51)
