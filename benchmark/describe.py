"""One-line descriptions of the registries, for ``s5bench models`` and ``s5bench envs``, and
the table ``s5bench check`` prints."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from rich.table import Table

from benchmark.config import make_preset
from envs.registry import (
    ALIASES,
    ENVS,
    PLUGIN_SUITE,
    PLUGINS,
    _ensure_gymnax_registered,
    plugin_env_ids,
    resolve,
)
from models import backbone, registered_backbones


def count_params(module, input_size: int) -> int:
    """Parameters of a Memory backbone fed ``input_size`` features (shape-only, no compute)."""
    carry = module.initialize_carry(1)
    inputs = jnp.zeros((1, 1, input_size))
    resets = jnp.zeros((1, 1), bool)
    shapes = jax.eval_shape(module.init, jax.random.key(0), carry, inputs, resets)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


def backbone_lines() -> tuple[list[str], list[str]]:
    """``name  params(quick)  params(paper)  summary`` for every registered backbone.

    Built-ins first, then installed plugins, each plugin line ending with its distribution
    and version. Returns ``(lines, problems)``: a plugin that cannot be resolved or built
    is one problem line naming it, and the others are still listed.
    """
    lines, problems = [], []
    for name in registered_backbones():
        try:
            entry = backbone(name)
            counts = []
            for preset in ("quick", "paper"):
                config = make_preset(preset, name)
                counts.append(count_params(config.backbone.build(), config.network.encoder[-1]))
        except Exception as error:  # noqa: BLE001 (a plugin may fail in any way; list the rest)
            problems.append(str(error) if isinstance(error, ValueError)
                            else f"backbone {name!r}: {type(error).__name__}: {error}")
            continue
        summary = (entry.config_class.__doc__ or "").strip().split(".")[0]
        origin = (f"  [plugin: {entry.plugin.distribution} {entry.plugin.version}, "
                  f"{entry.plugin.import_path}]" if entry.plugin else "")
        lines.append(f"{name:<9} quick {counts[0]:>9,} params  paper {counts[1]:>10,} params"
                     f"  {summary}{origin}")
    return lines, problems


def env_lines(suite: str | None = None) -> tuple[list[str], list[str]]:
    """``env_id  suite  aliases`` for every registered environment (optionally one suite).

    Installed plugins are listed in the suite ``plugin`` with their distribution and
    version. Returns ``(lines, problems)``: a plugin that cannot be resolved is one
    problem line naming it, and the others are still listed.
    """
    problems = []
    for env_id in plugin_env_ids():
        try:
            resolve(env_id)
        except ValueError as error:
            problems.append(str(error))
    _ensure_gymnax_registered()
    suites = sorted({entry.suite for entry in ENVS.values()} | {PLUGIN_SUITE})
    if suite is not None and suite not in suites:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(suites)}")
    aliases: dict[str, list[str]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    lines = []
    for env_id, entry in ENVS.items():
        if suite is None or entry.suite == suite:
            also = f"  (also: {', '.join(aliases[env_id])})" if env_id in aliases else ""
            origin = PLUGINS.get(env_id)
            if origin is not None:
                also += (f"  [plugin: {origin.distribution} {origin.version}, "
                         f"{origin.import_path}]")
            lines.append(f"{env_id:<34} {entry.suite:<7}{also}")
    return lines, problems


def check_table(results: dict[str, list]) -> Table:
    """One row per subject and property (``conformance.PropertyResult``): the measured
    maximum error, the tolerance and whether it holds."""
    table = Table(title="s5bench check: max error (mixed abs/rel, |a-b|/(1+|b|)) against "
                        "tolerance")
    for column in ("subject", "property", "max error", "tolerance", "result"):
        table.add_column(column, justify="right" if column in ("max error", "tolerance")
                         else "left")
    for subject, rows in results.items():
        for result in rows:
            verdict = "ok" if result.passed else f"FAIL {result.note}".strip()
            table.add_row(subject, result.name, f"{result.error:.2e}",
                          f"{result.tolerance:.0e}", verdict)
    return table
