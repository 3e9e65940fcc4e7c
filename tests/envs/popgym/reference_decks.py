"""The reference popgym ``Deck`` seen as the ports store decks (tests only)."""

from __future__ import annotations

import numpy as np


def dealt_order_from_reference(idx: np.ndarray, deck_len: int) -> np.ndarray:
    """Translate a reference deck (``Deck.idx`` before any deal) into the dealt order."""
    return np.asarray(idx[:deck_len][::-1], dtype=np.int32)
