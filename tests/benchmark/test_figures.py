"""Figures come from CSVs alone: every figure from small fixture runs, clear errors on bad CSVs.

The fixture results folder (tests/fixtures/figures/results) holds one run of each kind: a
memory sweep and a POPGym sweep (trimmed from real tiny runs) and a synthetic speed.csv
in the `s5bench speed` schema, with a timed-out and a skipped row.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark import schema
from benchmark.figures import FigureDataError, draw_figures
from benchmark.figures.data import REQUIRED
from benchmark.figures.memory import memory_success_lengths
from benchmark.figures.popgym import (
    env_order,
    normalise_rows,
    normalised_mmer_vs_time,
    running_mmer,
    split_env_id,
)
from benchmark.figures.style import FORMATS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "figures" / "results"
EXPECTED = ("scaling_speed-fixture", "speed_ratio_speed-fixture",
            "memory_length_memory-fixture", "popgym_curves_popgym-fixture",
            "popgym_summary_popgym-fixture", "popgym_mmer_vs_time_popgym-fixture",
            "return_vs_cost_popgym-fixture", "popgym_intervals_popgym-fixture",
            "popgym_profiles_popgym-fixture", "popgym_improvement_popgym-fixture")
runner = CliRunner()


@pytest.fixture
def results(tmp_path) -> Path:
    """A writable copy of the fixture results folder."""
    copy = tmp_path / "results"
    shutil.copytree(FIXTURES, copy)
    return copy


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_every_figure_is_drawn_as_png_and_svg_with_an_index(tmp_path):
    """Each figure of the fixture runs is written as PNG and SVG and listed in index.md."""
    out = tmp_path / "figures"
    report = draw_figures(FIXTURES, out)
    assert sorted(f.stem for f in report.figures) == sorted(EXPECTED)
    assert report.skipped == []
    for stem in EXPECTED:
        for fmt in FORMATS:
            path = out / f"{stem}.{fmt}"
            assert path.is_file() and path.stat().st_size > 1000, path
    index = (out / "index.md").read_text()
    for stem in EXPECTED:
        assert f"]({stem}.png)" in index
    for kind in ("speed", "memory", "popgym"):
        assert f"`{(FIXTURES / kind / 'fixture').as_posix()}`" in index
    assert "device: cpu (2 cores)" in index
    assert "gru rollout: timeout from T=256" in index  # non-ok speed rows are reported


def test_redrawing_the_same_csvs_gives_identical_svgs(tmp_path):
    """SVGs carry no timestamp or random ids, so unchanged data redraws byte for byte."""
    first, second = tmp_path / "a", tmp_path / "b"
    draw_figures(FIXTURES / "memory", first)
    draw_figures(FIXTURES / "memory", second)
    svg = "memory_length_fixture.svg"
    assert (first / svg).read_bytes() == (second / svg).read_bytes()


def test_absent_data_skips_a_figure_with_a_reason(results, tmp_path):
    """Only a memory run present: its figure is drawn, every other one skipped with a reason."""
    shutil.rmtree(results / "speed")
    shutil.rmtree(results / "popgym")
    report = draw_figures(results, tmp_path / "figures")
    assert [f.kind for f in report.figures] == ["memory_length"]
    assert len(report.skipped) == 9  # scaling, speed_ratio and seven POPGym figures
    assert any("no speed run (speed.csv)" in line for line in report.skipped)
    assert any("no POPGym run" in line for line in report.skipped)


@pytest.mark.parametrize("csv_path,column", [
    ("speed/fixture/speed.csv", "median_s"),
    ("memory/fixture/summary.csv", "final_return"),
    ("popgym/fixture/curves.csv", "mean_return"),
    ("popgym/fixture/summary.csv", "wall_s"),
])
def test_missing_required_column_names_file_and_column(results, tmp_path, csv_path, column):
    """A CSV without a column its figure needs fails with the file's path and the column."""
    path = results / csv_path
    pd.read_csv(path).drop(columns=[column]).to_csv(path, index=False)
    with pytest.raises(FigureDataError) as error:
        draw_figures(results, tmp_path / "figures")
    assert str(path) in str(error.value) and repr(column) in str(error.value)
    assert not (tmp_path / "figures").exists(), "nothing is drawn before every CSV is checked"


