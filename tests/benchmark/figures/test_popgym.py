"""The POPGym figures (benchmark/figures/popgym.py): heat map, env order, MMER against time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.figures import draw_figures
from benchmark.figures.popgym import (
    env_order,
    normalise_rows,
    normalised_mmer_vs_time,
    running_mmer,
    split_env_id,
)
from tests.benchmark.figures.support import (
    line_of,
    write_csv,
    write_popgym,
)


def test_popgym_summary_heat_map_writes_each_mmer_and_colours_it_within_its_row(
        tmp_path, drawn):
    """Cells: MMER (each seed's best update, mean over seeds), rows by family then
    difficulty and a last `mean` row; colour: (x - row min) / (row max - row min); below,
    wall time per backbone (mean over envs)."""
    hard, easy = "RepeatPreviousHard", "CountRecallEasy"
    returns = {("s5", hard): [[0.2, 0.6], [0.4, 0.0]],  # seed bests 0.6, 0.4: 0.5
               ("s5", easy): [[1.0, None], [0.0, 0.6]],  # 1.0, 0.6: 0.8
               ("gru", hard): [[0.1, 0.1], [0.3, 0.2]],  # 0.1, 0.3: 0.2
               ("gru", easy): [[-1.0, -0.5], [-0.3, -0.4]],  # -0.5, -0.3: -0.4
               ("lstm", hard): [[0.3, 0.3], [0.5, 0.1]],  # 0.3, 0.5: 0.4
               ("lstm", easy): [[0.0, -0.2], [0.4, None]]}  # 0.0, 0.4: 0.2
    walls = {("s5", hard): 10.0, ("s5", easy): 30.0, ("gru", hard): 4.0, ("gru", easy): 6.0,
             ("lstm", hard): 8.0, ("lstm", easy): 12.0}
    write_popgym(tmp_path / "results" / "popgym" / "r", returns, walls)
    draw_figures(tmp_path / "results", tmp_path / "figures")
    fig = drawn["popgym_summary"]
    (heat,) = [ax for ax in fig.axes if ax.images]
    (bars_ax,) = [ax for ax in fig.axes if ax.containers]
    rows = [t.get_text() for t in heat.get_yticklabels()]
    columns = [t.get_text() for t in heat.get_xticklabels()]
    # CountRecall before RepeatPrevious (families in alphabetical order)
    assert rows == [easy, hard, "mean"] and columns == ["s5", "gru", "lstm"]
    cells = {(rows[round(t.get_position()[1])], columns[round(t.get_position()[0])]):
             t.get_text() for t in heat.texts}
    # mean row: s5 (0.5 + 0.8) / 2 = 0.65, gru (0.2 - 0.4) / 2 = -0.1, lstm (0.4 + 0.2) / 2 = 0.3
    assert cells == {(easy, "s5"): "0.80", (easy, "gru"): "-0.40", (easy, "lstm"): "0.20",
                     (hard, "s5"): "0.50", (hard, "gru"): "0.20", (hard, "lstm"): "0.40",
                     ("mean", "s5"): "0.65", ("mean", "gru"): "-0.10", ("mean", "lstm"): "0.30"}
    # CountRecallEasy: min -0.4, max 0.8: lstm (0.2 + 0.4) / 1.2 = 0.5; RepeatPreviousHard:
    # min 0.2, max 0.5: lstm (0.4 - 0.2) / 0.3 = 2/3; mean: lstm (0.3 + 0.1) / 0.75 = 8/15
    colours = np.asarray(heat.images[0].get_array())
    np.testing.assert_allclose(colours, [[1, 0, 0.5], [1, 0, 2 / 3], [1, 0, 8 / 15]])
    assert "row min" in fig.axes[1].get_xlabel()  # the colour bar states the normalisation
    # Framed: cells whose interval over 2 seeds ([min, max] of the seeds at 95%) overlaps the
    # row best's: CountRecallEasy s5 [0.6, 1.0] alone (lstm [0.0, 0.4], gru [-0.5, -0.3]);
    # RepeatPreviousHard s5 [0.4, 0.6] and lstm [0.3, 0.5], not gru [0.1, 0.3].
    framed = {(rows[round(r.get_y() + 0.42)], columns[round(r.get_x() + 0.46)])
              for r in heat.patches}
    assert framed == {(easy, "s5"), (hard, "s5"), (hard, "lstm")}
    (wall_bars,) = bars_ax.containers
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == ["s5", "gru", "lstm"]
    # s5 (10 + 30) / 2 = 20, gru (4 + 6) / 2 = 5, lstm (8 + 12) / 2 = 10
    assert [p.get_height() for p in wall_bars.patches] == [20.0, 5.0, 10.0]

def test_popgym_summary_marks_a_missing_cell_and_a_mean_over_fewer_envs(tmp_path, drawn):
    """A backbone without an environment gets `–` there, its mean (over the envs it has)
    a `*`, and its cell no colour."""
    returns = {("s5", "A"): [[0.2], [0.4]], ("s5", "B"): [[1.0], [0.6]],
               ("gru", "A"): [[0.0], [0.2]]}
    walls = {("s5", "A"): 1.0, ("s5", "B"): 1.0, ("gru", "A"): 1.0}
    write_popgym(tmp_path / "results" / "popgym" / "r", returns, walls)
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (heat,) = [ax for ax in drawn["popgym_summary"].axes if ax.images]
    # s5: A 0.3, B 0.8, mean 0.55; gru: A 0.1, B none, mean 0.1 over one env
    assert [t.get_text() for t in heat.texts] == ["0.30", "0.10", "0.80", "–", "0.55", "0.10*"]
    assert np.ma.getmaskarray(heat.images[0].get_array()).tolist() == [
        [False, False], [False, True], [False, False]]

def test_popgym_summary_leaves_a_diverged_seed_out_and_marks_its_cell(tmp_path, drawn):
    """A diverged seed counts in no cell (as in aggregate.csv): its cell is the mean of the
    ok seeds, marked with a dagger; the mean row follows."""
    returns = {("s5", "A"): [[0.2], [0.4]], ("gru", "A"): [[0.0], [0.9]]}
    write_popgym(tmp_path / "results" / "popgym" / "r", returns,
                  {("s5", "A"): 1.0, ("gru", "A"): 1.0})
    path = tmp_path / "results" / "popgym" / "r" / "summary.csv"
    summary = pd.read_csv(path)
    summary.loc[(summary.model == "gru") & (summary.seed == 1), "status"] = "diverged"
    summary.to_csv(path, index=False)
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (heat,) = [ax for ax in drawn["popgym_summary"].axes if ax.images]
    # s5 (0.2 + 0.4) / 2 = 0.3; gru 0.0 alone (0.9 diverged), not 0.45
    assert [t.get_text() for t in heat.texts] == ["0.30", "0.00†", "0.30", "0.00"]

def test_env_order_groups_families_then_easy_medium_hard():
    """Env ids sort by family, then Easy < Medium < Hard; ids without a difficulty last."""
    envs = ["RepeatPreviousHard", "CountRecallMedium", "RepeatPreviousEasy", "Odd",
            "CountRecallEasy", "RepeatPreviousMedium"]
    assert env_order(envs) == ["CountRecallEasy", "CountRecallMedium", "Odd",
                               "RepeatPreviousEasy", "RepeatPreviousMedium",
                               "RepeatPreviousHard"]
    assert split_env_id("NoisyPositionOnlyCartPoleMedium") == ("NoisyPositionOnlyCartPole",
                                                               "Medium")
    assert split_env_id("Hard") == ("Hard", "")

def test_normalise_rows_maps_each_row_to_0_1_ties_to_1_and_keeps_nan():
    """(x - row min) / (row max - row min) per row; a row of equal values is 1; NaN stays."""
    table = pd.DataFrame([[1.0, 3.0, 2.0], [-2.0, np.nan, 2.0], [0.5, 0.5, np.nan]])
    np.testing.assert_allclose(normalise_rows(table).to_numpy(),
                               [[0.0, 1.0, 0.5], [0.0, np.nan, 1.0], [1.0, 1.0, np.nan]])

def _curves(cells: dict) -> pd.DataFrame:
    """curves.csv rows: (model, env) -> (wall_s per update, [per seed [return per update]])."""
    return pd.DataFrame([
        {"model": m, "env": e, "seed": s, "update": u + 1, "env_steps": 100 * (u + 1),
         "wall_s": walls[u], "mean_return": r}
        for (m, e), (walls, seeds) in cells.items() for s, per in enumerate(seeds)
        for u, r in enumerate(per)])

# Two backbones, two envs, two seeds, three updates; gru's E1 seed 1 and seed 0 finish
# their first episode late (NaN), and E1/E2 run for different wall times per backbone.
NAN = float("nan")

MMER_VS_TIME = {
    ("s5", "E1"): ([1.0, 2.0, 3.0], [[0.0, 0.4, 0.2], [0.2, 0.2, 0.6]]),
    ("gru", "E1"): ([2.0, 4.0, 6.0], [[0.1, NAN, 0.3], [NAN, 0.1, 0.1]]),
    ("s5", "E2"): ([2.0, 4.0, 6.0], [[1.0, 3.0, 2.0], [3.0, 1.0, 1.0]]),
    ("gru", "E2"): ([1.0, 2.0, 3.0], [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]),
}

def test_running_mmer_is_the_seed_mean_of_each_seeds_best_so_far():
    """Per seed the running max over updates (NaN holds the max so far), then the seed
    mean; an update before every seed has an episode is left out."""
    so_far = running_mmer(_curves(MMER_VS_TIME)).set_index(["model", "env", "update"])
    # s5 E1: seed 0 running 0.0, 0.4, 0.4; seed 1 0.2, 0.2, 0.6: means 0.1, 0.3, 0.5
    assert so_far.loc[("s5", "E1"), "mmer"].tolist() == pytest.approx([0.1, 0.3, 0.5])
    # gru E1: seed 0 0.1, 0.1, 0.3; seed 1 -, 0.1, 0.1: update 1 left out, then 0.1, 0.2
    assert so_far.loc[("gru", "E1"), "mmer"].tolist() == pytest.approx([0.1, 0.2])
    assert so_far.loc[("gru", "E1"), "wall_s"].tolist() == [4.0, 6.0]
    # s5 E2: 1, 3, 3 and 3, 3, 3: 2, 3, 3; gru E2: 0, 1, 2 and 2, 2, 2: 1, 1.5, 2
    assert so_far.loc[("s5", "E2"), "mmer"].tolist() == pytest.approx([2.0, 3.0, 3.0])
    assert so_far.loc[("gru", "E2"), "mmer"].tolist() == pytest.approx([1.0, 1.5, 2.0])

def test_normalised_mmer_vs_time_normalises_per_env_and_averages_on_a_common_grid():
    """Per env (x - lowest MMER so far) / (best final - lowest), each env interpolated onto
    the backbone's time grid (last value held), then the mean over envs."""
    # E1: lowest 0.1, best final 0.5 (s5), span 0.4: s5 0, 0.5, 1 at t 1, 2, 3;
    #     gru 0, 0.25 at t 4, 6.
    # E2: lowest 1 (gru), best final 3 (s5), span 2: s5 0.5, 1, 1 at t 2, 4, 6;
    #     gru 0, 0.25, 0.5 at t 1, 2, 3.
    # s5 grid starts at t=2 (E2's first point): t 2, 3, 4, 6. E1 0.5, 1, 1 (held), 1;
    #     E2 0.5, 0.75 (halfway from 0.5 at t=2 to 1 at t=4), 1, 1: means 0.5, 0.875, 1, 1
    # gru grid starts at t=4 (E1's first point): t 4, 6. E1 0, 0.25; E2 0.5, 0.5 (held):
    #     means 0.25, 0.375
    lines = normalised_mmer_vs_time(_curves(MMER_VS_TIME))
    s5, gru = (lines[lines["model"] == m] for m in ("s5", "gru"))
    assert s5["wall_s"].tolist() == [2.0, 3.0, 4.0, 6.0]
    assert s5["normalised_mmer"].tolist() == pytest.approx([0.5, 0.875, 1.0, 1.0])
    assert gru["wall_s"].tolist() == [4.0, 6.0]
    assert gru["normalised_mmer"].tolist() == pytest.approx([0.25, 0.375])
    assert set(lines["envs"]) == {2}

def test_popgym_mmer_vs_time_draws_one_line_per_backbone(tmp_path, drawn):
    """The figure's lines are normalised_mmer_vs_time's, on a linear axis (2 s to 6 s spans
    less than a decade), titled with the device."""
    run = tmp_path / "results" / "popgym" / "r"
    write_csv(run, "curves.csv", _curves(MMER_VS_TIME).to_dict("records"))
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (ax,) = drawn["popgym_mmer_vs_time"].axes
    assert line_of(ax, "s5") == ([2.0, 3.0, 4.0, 6.0], pytest.approx([0.5, 0.875, 1.0, 1.0]))
    assert line_of(ax, "gru") == ([4.0, 6.0], pytest.approx([0.25, 0.375]))
    assert ax.get_xscale() == "linear"
    assert "on unknown device" in ax.get_title()  # no meta.json in this run folder

def test_popgym_mmer_vs_time_counts_a_tied_env_as_1_and_goes_log_past_a_decade(tmp_path,
                                                                                 drawn):
    """An env where lowest MMER so far == best final counts 1 at every time; a backbone
    with fewer envs says so in its label; times from 1 s to 100 s get a log axis."""
    cells = {("s5", "A"): ([1.0, 10.0, 100.0], [[0.5, 0.5, 0.5]]),
             ("gru", "A"): ([1.0, 10.0, 100.0], [[0.5, 0.2, 0.5]]),
             ("s5", "B"): ([1.0, 10.0, 100.0], [[0.0, 1.0, 1.0]])}
    write_csv(tmp_path / "results" / "popgym" / "r", "curves.csv",
           _curves(cells).to_dict("records"))
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (ax,) = drawn["popgym_mmer_vs_time"].axes
    # A ties at 0.5 (1 throughout); B: lowest 0, best 1: s5 0, 1, 1; s5's mean 0.5, 1, 1
    assert line_of(ax, "s5") == ([1.0, 10.0, 100.0], pytest.approx([0.5, 1.0, 1.0]))
    assert line_of(ax, "gru (1 of 2 envs)") == ([1.0, 10.0, 100.0], [1.0, 1.0, 1.0])
    assert ax.get_xscale() == "log"

def test_popgym_mmer_vs_time_skips_runs_without_wall_s_or_with_one_backbone(tmp_path):
    """Curves from before wall_s was recorded, or a run of one backbone (nothing to
    normalise against), skip the figure with a one-line reason; the others are drawn."""
    old = tmp_path / "results" / "popgym" / "old"
    write_csv(old, "curves.csv", _curves(MMER_VS_TIME).drop(columns="wall_s").to_dict("records"))
    alone = tmp_path / "results" / "popgym" / "alone"
    write_csv(alone, "curves.csv", _curves({("s5", "E1"): MMER_VS_TIME[("s5", "E1")]}).to_dict(
        "records"))
    report = draw_figures(tmp_path / "results", tmp_path / "figures")
    title = "POPGym: normalised MMER against wall-clock time"
    skips = sorted(line for line in report.skipped if line.startswith(title))
    assert skips == [
        f"{title} (popgym/alone): one backbone only (s5): MMER is normalised between "
        "backbones",
        f"{title} (popgym/old): {old / 'curves.csv'} has no wall_s column (a run from before "
        "it was recorded)"]
    assert {f.stem for f in report.figures} >= {"popgym_curves_popgym-old",
                                                "popgym_curves_popgym-alone"}
