"""Plugins: backbones and environments from other packages, by entry point or import path.

A plugin comes in one of two ways, both resolved before anything compiles:

- an installed distribution's entry point in a group (``s5bench.backbones`` or
  ``s5bench.envs``), declared ``name = "package.module:object"`` in its ``pyproject.toml``
  and found through ``importlib.metadata``;
- an import path typed on the command line, ``package.module:object`` (as uvicorn and
  gunicorn take an app), for code that is not packaged. The import path is then the name.

Nothing is imported until its name is asked for, so a broken third-party package breaks only
the commands that use it (never ``s5bench --help``). Every plugin resolves to a
``Provenance`` (its import path, distribution and version), which run folders record so a
run can be resumed only with the plugin it was made with. No JAX here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import asdict, dataclass
from typing import Any


class PluginError(ValueError):
    """A plugin that cannot be used; the message names the plugin and the problem."""


@dataclass(frozen=True)
class Provenance:
    """Where a plugin came from; config.json and meta.json keep ``record()``.

    Attributes:
      kind: ``backbone`` or ``env``.
      name: the name runs use: the entry point's name, or the import path itself.
      import_path: ``package.module:object``.
      distribution: the installed distribution that provides it (None: not packaged).
      version: that distribution's version (None: not packaged).
    """

    kind: str
    name: str
    import_path: str
    distribution: str | None
    version: str | None

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``elman (s5bench-example 0.1.0, s5bench_example.elman:ElmanConfig)``."""
        origin = (f"{self.distribution} {self.version}" if self.distribution
                  else "not from an installed distribution")
        if self.name == self.import_path:
            return f"{self.name} ({origin})"
        return f"{self.name} ({origin}, {self.import_path})"


def is_import_path(name: str) -> bool:
    """True for ``package.module:object`` (a registered name never holds a colon)."""
    return ":" in name


def load_object(import_path: str, kind: str) -> Any:
    """Import ``package.module:object`` (the object may be dotted: ``module:Class.attr``).

    Raises:
      PluginError: the path is malformed, the module raises on import (whatever it raises:
        a third-party import error must not escape as a traceback), or lacks the object.
    """
    module_name, _, attribute = import_path.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise PluginError(f"{kind} plugin {import_path!r}: expected an import path "
                          f"package.module:object")
    try:
        obj = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 (any import failure is the plugin's problem)
        raise PluginError(f"{kind} plugin {import_path!r} does not import: "
                          f"{_one_line(error)}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{kind} plugin {import_path!r}: module {module_name!r} has "
                              f"no {attribute!r}") from None
    return obj


def import_path_provenance(import_path: str, kind: str) -> Provenance:
    """The provenance of an import path: the distribution its top-level package is from."""
    top = import_path.partition(":")[0].split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    distribution = names[0] if names else None
    version = importlib.metadata.version(distribution) if distribution else None
    return Provenance(kind, import_path, import_path, distribution, version)


def entry_points(group: str) -> dict[str, list[importlib.metadata.EntryPoint]]:
    """Entry-point name -> every entry point of that name in ``group`` (more: a clash).

    Reads the installed distributions' metadata only; imports nothing.
    """
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for point in importlib.metadata.entry_points(group=group):
        found.setdefault(point.name, []).append(point)
    return found


def entry_point_provenance(point: importlib.metadata.EntryPoint, kind: str) -> Provenance:
    dist = point.dist
    return Provenance(kind, point.name, point.value, dist.name if dist else None,
                      dist.version if dist else None)


def load_entry_point(point: importlib.metadata.EntryPoint, kind: str) -> Any:
    """The object an entry point names; ``PluginError`` naming it if it fails to import."""
    try:
        return point.load()
    except Exception as error:  # noqa: BLE001 (any import failure is the plugin's problem)
        where = entry_point_provenance(point, kind).describe()
        raise PluginError(f"{kind} plugin {where} does not import: "
                          f"{_one_line(error)}") from None


def clash_error(kind: str, name: str, builtin: bool,
                points: list[importlib.metadata.EntryPoint]) -> PluginError:
    """The error for a name claimed by a built-in and a plugin, or by several plugins."""
    claims = (["s5bench's built-in"] if builtin else []) + sorted(
        entry_point_provenance(point, kind).describe() for point in points)
    return PluginError(f"{kind} name {name!r} is claimed by {' and by '.join(claims)}; "
                       f"uninstall one, or name a plugin by its import path "
                       f"(package.module:object)")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
