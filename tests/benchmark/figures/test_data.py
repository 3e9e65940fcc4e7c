"""Reading run folders (benchmark/figures/data.py): a bad CSV is named with its column."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark import schema
from benchmark.figures import FigureDataError, draw_figures
from benchmark.figures.data import REQUIRED


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
