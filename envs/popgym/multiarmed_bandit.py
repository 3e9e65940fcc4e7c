"""JAX port of popgym's ``MultiarmedBandit`` (``popgym/envs/multiarmed_bandit.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). Each episode draws ``B`` bandit payout probabilities uniformly from ``[0, 1)``
(float32, as popgym). Pulling arm ``a`` pays out with probability ``p[a]``: the step
pays ``+1/L`` and observes 1 on a payout, else ``-1/L`` and observes 0. Returns lie in
``[-1, 1]``; a uniformly random policy scores 0 in expectation, and an agent that knows
``p`` and always pulls the best arm scores ``2 E[max p] - 1 = (B - 1)/(B + 1)`` on average
(9/11, 19/21, 29/31). The episode never terminates and is truncated after ``L`` steps
(gymnax ``max_steps_in_episode = L``, exactly where popgym truncates).

Randomness: popgym draws one uniform per step from its numpy generator. The port draws
all ``L`` uniforms of the episode at reset and keeps them in the state (``draws``), so a
reference episode can be replayed exactly: the lockstep test copies the reference's
generator and rounds its float64 draws *down* to float32, which preserves every
comparison ``u < p`` against a float32 ``p``. The distribution is the same as popgym's.

Out-of-range actions (popgym raises IndexError for ``a >= B`` and wraps negative ones):
an action outside ``[0, B)`` pulls an arm that never pays (``-1/L``, observation 0).

Observation: the payout of the last pull, int32 in ``{0, 1}`` (``Discrete(2)``; 0 after
reset). Action: ``Discrete(B)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class EnvState(environment.EnvState):
    bandits: jax.Array  # [B] float32, payout probabilities
    draws: jax.Array  # [L] float32, the uniform draw of each step
    last_payout: jax.Array  # int32, the observation
    time: int  # steps taken


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 200  # set to the variant's L by ``default_params``


class MultiarmedBandit(environment.Environment[EnvState, EnvParams]):
    """Find and exploit the best of B Bernoulli bandits. See the module docstring."""

    def __init__(self, num_bandits: int = 10, episode_length: int = 200):
        super().__init__()
        self.num_bandits = num_bandits
        self.episode_length = episode_length

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.episode_length)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action)
        valid = (action >= 0) & (action < self.num_bandits)
        p = jnp.where(valid, state.bandits[jnp.clip(action, 0, self.num_bandits - 1)], 0.0)
        u = state.draws[jnp.minimum(state.time, self.episode_length - 1)]
        payout = u < p
        scale = 1.0 / self.episode_length
        reward = jnp.where(payout, scale, -scale)
        state = state.replace(last_payout=payout.astype(jnp.int32), time=state.time + 1)
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), jnp.bool_(False), info

    def reset_env(self, key, params: EnvParams):
        k_bandits, k_draws = jax.random.split(key)
        state = EnvState(
            bandits=jax.random.uniform(k_bandits, (self.num_bandits,), jnp.float32),
            draws=jax.random.uniform(k_draws, (self.episode_length,), jnp.float32),
            last_payout=jnp.int32(0),
            time=jnp.int32(0),
        )
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.asarray(state.last_payout, jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.bool_(False)

    @property
    def name(self) -> str:
        return "MultiarmedBandit"

    @property
    def num_actions(self) -> int:
        return self.num_bandits

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_bandits)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)


TRUNCATES = True  # episodes end only by the time limit (tests/envs/test_registry.py checks it)

VARIANTS = {
    "MultiarmedBanditEasy": lambda: MultiarmedBandit(num_bandits=10, episode_length=200),
    "MultiarmedBanditMedium": lambda: MultiarmedBandit(num_bandits=20, episode_length=400),
    "MultiarmedBanditHard": lambda: MultiarmedBandit(num_bandits=30, episode_length=600),
}