def test_meta_csv_missing_a_column_fails_before_anything_is_drawn(results, tmp_path):
    """Meta runs' CSVs are checked with the others: a bad trials.csv draws no figure at all."""
    path = results / "meta" / "r" / "trials.csv"
    path.parent.mkdir(parents=True)
    path.write_text("model,seed,split,env,trial\ns5,0,train,A,1\n")
    with pytest.raises(FigureDataError) as error:
        draw_figures(results, tmp_path / "figures")
    assert str(path) in str(error.value) and "'mean_return'" in str(error.value)
    assert not (tmp_path / "figures").exists(), "nothing is drawn before every CSV is checked"


def test_text_in_a_numeric_column_names_file_and_column(results, tmp_path):
    """A non-number where a number belongs is an error naming the file, column and row."""
    path = results / "memory/fixture/summary.csv"
    table = pd.read_csv(path)
    table["wall_s"] = table["wall_s"].astype(object)
    table.loc[2, "wall_s"] = "fast"
    table.to_csv(path, index=False)
    with pytest.raises(FigureDataError, match=r"column 'wall_s' holds 'fast' in data row 3"):
        draw_figures(results, tmp_path / "figures")


def test_memory_success_length_stops_at_the_first_failed_length():
    """The reported length is the largest one before the first length most seeds fail."""
    summary = pd.DataFrame({
        "model": ["s5"] * 6 + ["mlp"] * 2,
        "memory_length": [4, 4, 8, 8, 16, 16, 4, 4],
        "success": ["True", "True", "True", "False", "True", "True", "False", "False"]})
    assert memory_success_lengths(summary) == {"s5": 4, "mlp": None}


def test_cli_figures_on_an_empty_folder_exits_0_with_nothing_to_draw(tmp_path):
    """`s5bench figures` on a folder without runs says there is nothing to draw, status 0."""
    (tmp_path / "results").mkdir()
    result = runner.invoke(cli.app, ["figures", "--results", str(tmp_path / "results"),
                                     "--out", str(tmp_path / "figures")])
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("nothing to draw"), result.output


