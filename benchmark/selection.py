"""What a command selects: backbones and environments, each checked against its registry.

Each raises ``ConfigError`` naming the config field at fault (``model``, ``env``) and the
valid choices. The registries are imported inside the functions: ``cli.py`` imports this
module for ``--help``, which must not import JAX.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.errors import ConfigError
from envs import expand
from models import backbone, registered_backbones


def validated_models(names: Sequence[str]) -> list[str]:
    """Distinct backbone names in order, each resolved (built-in, plugin or import path).

    ``ConfigError`` on the ``model`` field: an unknown name (listing the valid ones), or a
    plugin that does not import or keep the protocol (naming it).
    """
    if not names:
        raise ConfigError("model", "no model given; valid models: "
                          + ", ".join(registered_backbones()))
    for name in names:
        try:
            backbone(name)
        except ValueError as error:
            raise ConfigError("model", str(error)) from None
    return list(dict.fromkeys(names))


def validated_envs(selections: Sequence[str]) -> list[str]:
    """Environment ids of ids, aliases, families or ``all``; ``ConfigError`` if unknown."""
    if not selections:
        raise ConfigError("env", "no environment given; give an id, alias or family from "
                          "`s5bench envs`, or all")
    env_ids: list[str] = []
    for selection in selections:
        try:
            env_ids += expand(selection)
        except ValueError as error:
            raise ConfigError("env", str(error)) from None
    return list(dict.fromkeys(env_ids))

