"""Shared core of the labyrinth ports: popgym's ``MazeEnv`` (``popgym/core/maze.py``, popgym
1.0.7) and a JAX version of the maze generator it uses, mazelib's ``HuntAndKill`` with its
default random hunt order (``mazelib/generate/HuntAndKill.py``, mazelib 0.9.16).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). ``LabyrinthEscape`` and ``LabyrinthExplore`` subclass ``MazeEnv`` here as in popgym.

Grid: ``maze_dims = (m0, m1)`` (even) gives an ``(m0 + 1) x (m1 + 1)`` grid of
``h x w = (m0 / 2) x (m1 / 2)`` rooms at odd coordinates, walls between them and around
the border. Cell codes are popgym's: 0 free, 1 obstacle, 2 start, 3 goal.

Generator (mazelib's algorithm, same distribution): start in a uniform room; random-walk,
carving into a uniform unvisited neighbour room, until the current room has none; then
"hunt": draw a uniform room, and if it is visited and has unvisited neighbours walk on from
it. mazelib makes exactly ``(2h + 1)(2w + 1)`` hunt draws and then stops, so a maze can
(rarely) keep unvisited rooms, which stay walls. A draw that misses the frontier (visited
rooms with unvisited neighbours) changes nothing, so here the misses are skipped in one
go: the number of draws until a hit is geometric with ``p = |frontier| / (h w)``, the hit
room is uniform over the frontier, and the maze stops when the draw budget runs out first.
Every loop iteration then carves one room, so ``h w - 1`` iterations (static) suffice.
Entrances as ``Maze.generate_entrances(start_outer=True)``: a uniform side, the start at a
uniform odd position of that border and the exit at one of the opposite border.

Movement (``MazeEnv.move``): actions 0 left, 1 right, 2 up, 3 down; a move into an
obstacle or off the grid leaves the agent where it is. Observation: int32 ``[10]``, the
3 x 3 view of the grid around the agent in row-major order, then the last action (4 =
none, after reset); ``MultiDiscrete([5] * 10)``. As in popgym the view is cut at the grid
edge and padded with obstacles *after* it, so at row (column) 0 its rows (columns) are
``0, 1, pad`` rather than centred. An action outside ``[0, 4)`` (popgym raises KeyError)
moves nothing, is paid as a wasted step and shows as 4 (none) in the observation.
Episodes are truncated after ``episode_length - 1`` steps (popgym truncates when
``curr_step == episode_length - 1``), 1023 in every variant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.spaces import MultiDiscrete

FREE, OBSTACLE, START, GOAL = 0, 1, 2, 3
NUM_CELL_CODES = 5  # popgym's Cell enum also has HIDDEN (4), used only in its state view
NUM_MOVES = 4
NO_ACTION = 4
# (row, column) step of each action: left, right, up, down.
_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))


@struct.dataclass
class EnvState(environment.EnvState):
    grid: jax.Array  # [H, W] int32 cell codes (start and, for Escape, goal marked)
    explored: jax.Array  # [H, W] bool, cells the agent has stood on
    position: jax.Array  # [2] int32, (row, column)
    last_action: int  # 0-3, or 4 (none) after reset or an out-of-range action
    time: int  # steps taken


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1023  # popgym: truncated when curr_step == 1024 - 1


def _uniform_true_index(u: jax.Array, mask: jax.Array) -> jax.Array:
    """Flat index of a uniformly chosen True entry of ``mask``, given ``u ~ U[0, 1)``."""
    counts = jnp.cumsum(mask.reshape(-1))
    target = jnp.minimum(jnp.floor(u * counts[-1]), counts[-1] - 1)
    return jnp.sum(counts <= target)


def _neighbour_rooms(rooms: jax.Array) -> jax.Array:
    """``[4, h, w]``: the value of each room's left/right/up/down neighbour (False off-grid)."""
    pad = jnp.pad(rooms, 1)
    h, w = rooms.shape
    return jnp.stack([pad[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in _MOVES])


def generate_maze(key: jax.Array, h: int, w: int, hunt_budget: int | None = None) -> jax.Array:
    """A hunt-and-kill maze as mazelib's ``HuntAndKill(h, w)`` draws it; int32 ``[2h+1, 2w+1]``.

    Args:
      key: PRNG key.
      h, w: maze size in rooms (static).
      hunt_budget: number of hunt draws; mazelib's ``(2h + 1)(2w + 1)`` unless given
        (tests shrink it to exercise unfinished mazes).

    Returns:
      The grid: 0 on carved rooms and passages, 1 on walls.
    """
    return carve_maze(jax.random.uniform(key, (maze_uniforms(h, w),)), h, w, hunt_budget)


def maze_uniforms(h: int, w: int) -> int:
    """How many U[0, 1) numbers ``carve_maze`` consumes: 2 for the start, 3 per carve."""
    return 3 * h * w - 1


def carve_maze(uniforms: jax.Array, h: int, w: int, hunt_budget: int | None = None) -> jax.Array:
    """``generate_maze`` from ``maze_uniforms(h, w)`` U[0, 1) numbers instead of a key.

    Drawing plain uniforms (never ``randint``, which makes several threefry calls) once for
    maze and entrances keeps compile time down: gymnax resets inside every ``step``.
    """
    num_rooms = h * w
    if hunt_budget is None:
        hunt_budget = (2 * h + 1) * (2 * w + 1)  # mazelib's hunt draws: H * W
    u_start, u_loop = jnp.split(uniforms, [2])
    u_loop = u_loop.reshape(num_rooms - 1, 3)
    start = jnp.minimum(jnp.floor(u_start * jnp.array([h, w])), jnp.array([h - 1, w - 1]))
    start = start.astype(jnp.int32)
    grid = jnp.ones((2 * h + 1, 2 * w + 1), jnp.int32).at[2 * start[0] + 1, 2 * start[1] + 1].set(0)
    visited = jnp.zeros((h, w), bool).at[start[0], start[1]].set(True)
    moves = jnp.array(_MOVES, jnp.int32)

    def carve(i, carry):
        grid, visited, room, budget, stalled = carry
        u_geometric, u_frontier, u_move = u_loop[i]
        open_next = _neighbour_rooms(~visited)  # [4, h, w]: that neighbour is unvisited
        frontier = visited & open_next.any(0)
        # Hunt if the walk is stuck: draws until a frontier hit are Geometric(|F| / (h w)).
        stuck = ~open_next[:, room[0], room[1]].any()
        size = frontier.sum()
        p = size / num_rooms
        draws = jnp.maximum(jnp.ceil(jnp.log1p(-u_geometric) / jnp.log1p(-p)), 1.0)
        found = (size > 0) & (draws <= budget)
        hunting = stuck & ~stalled
        stalled = stalled | (hunting & ~found)
        budget = jnp.where(hunting & found, budget - draws, budget)
        hit = jnp.stack(jnp.unravel_index(_uniform_true_index(u_frontier, frontier), (h, w)))
        room = jnp.where(hunting & found, hit, room)
        # Walk one step into a uniform unvisited neighbour room.
        options = open_next[:, room[0], room[1]]
        move = moves[_uniform_true_index(u_move, options)]
        nxt = room + move
        wall = 2 * room + 1 + move
        target = 2 * nxt + 1
        # Once stalled nothing changes: min(cell, 1) leaves a 0/1 cell as it is.
        keep = stalled.astype(jnp.int32)
        grid = grid.at[wall[0], wall[1]].min(keep).at[target[0], target[1]].min(keep)
        visited = visited.at[nxt[0], nxt[1]].set(visited[nxt[0], nxt[1]] | ~stalled)
        room = jnp.where(stalled, room, nxt)
        return grid, visited, room, budget, stalled

    carry = (grid, visited, start, jnp.float32(hunt_budget), jnp.bool_(False))
    grid, *_ = jax.lax.fori_loop(0, num_rooms - 1, carve, carry)
    return grid


def draw_entrances(key: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """Start and exit on opposite outer walls, as ``Maze.generate_entrances(start_outer=True)``.

    Returns:
      ``(start, end)``, each int32 ``[2]`` (row, column) on the grid's border.
    """
    return place_entrances(jax.random.uniform(key, (3,)), h, w)


def place_entrances(uniforms: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """``draw_entrances`` from 3 U[0, 1) numbers instead of a key."""
    big_h, big_w = 2 * h + 1, 2 * w + 1
    u_side, u_start, u_end = uniforms
    side = jnp.minimum(jnp.floor(u_side * 4), 3).astype(jnp.int32)  # north, south, west, east
    along = jnp.where(side < 2, w, h)  # rooms along that wall
    a = 2 * jnp.minimum(jnp.floor(u_start * along), along - 1).astype(jnp.int32) + 1
    b = 2 * jnp.minimum(jnp.floor(u_end * along), along - 1).astype(jnp.int32) + 1
    far_row, far_col = big_h - 1, big_w - 1
    starts = jnp.array([[0, a], [far_row, a], [a, 0], [a, far_col]])
    ends = jnp.array([[far_row, b], [0, b], [b, far_col], [b, 0]])
    return starts[side].astype(jnp.int32), ends[side].astype(jnp.int32)


def local_view(grid: jax.Array, position: jax.Array) -> jax.Array:
    """popgym's ``MazeEnv.local_view``: the 3 x 3 window, cut at the edge, padded; int32 ``[9]``."""
    y, x = position[0], position[1]
    y0, x0 = jnp.maximum(y - 1, 0), jnp.maximum(x - 1, 0)
    padded = jnp.pad(grid, ((0, 2), (0, 2)), constant_values=OBSTACLE)
    view = jax.lax.dynamic_slice(padded, (y0, x0), (3, 3))
    # Rows/columns past position + 1 exist only when the window was cut at row/column 0.
    inside = ((y0 + jnp.arange(3)) <= y + 1)[:, None] & ((x0 + jnp.arange(3)) <= x + 1)[None, :]
    return jnp.where(inside, view, OBSTACLE).reshape(9).astype(jnp.int32)


class MazeEnv(environment.Environment[EnvState, EnvParams]):
    """popgym's ``MazeEnv``: maze generation, movement and observation. Subclasses pay rewards."""

    def __init__(self, maze_dims: tuple[int, int] = (10, 10), episode_length: int = 1024):
        super().__init__()
        if maze_dims[0] % 2 or maze_dims[1] % 2:
            raise ValueError(f"maze dims must be even, got {maze_dims}")
        self.maze_dims = tuple(maze_dims)
        self.rooms = (maze_dims[0] // 2, maze_dims[1] // 2)
        self.grid_shape = (maze_dims[0] + 1, maze_dims[1] + 1)
        self.episode_length = episode_length
        self.neg_reward_scale = -1.0 / episode_length

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.episode_length - 1)

    def new_maze(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(grid, start, end)``: a fresh maze with the start marked (not the goal)."""
        count = maze_uniforms(*self.rooms)
        uniforms = jax.random.uniform(key, (count + 3,))
        grid = carve_maze(uniforms[:count], *self.rooms)
        start, end = place_entrances(uniforms[count:], *self.rooms)
        return grid.at[start[0], start[1]].set(START), start, end

    def initial_state(self, grid: jax.Array, start: jax.Array) -> EnvState:
        return EnvState(
            grid=grid,
            explored=jnp.zeros(self.grid_shape, bool).at[start[0], start[1]].set(True),
            position=start,
            last_action=jnp.int32(NO_ACTION),
            time=jnp.int32(0),
        )

    def move(self, state: EnvState, action) -> tuple[jax.Array, jax.Array]:
        """``(position, shown_action)`` after ``action``: walls and the grid edge block moves."""
        action = jnp.asarray(action, jnp.int32)
        valid = (action >= 0) & (action < NUM_MOVES)
        delta = jnp.where(valid, jnp.array(_MOVES, jnp.int32)[jnp.clip(action, 0, 3)], 0)
        target = jnp.clip(state.position + delta, 0, jnp.array(self.grid_shape) - 1)
        blocked = state.grid[target[0], target[1]] == OBSTACLE
        position = jnp.where(blocked, state.position, target)
        return position, jnp.where(valid, action, NO_ACTION)

    def advance(self, state: EnvState, action) -> EnvState:
        """popgym's ``MazeEnv.step``: move, mark the cell explored, count the step."""
        position, shown = self.move(state, action)
        return state.replace(
            position=position,
            explored=state.explored.at[position[0], position[1]].set(True),
            last_action=shown,
            time=state.time + 1,
        )

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        view = local_view(state.grid, state.position)
        return jnp.concatenate([view, jnp.asarray(state.last_action, jnp.int32)[None]])

    @property
    def num_actions(self) -> int:
        return NUM_MOVES

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_MOVES)

    def observation_space(self, params=None) -> MultiDiscrete:
        return MultiDiscrete([NUM_CELL_CODES] * 9 + [NUM_MOVES + 1])
