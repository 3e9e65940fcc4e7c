"""Host side of a training sweep: run cells one after another, write CSVs as they go.

A *cell* is one compiled training program: one backbone on one environment (and, for the
memory experiment, one memory length), all its seeds vmapped. ``run_cells`` trains each
cell through ``benchmark.train.loop.run_training`` (the one PPO loop), shows a progress bar per
cell, appends a ``curves.csv`` row per (seed, update) after every chunk and a
``summary.csv`` row per seed at the end of the cell. A failing cell (out of memory, a
compile error) becomes rows with status ``error`` and the sweep goes on; a seed whose loss
or parameters turned non-finite is frozen by the PPO loop and marked ``diverged``.

Between chunks each cell is checkpointed (``Session``); ``prepare_resume`` decides, for an
interrupted run, which cells are finished and where the others continue, and trims the
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from benchmark.experiments.resume import ResumeState, cell_key, checkpoint_dir
from benchmark.experiments.types import Cell
from benchmark.metrics import max_mean_episodic_return
from benchmark.results import CsvLog, write_json
from benchmark.schema import CURVE_COLUMNS, CURVES_CSV, LOSS_COLUMNS, SUMMARY_COLUMNS, SUMMARY_CSV
from benchmark.train.checkpoint import CellCheckpoints, CheckpointSettings
from benchmark.train.devices import runtime_peak_bytes
from benchmark.train.loop import ChunkReport, RunResult, TrainingInterrupted, run_training

FINAL_FRACTION = 0.1  # final_return averages the last 10% of updates (at least one)


def summarize_returns(mean_return: np.ndarray, fraction: float = FINAL_FRACTION
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Final and best return per seed from per-update mean returns.

    Args:
      mean_return: ``[S, U]`` mean episodic return of each update, NaN where no episode
        ended in that update.
      fraction: the window is ``max(1, round(fraction * U))`` updates.

    Returns:
      ``(final [S], best [S])``: ``final`` is the mean over the last window; ``best`` is
      the largest mean over any window of the same length (so that one lucky update with
      a single episode does not count as the best). Windows without any episode are
      NaN and are ignored by ``best``.
    """
    num_updates = mean_return.shape[1]
    window = max(1, round(fraction * num_updates))
    finals, bests = [], []
    for row in mean_return:
        means = [_nanmean(row[i : i + window]) for i in range(num_updates - window + 1)]
        finals.append(means[-1])
        valid = [m for m in means if not math.isnan(m)]
        bests.append(max(valid) if valid else math.nan)
    return np.asarray(finals), np.asarray(bests)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _curve_rows(labels: Mapping[str, Any], report: ChunkReport, steps_per_update: int):
    num_seeds, num_updates = report.mean_return.shape
    chunk_s = report.wall_s - report.start_wall_s
    for seed in range(num_seeds):
        for k in range(num_updates):
            update = report.first_update + k + 1
            # One chunk is one compiled call, so per-update times are not observable;
            # spread the chunk's time evenly over its updates.
            wall_s = report.start_wall_s + chunk_s * (k + 1) / num_updates
            yield {
                **labels,
                "seed": seed,
                "update": update,
                "env_steps": update * steps_per_update,
                "wall_s": round(wall_s, 3),
                "episodes": int(report.episodes[seed, k]),
                "mean_return": float(report.mean_return[seed, k]),
                **{name: float(report.losses[name][seed, k]) for name in LOSS_COLUMNS},
            }


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("return {task.fields[ret]}"),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
        console=console,
    )


