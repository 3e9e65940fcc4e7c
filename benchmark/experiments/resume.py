"""Resuming an interrupted training run: which cells are finished, where the others go on.

``prepare_resume`` decides, for an interrupted run, which cells are finished and from which
checkpoint the others continue, and trims the CSVs to match, so a resumed run appends
exactly the rows it had not yet written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.results import filter_rows, read_raw_rows, typed_row
from benchmark.schema import CURVES_CSV, SUMMARY_CSV
from benchmark.train.checkpoint import CellCheckpoints, CheckpointSettings

if TYPE_CHECKING:  # annotations only: keeps the import graph shallow
    from benchmark.experiments.types import Cell


def cell_key(labels: Mapping[str, Any], label_columns: Sequence[str]) -> tuple[str, ...]:
    """A cell's identity in CSV rows: its label values as text (CSV reads back text)."""
    return tuple(str(labels[c]) for c in label_columns)


def checkpoint_dir(run_dir: Path, cell: Cell, label_columns: Sequence[str]) -> Path:
    slug = "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", part)
                    for part in cell_key(cell.labels, label_columns))
    return Path(run_dir) / "checkpoints" / slug



@dataclass
class ResumeState:
    """Where each cell of an interrupted run stands (``prepare_resume``)."""

    done: dict[tuple[str, ...], list[dict[str, Any]]]  # finished cells -> their summary rows
    start: dict[tuple[str, ...], int | None]  # unfinished cells -> checkpoint (None: anew)
    notes: list[str]  # one line per damaged checkpoint or dropped row

    def from_update(self, cells: Sequence[Cell], label_columns: Sequence[str]
                    ) -> dict[str, int]:
        """Cell title -> the update each unfinished cell continues from (0: anew)."""
        keys = {cell.title: cell_key(cell.labels, label_columns) for cell in cells}
        return {title: self.start[key] or 0 for title, key in keys.items() if key in self.start}


def prepare_resume(run_dir: Path, cells: Sequence[Cell], label_columns: Sequence[str],
                   checkpoint: CheckpointSettings,
                   extra_csvs: Mapping[str, Sequence[str]] | None = None,
                   trim: bool = True) -> ResumeState:
    """Decide where each cell resumes and make the CSVs agree with that, exactly once.

    A cell is finished when summary.csv holds a row for each of its seeds and none is an
    ``error`` (failed cells are tried again). Every other cell restarts from its newest
    whole checkpoint (damaged newer ones are reported and skipped), so its curves.csv rows
    past that update, its partial summary rows and its rows in ``extra_csvs`` (file name ->
    the label columns that identify a cell's rows there; say trials.csv by model) are
    dropped: they will be written again, the same numbers, in order. A last line without
    its newline (a write cut by the kill) is dropped too. With ``trim=False`` the state is
    made without touching the CSVs (the processes of a multi-process run that follow
    process 0, which trims them).
    """
    run_dir = Path(run_dir)
    label_columns = tuple(label_columns)
    summary = read_raw_rows(run_dir / SUMMARY_CSV)
    seeds_of: dict[tuple[str, ...], dict[int, dict]] = {}
    for row in summary:
        seeds_of.setdefault(cell_key(row, label_columns), {})[int(row["seed"])] = row
    done, start, notes = {}, {}, []
    for cell in cells:
        key = cell_key(cell.labels, label_columns)
        rows = seeds_of.get(key, {})
        if (len(rows) == cell.config.num_seeds
                and all(r["status"] != "error" for r in rows.values())):
            done[key] = [typed_row(rows[s]) for s in sorted(rows)]
            continue
        step, problems = CellCheckpoints(checkpoint_dir(run_dir, cell, label_columns),
                                         checkpoint).latest_valid()
        notes += problems
        start[key] = step

    def keep_curve(row) -> bool:
        key = cell_key(row, label_columns)
        return key in done or (start.get(key) is not None and int(row["update"]) <= start[key])

    if not trim:
        return ResumeState(done=done, start=start, notes=notes)
    dropped = filter_rows(run_dir / CURVES_CSV, keep_curve)
    dropped += filter_rows(run_dir / SUMMARY_CSV,
                           lambda row: cell_key(row, label_columns) in done)
    for name, columns in (extra_csvs or {}).items():
        index = [label_columns.index(c) for c in columns]
        finished = {tuple(key[i] for i in index) for key in done}
        dropped += filter_rows(
            run_dir / name,
            lambda row, cols=tuple(columns), finished=finished: cell_key(row, cols) in finished)
    if dropped:
        notes.append(f"dropped {dropped} row(s) written after the last checkpoint; they "
                     f"are measured again")
    return ResumeState(done=done, start=start, notes=notes)

