"""JAX ports of the POPGym environments, named exactly as the ``popgym`` package names them.

Each family lives in its own module with a ``VARIANTS`` dict (``"RepeatFirstEasy": factory``)
and a module docstring naming the popgym class it reproduces. ``tests/envs`` steps every
port in lockstep with the reference package.
"""

from __future__ import annotations

from envs.popgym import (
    autoencode,
    battleship,
    concentration,
    count_recall,
    higher_lower,
    labyrinth_escape,
    labyrinth_explore,
    minesweeper,
    multiarmed_bandit,
    noisy_position_only_cartpole,
    noisy_position_only_pendulum,
    position_only_cartpole,
    position_only_pendulum,
    repeat_first,
    repeat_previous,
    velocity_only_cartpole,
)

# family -> module; each module's VARIANTS maps "<Family><Difficulty>" -> constructor.
FAMILIES = {
    "Autoencode": autoencode,
    "Battleship": battleship,
    "Concentration": concentration,
    "CountRecall": count_recall,
    "HigherLower": higher_lower,
    "LabyrinthEscape": labyrinth_escape,
    "LabyrinthExplore": labyrinth_explore,
    "MineSweeper": minesweeper,
    "MultiarmedBandit": multiarmed_bandit,
    "NoisyPositionOnlyCartPole": noisy_position_only_cartpole,
    "NoisyPositionOnlyPendulum": noisy_position_only_pendulum,
    "PositionOnlyCartPole": position_only_cartpole,
    "PositionOnlyPendulum": position_only_pendulum,
    "RepeatFirst": repeat_first,
    "RepeatPrevious": repeat_previous,
    "VelocityOnlyCartPole": velocity_only_cartpole,
}

# Names used by the paper's code (luchris429/popjaxrl) -> popgym's names.
FAMILY_ALIASES = {
    "StatelessCartPole": "PositionOnlyCartPole",
    "NoisyStatelessCartPole": "NoisyPositionOnlyCartPole",
    "StatelessPendulum": "PositionOnlyPendulum",
    "NoisyStatelessPendulum": "NoisyPositionOnlyPendulum",
    "MultiArmedBandit": "MultiarmedBandit",
    "Minesweeper": "MineSweeper",
}
