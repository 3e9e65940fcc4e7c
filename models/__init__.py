"""Memory backbones behind one contract, and the registry that names them.

A built-in backbone is one module and one entry in ``models.registry.BACKBONES``; a
backbone from another package is a plugin (an entry point in ``s5bench.backbones``, or an
import path ``package.module:ConfigClass``). Both resolve through
``models.registry.backbone`` and keep the ``BackboneConfig`` protocol; ``s5bench check``
(``benchmark/measure/conformance.py``) tests the Memory contract of either. The PPO loop never
names a backbone class.
"""

from __future__ import annotations

from models import _xla_workarounds  # noqa: F401  (must run before JAX starts; see module)
from models.registry import (
    BACKBONES,
    Backbone,
    BackboneConfig,
    backbone,
    backbone_config_class,
    registered_backbones,
)

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneConfig",
    "backbone",
    "backbone_config_class",
    "registered_backbones",
]
