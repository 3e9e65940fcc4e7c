"""JAX port of popgym's ``PositionOnlyCartPole`` (popgym 1.0.7).

Reproduces ``popgym/envs/position_only_cartpole.py``.
Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning"
(ICLR 2023). gymnasium's CartPole (dynamics in ``envs/popgym/cartpole_common.py``) with the
velocities removed: the agent sees the cart position and the pole angle and must infer
the velocities from memory.

Observation: ``[x, theta]``, float32 ``Box(-[4.8, 0.419], [4.8, 0.419])``. Action:
``Discrete(2)`` (0 pushes left, 1 right; any other value pushes left, where gymnasium
raises). Reward: ``1/L`` per step, terminating step included, so returns lie in ``(0, 1]``
and balancing for the whole episode scores exactly 1. Episode length ``L`` = 200 / 400 /
600 steps (Easy / Medium / Hard); the episode terminates when the pole falls or the cart
leaves the track and is truncated (``truncated=True``) after ``L`` steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.popgym.cartpole_common import EnvParams, EnvState, PopgymCartPole, position_box

__all__ = ["EnvParams", "EnvState", "PositionOnlyCartPole", "TRUNCATES", "VARIANTS"]

TRUNCATES = True  # episodes end by the time limit as well as by termination


class PositionOnlyCartPole(PopgymCartPole):
    """CartPole showing ``[x, theta]``. See the module docstring."""

    def clean_obs(self, state: EnvState) -> jax.Array:
        return jnp.stack([state.x, state.theta])

    def observation_space(self, params=None):
        return position_box()


VARIANTS = {
    "PositionOnlyCartPoleEasy": lambda: PositionOnlyCartPole(max_episode_length=200),
    "PositionOnlyCartPoleMedium": lambda: PositionOnlyCartPole(max_episode_length=400),
    "PositionOnlyCartPoleHard": lambda: PositionOnlyCartPole(max_episode_length=600),
}
