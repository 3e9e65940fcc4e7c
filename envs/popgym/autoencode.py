"""JAX port of popgym's ``Autoencode`` (``popgym/envs/autoencode.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). Watch phase: the agent is shown the suits of all ``N = 52 * num_decks`` cards, one
per step (reset shows the first). Play phase: it must then output those suits in *reverse*
order, one per step. Watch steps pay nothing; each play step pays ``+1/N`` if right and
``-1/N`` if wrong, so returns lie in ``[-1, 1]`` and a uniformly random policy scores
-0.5 in expectation. The episode terminates after ``2N - 1`` steps (``N - 1`` watch steps,
``N`` play steps); it is never truncated. An out-of-range action is simply a wrong answer
(it never equals a suit), as in popgym; actions during the watch phase are ignored.

Observation: popgym's ``Tuple(Discrete(2), Discrete(4))`` flattened to int32 ``[mode,
suit]`` (``MultiDiscrete([2, 4])``). ``mode`` is 1 while watching and 0 while playing; as
in popgym, the *last* card is shown with ``mode = 0`` (the deal that empties the deck
switches to play before the observation is made), and every play-phase observation is
``[0, 0]``. Action: ``Discrete(4)``, the suit.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.popgym.cards import DECK_SIZE, NUM_SUITS, shuffled_deck, suit_of
from envs.spaces import MultiDiscrete


@struct.dataclass
class EnvState(environment.EnvState):
    cards: jax.Array  # [N] int32, card indices in dealt order
    time: int  # steps taken; while watching, card ``time`` is the one on show


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000_000  # never reached: episodes terminate first


class Autoencode(environment.Environment[EnvState, EnvParams]):
    """Watch N suits, then repeat them in reverse order. See the module docstring."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks
        self.num_cards = DECK_SIZE * num_decks
        self.episode_length = 2 * self.num_cards - 1

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        n, t = self.num_cards, state.time
        playing = t >= n - 1
        # Play step k = t - (n - 1) recites card n - 1 - k (the last one dealt first).
        target = suit_of(state.cards[jnp.clip(2 * n - 2 - t, 0, n - 1)])
        right = jnp.where(action == target, 1.0 / n, -1.0 / n)
        reward = jnp.where(playing, right, 0.0)
        terminated = t + 1 >= self.episode_length
        state = state.replace(time=t + 1)
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        state = EnvState(cards=shuffled_deck(key, self.num_decks), time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        n, t = self.num_cards, state.time
        mode = (t < n - 1).astype(jnp.int32)
        suit = jnp.where(t < n, suit_of(state.cards[jnp.minimum(t, n - 1)]), 0)
        return jnp.stack([mode, suit]).astype(jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= self.episode_length

    @property
    def name(self) -> str:
        return "Autoencode"

    @property
    def num_actions(self) -> int:
        return NUM_SUITS

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_SUITS)

    def observation_space(self, params=None) -> MultiDiscrete:
        return MultiDiscrete([2, NUM_SUITS])


TRUNCATES = False  # episodes end only by termination (tests/envs/test_registry.py checks it)

VARIANTS = {
    "AutoencodeEasy": lambda: Autoencode(num_decks=1),
    "AutoencodeMedium": lambda: Autoencode(num_decks=2),
    "AutoencodeHard": lambda: Autoencode(num_decks=3),
}
