"""JAX port of popgym's ``VelocityOnlyCartPole`` (popgym 1.0.7).

Reproduces ``popgym/envs/velocity_only_cartpole.py``.
Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning"
(ICLR 2023). gymnasium's CartPole (dynamics in ``envs/popgym/cartpole_common.py``) with the
positions removed: the agent sees the cart velocity and the pole angular velocity and must
integrate them to know where the cart and pole are.

popgym quirk, reproduced: ``VelocityOnlyCartPole.reset`` returns ``[x, theta]`` (a
copy-paste of the position-only reset), so the *first* observation of every episode is the
positions; every later one is ``[x_dot, theta_dot]``. All four start uniformly in
``(-0.05, 0.05)``, so the first observation has the same distribution either way, but it
tells the agent the starting positions.

Observation: float32 ``Box(-inf, inf, (2,))``. Action: ``Discrete(2)`` (0 pushes left, 1
right; any other value pushes left, where gymnasium raises). Reward: ``1/L`` per step,
terminating step included, so returns lie in ``(0, 1]``. Episode length ``L`` = 200 / 400 /
600 steps (Easy / Medium / Hard); the episode terminates when the pole falls or the cart
leaves the track and is truncated (``truncated=True``) after ``L`` steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from envs.popgym.cartpole_common import EnvParams, EnvState, PopgymCartPole

__all__ = ["EnvParams", "EnvState", "TRUNCATES", "VARIANTS", "VelocityOnlyCartPole"]

TRUNCATES = True  # episodes end by the time limit as well as by termination


class VelocityOnlyCartPole(PopgymCartPole):
    """CartPole showing ``[x_dot, theta_dot]`` (``[x, theta]`` at reset); see module docstring."""

    def clean_obs(self, state: EnvState) -> jax.Array:
        velocities = jnp.stack([state.x_dot, state.theta_dot])
        positions = jnp.stack([state.x, state.theta])
        return jnp.where(state.time == 0, positions, velocities)

    def observation_space(self, params=None):
        high = np.full(2, np.inf, np.float32)
        return spaces.Box(-high, high, (2,), jnp.float32)


VARIANTS = {
    "VelocityOnlyCartPoleEasy": lambda: VelocityOnlyCartPole(max_episode_length=200),
    "VelocityOnlyCartPoleMedium": lambda: VelocityOnlyCartPole(max_episode_length=400),
    "VelocityOnlyCartPoleHard": lambda: VelocityOnlyCartPole(max_episode_length=600),
}
