"""One-line descriptions of the registries, for ``s5bench models`` and ``s5bench envs``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from benchmark.config import make_preset


def count_params(module, input_size: int) -> int:
    """Parameters of a Memory backbone fed ``input_size`` features (shape-only, no compute)."""
    carry = module.initialize_carry(1)
    inputs = jnp.zeros((1, 1, input_size))
    resets = jnp.zeros((1, 1), bool)
    shapes = jax.eval_shape(module.init, jax.random.key(0), carry, inputs, resets)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


def backbone_lines() -> list[str]:
    """``name  params(quick)  params(paper)  summary`` for every registered backbone."""
    from models import BACKBONES

    lines = []
    for name, cls in BACKBONES.items():
        counts = []
        for preset in ("quick", "paper"):
            config = make_preset(preset, name)
            counts.append(count_params(config.backbone.build(), config.network.encoder[-1]))
        summary = (cls.__doc__ or "").strip().split(".")[0]
        lines.append(f"{name:<9} quick {counts[0]:>9,} params  paper {counts[1]:>10,} params"
                     f"  {summary}")
    return lines


def env_lines(suite: str | None = None) -> list[str]:
    """``env_id  suite  aliases`` for every registered environment (optionally one suite)."""
    from envs import ALIASES, ENVS
    from envs.registry import _ensure_gymnax_registered

    _ensure_gymnax_registered()
    suites = sorted({entry.suite for entry in ENVS.values()})
    if suite is not None and suite not in suites:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(suites)}")
    aliases: dict[str, list[str]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    lines = []
    for env_id, entry in ENVS.items():
        if suite is None or entry.suite == suite:
            also = f"  (also: {', '.join(aliases[env_id])})" if env_id in aliases else ""
            lines.append(f"{env_id:<34} {entry.suite:<7}{also}")
    return lines
