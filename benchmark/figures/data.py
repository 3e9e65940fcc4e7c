"""Finding run folders and reading their CSVs into checked DataFrames (no drawing here).

A run folder is any folder under the results folder (at any depth) holding one of the CSVs
a command writes. Its kind decides which tables are read and which columns they must have
(``REQUIRED``):

- ``speed``: holds ``speed.csv``; reads ``speed``.
- ``meta``: holds ``trials.csv``; reads ``trials`` and ``curves``.
- ``memory`` / ``popgym``: named by ``config.json``'s command, else by a ``memory_length``
  or ``env`` column in the ``summary.csv``/``curves.csv`` header; reads ``summary``
  (and, for POPGym, ``curves``, ``aggregate`` and ``comparison``, where present).

Every table is checked as it is read: a CSV that does not parse, lacks a required column or
holds text where a number belongs raises ``FigureDataError`` naming the file (and column).
Column names come from ``benchmark.schema``; the required columns are the subsets the
figures need, so runs written before a column existed still read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import schema
from benchmark.results import device_label

# What each kind of run must hold, per csv stem; anything else in the file is kept.
REQUIRED = {
    "speed": {"speed": ("model", "evaluation", "mode", "seq_len", "batch", "status",
                        "median_s", "device")},
    "memory": {"summary": (*schema.MEMORY_LABELS, "seed", "status", "final_return",
                           "wall_s")},
    "popgym": {"curves": (*schema.POPGYM_LABELS, "seed", "update", "env_steps",
                          "mean_return"),
               "summary": (*schema.POPGYM_LABELS, "seed", "status", "final_return",
                           "mmer", "wall_s"),
               # Written by the popgym finish step: over several envs, several models.
               "aggregate": ("model", "scored_envs", "runs", *schema.INTERVAL_COLUMNS),
               "comparison": ("score", "model_x", "model_y", "env", "probability", "lo",
                              "hi")},
    "meta": {"trials": ("model", "seed", "split", "env", "trial", "mean_return"),
             "curves": ("model", "seed", "update", "env_steps", "mean_return")},
}
# Columns parsed as numbers wherever they appear (empty, "nan" and "none" read as NaN).
NUMERIC = {"seq_len", "batch", "median_s", "min_s", "max_s", "tokens_per_s", "d_model",
           "num_layers", "memory_length", "seed", "update", "env_steps", "mean_return",
           "final_return", "best_return", "wall_s", "trial", "memory_bytes", "mmer",
           "scored_envs", "runs", "probability", "lo", "hi", *schema.INTERVAL_COLUMNS}
_RUN_CSVS = (schema.SPEED_CSV, schema.TRIALS_CSV, schema.CURVES_CSV, schema.SUMMARY_CSV)


class FigureDataError(ValueError):
    """A CSV cannot be read, lacks a required column or holds malformed values."""


@dataclass
class Run:
    """One run folder and the tables read from it."""

    path: Path  # the run folder
    name: str  # its path relative to the results folder, e.g. reference/cpu-2core/memory
    kind: str  # speed | memory | popgym | meta
    device: str  # where timings were taken, from meta.json (or speed.csv)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # csv stem -> table
    files: dict[str, Path] = field(default_factory=dict)  # csv stem -> path
    config: dict[str, Any] = field(default_factory=dict)  # its config.json, if any

    @property
    def slug(self) -> str:
        """The run's name as one file-name part: ``reference-cpu-2core-memory``."""
        return self.name.replace("/", "-").replace("\\", "-") or "results"


