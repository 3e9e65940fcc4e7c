"""RecallFirst: a cue (1 or 2) shows at the first step, zeros follow; at the last step the
agent is paid +1 for naming the cue (action 0 or 1) and -1 otherwise. Memory scores 1,
chance 0. A gymnax environment, made by ``make() -> (env, params)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class EnvState(environment.EnvState):
    cue: jax.Array  # int32, 0 or 1
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000  # never reached: episodes end at `length` steps


class RecallFirst(environment.Environment[EnvState, EnvParams]):
    def __init__(self, length: int = 4):
        super().__init__()
        self.length = length

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        done = state.time >= self.length
        reward = jnp.where(done, jnp.where(action == state.cue, 1.0, -1.0), 0.0)
        return self.get_obs(state), state, reward, done, {}

    def reset_env(self, key, params):
        state = EnvState(cue=jax.random.randint(key, (), 0, 2), time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.where(state.time == 0, state.cue + 1, 0).astype(jnp.int32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return spaces.Discrete(3)


def make(length: int = 4) -> tuple[RecallFirst, EnvParams]:
    env = RecallFirst(length)
    return env, env.default_params


make.truncates = False  # episodes end by termination only: s5bench skips V(final obs)
