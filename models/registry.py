"""The backbone registry: built-ins and plugins, resolved by one path.

A name resolves (``backbone(name)``) to a ``Backbone``: a config class that keeps the
``BackboneConfig`` protocol, and, for a plugin, where it came from. Names are

- the built-ins of ``BACKBONES`` (``s5``, ``gru``, ...);
- the entry points of installed distributions in the group ``s5bench.backbones``
  (``elman = "package.module:ElmanConfig"`` in their ``pyproject.toml``);
- an import path ``package.module:ConfigClass``, for a model that is not packaged.

Built-ins pass the same checks as plugins, so whatever a built-in can do (every command,
``s5bench check``, resume, merge) a plugin can too. An unknown name, an import that fails,
a class that does not keep the protocol, or a name claimed twice raises a ``PluginError``
(a ValueError) naming the plugin and the problem.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from models.attention import AttentionConfig
from models.base import Memory
from models.lru import LRUConfig
from models.mamba import MambaConfig
from models.mingru import MinGRUConfig
from models.mlp import MLPConfig
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
from models.rnn import GRUConfig, LSTMConfig
from models.s5 import S5Config
from models.trxl import TrXLConfig

GROUP = "s5bench.backbones"

# The built-in backbones: name -> config class.
BACKBONES: dict[str, type] = {
    "s5": S5Config,
    "gru": GRUConfig,
    "lstm": LSTMConfig,
    "trxl": TrXLConfig,
    "attention": AttentionConfig,
    "lru": LRUConfig,
    "mamba": MambaConfig,
    "mingru": MinGRUConfig,
    "mlp": MLPConfig,
}



@runtime_checkable
class BackboneConfig(Protocol):
    """What every backbone's config class keeps, built-in or plugin.

    The class is a frozen dataclass whose defaults are the backbone's paper-sized settings
    (``cls()`` must construct) and that rebuilds from the JSON of ``dataclasses.asdict``
    (``cls(**fields)``: config.json keeps every run's backbone that way).

    Optional members the commands use when present, each as a built-in does:

    - an ``evaluation`` field (``parallel``, ``sequential`` or ``auto``): ``speed`` times
      both evaluations and ``check`` tests them equal; a ``resolved_evaluation`` property
      (what ``auto`` means on this backend) is recorded in meta.json;
    - ``with_reach(steps) -> config``: the config seeing at least ``steps`` steps back
      (``memory`` calls it with the episode's length; attention's cache).
    """

    def build(self) -> Memory:
        """The flax module (a Memory: ``initialize_carry(B)``, ``__call__``)."""
        ...

    @classmethod
    def quick(cls) -> BackboneConfig:
        """A CPU-sized instance (the ``quick`` preset's)."""
        ...

    def sized(self, d_model: int, num_layers: int) -> BackboneConfig:
        """This config at another width and depth (``speed``'s ``--d-model``, ``--layers``)."""
        ...


@dataclass(frozen=True)
class Backbone:
    """A resolved backbone: its name, its config class and, for a plugin, its provenance."""

    name: str
    config_class: type
    plugin: Provenance | None = None  # None: built into s5bench


def registered_backbones() -> list[str]:
    """The built-in names, then every installed plugin's entry-point name in alphabetical
    order (none imported)."""
    return list(BACKBONES) + sorted(name for name in entry_points(GROUP)
                                    if name not in BACKBONES)


def backbone(name: str) -> Backbone:
    """Resolve ``name`` (built-in, entry point or import path) and check its config class.

    Raises:
      PluginError: the name is unknown (the valid ones are listed), claimed by more than
        one source, fails to import, or names a class that breaks the protocol.
    """
    if is_import_path(name):
        plugin = import_path_provenance(name, "backbone")
        return Backbone(name, check_config_class(load_object(name, "backbone"), plugin),
                        plugin)
    points = entry_points(GROUP).get(name, [])
    if len(points) + (name in BACKBONES) > 1:
        raise clash_error("backbone", name, name in BACKBONES, points)
    if name in BACKBONES:
        return Backbone(name, check_config_class(BACKBONES[name], None))
    if not points:
        raise PluginError(f"unknown model {name!r}; valid models: "
                          f"{', '.join(registered_backbones())}, or an import path "
                          f"package.module:ConfigClass")
    plugin = entry_point_provenance(points[0], "backbone")
    return Backbone(name, check_config_class(load_entry_point(points[0], "backbone"), plugin),
                    plugin)


def backbone_config_class(name: str) -> type:
    """The config class ``name`` resolves to; a ValueError (``PluginError``) if none."""
    return backbone(name).config_class


def check_config_class(cls: object, plugin: Provenance | None) -> type:
    """``cls`` if it keeps the ``BackboneConfig`` protocol, else a ``PluginError`` saying why.

    Checks what can be checked without JAX: a class, a frozen dataclass, ``build``,
    ``quick`` and ``sized`` present, and ``cls()`` and ``cls.quick()`` constructing
    instances of it. Whether the built module keeps the Memory contract is
    ``s5bench check``'s to say.
    """
    where = f"backbone plugin {plugin.describe()}" if plugin else f"built-in backbone {cls!r}"
    if not isinstance(cls, type):
        raise PluginError(f"{where}: is not a class ({type(cls).__name__}); expected "
                          f"a backbone config class")
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise PluginError(f"{where}: {cls.__name__} is not a frozen dataclass "
                          f"(@dataclass(frozen=True))")
    missing = [m for m in ("build", "quick", "sized") if not callable(getattr(cls, m, None))]
    if missing:
        raise PluginError(f"{where}: {cls.__name__} has no {', '.join(missing)} method "
                          f"(see models.registry.BackboneConfig)")
    for label, make in (("the defaults", cls), ("quick()", cls.quick)):
        try:
            config = make()
        except Exception as error:  # noqa: BLE001 (a plugin's constructor may raise anything)
            raise PluginError(f"{where}: {cls.__name__} does not construct from "
                              f"{label}: {type(error).__name__}: {error}") from None
        if not isinstance(config, cls):
            raise PluginError(f"{where}: {cls.__name__}.{label} returns a "
                              f"{type(config).__name__}, not a {cls.__name__}")
    return cls
