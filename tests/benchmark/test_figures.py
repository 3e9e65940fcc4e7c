"""Figures come from CSVs alone: every figure from small fixture runs, clear errors on bad CSVs.

The fixture results folder (tests/fixtures/figures/results) holds one run of each kind: a
memory sweep and a POPGym sweep (trimmed from real tiny runs) and a synthetic speed.csv
in the `s5bench speed` schema, with a timed-out and a skipped row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.figures import (
    FORMATS,
    FigureDataError,
    draw_figures,
    memory_success_lengths,
    mmer,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "figures" / "results"
EXPECTED = ("scaling_speed-fixture", "speed_ratio_speed-fixture",
            "memory_length_memory-fixture", "popgym_curves_popgym-fixture",
            "popgym_summary_popgym-fixture", "return_vs_cost_popgym-fixture")
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
    assert len(report.skipped) == 5
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


def test_figure_mmer_is_the_mean_over_seeds_of_each_seeds_best_update():
    """The POPGym figure's MMER is per run (each seed's best update), then the seed mean."""
    curves = pd.DataFrame({
        "model": ["s5"] * 4, "env": ["E"] * 4, "seed": [0, 1, 0, 1], "update": [1, 1, 2, 2],
        "mean_return": [1.0, -1.0, 0.5, 0.3]})
    # seed 0's best is 1.0, seed 1's 0.3: mean 0.65 (the best seed-mean update would be 0.4)
    assert mmer(curves).loc[("s5", "E")] == pytest.approx(0.65)


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