def read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read ``path`` and check it: every required column present, numbers parse.

    Raises:
      FigureDataError: naming the file, and the column where one is at fault.
    """
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            csv.Error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise FigureDataError(f"{path}: not a readable CSV ({reason})") from None
    for column in required:
        if column not in table.columns:
            raise FigureDataError(f"{path}: missing required column {column!r}")
    for column in table.columns:
        if column in NUMERIC:
            table[column] = _numeric(table[column], path, column)
    return table


def _numeric(values: pd.Series, path: Path, column: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.astype("string").str.strip().str.lower()
    bad = numbers.isna() & values.notna() & ~text.isin(["nan", "none", ""])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise FigureDataError(f"{path}: column {column!r} holds {values.iloc[row]!r} in data "
                              f"row {row + 1}, not a number")
    return numbers


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise FigureDataError(f"{path}: not a readable CSV ({error})") from None


def run_kind(folder: Path) -> str | None:
    """speed | meta | memory | popgym for a run folder (None: not a run figures read)."""
    if (folder / schema.SPEED_CSV).exists():
        return "speed"
    if (folder / schema.TRIALS_CSV).exists():
        return "meta"
    command = _read_json(folder / "config.json").get("command")
    if command in ("memory", "popgym"):
        return command
    for name in (schema.SUMMARY_CSV, schema.CURVES_CSV):
        if (folder / name).exists():
            header = _header(folder / name)
            if "memory_length" in header:
                return "memory"
            if "env" in header:
                return "popgym"
    return None


def find_run_folders(results: Path) -> list[Path]:
    """Folders under ``results`` (any depth) holding a speed, trials, curves or summary CSV."""
    return sorted({p.parent for name in _RUN_CSVS for p in Path(results).rglob(name)})


def read_run(folder: Path, results: Path, kind: str) -> Run:
    """``folder``'s Run, with each of its kind's tables that exists read and checked.

    Raises:
      FigureDataError: on the first CSV that is unreadable or lacks a required column.
    """
    name = folder.relative_to(results).as_posix() if folder != results else folder.name
    run = Run(path=folder, name=name, kind=kind,
              device=device_label(_read_json(folder / "meta.json")),
              config=_read_json(folder / "config.json"))
    for stem, required in REQUIRED[kind].items():
        path = folder / f"{stem}.csv"
        if path.exists():
            run.tables[stem] = read_table(path, required)
            run.files[stem] = path
    if kind == "speed" and "speed" in run.tables:
        devices = run.tables["speed"]["device"].dropna().unique()
        if len(devices):
            run.device = ", ".join(str(d) for d in devices)
    return run


def _merged_shard(folder: Path) -> bool:
    """A shard of a sweep (``--shard I/N``) whose sweep folder holds the merged tables: the
    sweep is drawn once, from its merged CSVs, not once per shard."""
    shard = (_read_json(folder / "config.json").get("options") or {}).get("shard")
    return shard is not None and (folder.parent / schema.SUMMARY_CSV).exists()


def load_runs(results: Path) -> list[Run]:
    """Every run folder under ``results`` with its checked tables, in path order.

    Raises:
      FigureDataError: on the first CSV that is unreadable or lacks a required column.
    """
    results = Path(results)
    runs = []
    for folder in find_run_folders(results):
        kind = run_kind(folder)
        if kind is not None and not _merged_shard(folder):
            runs.append(read_run(folder, results, kind))
    return runs


# ----------------------------------------------------------------------------- shared tables


def ok_summary_rows(run: Run) -> pd.DataFrame | str:
    """summary.csv rows with status ok and a final return, or why there are none."""
    if "summary" not in run.tables:
        return "no summary.csv"
    summary = run.tables["summary"]
    ok = summary[(summary["status"].astype(str) == "ok") & summary["final_return"].notna()]
    if ok.empty:
        return f"{run.files['summary']} has no row with status ok"
    return ok


def smooth_per_seed(data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``[env_steps, seed]`` returns, each seed smoothed over its updates with an episode.

    Updates in which no episode ended carry no return (NaN); each seed's finished-episode
    returns get a trailing mean over about 5% of its updates, and the value holds until the
    seed's next finished episode, so that seeds can be averaged at every env step.

    Returns:
      The wide table (one column per seed) and the window in updates.
    """
    num_updates = int(data["update"].nunique())
    window = max(1, num_updates // 20)
    seeds = {}
    for seed, rows in data.groupby("seed"):
        series = rows.set_index("env_steps")["mean_return"].sort_index().dropna()
        seeds[seed] = series.rolling(window, min_periods=1).mean()
    if not seeds:
        return pd.DataFrame(), window
    wide = pd.DataFrame(seeds).sort_index().ffill()
    return wide.dropna(how="all"), window
