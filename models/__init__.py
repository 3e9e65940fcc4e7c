"""Memory backbones behind one contract, and the registry that names them.

Adding a backbone means one module, one entry in ``BACKBONES`` and passing
``tests/models/test_memory_contract.py``; the PPO loop never names a backbone class.
"""

from __future__ import annotations

from models import _xla_workarounds  # noqa: F401  (must run before JAX starts; see module)
from models.attention import AttentionConfig
from models.lru import LRUConfig
from models.mamba import MambaConfig
from models.mingru import MinGRUConfig
from models.mlp import MLPConfig
from models.rnn import GRUConfig, LSTMConfig
from models.s5 import S5Config
from models.trxl import TrXLConfig

# name -> config class. Each config has ``build() -> nn.Module`` (a Memory),
# ``quick()`` (a CPU-sized preset; the defaults are the paper's) and ``sized(d, layers)``.
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

MEMORY_BACKBONES = tuple(name for name in BACKBONES if name != "mlp")


def backbone_config_class(name: str) -> type:
    """The config class registered as ``name``; a ValueError lists the valid names."""
    try:
        return BACKBONES[name]
    except KeyError:
        valid = ", ".join(BACKBONES)
        raise ValueError(f"unknown model {name!r}; valid models: {valid}") from None
