"""MMER, the score POPGym and Lu et al. (2023) report, defined once (numpy and pandas only).

MMER (maximum mean episodic return) is computed per run, i.e. per seed: the largest, over
updates, of the update's mean episodic return. A table reports its mean and spread over
seeds. ``summary.csv``'s ``mmer`` column, ``aggregate.csv`` and the POPGym figures all come
from ``max_mean_episodic_return``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def max_mean_episodic_return(mean_return: np.ndarray) -> np.ndarray:
    """MMER per seed: the largest per-update mean episodic return, ``[S, U] -> [S]``.

    Updates in which no episode ended (NaN) are ignored; a seed with none at all is NaN.
    """
    finite = np.where(np.isnan(mean_return), -np.inf, mean_return)
    best = finite.max(axis=1)
    return np.where(np.isinf(best), np.nan, best)


def mmer_per_seed(curves: pd.DataFrame, by: Sequence[str] = ("model", "env")) -> pd.Series:
    """MMER of every run in a tidy ``curves.csv`` table, indexed by ``(*by, seed)``."""
    wide = curves.pivot_table(index=[*by, "seed"], columns="update", values="mean_return",
                              aggfunc="first", dropna=False)
    return pd.Series(max_mean_episodic_return(wide.to_numpy(dtype=float)), index=wide.index,
                     name="mmer")
