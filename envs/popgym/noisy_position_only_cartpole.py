"""JAX port of popgym's ``NoisyPositionOnlyCartPole`` (popgym 1.0.7).

Reproduces ``popgym/envs/noisy_position_only_cartpole.py``.
Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning"
(ICLR 2023). ``PositionOnlyCartPole`` (``envs/popgym/position_only_cartpole.py``) whose
observation gets fresh Gaussian noise ``N(0, sigma^2)`` per component at every reset and
step, then is clipped to the observation box, as popgym does. The noise is drawn from the
JAX key passed to ``reset``/``step`` (popgym draws it from the env's numpy generator).

Observation: noisy ``[x, theta]``, float32 ``Box(-[4.8, 0.419], [4.8, 0.419])``. Action:
``Discrete(2)`` (0 pushes left, 1 right; any other value pushes left, where gymnasium
raises). Noise ``sigma`` = 0.1 / 0.2 / 0.3 (Easy / Medium / Hard). Episode length is 200
steps at every difficulty (popgym does not change it); reward ``1/200`` per step,
terminating step included, so returns lie in ``(0, 1]``. The episode terminates when the
pole falls or the cart leaves the track (judged on the noise-free state) and is truncated
(``truncated=True``) after 200 steps.
"""

from __future__ import annotations

from envs.popgym.cartpole_common import EnvParams, EnvState
from envs.popgym.position_only_cartpole import PositionOnlyCartPole

__all__ = ["EnvParams", "EnvState", "NoisyPositionOnlyCartPole", "TRUNCATES", "VARIANTS"]

TRUNCATES = True  # episodes end by the time limit as well as by termination


class NoisyPositionOnlyCartPole(PositionOnlyCartPole):
    """PositionOnlyCartPole with clipped Gaussian observation noise. See the module docstring."""

    NOISY = True

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length, noise_sigma=noise_sigma)


VARIANTS = {
    "NoisyPositionOnlyCartPoleEasy": lambda: NoisyPositionOnlyCartPole(noise_sigma=0.1),
    "NoisyPositionOnlyCartPoleMedium": lambda: NoisyPositionOnlyCartPole(noise_sigma=0.2),
    "NoisyPositionOnlyCartPoleHard": lambda: NoisyPositionOnlyCartPole(noise_sigma=0.3),
}
