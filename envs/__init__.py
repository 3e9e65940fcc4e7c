"""Environments: one registry over the POPGym ports, probes and every gymnax environment.

``make(env_id) -> (env, params)`` builds any registered environment (or alias);
``make_training_env`` adds the wrappers the PPO loop expects (see ``envs/wrappers.py``).
An unknown id raises a ValueError that names close matches.
"""

from __future__ import annotations

# First: gymnax builds arrays at import time, which starts JAX's CPU backend, and the
# XLA:CPU deadlock workaround must be in XLA_FLAGS before that (`import envs` before
# `import models` once hung the memory probe test; see models/_xla_workarounds.py).
from models import _xla_workarounds  # noqa: F401  # isort: skip
from envs import meta_rl as _meta_rl
from envs import popgym as _popgym
from envs.probes import MemoryProbe
from envs.registry import (
    ALIASES,
    ENVS,
    EnvEntry,
    expand,
    families,
    make,
    register,
    register_alias,
    resolve,
)


def _register_builtin() -> None:
    for family, module in _popgym.FAMILIES.items():
        for env_id, factory in module.VARIANTS.items():
            difficulty = env_id[len(family) :]
            # Every family says whether it can truncate (tests/envs/test_registry.py checks).
            register(env_id, EnvEntry(factory, "popgym", family, difficulty, module.TRUNCATES))
    for alias, family in _popgym.FAMILY_ALIASES.items():
        for difficulty in ("Easy", "Medium", "Hard"):
            if f"{family}{difficulty}" in ENVS:
                register_alias(f"{alias}{difficulty}", f"{family}{difficulty}")
    register("MemoryProbe", EnvEntry(MemoryProbe, "probe", "MemoryProbe", truncates=False))
    # Meta-RL (envs/meta_rl.py): the bandit probe's base env, and one MetaEnv per named suite;
    # meta-episodes end by `terminated` only.
    register("DelayedBandit", EnvEntry(_meta_rl.DelayedBandit, "meta", "DelayedBandit",
                                       truncates=False))
    for suite in _meta_rl.suite_names():
        register(suite, EnvEntry(lambda _s=suite, **kw: _meta_rl.make_meta_env(_s, **kw), "meta",
                                 suite, truncates=False))


_register_builtin()

__all__ = [
    "ALIASES",
    "ENVS",
    "EnvEntry",
    "expand",
    "families",
    "make",
    "register",
    "register_alias",
    "resolve",
]
