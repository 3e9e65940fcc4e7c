"""The memory-length figure (benchmark/figures/memory.py), hand-checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.figures import draw_figures
from benchmark.figures.memory import memory_success_lengths
from tests.benchmark.figures.support import (
    line_of,
    write_csv,
)


def test_memory_success_length_stops_at_the_first_failed_length():
    """The reported length is the largest one before the first length most seeds fail."""
    summary = pd.DataFrame({
        "model": ["s5"] * 6 + ["mlp"] * 2,
        "memory_length": [4, 4, 8, 8, 16, 16, 4, 4],
        "success": ["True", "True", "True", "False", "True", "True", "False", "False"]})
    assert memory_success_lengths(summary) == {"s5": 4, "mlp": None}

def test_memory_figure_plots_means_bands_times_and_memory(tmp_path, drawn):
    """Return panel: mean over ok seeds with a min-max band (L=4: 1.0 and 0.6 -> 0.8 in
    [0.6, 1.0]; L=8: 0.2 and 0.4 -> 0.3 in [0.2, 0.4], the error seed left out); time panel:
    10 s -> 40 s from L=4 to 8 is slope log 4 / log 2 = 2; memory panel: bytes in MiB."""
    rows = [(4, 0, "ok", 1.0, 10.0, 2 * 2**20), (4, 1, "ok", 0.6, 9.0, 2 * 2**20),
            (8, 0, "ok", 0.2, 40.0, 3 * 2**20), (8, 1, "ok", 0.4, 38.0, 3 * 2**20),
            (8, 2, "error", -5.0, 1.0, 99 * 2**20)]
    write_csv(tmp_path / "results" / "memory" / "r", "summary.csv", [
        {"model": "s5", "memory_length": length, "seed": seed, "status": status,
         "final_return": ret, "wall_s": wall, "memory_bytes": memory}
        for length, seed, status, ret, wall, memory in rows])
    draw_figures(tmp_path / "results", tmp_path / "figures")
    mem_ax, time_ax, ret_ax = drawn["memory_length"].axes
    assert line_of(ret_ax, "s5") == ([4, 8], [pytest.approx(0.8), pytest.approx(0.3)])
    (band,) = ret_ax.collections
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    for length, low, high in ((4, 0.6, 1.0), (8, 0.2, 0.4)):
        ys = vertices[np.isclose(vertices[:, 0], length), 1]
        assert (ys.min(), ys.max()) == (pytest.approx(low), pytest.approx(high))
    assert line_of(time_ax, "s5 (slope 2.00)") == ([4, 8], [10.0, 40.0])
    assert line_of(mem_ax, "s5") == ([4, 8], [2.0, 3.0])
