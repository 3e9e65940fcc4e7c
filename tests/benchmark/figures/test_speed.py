"""The speed figures (benchmark/figures/speed.py), hand-checked from the plotted lines."""

from __future__ import annotations

import pytest

from benchmark.figures import draw_figures
from tests.benchmark.figures.support import (
    line_of,
    write_csv,
)


def test_speed_ratio_plots_each_time_over_the_faster_s5(tmp_path, drawn):
    """Ratios are time / min(S5 parallel, S5 sequential) at the same T and mode: gru
    0.030 / 0.010 = 3 at T=64 and 0.048 / 0.024 = 2 at T=128; a timeout row is not drawn."""
    speed = [("s5", "parallel", 64, 0.010), ("s5", "parallel", 128, 0.030),
             ("s5", "sequential", 64, 0.020), ("s5", "sequential", 128, 0.024),
             ("gru", "", 64, 0.030), ("gru", "", 128, 0.048),
             ("attention", "", 64, 0.050), ("attention", "", 128, 0.012)]
    rows = [{"model": m, "evaluation": e, "mode": "train", "seq_len": t, "batch": 4,
             "status": "ok", "median_s": s, "device": "cpu"} for m, e, t, s in speed]
    rows.append({"model": "gru", "evaluation": "", "mode": "train", "seq_len": 256,
                 "batch": 4, "status": "timeout", "median_s": None, "device": "cpu"})
    write_csv(tmp_path / "results" / "speed" / "r", "speed.csv", rows)
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (ax,) = drawn["speed_ratio"].axes
    assert line_of(ax, "gru") == ([64, 128], [pytest.approx(3.0), pytest.approx(2.0)])
    # attention: 0.050 / 0.010 = 5 at 64, 0.012 / 0.024 = 0.5 at 128 (faster than S5)
    assert line_of(ax, "attention") == ([64, 128], [pytest.approx(5.0), pytest.approx(0.5)])
    assert line_of(ax, "S5 (= 1)")[1] == [1.0, 1.0]
    assert {line.get_label() for line in ax.get_lines()} == {"gru", "attention", "S5 (= 1)"}
