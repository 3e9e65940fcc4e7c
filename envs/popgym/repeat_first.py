"""JAX port of popgym's ``RepeatFirst`` (``popgym/envs/repeat_first.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). The agent sees one card suit per step and must output, at every step, the suit of
the *first* card of the episode. Each step pays ``+1/(N-1)`` if right and ``-1/(N-1)``
if wrong, ``N = 52 * num_decks``, so returns lie in ``[-1, 1]`` and a uniformly random
policy scores -0.5 in expectation. The episode terminates after ``N - 1`` steps; it is
never truncated. An out-of-range action is simply a wrong answer, as in popgym.

Observation: the suit, int32 in ``[0, 4)`` (``Discrete(4)``). Action: ``Discrete(4)``.
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


class RepeatFirst(environment.Environment[EnvState, EnvParams]):
    """Output the suit of the first card at every step. See the module docstring."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks
        self.num_cards = DECK_SIZE * num_decks

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        reward_scale = 1.0 / (self.num_cards - 1)
        first_suit = suit_of(state.cards[0])
        reward = jnp.where(action == first_suit, reward_scale, -reward_scale)
        # popgym checks for the last card *before* dealing the next one.
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
        return "RepeatFirst"

    @property
    def num_actions(self) -> int:
        return NUM_SUITS

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_SUITS)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_SUITS)


TRUNCATES = False  # episodes end only by termination (tests/envs/test_registry.py checks it)

VARIANTS = {
    "RepeatFirstEasy": lambda: RepeatFirst(num_decks=1),
    "RepeatFirstMedium": lambda: RepeatFirst(num_decks=8),
    "RepeatFirstHard": lambda: RepeatFirst(num_decks=16),
}
