"""Helpers for the labyrinth tests: reference mazes, state translation, maze statistics."""

from __future__ import annotations

import random
import warnings
from collections import deque

import jax.numpy as jnp
import numpy as np
from mazelib import Maze
from mazelib.generate.HuntAndKill import HuntAndKill

from envs.popgym import labyrinth


def quiet(ref_cls):
    """Build a reference maze env without its 'solvable without memory' DeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ref_cls()


def translate(ref_env) -> labyrinth.EnvState:
    """The port's state for a freshly reset reference ``MazeEnv``."""
    return labyrinth.EnvState(
        grid=jnp.asarray(ref_env.maze.grid, jnp.int32),
        explored=jnp.asarray(ref_env.explored == 1),
        position=jnp.asarray(ref_env.position, jnp.int32),
        last_action=jnp.int32(labyrinth.NO_ACTION),
        time=jnp.int32(0),
    )


class _BudgetHuntAndKill(HuntAndKill):
    """mazelib's HuntAndKill with a chosen number of random hunt draws."""

    def __init__(self, h, w, budget):
        super().__init__(h, w)
        self.budget = budget

    def _hunt_random(self, grid, count):
        if count >= self.budget:
            return (-1, -1)
        return (random.randrange(1, self.H, 2), random.randrange(1, self.W, 2))


def mazelib_mazes(rooms: int, n: int, seed: int, budget: int | None = None):
    """``n`` (grid, start, end) drawn as popgym draws them (HuntAndKill + outer entrances)."""
    out = []
    for i in range(n):
        random.seed(seed + i)
        np.random.seed(seed + i)
        maze = Maze()
        maze.generator = (HuntAndKill(rooms, rooms) if budget is None
                          else _BudgetHuntAndKill(rooms, rooms, budget))
        maze.generate()
        maze.generate_entrances(start_outer=True)
        out.append((maze.grid.astype(np.int32), maze.start, maze.end))
    return out


def distances(grid: np.ndarray, source) -> np.ndarray:
    """BFS step counts from ``source`` over cells that are not walls (-1: unreachable)."""
    dist = np.full(grid.shape, -1)
    dist[source] = 0
    queue = deque([tuple(source)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((0, -1), (0, 1), (-1, 0), (1, 0)):
            nr, nc = r + dr, c + dc
            if (0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1]
                    and grid[nr, nc] != labyrinth.OBSTACLE and dist[nr, nc] < 0):
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def shortest_path(grid: np.ndarray, source, target) -> list[int]:
    """Actions (0 left, 1 right, 2 up, 3 down) of a shortest path from ``source`` to ``target``."""
    dist = distances(grid, target)
    assert dist[tuple(source)] >= 0, "target unreachable"
    actions, (r, c) = [], tuple(source)
    moves = ((0, -1), (0, 1), (-1, 0), (1, 0))
    while (r, c) != tuple(target):
        for a, (dr, dc) in enumerate(moves):
            nr, nc = r + dr, c + dc
            if (0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1]
                    and dist[nr, nc] == dist[r, c] - 1 and grid[nr, nc] != labyrinth.OBSTACLE):
                actions.append(a)
                r, c = nr, nc
                break
    return actions


def tour(grid: np.ndarray, source) -> list[int]:
    """Actions of a depth-first walk from ``source`` that ends on the last reachable cell it finds."""
    moves = ((0, -1), (0, 1), (-1, 0), (1, 0))
    back = {0: 1, 1: 0, 2: 3, 3: 2}
    seen = {tuple(source)}
    actions: list[int] = []
    last_new = 0

    def visit(r, c):
        nonlocal last_new
        for a, (dr, dc) in enumerate(moves):
            nr, nc = r + dr, c + dc
            if (0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1]
                    and grid[nr, nc] != labyrinth.OBSTACLE and (nr, nc) not in seen):
                seen.add((nr, nc))
                actions.append(a)
                last_new = len(actions)
                visit(nr, nc)
                actions.append(back[a])

    visit(*source)
    return actions[:last_new]  # the walk back from the last new cell earns nothing


def maze_statistics(grid: np.ndarray, start, end) -> dict[str, float]:
    """Dead ends, junctions, open fraction, unvisited rooms and exit path length of one maze.

    The entrances are opened first (as the environments mark them passable).
    """
    g = grid.copy()
    g[tuple(start)] = labyrinth.START
    g[tuple(end)] = labyrinth.GOAL
    rooms = g[1::2, 1::2] != labyrinth.OBSTACLE
    open_ = g != labyrinth.OBSTACLE
    pad = np.pad(open_, 1)
    degree = pad[:-2, 1:-1].astype(int) + pad[2:, 1:-1] + pad[1:-1, :-2] + pad[1:-1, 2:]
    inner = np.zeros_like(open_)
    inner[1::2, 1::2] = True
    dist = distances(g, tuple(start))
    return {
        "dead_ends": float(np.sum(inner & open_ & (degree == 1))),
        "junctions": float(np.sum(inner & open_ & (degree >= 3))),
        "open_fraction": float(open_[1:-1, 1:-1].mean()),
        "unvisited_rooms": float(np.sum(~rooms)),
        "exit_path": float(dist[tuple(end)]),
    }
