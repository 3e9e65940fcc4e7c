"""Environment registry: explicit names -> constructors, with aliases and close matches.

``make(env_id)`` returns ``(env, params)`` for any registered id: the POPGym ports (named
exactly as the ``popgym`` package names them), their aliases from the paper's code, the
probes, every environment gymnax ships, and plugins: an installed distribution's entry
point in the group ``s5bench.envs``, or an import path ``package.module:factory`` typed as
the id. A plugin's factory is gymnax-style, ``make(**kwargs) -> (env, params)``; its
attribute ``truncates`` (default True) says whether episodes can end by a time limit.
gymnax and plugins are imported only when one of their environments is asked for, so that
importing this module (and ``s5bench --help``) stays fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.plugins import (
    PluginError,
    Provenance,
    clash_error,
    entry_point_provenance,
    entry_points,
    import_path_provenance,
    is_import_path,
    load_entry_point,
    load_object,
)

GROUP = "s5bench.envs"
PLUGIN_SUITE = "plugin"  # the suite every plugin environment is listed under


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
      returns_params: the factory returns ``(env, params)`` (gymnax's ``make`` style, as
        a plugin's does) rather than the environment alone.
    """

    factory: Callable[..., Any]
    suite: str
    family: str
    difficulty: str = ""
    truncates: bool = True
    returns_params: bool = False


# Plugin environments registered so far (on first use): env id -> where it came from.
PLUGINS: dict[str, Provenance] = {}


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
    """The canonical id of ``env_id``; a ValueError names close matches if it is unknown.

    A plugin (an import path, or an entry point's name) is imported and registered here;
    a plugin that fails to import, or a name claimed twice, raises ``PluginError``.
    """
    if env_id in PLUGINS:
        return env_id
    if is_import_path(env_id):
        _register_plugin(env_id, load_object(env_id, "env"),
                         import_path_provenance(env_id, "env"))
        return env_id
    points = entry_points(GROUP).get(env_id, [])
    if points:
        builtin = env_id in ENVS or env_id in ALIASES or env_id in _gymnax_ids()
        if builtin or len(points) > 1:
            raise clash_error("env", env_id, builtin, points)
        _register_plugin(env_id, load_entry_point(points[0], "env"),
                         entry_point_provenance(points[0], "env"))
        return env_id
    if env_id in ENVS:
        return env_id
    if env_id in ALIASES:
        return ALIASES[env_id]
    _ensure_gymnax_registered()
    if env_id in ENVS:
        return env_id
    names = list(ENVS) + list(ALIASES) + list(families()) + list(entry_points(GROUP))
    close = difflib.get_close_matches(env_id, names, n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see `s5bench envs` for the list"
    raise ValueError(f"unknown environment {env_id!r}; {hint}, or an import path "
                     f"package.module:factory")


def make(env_id: str, **kwargs) -> tuple[Any, Any]:
    """Build the environment registered as ``env_id`` (or an alias) with its params.

    A plugin's factory must return ``(env, params)``; anything else is a ``PluginError``.
    """
    env_id = resolve(env_id)
    entry = ENVS[env_id]
    built = entry.factory(**kwargs)
    if not entry.returns_params:
        return built, built.default_params
    if not (isinstance(built, tuple) and len(built) == 2 and hasattr(built[0], "step")):
        raise PluginError(f"env plugin {PLUGINS[env_id].describe()}: its factory returned "
                          f"a {type(built).__name__}, not (env, params)")
    return built


def plugin(env_id: str) -> Provenance | None:
    """Where the environment ``env_id`` came from, if it is a plugin (None: built in)."""
    return PLUGINS.get(resolve(env_id))


def plugin_env_ids() -> list[str]:
    """Every installed env plugin's entry-point name, alphabetically (none imported)."""
    return sorted(entry_points(GROUP))


def _register_plugin(env_id: str, factory: Any, provenance: Provenance) -> None:
    """Add a plugin's factory to ``ENVS`` under ``env_id``, checked for what it declares."""
    if not callable(factory):
        raise PluginError(f"env plugin {provenance.describe()}: is not callable ("
                          f"{type(factory).__name__}); expected a factory make() -> "
                          f"(env, params)")
    truncates = getattr(factory, "truncates", True)
    if not isinstance(truncates, bool):
        raise PluginError(f"env plugin {provenance.describe()}: its `truncates` attribute "
                          f"must be True or False, got {truncates!r}")
    ENVS[env_id] = EnvEntry(factory, PLUGIN_SUITE, env_id, truncates=truncates,
                            returns_params=True)
    PLUGINS[env_id] = provenance


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


def _gymnax_ids() -> list[str]:
    _ensure_gymnax_registered()
    return [env_id for env_id, entry in ENVS.items() if entry.suite == "gymnax"]


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