def test_cli_figures_on_a_corrupt_csv_exits_2_naming_the_file(results, tmp_path):
    """A CSV that does not parse: exit status 2 and one line naming the file."""
    path = results / "popgym/fixture/curves.csv"
    path.write_text("model,env,seed\ns5,E,0\ns5,E,0,1,2,3,4\n\x00\x01garbage,,,,,,,,\n")
    result = runner.invoke(cli.app, ["figures", "--results", str(results),
                                     "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2, result.output
    lines = _lines(result.output)
    assert len(lines) == 1 and str(path) in lines[0], result.output
    # a parse error, not the missing-column check that any short header would also trip
    assert "not a readable CSV" in lines[0], result.output


def test_cli_figures_on_a_missing_folder_exits_2(tmp_path):
    """A results folder that does not exist is bad input: exit status 2, one line."""
    result = runner.invoke(cli.app, ["figures", "--results", str(tmp_path / "nope"),
                                     "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2
    assert len(_lines(result.output)) == 1 and "does not exist" in result.output


def test_cli_figures_draws_and_reports_each_file(tmp_path):
    """`s5bench figures` on the fixtures prints one line per figure and the index path."""
    out = tmp_path / "figures"
    result = runner.invoke(cli.app, ["figures", "--results", str(FIXTURES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("drew ") for line in _lines(result.output)) == len(EXPECTED)
    assert f"index: {out / 'index.md'}" in result.output


# ----------------------------------------------------------------------------- plotted values
# Small hand-made CSVs whose plotted numbers are worked out by hand below; the figure's
# matplotlib artists (captured before the figure is saved) must show exactly those.


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """Every figure ``draw_figures`` draws, by kind, as the matplotlib Figure it saved."""
    from benchmark.figures import style

    captured = {}
    real = style.save_figure

    def capture(kind, run, fig, out, caption, title=None):
        captured[kind] = fig
        return real(kind, run, fig, out, caption, title)

    monkeypatch.setattr(style, "save_figure", capture)
    return captured


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / name, index=False)


def _line(ax, label: str):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return list(line.get_xdata()), [float(y) for y in line.get_ydata()]


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
    _write(tmp_path / "results" / "speed" / "r", "speed.csv", rows)
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (ax,) = drawn["speed_ratio"].axes
    assert _line(ax, "gru") == ([64, 128], [pytest.approx(3.0), pytest.approx(2.0)])
    # attention: 0.050 / 0.010 = 5 at 64, 0.012 / 0.024 = 0.5 at 128 (faster than S5)
    assert _line(ax, "attention") == ([64, 128], [pytest.approx(5.0), pytest.approx(0.5)])
    assert _line(ax, "S5 (= 1)")[1] == [1.0, 1.0]
    assert {line.get_label() for line in ax.get_lines()} == {"gru", "attention", "S5 (= 1)"}


def test_memory_figure_plots_means_bands_times_and_memory(tmp_path, drawn):
    """Return panel: mean over ok seeds with a min-max band (L=4: 1.0 and 0.6 -> 0.8 in
    [0.6, 1.0]; L=8: 0.2 and 0.4 -> 0.3 in [0.2, 0.4], the error seed left out); time panel:
    10 s -> 40 s from L=4 to 8 is slope log 4 / log 2 = 2; memory panel: bytes in MiB."""
    rows = [(4, 0, "ok", 1.0, 10.0, 2 * 2**20), (4, 1, "ok", 0.6, 9.0, 2 * 2**20),
            (8, 0, "ok", 0.2, 40.0, 3 * 2**20), (8, 1, "ok", 0.4, 38.0, 3 * 2**20),
            (8, 2, "error", -5.0, 1.0, 99 * 2**20)]
    _write(tmp_path / "results" / "memory" / "r", "summary.csv", [
        {"model": "s5", "memory_length": length, "seed": seed, "status": status,
         "final_return": ret, "wall_s": wall, "memory_bytes": memory}
        for length, seed, status, ret, wall, memory in rows])
    draw_figures(tmp_path / "results", tmp_path / "figures")
    mem_ax, time_ax, ret_ax = drawn["memory_length"].axes
    assert _line(ret_ax, "s5") == ([4, 8], [pytest.approx(0.8), pytest.approx(0.3)])
    (band,) = ret_ax.collections
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    for length, low, high in ((4, 0.6, 1.0), (8, 0.2, 0.4)):
        ys = vertices[np.isclose(vertices[:, 0], length), 1]
        assert (ys.min(), ys.max()) == (pytest.approx(low), pytest.approx(high))
    assert _line(time_ax, "s5 (slope 2.00)") == ([4, 8], [10.0, 40.0])
    assert _line(mem_ax, "s5") == ([4, 8], [2.0, 3.0])


def _write_popgym(run: Path, returns: dict, walls: dict) -> None:
    """curves.csv ((model, env) -> [per seed [per update return]]) and summary.csv (walls,
    and each seed's MMER: its best update, as the sweep writes it)."""
    _write(run, "curves.csv", [
        {"model": m, "env": e, "seed": s, "update": u + 1, "env_steps": 100 * (u + 1),
         "mean_return": r}
        for (m, e), seeds in returns.items() for s, per in enumerate(seeds)
        for u, r in enumerate(per)])
    _write(run, "summary.csv", [
        {"model": m, "env": e, "seed": s, "status": "ok", "final_return": 0.0,
         "mmer": max(r for r in returns[(m, e)][s] if r is not None), "wall_s": w}
        for (m, e), w in walls.items() for s in (0, 1)])


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
    _write_popgym(tmp_path / "results" / "popgym" / "r", returns, walls)
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
    _write_popgym(tmp_path / "results" / "popgym" / "r", returns, walls)
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
    _write_popgym(tmp_path / "results" / "popgym" / "r", returns,
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
    _write(run, "curves.csv", _curves(MMER_VS_TIME).to_dict("records"))
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (ax,) = drawn["popgym_mmer_vs_time"].axes
    assert _line(ax, "s5") == ([2.0, 3.0, 4.0, 6.0], pytest.approx([0.5, 0.875, 1.0, 1.0]))
    assert _line(ax, "gru") == ([4.0, 6.0], pytest.approx([0.25, 0.375]))
    assert ax.get_xscale() == "linear"
    assert "on unknown device" in ax.get_title()  # no meta.json in this run folder


def test_popgym_mmer_vs_time_counts_a_tied_env_as_1_and_goes_log_past_a_decade(tmp_path,
                                                                                 drawn):
    """An env where lowest MMER so far == best final counts 1 at every time; a backbone
    with fewer envs says so in its label; times from 1 s to 100 s get a log axis."""
    cells = {("s5", "A"): ([1.0, 10.0, 100.0], [[0.5, 0.5, 0.5]]),
             ("gru", "A"): ([1.0, 10.0, 100.0], [[0.5, 0.2, 0.5]]),
             ("s5", "B"): ([1.0, 10.0, 100.0], [[0.0, 1.0, 1.0]])}
    _write(tmp_path / "results" / "popgym" / "r", "curves.csv",
           _curves(cells).to_dict("records"))
    draw_figures(tmp_path / "results", tmp_path / "figures")
    (ax,) = drawn["popgym_mmer_vs_time"].axes
    # A ties at 0.5 (1 throughout); B: lowest 0, best 1: s5 0, 1, 1; s5's mean 0.5, 1, 1
    assert _line(ax, "s5") == ([1.0, 10.0, 100.0], pytest.approx([0.5, 1.0, 1.0]))
    assert _line(ax, "gru (1 of 2 envs)") == ([1.0, 10.0, 100.0], [1.0, 1.0, 1.0])
    assert ax.get_xscale() == "log"


def test_popgym_mmer_vs_time_skips_runs_without_wall_s_or_with_one_backbone(tmp_path):
    """Curves from before wall_s was recorded, or a run of one backbone (nothing to
    normalise against), skip the figure with a one-line reason; the others are drawn."""
    old = tmp_path / "results" / "popgym" / "old"
    _write(old, "curves.csv", _curves(MMER_VS_TIME).drop(columns="wall_s").to_dict("records"))
    alone = tmp_path / "results" / "popgym" / "alone"
    _write(alone, "curves.csv", _curves({("s5", "E1"): MMER_VS_TIME[("s5", "E1")]}).to_dict(
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


# ----------------------------------------------------------------------------- the package


FIGURE_MODULES = ("data", "style", "speed", "memory", "popgym", "intervals", "meta_rl")
DRAWING_MODULES = ("speed", "memory", "popgym", "intervals", "meta_rl")


@pytest.mark.parametrize("module", ["benchmark.figures",
                                    *(f"benchmark.figures.{m}" for m in FIGURE_MODULES)])
def test_each_figures_module_imports_first_in_a_fresh_process_without_jax(module):
    """Each module of the package imports on its own first (an import circle fails here with
    a partially initialised module) and none of them pulls in JAX."""
    code = (f"import sys, {module}\n"
            "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as written (``from a import b`` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _figures_imports(path: Path) -> set[str]:
    """The ``benchmark.figures`` submodules ``path`` imports (by their short names)."""
    prefix = "benchmark.figures."
    return {name[len(prefix):].split(".")[0] for name in _imports(path)
            if name.startswith(prefix) and name[len(prefix):].split(".")[0] in FIGURE_MODULES}


def test_figures_package_imports_in_layers_and_only_cli_imports_it():
    """data imports no drawing (nor matplotlib); style only data; each drawing module only
    data and style; outside the package, no library module imports benchmark.figures."""
    package = ROOT / "benchmark" / "figures"
    data_imports = _imports(package / "data.py")
    assert _figures_imports(package / "data.py") == set()
    assert not any(name.startswith("matplotlib") for name in data_imports)
    assert _figures_imports(package / "style.py") == {"data"}
    for module in DRAWING_MODULES:
        assert _figures_imports(package / f"{module}.py") <= {"data", "style"}, module
    library = [p for folder in ("benchmark", "models", "envs") for p in (ROOT / folder).rglob(
        "*.py") if package not in p.parents]
    assert len(library) > 20
    importers = [p for p in library
                 if any(name.startswith("benchmark.figures") for name in _imports(p))]
    assert importers == []
    assert "benchmark.figures" in _imports(ROOT / "cli.py")


def test_required_columns_are_columns_the_writers_write():
    """Each column a figure requires is one benchmark.schema says its CSV holds."""
    written = {
        ("speed", "speed"): schema.SPEED_COLUMNS,
        ("memory", "summary"): schema.MEMORY_LABELS + schema.SUMMARY_COLUMNS,
        ("popgym", "curves"): schema.POPGYM_LABELS + schema.CURVE_COLUMNS,
        ("popgym", "summary"): schema.POPGYM_LABELS + schema.SUMMARY_COLUMNS,
        ("popgym", "aggregate"): schema.AGGREGATE_COLUMNS,
        ("popgym", "comparison"): schema.COMPARISON_COLUMNS,
        ("meta", "trials"): schema.TRIAL_COLUMNS,
        ("meta", "curves"): schema.META_LABELS + schema.CURVE_COLUMNS,
    }
    assert {(kind, stem) for kind, tables in REQUIRED.items() for stem in tables} == set(written)
    for (kind, stem), columns in written.items():
        assert set(REQUIRED[kind][stem]) <= set(columns), (kind, stem)
