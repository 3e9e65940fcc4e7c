"""JAX port of popgym's ``HigherLower`` (``popgym/envs/higher_lower.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). The agent sees the rank of the card on show and guesses whether the next card of a
shuffled ``N = 52 * num_decks`` deck is higher (action 0) or lower (action 1). A right
guess pays ``+1/N``, a wrong one ``-1/N``, and a tie (same rank) pays 0 whatever the
guess. Returns lie in ``[-1, 1]``: a uniformly random policy scores 0 in expectation and
a policy that knows the deck scores ``(N - 1 - ties) / N``, ``12/13`` on average (the
``N - 1`` pairs contain ``4 * num_decks - 1`` ties on average). The episode terminates
after ``N - 1`` steps, when the deck is empty; it is never truncated.

Out-of-range actions: as in popgym, only action 0 means "higher"; every other value,
out-of-range ones included, means "lower".

Observation: the rank, int32 in ``[0, 13)`` (``Discrete(13)``; card ``j`` has rank
``j // 4 % 13``). Action: ``Discrete(2)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.popgym.cards import DECK_SIZE, NUM_RANKS, rank_of, shuffled_deck


@struct.dataclass
class EnvState(environment.EnvState):
    cards: jax.Array  # [N] int32, card indices in dealt order
    time: int  # steps taken; card ``time`` is the one on show


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000_000  # never reached: episodes terminate first


class HigherLower(environment.Environment[EnvState, EnvParams]):
    """Guess whether the next card is higher or lower. See the module docstring."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks
        self.num_cards = DECK_SIZE * num_decks
        self.episode_length = self.num_cards - 1

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        t = state.time
        curr, nxt = rank_of(state.cards[t]), rank_of(state.cards[t + 1])
        guess_higher = action == 0
        scale = 1.0 / self.num_cards
        reward = jnp.where(nxt == curr, 0.0,
                           jnp.where((nxt > curr) == guess_higher, scale, -scale))
        terminated = t + 1 >= self.episode_length
        state = state.replace(time=t + 1)
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        state = EnvState(cards=shuffled_deck(key, self.num_decks), time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return rank_of(state.cards[state.time]).astype(jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= self.episode_length

    @property
    def name(self) -> str:
        return "HigherLower"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_RANKS)


TRUNCATES = False  # episodes end only by termination (tests/envs/test_registry.py checks it)

VARIANTS = {
    "HigherLowerEasy": lambda: HigherLower(num_decks=1),
    "HigherLowerMedium": lambda: HigherLower(num_decks=2),
    "HigherLowerHard": lambda: HigherLower(num_decks=3),
}
