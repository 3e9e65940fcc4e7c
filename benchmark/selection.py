"""What a command selects: backbones, environments, lengths, each checked against its registry.

Each raises ``ConfigError`` naming the config field at fault (``model``, ``env``) and the
valid choices. The registries are imported inside the functions: ``cli.py`` imports this
module for ``--help``, which must not import JAX.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.errors import ConfigError


def parse_lengths(text: str) -> list[int]:
    """Sequence lengths from ``"A..B"`` or a comma list, sorted and without repeats.

    ``"A..B"`` gives every power of two from A to B inclusive; A and B must be powers of
    two with A <= B. A comma list (``"100,300"``) may hold any positive integers.

    Raises:
      ValueError: with a one-line message naming the problem.
    """
    text = text.strip()
    if ".." in text:
        low_text, _, high_text = text.partition("..")
        try:
            low, high = int(low_text), int(high_text)
        except ValueError:
            raise ValueError(f"range {text!r} needs two integers, as in 1024..65536") from None
        for value in (low, high):
            if value <= 0 or value & (value - 1):
                raise ValueError(f"range {text!r}: {value} is not a positive power of two "
                                 f"(use a comma list for other lengths)")
        if low > high:
            raise ValueError(f"range {text!r} is reversed; write {high}..{low}")
        return [2**k for k in range(low.bit_length() - 1, high.bit_length())]
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError("no lengths given; write A..B (powers of two) or a comma list "
                         "such as 256,1024")
    lengths = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{part!r} in {text!r} is not an integer length") from None
        if value <= 0:
            raise ValueError(f"length {value} in {text!r} is not positive")
        lengths.append(value)
    return sorted(set(lengths))


def validated_models(names: Sequence[str]) -> list[str]:
    """Distinct backbone names in order, each resolved (built-in, plugin or import path).

    ``ConfigError`` on the ``model`` field: an unknown name (listing the valid ones), or a
    plugin that does not import or keep the protocol (naming it).
    """
    from models import backbone, registered_backbones

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
    from envs import expand

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

