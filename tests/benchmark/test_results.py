"""Result files (benchmark/results.py): rows are flushed as written, NaN is an empty cell."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.results import CsvLog, filter_rows


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


