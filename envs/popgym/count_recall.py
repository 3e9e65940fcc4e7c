"""JAX port of popgym's ``CountRecall`` (``popgym/envs/count_recall.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). Two independently shuffled decks of ``N = 52 * num_decks`` cards are dealt in
parallel, one card of each per step: a *value* card and a *query* card, both reduced to
their kind (colour, suit or rank, ``K`` distinct kinds). At each step the agent must say
how many value cards of the kind of the previous query have been dealt so far (the count
includes the value card shown with that query). Each step pays ``+1/(N-1)`` if the count
is right and ``-1/(N-1)`` otherwise, so returns lie in ``[-1, 1]``; a uniformly random
policy over the ``M + 1`` actions (``M = N / K``, the most cards of one kind) scores
``2/(M+1) - 1`` in expectation. The episode terminates after ``N - 1`` steps, when both
decks are empty; it is never truncated. popgym's ``error_clamp`` argument is unused by
popgym itself and is not ported. An out-of-range action is simply a wrong answer (counts
lie in ``[0, M]``), as in popgym.

Observation: int32 ``[value kind, query kind]`` (``MultiDiscrete([K, K])``, popgym's own
space). Action: ``Discrete(M + 1)``, the count.

Kinds: card ``j`` has colour ``j % 2``, suit ``j % 4`` and rank ``j // 4 % 13`` (popgym's
``Deck.colors_idx``, ``suits_idx``, ``ranks_idx``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.popgym.cards import DECK_SIZE, NUM_RANKS, NUM_SUITS, rank_of, shuffled_deck, suit_of
from envs.spaces import MultiDiscrete

KINDS = {
    "colors": (2, lambda card: card % 2),
    "suits": (NUM_SUITS, suit_of),
    "ranks": (NUM_RANKS, rank_of),
}


@struct.dataclass
class EnvState(environment.EnvState):
    value_cards: jax.Array  # [N] int32, value-deck card indices in dealt order
    query_cards: jax.Array  # [N] int32, query-deck card indices in dealt order
    counts: jax.Array  # [K] int32, value cards of each kind dealt so far
    time: int  # steps taken; cards ``time`` of both decks are on show


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000_000  # never reached: episodes terminate first


class CountRecall(environment.Environment[EnvState, EnvParams]):
    """Count the dealt cards of the queried kind. See the module docstring."""

    def __init__(self, num_decks: int = 1, deck_type: str = "colors"):
        super().__init__()
        if deck_type not in KINDS:
            raise ValueError(f"deck_type must be one of {sorted(KINDS)}, not {deck_type!r}")
        self.num_decks = num_decks
        self.deck_type = deck_type
        self.num_cards = DECK_SIZE * num_decks
        self.num_kinds, self._kind_of = KINDS[deck_type]
        self.max_card_count = self.num_cards // self.num_kinds
        self.episode_length = self.num_cards - 1

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def kind_of(self, card: jax.Array) -> jax.Array:
        return self._kind_of(card)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        t = state.time
        prev_count = state.counts[self.kind_of(state.query_cards[t])]
        scale = 1.0 / self.episode_length
        reward = jnp.where(action == prev_count, scale, -scale)
        value = self.kind_of(state.value_cards[t + 1])
        state = state.replace(counts=state.counts.at[value].add(1), time=t + 1)
        terminated = t + 1 >= self.episode_length
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        k_value, k_query = jax.random.split(key)
        value_cards = shuffled_deck(k_value, self.num_decks)
        counts = jnp.zeros(self.num_kinds, jnp.int32).at[self.kind_of(value_cards[0])].add(1)
        state = EnvState(
            value_cards=value_cards,
            query_cards=shuffled_deck(k_query, self.num_decks),
            counts=counts,
            time=jnp.int32(0),
        )
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        t = state.time
        return jnp.stack(
            [self.kind_of(state.value_cards[t]), self.kind_of(state.query_cards[t])]
        ).astype(jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= self.episode_length

    @property
    def name(self) -> str:
        return "CountRecall"

    @property
    def num_actions(self) -> int:
        return self.max_card_count + 1

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.max_card_count + 1)

    def observation_space(self, params=None) -> MultiDiscrete:
        return MultiDiscrete([self.num_kinds, self.num_kinds])


TRUNCATES = False  # episodes end only by termination (tests/envs/test_registry.py checks it)

VARIANTS = {
    "CountRecallEasy": lambda: CountRecall(num_decks=1, deck_type="colors"),
    "CountRecallMedium": lambda: CountRecall(num_decks=2, deck_type="suits"),
    "CountRecallHard": lambda: CountRecall(num_decks=4, deck_type="ranks"),
}
