"""A tiny environment whose every number is known, for hand-checked tests of the wrappers,
the PPO rollout and the env benchmark.

``Clock``: the observation is the step count within the episode (``Discrete(4)``: 0 at
reset, then 1, 2, 3), the reward of a step is the count after it (1, 2, 3, ...), and an
episode never terminates: it is truncated by the time limit (``max_steps_in_episode``, 3 by
default), so every episode of the default returns 1 + 2 + 3 = 6 whatever the actions. The
state keeps the last action the environment received (to see what the wrappers passed on).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ClockState(environment.EnvState):
    last_action: jax.Array  # float32 [2]: the action received by the last step (zeros at reset)


@struct.dataclass
class ClockParams(environment.EnvParams):
    max_steps_in_episode: int = 3


class Clock(environment.Environment[ClockState, ClockParams]):
    """See the module docstring; ``continuous`` gives a ``Box(-1, 1, (2,))`` action space
    instead of ``Discrete(2)``; ``limit`` is the default time limit (3: returns of 6; with
    4, returns of 10, the final observation's count 4 encodes as all zeros)."""

    def __init__(self, continuous: bool = False, limit: int = 3):
        super().__init__()
        self.continuous, self.limit = continuous, limit

    @property
    def default_params(self) -> ClockParams:
        return ClockParams(max_steps_in_episode=self.limit)

    def step_env(self, key, state: ClockState, action, params: ClockParams):
        received = jnp.broadcast_to(jnp.asarray(action, jnp.float32), (2,))
        state = ClockState(time=state.time + 1, last_action=received)
        reward = state.time.astype(jnp.float32)
        return self.get_obs(state), state, reward, jnp.bool_(False), {}

    def reset_env(self, key, params: ClockParams):
        state = ClockState(time=jnp.int32(0), last_action=jnp.zeros(2, jnp.float32))
        return self.get_obs(state), state

    def get_obs(self, state: ClockState, params=None, key=None) -> jax.Array:
        return state.time

    @property
    def name(self) -> str:
        return "Clock"

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32) if self.continuous else spaces.Discrete(2)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(4)
