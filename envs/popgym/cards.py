"""Shuffled decks for the POPGym card games (reference: ``popgym.core.deck.Deck``).

popgym keeps a permutation ``idx`` of the ``52 * num_decks`` cards and deals from its end,
so the n-th card dealt is ``idx[-1 - n]``; card ``j`` has suit ``j % 4`` and rank
``j // 4 % 13``. The ports store the dealt order directly: ``suits[n]`` is the suit of the
n-th card dealt.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DECK_SIZE = 52
NUM_SUITS = 4
NUM_RANKS = 13


def shuffled_deck(key: jax.Array, num_decks: int) -> jax.Array:
    """Card indices in the order they are dealt, int32 ``[52 * num_decks]``."""
    return jax.random.permutation(key, DECK_SIZE * num_decks).astype(jnp.int32)


def suit_of(card: jax.Array) -> jax.Array:
    return card % NUM_SUITS


def rank_of(card: jax.Array) -> jax.Array:
    return card // NUM_SUITS % NUM_RANKS

