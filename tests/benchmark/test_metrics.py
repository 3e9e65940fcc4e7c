"""Return summaries and MMER (benchmark/metrics.py, the summary's columns), hand-checked."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.experiments.cells import summarize_returns
from benchmark.metrics import max_mean_episodic_return, mmer_per_seed


def test_summarize_returns_hand_checked():
    """final = mean of the last 10% of updates; best = best window of that length."""
    nan = math.nan
    returns = np.array([
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
        [0, 0, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, nan, 1],
        [nan] * 20,
    ], dtype=float)
    final, best = summarize_returns(returns)  # window = 2 updates
    np.testing.assert_allclose(final[:2], [18.5, 1.0])
    np.testing.assert_allclose(best[:2], [18.5, 9.0])
    assert math.isnan(final[2]) and math.isnan(best[2])


def test_mmer_is_max_over_updates_ignoring_empty_updates():
    """MMER is the largest per-update mean return; updates with no episode do not count."""
    nan = math.nan
    mmer = max_mean_episodic_return(np.array([[0.1, nan, 0.7, 0.2], [nan, nan, nan, nan]]))
    assert mmer[0] == pytest.approx(0.7) and math.isnan(mmer[1])


def test_mmer_from_a_hand_worked_curves_table():
    """MMER per run from curves.csv rows: each seed's best update (empty updates skipped);
    a table reports the mean over seeds."""
    nan = math.nan
    curves = pd.DataFrame({
        "model": ["s5"] * 6 + ["gru"] * 2, "env": ["E"] * 8,
        "seed": [0, 0, 0, 1, 1, 1, 0, 0], "update": [1, 2, 3, 1, 2, 3, 1, 2],
        "mean_return": [0.2, 0.9, 0.4, -1.0, nan, 0.3, nan, nan]})
    per_seed = mmer_per_seed(curves)
    # s5 seed 0: max(0.2, 0.9, 0.4) = 0.9; seed 1: max(-1.0, 0.3) = 0.3 (update 2 had no
    # episode); gru seed 0 finished no episode at all: NaN.
    assert per_seed.loc[("s5", "E", 0)] == pytest.approx(0.9)
    assert per_seed.loc[("s5", "E", 1)] == pytest.approx(0.3)
    assert math.isnan(per_seed.loc[("gru", "E", 0)])
    # Mean over seeds: (0.9 + 0.3) / 2 = 0.6, not the best seed-mean update, which is
    # max((0.2 - 1.0) / 2, 0.9, (0.4 + 0.3) / 2) = 0.9.
    assert per_seed.xs("s5").mean() == pytest.approx(0.6)
