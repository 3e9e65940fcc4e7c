"""Environment registry: explicit names -> constructors, with aliases and close matches.

``make(env_id)`` returns ``(env, params)`` for any registered id: the POPGym ports (named
exactly as the ``popgym`` package names them), their aliases from the paper's code, the
probes, and every environment gymnax ships. gymnax is imported only when one of its
environments is made, so that importing this module (and ``s5bench --help``) stays fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EnvEntry:
    """A registered environment.

    Attributes:
      factory: builds the environment (a gymnax ``Environment``).
      suite: ``popgym``, ``probe``, ``gymnax`` or another suite name.
      family: the environment family (e.g. ``RepeatFirst``), for ``--env <family>``.
      difficulty: ``Easy``/``Medium``/``Hard`` where the family has them, else ``""``.
      truncates: whether episodes can end by a time limit (``truncated``); if not, the
        PPO loop skips evaluating V(final_observation) at every step.
    """

    factory: Callable[[], Any]
    suite: str
    family: str
    difficulty: str = ""
    truncates: bool = True


ENVS: dict[str, EnvEntry] = {}
ALIASES: dict[str, str] = {}


def register(env_id: str, entry: EnvEntry) -> None:
    """Add ``env_id``; registering a name twice is an error (no silent overwrite)."""
    if env_id in ENVS or env_id in ALIASES:
        raise ValueError(f"environment {env_id!r} is already registered")
    ENVS[env_id] = entry


def register_alias(alias: str, env_id: str) -> None:
    """Make ``alias`` resolve to the registered ``env_id``."""
    if alias in ENVS or alias in ALIASES:
        raise ValueError(f"environment {alias!r} is already registered")
    if env_id not in ENVS:
        raise ValueError(f"alias {alias!r} points to unknown environment {env_id!r}")
    ALIASES[alias] = env_id


def resolve(env_id: str) -> str:
    """The canonical id of ``env_id``; a ValueError names close matches if it is unknown."""
    if env_id in ENVS:
        return env_id
    if env_id in ALIASES:
        return ALIASES[env_id]
    _ensure_gymnax_registered()
    if env_id in ENVS:
        return env_id
    names = list(ENVS) + list(ALIASES) + list(families())
    close = difflib.get_close_matches(env_id, names, n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see `s5bench envs` for the list"
    raise ValueError(f"unknown environment {env_id!r}; {hint}")


def make(env_id: str, **kwargs) -> tuple[Any, Any]:
    """Build the environment registered as ``env_id`` (or an alias) with default params."""
    env = ENVS[resolve(env_id)].factory(**kwargs)
    return env, env.default_params


def families(suite: str | None = None) -> dict[str, list[str]]:
    """Family name -> its registered ids (Easy, Medium, Hard order), optionally one suite."""
    order = {"Easy": 0, "Medium": 1, "Hard": 2}
    out: dict[str, list[str]] = {}
    for env_id, entry in ENVS.items():
        if suite is None or entry.suite == suite:
            out.setdefault(entry.family, []).append(env_id)
    for ids in out.values():
        ids.sort(key=lambda i: order.get(ENVS[i].difficulty, 3))
    return out


def expand(selection: str, suite: str = "popgym") -> list[str]:
    """Turn ``all``, a family name or an env id into the list of env ids it names."""
    if selection == "all":
        return [i for ids in families(suite).values() for i in ids]
    fams = families()
    if selection in fams and selection not in ENVS:
        return fams[selection]
    return [resolve(selection)]


_GYMNAX_DONE = False
# gymnax environments that cannot truncate under their default params (gymnax's time limit
# is never reached first). MemoryChain ends after memory_length + 1 steps (6 by default),
# and ``s5bench memory`` puts the limit past the episode for every length.
_GYMNAX_NEVER_TRUNCATE = ("MemoryChain-bsuite",)


def _ensure_gymnax_registered() -> None:
    """Register every gymnax environment (imports gymnax: about 2 s, so only on demand)."""
    global _GYMNAX_DONE
    if _GYMNAX_DONE:
        return
    _GYMNAX_DONE = True
    import gymnax

    for env_id in gymnax.registered_envs:
        if env_id not in ENVS:
            family = env_id.split("-")[0]
            ENVS[env_id] = EnvEntry(
                factory=lambda _id=env_id, **kw: gymnax.make(_id, **kw)[0],
                suite="gymnax",
                family=family,
                truncates=env_id not in _GYMNAX_NEVER_TRUNCATE,
            )
