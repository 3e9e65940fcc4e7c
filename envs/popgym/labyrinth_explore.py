"""JAX port of popgym's ``LabyrinthExplore`` (``popgym/envs/labyrinth_explore.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). The agent starts on the outer wall of a hunt-and-kill maze and is paid for every
cell it visits for the first time. Maze generation, movement, the observation (3 x 3
local view plus the last action, int32 ``[10]``, ``MultiDiscrete([5] * 10)``) and
out-of-range actions (no move, shown as 4) are described in ``envs/popgym/labyrinth.py``.
As in popgym the exit is not marked (it stays a wall): only the start is a door.

Rewards: a step onto a cell never visited pays ``1/F``, ``F`` = number of free cells
(the start cell, coded 2, is not counted and is visited from the outset); any other step
pays ``-1/1024``. Visiting everything therefore collects exactly 1, and a full tour of
``S`` steps returns ``1 - (S - F)/1024``. The episode terminates once every non-obstacle
cell is visited and is truncated after 1023 steps (both flags can be true on that step).
Action: ``Discrete(4)`` (left, right, up, down).

Variants: ``maze_dims`` Easy (10, 10), Medium (14, 14), Hard (18, 18), i.e. 5 x 5, 7 x 7
and 9 x 9 rooms; ``episode_length`` 1024 in all three.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from envs.popgym.labyrinth import FREE, OBSTACLE, EnvParams, EnvState, MazeEnv

__all__ = ["EnvParams", "EnvState", "LabyrinthExplore", "TRUNCATES", "VARIANTS"]


class LabyrinthExplore(MazeEnv):
    """Visit every cell of the maze. See the module docstring."""

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        new_state = self.advance(state, action)
        row, col = new_state.position[0], new_state.position[1]
        new_cell = ~state.explored[row, col]
        pos_reward_scale = 1.0 / jnp.sum(state.grid == FREE)
        reward = jnp.where(new_cell, pos_reward_scale, self.neg_reward_scale)
        info: dict[str, Any] = {}
        terminated = self.is_terminated(new_state, params)
        return self.get_obs(new_state), new_state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        grid, start, _ = self.new_maze(key)
        state = self.initial_state(grid, start)
        return self.get_obs(state), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.all((state.grid != OBSTACLE) == state.explored)

    @property
    def name(self) -> str:
        return "LabyrinthExplore"


TRUNCATES = True  # truncated after 1023 steps (tests/envs/test_registry.py checks it)

VARIANTS = {
    "LabyrinthExploreEasy": lambda: LabyrinthExplore(maze_dims=(10, 10), episode_length=1024),
    "LabyrinthExploreMedium": lambda: LabyrinthExplore(maze_dims=(14, 14), episode_length=1024),
    "LabyrinthExploreHard": lambda: LabyrinthExplore(maze_dims=(18, 18), episode_length=1024),
}
