"""JAX port of popgym's ``NoisyPositionOnlyPendulum`` (popgym 1.0.7).

Reproduces ``popgym/envs/noisy_position_only_pendulum.py``.
Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning"
(ICLR 2023). ``PositionOnlyPendulum`` (``envs/popgym/position_only_pendulum.py``) whose
observation gets fresh Gaussian noise ``N(0, sigma^2)`` per component at every reset and
step, then is clipped to ``[-1, 1]``, as popgym does. The noise is drawn from the JAX key
passed to ``reset``/``step`` (popgym draws it from the env's numpy generator).

Observation: noisy ``[cos theta, sin theta]``, float32 ``Box(-1, 1, (2,))``. Action:
torque, float32 ``Box(-2, 2, (1,))``; out-of-range torques are clipped to ``[-2, 2]``, as
gymnasium does. Noise ``sigma`` = 0.1 / 0.2 / 0.3 (Easy / Medium / Hard). Episode length is
200 steps at every difficulty (popgym does not change it); reward: gymnasium's ``-cost``
mapped onto ``[-1, 1]`` and divided by 200, so returns lie in ``[-1, 1]``. The episode
never terminates and is truncated (``truncated=True``) after 200 steps.
"""

from __future__ import annotations

from envs.popgym.pendulum_common import EnvParams, EnvState
from envs.popgym.position_only_pendulum import PositionOnlyPendulum

__all__ = ["EnvParams", "EnvState", "NoisyPositionOnlyPendulum", "TRUNCATES", "VARIANTS"]

TRUNCATES = True  # episodes end only by the time limit


class NoisyPositionOnlyPendulum(PositionOnlyPendulum):
    """PositionOnlyPendulum with clipped Gaussian observation noise. See the module docstring."""

    NOISY = True

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length, noise_sigma=noise_sigma)


VARIANTS = {
    "NoisyPositionOnlyPendulumEasy": lambda: NoisyPositionOnlyPendulum(noise_sigma=0.1),
    "NoisyPositionOnlyPendulumMedium": lambda: NoisyPositionOnlyPendulum(noise_sigma=0.2),
    "NoisyPositionOnlyPendulumHard": lambda: NoisyPositionOnlyPendulum(noise_sigma=0.3),
}
