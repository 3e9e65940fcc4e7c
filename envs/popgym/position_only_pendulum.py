"""JAX port of popgym's ``PositionOnlyPendulum`` (popgym 1.0.7).

Reproduces ``popgym/envs/position_only_pendulum.py``.
Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning"
(ICLR 2023). gymnasium's Pendulum (dynamics in ``envs/popgym/pendulum_common.py``) with the
angular velocity removed: the agent sees ``[cos theta, sin theta]`` and must infer the
velocity from memory to swing the pendulum up.

Observation: float32 ``Box(-1, 1, (2,))``. Action: torque, float32 ``Box(-2, 2, (1,))``;
out-of-range torques are clipped to ``[-2, 2]`` (dynamics and cost), as gymnasium does.
Reward: gymnasium's ``-cost`` in ``[-16.2736044, 0]`` mapped linearly onto ``[-1, 1]`` and
divided by ``L``, so returns lie in ``[-1, 1]``. Episode length ``L`` = 200 / 150 / 100
steps (Easy / Medium / Hard); the episode never terminates and is truncated
(``truncated=True``) after ``L`` steps.
"""

from __future__ import annotations

from envs.popgym.pendulum_common import EnvParams, EnvState, PopgymPendulum

__all__ = ["EnvParams", "EnvState", "PositionOnlyPendulum", "TRUNCATES", "VARIANTS"]

TRUNCATES = True  # episodes end only by the time limit


class PositionOnlyPendulum(PopgymPendulum):
    """Pendulum showing ``[cos theta, sin theta]``. See the module docstring."""


VARIANTS = {
    "PositionOnlyPendulumEasy": lambda: PositionOnlyPendulum(max_episode_length=200),
    "PositionOnlyPendulumMedium": lambda: PositionOnlyPendulum(max_episode_length=150),
    "PositionOnlyPendulumHard": lambda: PositionOnlyPendulum(max_episode_length=100),
}
