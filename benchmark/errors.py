"""The library's bad-input error, light to import (no JAX): every module raises it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting, named by its config field; ``cli.py`` names the flag instead.

    ``str(error)`` is ``"<field>: <problem>"`` for a caller of the library; the command
    line prints ``"<--flag>: <problem>"`` for the option that set the field.
    """

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name}: {problem}")
        self.field, self.problem = field_name, problem
