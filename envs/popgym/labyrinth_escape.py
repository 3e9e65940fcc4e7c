"""JAX port of popgym's ``LabyrinthEscape`` (``popgym/envs/labyrinth_escape.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). The agent starts on the outer wall of a hunt-and-kill maze and must reach the exit
on the opposite wall. Maze generation, movement, the observation (3 x 3 local view plus
the last action, int32 ``[10]``, ``MultiDiscrete([5] * 10)``) and out-of-range actions
(no move, shown as 4) are described in ``envs/popgym/labyrinth.py``.

Rewards: ``-1/1024`` every step, plus 1 on the step that reaches the exit (which
terminates), so an escape in ``L`` steps returns ``1 - L/1024`` and a random walk that
never escapes returns ``-1023/1024``. Episodes are truncated after 1023 steps (both flags
can be true on that step). Action: ``Discrete(4)`` (left, right, up, down).

Variants: ``maze_dims`` Easy (10, 10), Medium (14, 14), Hard (18, 18), i.e. 5 x 5, 7 x 7
and 9 x 9 rooms; ``episode_length`` 1024 in all three.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from envs.popgym.labyrinth import GOAL, EnvParams, EnvState, MazeEnv

__all__ = ["EnvParams", "EnvState", "LabyrinthEscape", "TRUNCATES", "VARIANTS"]


class LabyrinthEscape(MazeEnv):
    """Find the maze's exit. See the module docstring."""

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        state = self.advance(state, action)
        reached = self.is_terminated(state, params)
        reward = self.neg_reward_scale + jnp.where(reached, 1.0, 0.0)
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), reached, info

    def reset_env(self, key, params: EnvParams):
        grid, start, end = self.new_maze(key)
        state = self.initial_state(grid.at[end[0], end[1]].set(GOAL), start)
        return self.get_obs(state), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.grid[state.position[0], state.position[1]] == GOAL

    @property
    def name(self) -> str:
        return "LabyrinthEscape"


TRUNCATES = True  # truncated after 1023 steps (tests/envs/test_registry.py checks it)

VARIANTS = {
    "LabyrinthEscapeEasy": lambda: LabyrinthEscape(maze_dims=(10, 10), episode_length=1024),
    "LabyrinthEscapeMedium": lambda: LabyrinthEscape(maze_dims=(14, 14), episode_length=1024),
    "LabyrinthEscapeHard": lambda: LabyrinthEscape(maze_dims=(18, 18), episode_length=1024),
}
