"""The actor-critic that wraps any backbone: encoder -> memory -> policy and value heads.

The defaults are the network of Lu et al. (2023), the same for their S5 and GRU agents
(popjaxrl ``algorithms/ppo_s5.py`` ``ActorCriticS5`` and ``ppo_gru.py`` ``ActorCriticRNN``):
every bias starts at zero, every hidden layer is followed by a leaky ReLU, and

- encoder: Dense 128 -> Dense 256 (orthogonal, scale sqrt 2), then the backbone;
- actor: Dense 128 -> Dense 128 (orthogonal, scale 2) -> Dense n_actions (scale 0.01);
- critic: Dense 128 -> Dense 128 (orthogonal, scale 2) -> Dense 1 (scale 1.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import flax.linen as nn
import jax

from models.base import Carry
from models.heads import ActionSpec, PolicyHead


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The layers around the backbone. Defaults are the paper's (see the module docstring)."""

    encoder: tuple[int, ...] = (128, 256)  # Dense widths before the backbone (orthogonal sqrt 2)
    head: tuple[int, ...] = (128, 128)  # hidden widths of the actor and of the critic
    head_scale: float = 2.0  # orthogonal init scale of the heads' hidden layers

    def __post_init__(self):
        # JSON and --set give lists; the config stays hashable and comparable as tuples.
        object.__setattr__(self, "encoder", tuple(int(w) for w in self.encoder))
        object.__setattr__(self, "head", tuple(int(w) for w in self.head))
        if not self.encoder:
            raise ValueError("network.encoder needs at least one layer")
        if any(w <= 0 for w in (*self.encoder, *self.head)):
            raise ValueError(f"network widths must be positive, got encoder {self.encoder} "
                             f"and head {self.head}")
        if not self.head_scale > 0:
            raise ValueError(f"network.head_scale must be positive, got {self.head_scale}")

    @classmethod
    def single_layer(cls, width: int) -> NetworkConfig:
        """One encoder layer and one hidden layer per head, all of ``width``, scale sqrt 2.

        s5bench's smaller network: the ``quick`` preset's and the speed benchmark's.
        """
        return cls(encoder=(width,), head=(width,), head_scale=math.sqrt(2))


class ActorCritic(nn.Module):
    """Observation encoder, a Memory backbone, a policy head and a value head.

    The PPO loop uses only ``apply(params, carry, obs, resets)`` and
    ``initialize_carry(batch_size)``; which backbone sits inside is invisible to it.
    """

    backbone: nn.Module
    action_spec: ActionSpec
    network: NetworkConfig = NetworkConfig()

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        return self.backbone.initialize_carry(batch_size)

    @nn.compact
    def __call__(self, carry: Carry, obs: jax.Array, resets: jax.Array):
        """Evaluate the policy over a sequence.

        Args:
          carry: the backbone carry before step 0 (leading dimension B).
          obs: ``[T, B, D]`` float32 encoded observations.
          resets: ``[T, B]`` bool, True where step t starts an episode.

        Returns:
          ``(carry, pi, value)``: the carry after step T-1, a distribution with batch
          shape ``[T, B]`` and the value estimates ``[T, B]`` float32.
        """
        # Layers keep flax's automatic names (Dense_0, Dense_1, ... in the order below), so
        # checkpoints written before the network became configurable still restore.
        x = _mlp(obs, self.network.encoder, math.sqrt(2))
        carry, features = self.backbone(carry, x, resets)
        actor = _mlp(features, self.network.head, self.network.head_scale)
        pi = PolicyHead(self.action_spec)(actor)
        critic = _mlp(features, self.network.head, self.network.head_scale)
        value = _dense(1, 1.0)(critic)[..., 0]
        return carry, pi, value


def _dense(width: int, scale: float) -> nn.Dense:
    return nn.Dense(width, kernel_init=nn.initializers.orthogonal(scale))


def _mlp(x: jax.Array, widths: tuple[int, ...], scale: float) -> jax.Array:
    """Dense layers of ``widths`` (orthogonal ``scale``, zero bias), each + leaky ReLU."""
    for width in widths:
        x = nn.leaky_relu(_dense(width, scale)(x))
    return x
