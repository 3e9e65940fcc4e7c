"""CartPole dynamics shared by the three popgym CartPole families (popgym 1.0.7).

popgym's ``PositionOnlyCartPole``, ``VelocityOnlyCartPole`` and ``NoisyPositionOnlyCartPole``
(Morad et al., "POPGym", ICLR 2023) subclass gymnasium's ``CartPoleEnv``
(``gymnasium/envs/classic_control/cartpole.py``): Euler integration with ``tau = 0.02`` s,
force ``+10`` for action 1 and ``-10`` otherwise, termination when ``|x| > 2.4`` or
``|theta| > 12 deg``, start state uniform in ``(-0.05, 0.05)^4``. popgym then pays
``1 / max_episode_length`` per step (the terminating step included), so returns lie in
``(0, 1]``, and reports ``truncated`` once ``max_episode_length`` steps have been taken; a
step at the limit that also drops the pole reports both flags, as popgym does. A step taken
*after* termination (impossible through gymnax's auto-resetting ``step``) pays ``-1``, as
popgym's ``reward_transform`` turns gymnasium's 0 into -1.

This module holds what the families share: the state, the parameters (gymnasium's physics
constants plus the difficulty settings ``max_steps_in_episode`` and ``noise_sigma``, so the
difficulties of a family differ only in ``EnvParams``), the float32 dynamics and the
optional Gaussian observation noise. A family only says which two state components it
shows (``clean_obs``) and its observation box.

State and dynamics are float32 (the reference integrates in float64 and casts the
observation to float32). An action other than 1 pushes left: gymnasium computes
``force_mag if action == 1 else -force_mag`` but first asserts the action is 0 or 1, so the
reference raises where the port pushes left.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

THETA_THRESHOLD = 12 * 2 * math.pi / 360  # gymnasium's theta_threshold_radians
X_THRESHOLD = 2.4


@struct.dataclass
class EnvState(environment.EnvState):
    x: jax.Array  # cart position
    x_dot: jax.Array  # cart velocity
    theta: jax.Array  # pole angle (rad)
    theta_dot: jax.Array  # pole angular velocity
    time: int  # steps taken this episode
    noise: jax.Array  # [2] float32 noise on the current observation; zeros if noise-free
    was_terminated: jax.Array  # bool: gymnasium's ``steps_beyond_terminated is not None``


@struct.dataclass
class EnvParams(environment.EnvParams):
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5  # half the pole's length
    force_mag: float = 10.0
    tau: float = 0.02
    x_threshold: float = X_THRESHOLD
    theta_threshold_radians: float = THETA_THRESHOLD
    # popgym's max_episode_length: truncation step count and reward scale 1/L.
    max_steps_in_episode: int = 200
    # Standard deviation of the observation noise (used only by the noisy family).
    noise_sigma: float = 0.0


def out_of_bounds(x, theta, params: EnvParams) -> jax.Array:
    """gymnasium's termination test on a (new) state."""
    return (
        (x < -params.x_threshold)
        | (x > params.x_threshold)
        | (theta < -params.theta_threshold_radians)
        | (theta > params.theta_threshold_radians)
    )


def euler_step(state, action, params: EnvParams) -> tuple[jax.Array, ...]:
    """gymnasium CartPole's Euler step: the new ``(x, x_dot, theta, theta_dot)``.

    ``state`` is anything with those four fields; action 1 pushes right, any other value
    left. Positions use the old velocities, in gymnasium's order.
    """
    total_mass = params.masspole + params.masscart
    polemass_length = params.masspole * params.length
    force = jnp.where(jnp.asarray(action) == 1, params.force_mag, -params.force_mag)
    costheta = jnp.cos(state.theta)
    sintheta = jnp.sin(state.theta)
    temp = (force + polemass_length * jnp.square(state.theta_dot) * sintheta) / total_mass
    thetaacc = (params.gravity * sintheta - costheta * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * jnp.square(costheta) / total_mass)
    )
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    x = state.x + params.tau * state.x_dot
    x_dot = state.x_dot + params.tau * xacc
    theta = state.theta + params.tau * state.theta_dot
    theta_dot = state.theta_dot + params.tau * thetaacc
    return x, x_dot, theta, theta_dot


class PopgymCartPole(environment.Environment[EnvState, EnvParams]):
    """gymnasium CartPole with popgym's reward scale, truncation and masking.

    Subclasses set ``clean_obs`` (the two components shown) and ``observation_space``;
    a subclass with ``NOISY = True`` adds ``N(0, params.noise_sigma^2)`` float32 noise to the
    observation at every reset and step and clips it to the observation box, as popgym's
    noisy classes do. The noise is drawn from the key passed to reset/step and stored in
    the state, so ``get_obs(state)`` is deterministic.
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

    # -- what a family shows -------------------------------------------------------------

    def clean_obs(self, state: EnvState) -> jax.Array:
        """The two noise-free state components the family shows, float32 ``[2]``."""
        raise NotImplementedError

    def observation_space(self, params=None) -> spaces.Box:
        raise NotImplementedError

    # -- gymnax API ------------------------------------------------------------------------

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        x, x_dot, theta, theta_dot = euler_step(state, action, params)
        terminated = out_of_bounds(x, theta, params)
        step_reward = 1.0 / params.max_steps_in_episode
        reward = jnp.where(terminated & state.was_terminated, -1.0, step_reward)
        state = EnvState(
            x=x.astype(jnp.float32),
            x_dot=x_dot.astype(jnp.float32),
            theta=theta.astype(jnp.float32),
            theta_dot=theta_dot.astype(jnp.float32),
            time=state.time + 1,
            noise=self._draw_noise(key, params),
            was_terminated=state.was_terminated | terminated,
        )
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        key_state, key_noise = jax.random.split(key)
        x, x_dot, theta, theta_dot = jax.random.uniform(
            key_state, (4,), jnp.float32, minval=-0.05, maxval=0.05
        )
        state = EnvState(
            x=x,
            x_dot=x_dot,
            theta=theta,
            theta_dot=theta_dot,
            time=jnp.int32(0),
            noise=self._draw_noise(key_noise, params),
            was_terminated=jnp.bool_(False),
        )
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        obs = self.clean_obs(state)
        if self.NOISY:
            box = self.observation_space(params)
            obs = jnp.clip(obs + state.noise, box.low, box.high)
        return obs.astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return out_of_bounds(state.x, state.theta, params)

    def _draw_noise(self, key, params: EnvParams) -> jax.Array:
        if not self.NOISY:
            return jnp.zeros(2, jnp.float32)
        return params.noise_sigma * jax.random.normal(key, (2,), jnp.float32)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)


def position_box() -> spaces.Box:
    """popgym's position observation box: ``+-[2 * 2.4, 2 * 12 deg]`` (float32)."""
    high = np.array([X_THRESHOLD * 2, THETA_THRESHOLD * 2], dtype=np.float32)
    return spaces.Box(-high, high, (2,), jnp.float32)
