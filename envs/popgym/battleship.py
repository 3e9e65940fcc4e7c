"""JAX port of popgym's ``Battleship`` (``popgym/envs/battleship.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). Battleship with the board hidden: ships of sizes ``(2, 3, 3, 4)`` lie on an
``S x S`` board and the agent fires at one tile per step, seeing only whether that shot
was a hit. Firing again at a tile already fired at is a miss, even on a ship.

Ships are placed one after another, each uniformly among the placements (horizontal or
vertical segments inside the board) that do not overlap the ships already placed; ships
may touch. popgym draws a start tile, an axis and a sign and rejects until the segment
fits, which gives every free segment exactly two proposals, i.e. this same uniform law.

Rewards: a hit pays ``+1/12`` (12 = total ship tiles), a miss ``-1/(S**2 - 12)``. Sinking
every ship with no miss returns exactly 1; firing at every tile once would return 0; a
uniformly random shooter scores about -0.45 on Easy. The episode terminates when all 12
ship tiles are hit and is truncated after ``S**2`` shots (both flags can be true on the
same step, as in popgym).

Observation: 1 if the last shot hit, else 0, int32 (``Discrete(2)``; 0 after reset).
Action: ``MultiDiscrete([S, S])``, ``(row, column)`` of the tile to fire at. A
coordinate outside ``[0, S)`` (popgym raises IndexError, or wraps a negative index) is a
shot off the board: a miss that costs a step and changes nothing else.

Variants: Easy ``S = 8``, Medium ``S = 10``, Hard ``S = 12``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.spaces import MultiDiscrete

SHIP_SIZES = (2, 3, 3, 4)


@struct.dataclass
class EnvState(environment.EnvState):
    board: jax.Array  # [S, S] bool, True on ship tiles
    guesses: jax.Array  # [S, S] bool, True on tiles already fired at
    hits: int  # ship tiles hit so far
    last_hit: int  # the observation: 1 if the last shot hit
    time: int  # shots fired


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 64  # S**2; ``Battleship.default_params`` sets it


def _uniform_true_index(u: jax.Array, mask: jax.Array) -> jax.Array:
    """The index of a uniformly chosen True entry of ``mask`` [K], given ``u ~ U[0, 1)``."""
    counts = jnp.cumsum(mask)
    target = jnp.minimum(jnp.floor(u * counts[-1]), counts[-1] - 1)
    return jnp.sum(counts <= target)


def place_ships(key: jax.Array, board_size: int, ship_sizes=SHIP_SIZES) -> jax.Array:
    """A board with ``ship_sizes`` placed as popgym places them; bool ``[S, S]``.

    Each ship is drawn uniformly among the horizontal and vertical segments that lie
    inside the board and overlap no ship placed before it.
    """
    size = board_size
    board = jnp.zeros((size, size), bool)
    rows = jnp.arange(size)[:, None]
    cols = jnp.arange(size)[None, :]
    # One uniform per ship (a single threefry call keeps compile time down).
    uniforms = jax.random.uniform(key, (len(ship_sizes),))
    for ship, u in zip(ship_sizes, uniforms, strict=True):
        # free[axis, r, c]: the segment from (r, c) along axis (0: down, 1: right) fits.
        padded = jnp.pad(board, ((0, ship), (0, ship)), constant_values=True)
        down = jnp.zeros((size, size), bool)
        right = jnp.zeros((size, size), bool)
        for k in range(ship):
            down = down | padded[k : k + size, :size]
            right = right | padded[:size, k : k + size]
        free = jnp.stack([~down & (rows + ship <= size), ~right & (cols + ship <= size)])
        choice = _uniform_true_index(u, free.reshape(-1))
        axis, r, c = jnp.unravel_index(choice, free.shape)
        seg_rows = jnp.where(axis == 0, (rows >= r) & (rows < r + ship), rows == r)
        seg_cols = jnp.where(axis == 1, (cols >= c) & (cols < c + ship), cols == c)
        board = board | (seg_rows & seg_cols)
    return board


class Battleship(environment.Environment[EnvState, EnvParams]):
    """Hidden-board Battleship. See the module docstring."""

    def __init__(self, board_size: int = 10, ship_sizes=SHIP_SIZES):
        super().__init__()
        self.board_size = board_size
        self.ship_sizes = tuple(ship_sizes)
        self.needed_hits = sum(self.ship_sizes)
        self.max_episode_length = board_size**2

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.max_episode_length)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action)
        row, col = action[0], action[1]
        on_board = (row >= 0) & (row < self.board_size) & (col >= 0) & (col < self.board_size)
        row = jnp.clip(row, 0, self.board_size - 1)
        col = jnp.clip(col, 0, self.board_size - 1)
        hit = on_board & state.board[row, col] & ~state.guesses[row, col]
        guesses = state.guesses.at[row, col].set(state.guesses[row, col] | on_board)
        reward = jnp.where(
            hit, 1.0 / self.needed_hits, -1.0 / (self.max_episode_length - self.needed_hits)
        )
        state = state.replace(
            guesses=guesses,
            hits=state.hits + hit.astype(jnp.int32),
            last_hit=hit.astype(jnp.int32),
            time=state.time + 1,
        )
        info: dict[str, Any] = {}
        terminated = self.is_terminated(state, params)
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        size = self.board_size
        state = EnvState(
            board=place_ships(key, size, self.ship_sizes),
            guesses=jnp.zeros((size, size), bool),
            hits=jnp.int32(0),
            last_hit=jnp.int32(0),
            time=jnp.int32(0),
        )
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.asarray(state.last_hit, jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.hits >= self.needed_hits

    @property
    def name(self) -> str:
        return "Battleship"

    @property
    def num_actions(self) -> int:
        return self.board_size**2  # joint (row, column) choices

    def action_space(self, params=None) -> MultiDiscrete:
        return MultiDiscrete((self.board_size, self.board_size))

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)


TRUNCATES = True  # truncated after S**2 shots (tests/envs/test_registry.py checks it)

VARIANTS = {
    "BattleshipEasy": lambda: Battleship(board_size=8),
    "BattleshipMedium": lambda: Battleship(board_size=10),
    "BattleshipHard": lambda: Battleship(board_size=12),
}
