"""JAX port of popgym's ``Concentration`` (``popgym/envs/concentration.py``, popgym 1.0.7).

Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning" (ICLR
2023). The game of memory: ``N = 52 * num_decks`` cards lie face down; each action flips
the card at one position. Cards are matched by kind (colour: card ``j`` has colour
``j % 2``; or rank: ``j // 4 % 13``). A turn is two flips:

- flipping a card that is already face up (as first or second flip) pays
  ``failure * (cards in play)`` (``failure = -1/L``, see below) and ends the turn;
- a second flip whose card has the kind of the first (and is not the same position) pays
  ``success = 1 / (N // 2)`` and leaves both cards face up;
- any other second flip pays ``2 * failure`` and turns both cards face down again;
- a first flip pays 0.

The episode terminates when every card is face up and is truncated after
``L = ceil(2N - N / (2N - 1))`` steps (104 for one deck, 208 for two), the expected length
of a perfect player's game; gymnax truncates through ``max_steps_in_episode = L`` exactly
where popgym does. A perfect-memory player scores exactly 1 (``N/2`` matches); a random
player scores well below 0 (see the tests for the reference numbers).

Observation: int32 ``[N]`` (``MultiDiscrete([K + 1] * N)``, popgym's own space): each
position shows the kind of its card if it is face up or was flipped this step, else
``K`` (face down), ``K`` being the number of kinds. As in popgym, the observation after
a failed second flip still shows both flipped cards (they turn face down afterwards).

Out-of-range actions (popgym raises IndexError for ``a >= N`` and wraps negative ones):
an action outside ``[0, N)`` is an invalid flip, treated like flipping a card that is
already face up: it pays ``failure * (cards in play, counting it)``, ends the turn and
reveals nothing.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.popgym.cards import DECK_SIZE, NUM_RANKS, rank_of, shuffled_deck
from envs.spaces import MultiDiscrete

KINDS = {
    "colors": (2, lambda card: card % 2),
    "ranks": (NUM_RANKS, rank_of),
}


@struct.dataclass
class EnvState(environment.EnvState):
    cards: jax.Array  # [N] int32, the card index lying at each position
    face_up: jax.Array  # [N] bool, matched cards
    pending: jax.Array  # int32, position of this turn's first flipped card, -1 if none
    shown: jax.Array  # [2] int32, positions flipped on the last step (-1: none)
    time: int  # steps taken


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 104  # set to the variant's L by ``default_params``


class Concentration(environment.Environment[EnvState, EnvParams]):
    """Flip pairs of cards to find matching kinds. See the module docstring."""

    def __init__(self, num_decks: int = 1, deck_type: str = "ranks"):
        super().__init__()
        if deck_type not in KINDS:
            raise ValueError(f"deck_type must be one of {sorted(KINDS)}, not {deck_type!r}")
        self.num_decks = num_decks
        self.deck_type = deck_type
        self.num_cards = n = DECK_SIZE * num_decks
        self.num_kinds, self._kind_of = KINDS[deck_type]
        self.facedown = self.num_kinds
        self.episode_length = math.ceil(2 * n - (n / (2 * n - 1)))
        self.success_reward = 1 / (n // 2)
        self.failure_reward = -1 / self.episode_length

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.episode_length)

    def kind_of(self, card: jax.Array) -> jax.Array:
        return self._kind_of(card)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        n = self.num_cards
        action = jnp.asarray(action)
        valid = (action >= 0) & (action < n)
        pos = jnp.clip(action, 0, n - 1).astype(jnp.int32)
        has_pending = state.pending >= 0
        first = jnp.maximum(state.pending, 0)
        in_play = has_pending.astype(jnp.float32) + 1.0

        invalid_flip = ~valid | state.face_up[pos]
        completes_pair = ~invalid_flip & has_pending
        kinds_match = self.kind_of(state.cards[first]) == self.kind_of(state.cards[pos])
        match = completes_pair & kinds_match & (first != pos)
        reward = jnp.where(
            invalid_flip,
            self.failure_reward * in_play,
            jnp.where(completes_pair,
                      jnp.where(match, self.success_reward, 2 * self.failure_reward), 0.0),
        )
        face_up = state.face_up.at[first].set(state.face_up[first] | match)
        face_up = face_up.at[pos].set(face_up[pos] | match)
        starts_turn = ~invalid_flip & ~has_pending
        state = state.replace(
            face_up=face_up,
            pending=jnp.where(starts_turn, pos, -1).astype(jnp.int32),
            shown=jnp.stack([state.pending, jnp.where(valid, pos, -1)]).astype(jnp.int32),
            time=state.time + 1,
        )
        terminated = match & jnp.all(face_up)
        info: dict[str, Any] = {}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info

    def reset_env(self, key, params: EnvParams):
        n = self.num_cards
        state = EnvState(
            cards=shuffled_deck(key, self.num_decks),
            face_up=jnp.zeros(n, bool),
            pending=jnp.int32(-1),
            shown=jnp.full(2, -1, jnp.int32),
            time=jnp.int32(0),
        )
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        positions = jnp.arange(self.num_cards)
        visible = (state.face_up | (positions == state.shown[0])
                   | (positions == state.shown[1]))
        return jnp.where(visible, self.kind_of(state.cards), self.facedown).astype(jnp.int32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.all(state.face_up)

    @property
    def name(self) -> str:
        return "Concentration"

    @property
    def num_actions(self) -> int:
        return self.num_cards

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_cards)

    def observation_space(self, params=None) -> MultiDiscrete:
        return MultiDiscrete([self.num_kinds + 1] * self.num_cards)


TRUNCATES = True  # truncated by its step limit (tests/envs/test_registry.py checks it)

VARIANTS = {
    "ConcentrationEasy": lambda: Concentration(num_decks=1, deck_type="colors"),
    "ConcentrationMedium": lambda: Concentration(num_decks=2, deck_type="colors"),
    "ConcentrationHard": lambda: Concentration(num_decks=1, deck_type="ranks"),
}
