"""JAX port of popgym's ``MineSweeper`` (``popgym/envs/minesweeper.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). MineSweeper with the board hidden: ``M`` mines lie uniformly at random (without
replacement) on an ``h x w`` board; each step the agent clicks one tile and sees only
that tile's number. As in popgym, the number counts the mines in the 3 x 3 block
*including the tile itself* (so a mine tile counts itself).

Rewards, with ``L = h * w - M`` (the number of clear tiles, also the episode length):
clicking a new clear tile pays ``+1/L``; re-clicking a viewed tile pays ``-0.5/(L - 2)``;
clicking a mine pays ``-0.5 - 1/L`` and terminates. Clicking every clear tile once
returns exactly 1 (and terminates); the worst episode (one view, ``L - 2`` repeats, then
a mine) returns exactly -1. The episode terminates on a mine or when every clear tile is
viewed, and is truncated after ``L`` steps only when it did not terminate on that step.

Observation: the clicked tile's number, int32 (``Discrete(min(M + 1, 10))``; 0 after
reset). Action: ``MultiDiscrete([h, w])``, ``(row, column)``. A coordinate outside the
board (popgym raises IndexError, or wraps a negative index) is paid like re-clicking a
viewed tile (``-0.5/(L - 2)``), observes 0, costs a step and changes nothing else.

Variants: Easy 4 x 4 with 2 mines, Medium 6 x 6 with 6, Hard 8 x 8 with 10.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.spaces import MultiDiscrete


@struct.dataclass
class EnvState(environment.EnvState):
    mines: jax.Array  # [h, w] bool
    viewed: jax.Array  # [h, w] bool, clear tiles already clicked
    neighbors: jax.Array  # [h, w] int32, mines in the 3 x 3 block around each tile
    hit_mine: bool  # a mine was clicked (terminal)
    last_obs: int  # the observation: number of the last tile clicked
    time: int  # steps taken


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 14  # h * w - M; ``MineSweeper.default_params`` sets it


def count_neighbors(mines: jax.Array) -> jax.Array:
    """Mines in the 3 x 3 block centred on each tile (itself included), int32 ``[h, w]``."""
    h, w = mines.shape
    padded = jnp.pad(mines.astype(jnp.int32), 1)
    return sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3))


class MineSweeper(environment.Environment[EnvState, EnvParams]):
    """Hidden-board MineSweeper. See the module docstring."""

    def __init__(self, dims: tuple[int, int] = (4, 4), num_mines: int = 2):
        super().__init__()
        self.dims = tuple(dims)
        self.num_mines = num_mines
        self.max_episode_length = dims[0] * dims[1] - num_mines
        self.success_reward_scale = 1.0 / self.max_episode_length
        self.fail_reward_scale = -0.5 - self.success_reward_scale
        # popgym: one step fewer for the final mine, one for the first (rewarded) view.
        self.bad_action_reward_scale = -0.5 / (self.max_episode_length - 2)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.max_episode_length)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action)
        h, w = self.dims
        row, col = action[0], action[1]
        on_board = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        row, col = jnp.clip(row, 0, h - 1), jnp.clip(col, 0, w - 1)
        mine = on_board & state.mines[row, col]
        new = on_board & ~state.mines[row, col] & ~state.viewed[row, col]
        reward = jnp.where(
            mine,
            self.fail_reward_scale,
            jnp.where(new, self.success_reward_scale, self.bad_action_reward_scale),
        )
        state = state.replace(
            viewed=state.viewed.at[row, col].set(state.viewed[row, col] | new),
            hit_mine=state.hit_mine | mine,
            last_obs=jnp.where(on_board, state.neighbors[row, col], 0).astype(jnp.int32),
            time=state.time + 1,
        )
        info: dict[str, Any] = {}
        terminated = self.is_terminated(state, params)
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        h, w = self.dims
        flat = jax.random.choice(key, h * w, (self.num_mines,), replace=False)
        mines = jnp.zeros(h * w, bool).at[flat].set(True).reshape(h, w)
        state = EnvState(
            mines=mines,
            viewed=jnp.zeros((h, w), bool),
            neighbors=count_neighbors(mines),
            hit_mine=jnp.bool_(False),
            last_obs=jnp.int32(0),
            time=jnp.int32(0),
        )
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.asarray(state.last_obs, jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.hit_mine | jnp.all(state.mines | state.viewed)

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        # popgym: ``truncated = timestep == max_episode_length and not terminated``.
        return (state.time >= params.max_steps_in_episode) & ~self.is_terminated(state, params)

    @property
    def name(self) -> str:
        return "MineSweeper"

    @property
    def num_actions(self) -> int:
        return self.dims[0] * self.dims[1]  # joint (row, column) choices

    def action_space(self, params=None) -> MultiDiscrete:
        return MultiDiscrete(self.dims)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(min(self.num_mines + 1, 10))


TRUNCATES = True  # truncated after L steps (tests/envs/test_registry.py checks it)

VARIANTS = {
    "MineSweeperEasy": lambda: MineSweeper(dims=(4, 4), num_mines=2),
    "MineSweeperMedium": lambda: MineSweeper(dims=(6, 6), num_mines=6),
    "MineSweeperHard": lambda: MineSweeper(dims=(8, 8), num_mines=10),
}
