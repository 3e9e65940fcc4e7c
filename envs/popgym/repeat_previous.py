"""JAX port of popgym's ``RepeatPrevious`` (``popgym/envs/repeat_previous.py``, popgym 1.0.7).

Morad et al., "POPGym" (ICLR 2023). The agent sees one card suit per step and must output
the suit of the card shown ``k`` steps earlier. Steps before ``k`` cards have been seen pay
nothing; afterwards each step pays ``+1/(N-k)`` if right, ``-1/(N-k)`` if wrong
(``N = 52 * num_decks``), so returns lie in ``[-1, 1]`` and a uniformly random policy
scores -0.5 in expectation. The episode
terminates after ``N - 1`` steps and is never truncated. An out-of-range action is a wrong
answer, as in popgym.

Observation: the suit, int32 in ``[0, 4)``. Action: ``Discrete(4)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.popgym.cards import DECK_SIZE, NUM_SUITS, shuffled_deck, suit_of


@struct.dataclass
class EnvState(environment.EnvState):
    cards: jax.Array  # [N] int32, card indices in dealt order
    time: int  # steps taken; card ``time`` is the one on show


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000_000  # never reached: episodes terminate first


class RepeatPrevious(environment.Environment[EnvState, EnvParams]):
    """Output the suit of the card from ``k`` steps ago. See the module docstring."""

    def __init__(self, num_decks: int = 1, k: int = 4):
        super().__init__()
        self.num_decks = num_decks
        self.k = k
        self.num_cards = DECK_SIZE * num_decks
        if self.num_cards <= k:
            raise ValueError(f"k={k} needs more than {self.num_cards} cards")

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        reward_scale = 1.0 / (self.num_cards - self.k)
        cards_seen = state.time + 1  # popgym's hand size before this step's deal
        target = suit_of(state.cards[jnp.maximum(cards_seen - self.k, 0)])
        paid = cards_seen >= self.k
        reward = jnp.where(paid, jnp.where(action == target, reward_scale, -reward_scale), 0.0)
        terminated = state.time + 1 >= self.num_cards - 1
        state = state.replace(time=state.time + 1)
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        state = EnvState(cards=shuffled_deck(key, self.num_decks), time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return suit_of(state.cards[state.time])

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= self.num_cards - 1

    @property
    def name(self) -> str:
        return "RepeatPrevious"

    @property
    def num_actions(self) -> int:
        return NUM_SUITS

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_SUITS)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_SUITS)


TRUNCATES = False  # episodes end only by termination (tests/envs/test_registry.py checks it)

VARIANTS = {
    "RepeatPreviousEasy": lambda: RepeatPrevious(num_decks=1, k=4),
    "RepeatPreviousMedium": lambda: RepeatPrevious(num_decks=2, k=32),
    "RepeatPreviousHard": lambda: RepeatPrevious(num_decks=3, k=64),
}
