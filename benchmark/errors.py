"""The library's bad-input error and its stop, light to import (no JAX)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting, named by its config field; ``cli.py`` names the flag instead.

    ``str(error)`` is ``"<field>: <problem>"`` for a caller of the library; the command
    line prints ``"<--flag>: <problem>"`` for the option that set the field.
    """

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name}: {problem}")
        self.field, self.problem = field_name, problem


class Stopped(Exception):
    """A run stopped on request (Ctrl-C, SIGTERM; ``run_folder.StopRequest``) between two
    measurements: every finished row is written, and ``--resume`` continues it.

    ``str(error)`` says where it stopped, e.g. ``"stopped after 3 of 12 cells"``.
    """
