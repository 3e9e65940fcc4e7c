"""Pendulum dynamics shared by the two popgym Pendulum families (popgym 1.0.7).

popgym's ``PositionOnlyPendulum`` and ``NoisyPositionOnlyPendulum`` (Morad et al.,
"POPGym", ICLR 2023) subclass gymnasium's ``PendulumEnv``
(``gymnasium/envs/classic_control/pendulum.py``): ``g = 10``, ``m = l = 1``, ``dt = 0.05``,
torque clipped to ``[-2, 2]``, angular velocity clipped to ``[-8, 8]``, start angle uniform
in ``[-pi, pi]`` and angular velocity uniform in ``[-1, 1]``. gymnasium's reward is minus
``angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2`` (in ``[-16.2736044, 0]``,
computed on the state *before* the step); popgym maps that interval linearly onto
``[-1, 1]`` and divides by the episode length ``L``, so returns lie in ``[-1, 1]``. The
episode never terminates and is truncated (``truncated=True``) after ``L`` steps.

Out-of-range torques are clipped to ``[-2, 2]`` before they enter the dynamics and the
cost, exactly as gymnasium does. The action is a float32 ``[1]`` array (a scalar is
accepted too).

This module holds the state, the parameters (gymnasium's physics constants plus the
difficulty settings ``max_steps_in_episode`` and ``noise_sigma``, so the difficulties of a
family differ only in ``EnvParams``), the float32 dynamics and the optional Gaussian
observation noise.
State and dynamics are float32 (the reference integrates in float64 and casts the
observation to float32). Like gymnasium, the angle is not wrapped into ``[-pi, pi)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

# popgym's reward_transform: gymnasium's reward interval [COST_LOW, 0] -> [-1, 1].
COST_LOW = -16.2736044
HALF_RANGE = -COST_LOW / 2


@struct.dataclass
class EnvState(environment.EnvState):
    theta: jax.Array  # angle (rad), 0 = upright; not wrapped
    theta_dot: jax.Array  # angular velocity
    time: int  # steps taken this episode
    noise: jax.Array  # [2] float32 noise on the current observation; zeros if noise-free


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    l: float = 1.0  # noqa: E741 (gymnasium's name)
    # popgym's max_episode_length: truncation step count and reward scale 1/L.
    max_steps_in_episode: int = 200
    # Standard deviation of the observation noise (used only by the noisy family).
    noise_sigma: float = 0.0


def angle_normalize(x: jax.Array) -> jax.Array:
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


class PopgymPendulum(environment.Environment[EnvState, EnvParams]):
    """gymnasium Pendulum showing ``[cos theta, sin theta]`` with popgym's reward and length.

    A subclass with ``NOISY = True`` adds ``N(0, params.noise_sigma^2)`` float32 noise to the
    observation at every reset and step and clips it to ``[-1, 1]``, as popgym's noisy class
    does. The noise is drawn from the key passed to reset/step and stored in the state, so
    ``get_obs(state)`` is deterministic.
    """

    NOISY = False

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.0):
        super().__init__()
        self.max_episode_length = int(max_episode_length)
        self.default_noise_sigma = float(noise_sigma)
        if self.default_noise_sigma and not self.NOISY:
            raise ValueError(f"{type(self).__name__} adds no noise; noise_sigma must be 0")

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(
            max_steps_in_episode=self.max_episode_length, noise_sigma=self.default_noise_sigma
        )

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        u = jnp.asarray(action, jnp.float32).reshape(-1)[0]
        u = jnp.clip(u, -params.max_torque, params.max_torque)
        cost = angle_normalize(state.theta) ** 2 + 0.1 * state.theta_dot**2 + 0.001 * u**2
        reward = (HALF_RANGE - cost) / HALF_RANGE / params.max_steps_in_episode

        newthdot = (
            state.theta_dot
            + (
                3 * params.g / (2 * params.l) * jnp.sin(state.theta)
                + 3.0 / (params.m * params.l**2) * u
            )
            * params.dt
        )
        newthdot = jnp.clip(newthdot, -params.max_speed, params.max_speed)
        newth = state.theta + newthdot * params.dt

        state = EnvState(
            theta=newth.astype(jnp.float32),
            theta_dot=newthdot.astype(jnp.float32),
            time=state.time + 1,
            noise=self._draw_noise(key, params),
        )
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), jnp.bool_(False), info

    def reset_env(self, key, params: EnvParams):
        key_state, key_noise = jax.random.split(key)
        high = jnp.array([jnp.pi, 1.0], jnp.float32)
        theta, theta_dot = jax.random.uniform(
            key_state, (2,), jnp.float32, minval=-high, maxval=high
        )
        state = EnvState(
            theta=theta,
            theta_dot=theta_dot,
            time=jnp.int32(0),
            noise=self._draw_noise(key_noise, params),
        )
        return self.get_obs(state), state

    def clean_obs(self, state: EnvState) -> jax.Array:
        """The noise-free observation ``[cos theta, sin theta]``, float32 ``[2]``."""
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta)])

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        obs = self.clean_obs(state)
        if self.NOISY:
            obs = jnp.clip(obs + state.noise, -1.0, 1.0)
        return obs.astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.bool_(False)

    def _draw_noise(self, key, params: EnvParams) -> jax.Array:
        if not self.NOISY:
            return jnp.zeros(2, jnp.float32)
        return params.noise_sigma * jax.random.normal(key, (2,), jnp.float32)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        return 1

    def action_space(self, params=None) -> spaces.Box:
        max_torque = 2.0 if params is None else params.max_torque
        return spaces.Box(-max_torque, max_torque, (1,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        high = np.ones(2, np.float32)
        return spaces.Box(-high, high, (2,), jnp.float32)
