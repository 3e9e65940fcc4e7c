"""JAX ports of the POPGym environments, named exactly as the ``popgym`` package names them.

Each family lives in its own module with a ``VARIANTS`` dict (``"RepeatFirstEasy": factory``)
and a module docstring naming the popgym class it reproduces. ``tests/envs`` steps every
port in lockstep with the reference package.
"""

from __future__ import annotations

from envs.popgym import repeat_first, repeat_previous

# family -> module; each module's VARIANTS maps "<Family><Difficulty>" -> constructor.
FAMILIES = {
    "RepeatFirst": repeat_first,
    "RepeatPrevious": repeat_previous,
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
