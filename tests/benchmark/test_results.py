"""Result files: rows are flushed as written, NaN is an empty cell, summaries hand-checked."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.experiments.cells import summarize_returns
from benchmark.metrics import max_mean_episodic_return, mmer_per_seed
from benchmark.results import CsvLog, filter_rows
from benchmark.run_folder import RunExistsError, make_run_dir


def test_rows_are_on_disk_before_close(tmp_path):
    """Each written row can be read back while the log is still open (flushed per row)."""
    path = tmp_path / "x.csv"
    log = CsvLog(path, ["a", "b"])
    log.write({"a": 1, "b": 0.5})
    assert pd.read_csv(path).to_dict("records") == [{"a": 1, "b": 0.5}]
    log.write({"a": 2, "b": math.nan})
    frame = pd.read_csv(path)
    assert len(frame) == 2 and math.isnan(frame.b[1])
    assert path.read_text().splitlines()[-1] == "2,", "NaN must be an empty cell"
    log.close()


def test_reopening_appends_and_checks_header(tmp_path):
    """A second CsvLog on the same file appends; a different header is refused."""
    path = tmp_path / "x.csv"
    with CsvLog(path, ["a"]) as log:
        log.write({"a": 1})
    with CsvLog(path, ["a"]) as log:
        log.write({"a": 2})
    assert list(pd.read_csv(path).a) == [1, 2]
    with pytest.raises(ValueError, match="columns"):
        CsvLog(path, ["b"])


def test_filtering_then_appending_keeps_one_line_ending(tmp_path):
    """A resume trims a CSV (filter_rows) and appends to it: every line ends alike.

    (Reading the file in text mode turned CsvLog's "\r\n" into "\n" on the rewrite,
    so resumed folders mixed both endings.)
    """
    path = tmp_path / "rows.csv"
    with CsvLog(path, ["a"]) as log:
        log.write_many({"a": i} for i in range(4))
    assert filter_rows(path, lambda row: int(row["a"]) < 2) == 2
    with CsvLog(path, ["a"]) as log:
        log.write({"a": 9})
    raw = path.read_bytes()
    assert raw == b"a\r\n0\r\n1\r\n9\r\n"


def test_rows_must_match_columns(tmp_path):
    """A row with a missing or unknown column is an error, not a silently shifted CSV."""
    with CsvLog(tmp_path / "x.csv", ["a", "b"]) as log, pytest.raises(ValueError):
        log.write({"a": 1, "c": 2})


def test_existing_run_folder_is_not_overwritten(tmp_path):
    """A run folder with results is refused unless force is given."""
    run = make_run_dir(tmp_path, "r1")
    (run / "summary.csv").write_text("x\n1\n")
    with pytest.raises(RunExistsError):
        make_run_dir(tmp_path, "r1")
    make_run_dir(tmp_path, "r1", force=True)
    assert not (run / "summary.csv").exists()


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
    import pandas as pd

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


def test_aggregate_weighs_environments_equally_and_skips_failures():
    """Per-model means average seeds within an env first; failed rows are counted, not used."""
    from benchmark.experiments.aggregate import aggregate_by_model

    def row(env, seed, mmer, status="ok"):
        return {"model": "s5", "env": env, "seed": seed, "status": status, "mmer": mmer,
                "final_return": mmer, "wall_s": 10.0, "env_steps_per_s": 100.0}

    rows = [row("A", 0, 1.0), row("A", 1, 0.0), row("B", 0, 0.2), row("C", 0, None, "error")]
    (agg,) = aggregate_by_model(rows)
    assert agg["envs"] == 3 and agg["failed"] == 1
    assert agg["mean_mmer"] == pytest.approx((0.5 + 0.2) / 2)
    assert agg["total_wall_s"] == 20.0
