"""Tiny diagnostic environments with known optimal returns (learning probes).

``MemoryProbe``: each step shows a random symbol; the agent is paid for naming the symbol
shown ``k`` steps earlier. A policy with memory scores 1, a memoryless one at most ``1/n``
(chance), whatever extra inputs it is given (the previous action does not reveal the symbol
from k steps back). The probe sizes are small enough to learn in a test's budget.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class EnvState(environment.EnvState):
    symbols: jax.Array  # [episode_length] int32, the symbol shown at each step
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000_000  # never reached: episodes terminate first


class MemoryProbe(environment.Environment[EnvState, EnvParams]):
    """Name the symbol from ``k`` steps ago; returns in ``[0, 1]``, chance ``1/num_symbols``.

    An out-of-range action is a wrong answer.
    """

    def __init__(self, k: int = 2, num_symbols: int = 2, episode_length: int = 10):
        super().__init__()
        if not 0 < k < episode_length:
            raise ValueError("need 0 < k < episode_length")
        self.k, self.num_symbols, self.episode_length = k, num_symbols, episode_length

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        t = state.time
        target = state.symbols[jnp.maximum(t - self.k, 0)]
        paid = t >= self.k
        reward = jnp.where(paid & (action == target), 1.0 / (self.episode_length - self.k), 0.0)
        state = state.replace(time=t + 1)
        terminated = state.time >= self.episode_length
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        symbols = jax.random.randint(key, (self.episode_length,), 0, self.num_symbols)
        state = EnvState(symbols=symbols.astype(jnp.int32), time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return state.symbols[jnp.minimum(state.time, self.episode_length - 1)]

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= self.episode_length

    @property
    def name(self) -> str:
        return f"MemoryProbe-k{self.k}"

    @property
    def num_actions(self) -> int:
        return self.num_symbols

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_symbols)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_symbols)