# ----------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """What every cell of one command shares: checkpoints, devices, stop requests, resume.

    ``meta`` (the run's meta.json, when given) gains, per cell title, the device layout
    and, on a resume, the update each cell continued from; it is rewritten as they change.
    """

    run_dir: Path
    checkpoint: CheckpointSettings | None = field(default_factory=CheckpointSettings)
    devices: int | None = None  # --devices: at most this many (default: every device)
    should_stop: Callable[[], bool] = lambda: False
    resume: ResumeState | None = None
    meta: dict[str, Any] | None = None

    def record(self, cell: Cell, **info: Any) -> None:
        if self.meta is None:
            return
        self.meta.setdefault("cells", {}).setdefault(cell.title, {}).update(info)
        write_json(self.run_dir / "meta.json", self.meta)

    def checkpoints(self, cell: Cell, label_columns: Sequence[str]) -> CellCheckpoints | None:
        if self.checkpoint is None:
            return None
        return CellCheckpoints(checkpoint_dir(self.run_dir, cell, label_columns),
                               self.checkpoint)



# ----------------------------------------------------------------------------- training


def run_cells(cells: Sequence[Cell], run_dir: Path, label_columns: Sequence[str],
              console: Console | None = None,
              extra_summary: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
              session: Session | None = None,
              after_cell: Callable[[Cell, RunResult], None] | None = None,
              ) -> list[dict[str, Any]]:
    """Train every cell, appending to ``run_dir/curves.csv`` and ``run_dir/summary.csv``.

    Args:
      extra_summary: optional ``column -> f(summary row)``: columns appended to
        summary.csv after ``SUMMARY_COLUMNS``, computed from each row (e.g. ``success``).
      session: checkpoints, devices, stop requests and the resume plan (default: save
        checkpoints under ``run_dir/checkpoints`` with the default settings).
      after_cell: called with each trained cell's result before its summary rows are
        written (the meta experiment evaluates there), so a cell counts as finished only
        when everything it writes is written.

    Returns:
      The summary rows (one per cell and seed), those of cells finished before a resume
      included.

    Raises:
      TrainingInterrupted: a stop was asked for; the cell in flight is checkpointed.
    """
    console = console or Console()
    session = session or Session(run_dir)
    label_columns = tuple(label_columns)
    extra_summary = dict(extra_summary or {})
    summaries: list[dict[str, Any]] = []
    with (
        CsvLog(run_dir / CURVES_CSV, (*label_columns, *CURVE_COLUMNS)) as curves,
        CsvLog(run_dir / SUMMARY_CSV,
               (*label_columns, *SUMMARY_COLUMNS, *extra_summary)) as summary,
        _progress(console) as progress,
    ):
        for cell in cells:
            key = cell_key(cell.labels, label_columns)
            if session.resume is not None and key in session.resume.done:
                summaries.extend(session.resume.done[key])
                continue
            rows = train_cell(cell, session, label_columns, curves, progress, after_cell)
            rows = [{**row, **{name: f(row) for name, f in extra_summary.items()}}
                    for row in rows]
            summary.write_many(rows)
            summaries.extend(rows)
    return summaries


def train_cell(cell: Cell, session: Session, label_columns: Sequence[str], curves: CsvLog,
               progress: Progress,
               after_cell: Callable[[Cell, RunResult], None] | None = None,
               ) -> list[dict[str, Any]]:
    """Train one cell through the one PPO loop; its summary rows (``error`` if it failed)."""
    ppo = cell.config.ppo
    total = ppo.num_updates * ppo.steps_per_update
    task = progress.add_task(cell.title, total=total, rate="compiling…", ret="-", note="")
    notes: dict[str, str] = {}
    resume_from = None
    if session.resume is not None:
        resume_from = session.resume.start.get(cell_key(cell.labels, label_columns))
    checkpoints = session.checkpoints(cell, label_columns)

    def show(**fields) -> None:
        progress.update(task, note=" · ".join(notes.values()), **fields)

    def on_compiled(mesh, compile_s: float) -> None:
        session.record(cell, devices=mesh.describe(), compile_s=round(compile_s, 3))
        if resume_from is not None:
            session.record(cell, resumed_from_update=resume_from)
            notes["resumed"] = f"resumed @{resume_from}"
            show(completed=resume_from * ppo.steps_per_update)

    def on_chunk(report: ChunkReport) -> None:
        curves.write_many(_curve_rows(cell.labels, report, ppo.steps_per_update))
        diverged = np.flatnonzero(report.diverged_at)
        if diverged.size:
            notes["diverged"] = "[red]diverged: " + ", ".join(
                f"seed {s} @{report.diverged_at[s]}" for s in diverged) + "[/]"
        latest = report.mean_return[:, -max(1, report.mean_return.shape[1] // 2):]
        ret = _nanmean(latest.ravel())
        rate = report.env_steps * latest.shape[0] / max(report.wall_s, 1e-9)
        show(completed=report.env_steps, rate=f"{rate:,.0f} steps/s",
             ret="-" if math.isnan(ret) else f"{ret:.3f}")

    def on_saved(update: int) -> None:
        notes["saved"] = f"saved @{update}"
        show()

    labels = dict(cell.labels)
    start = time.perf_counter()
    try:
        result = run_training(
            cell.config, on_chunk, checkpoints=checkpoints, resume_from=resume_from,
            devices=session.devices, should_stop=session.should_stop,
            on_compiled=on_compiled, on_saved=on_saved,
        )
        # Host work between chunks is not training time; meta.json keeps it apart, with the
        # runtime's (process-wide) memory high-water mark where the backend has one.
        session.record(cell, host_s=round(result.host_s, 3),
                       runtime_peak_bytes_so_far=runtime_peak_bytes())
        if after_cell is not None:
            after_cell(cell, result)
    except TrainingInterrupted:
        show(rate="[yellow]stopped")
        raise
    except Exception as error:  # a failed cell is data; the sweep goes on
        message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        progress.update(task, rate="[red]failed", ret="-")
        wall_s = round(time.perf_counter() - start, 3)
        # Every summary column, empty unless the failure says something about it.
        return [{**labels, **dict.fromkeys(SUMMARY_COLUMNS), "seed": seed, "status": "error",
                 "env_steps": 0, "wall_s": wall_s, "message": message}
                for seed in range(cell.config.num_seeds)]
    return summary_rows(labels, result)


def summary_rows(labels: Mapping[str, Any], result: RunResult) -> list[dict[str, Any]]:
    """One summary row per seed of a trained cell."""
    final, best = summarize_returns(result.mean_return)
    mmer = max_mean_episodic_return(result.mean_return)
    per_seed_rate = result.env_steps / result.train_s if result.train_s > 0 else math.nan
    rows = []
    for seed, diverged_at in enumerate(result.diverged_at.tolist()):
        rows.append({
            **labels,
            "seed": seed,
            "status": "diverged" if diverged_at else "ok",
            "final_return": float(final[seed]),
            "best_return": float(best[seed]),
            "mmer": float(mmer[seed]),
            "env_steps": result.env_steps,
            "wall_s": round(result.train_s, 3),
            "compile_s": round(result.compile_s, 3),
            "env_steps_per_s": round(per_seed_rate, 1),
            "memory_bytes": result.memory_bytes,
            "diverged_update": diverged_at or None,
            "message": (f"non-finite loss or parameters at update {diverged_at}; later "
                        f"updates left this seed unchanged") if diverged_at else "",
        })
    return rows


def summary_table(rows: Sequence[Mapping[str, Any]], label_columns: Sequence[str],
                  title: str) -> Table:
    """Mean over seeds of each cell's final/best return, with its throughput."""
    table = Table(title=title)
    for name in label_columns:
        table.add_column(name, no_wrap=True)
    for name in ("seeds", "final", "best", "steps/s", "compile s", "status"):
        table.add_column(name, justify="right", no_wrap=True)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in label_columns), []).append(row)
    for key, group in groups.items():
        finals = np.array([_float(r["final_return"]) for r in group])
        bests = np.array([_float(r["best_return"]) for r in group])
        rates = np.array([_float(r["env_steps_per_s"]) for r in group])
        statuses = sorted({r["status"] for r in group})
        table.add_row(
            *(str(k) for k in key),
            str(len(group)),
            _mean_std(finals),
            _mean_std(bests),
            "-" if np.all(np.isnan(rates)) else f"{np.nanmean(rates) * len(group):,.0f}",
            "-" if group[0]["compile_s"] is None else f"{group[0]['compile_s']:.1f}",
            ", ".join(statuses),
        )
    return table


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean_std(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "-"
    return f"{values.mean():.3f}±{values.std():.3f}"
