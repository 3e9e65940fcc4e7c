"""Which plugins a run used, as config.json and meta.json record them, and the resume check.

A run made with a plugin backbone or environment records, for each, its name, import path,
distribution and version (``models.plugins.Provenance``). Resuming, merging or rebuilding
such a run needs the same plugin: ``check_recorded`` names the first one that no longer
imports here or comes from another distribution or version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envs.registry import plugin
from models import backbone


def plugin_records(models: Iterable[str], env_ids: Iterable[str]) -> list[dict[str, Any]]:
    """One record per distinct plugin among ``models`` and ``env_ids`` (built-ins: none).

    The names must already resolve (validated before).
    """
    found = [backbone(name).plugin for name in dict.fromkeys(models)]
    found += [plugin(env_id) for env_id in dict.fromkeys(env_ids)]
    return [provenance.record() for provenance in found if provenance is not None]


def run_plugins(configs: Sequence[Any]) -> list[dict[str, Any]]:
    """``plugin_records`` of the backbones and environments of some ``RunConfig``s."""
    return plugin_records([c.model for c in configs], [c.env.env_id for c in configs])


def check_recorded(records: Iterable[Mapping[str, Any]]) -> None:
    """Every recorded plugin resolves here to the same import path, distribution, version.

    Raises:
      ValueError: one line naming the first plugin that does not, and why.
    """
    for record in records:
        name, kind = record["name"], record["kind"]
        used = (f"{kind} plugin {name} ({record['distribution'] or 'not packaged'} "
                f"{record['version'] or ''}".rstrip() + f", {record['import_path']})")
        try:
            here = backbone(name).plugin if kind == "backbone" else plugin(name)
        except ValueError as error:
            raise ValueError(f"the run used {used}, which cannot be used here: "
                             f"{error}") from None
        found = {} if here is None else here.record()
        for field in ("import_path", "distribution", "version"):
            if found.get(field) != record[field]:
                now = "a built-in" if here is None else here.describe()
                raise ValueError(f"the run used {used}, but here it is {now}; install "
                                 f"the version the run used to resume it")
