"""Host side of a training sweep: run cells one after another, write CSVs as they go.

A *cell* is one compiled training program: one backbone on one environment (and, for the
memory experiment, one memory length), all its seeds vmapped. ``run_cells`` trains each
cell through ``benchmark.run.run_training`` (the one PPO loop), shows a progress bar per
cell, appends a ``curves.csv`` row per (seed, update) after every chunk and a
``summary.csv`` row per seed at the end of the cell. A failing cell (out of memory, a
compile error) becomes rows with status ``error`` and the sweep goes on; a seed whose loss
turned NaN is marked ``diverged``.
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

from benchmark.config import RunConfig
from benchmark.results import CsvLog
from benchmark.run import ChunkReport, run_training

_LOSS_COLUMNS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl")
CURVE_COLUMNS = ("seed", "update", "env_steps", "wall_s", "episodes", "mean_return",
                 *_LOSS_COLUMNS)
SUMMARY_COLUMNS = ("seed", "status", "final_return", "best_return", "mmer", "env_steps", "wall_s",
                   "compile_s", "env_steps_per_s", "message")

FINAL_FRACTION = 0.1  # final_return averages the last 10% of updates (at least one)


@dataclass(frozen=True)
class Cell:
    """One compiled training program and the labels its CSV rows carry."""

    labels: Mapping[str, Any]  # e.g. {"model": "s5", "env": "RepeatFirstEasy"}
    config: RunConfig
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)  # environment constructor
    env_params: Mapping[str, Any] = field(default_factory=dict)  # EnvParams fields replaced

    @property
    def title(self) -> str:
        return " · ".join(str(v) for v in self.labels.values())


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


def max_mean_episodic_return(mean_return: np.ndarray) -> np.ndarray:
    """POPGym's MMER per seed: the largest per-update mean episodic return, ``[S, U] -> [S]``.

    Updates in which no episode ended (NaN) are ignored; a seed with none at all is NaN.
    """
    finite = np.where(np.isnan(mean_return), -np.inf, mean_return)
    best = finite.max(axis=1)
    return np.where(np.isinf(best), np.nan, best)


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
                **{name: float(report.losses[name][seed, k]) for name in _LOSS_COLUMNS},
            }


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("return {task.fields[ret]}"),
        TimeRemainingColumn(),
        console=console,
    )


def run_cells(cells: Sequence[Cell], run_dir: Path, label_columns: Sequence[str],
              console: Console | None = None,
              extra_summary: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
              ) -> list[dict[str, Any]]:
    """Train every cell, appending to ``run_dir/curves.csv`` and ``run_dir/summary.csv``.

    Args:
      extra_summary: optional ``column -> f(summary row)``: columns appended to
        summary.csv after ``SUMMARY_COLUMNS``, computed from each row (e.g. ``success``).

    Returns:
      The summary rows written (one per cell and seed).
    """
    console = console or Console()
    label_columns = tuple(label_columns)
    extra_summary = dict(extra_summary or {})
    summaries: list[dict[str, Any]] = []
    with (
        CsvLog(run_dir / "curves.csv", (*label_columns, *CURVE_COLUMNS)) as curves,
        CsvLog(run_dir / "summary.csv",
               (*label_columns, *SUMMARY_COLUMNS, *extra_summary)) as summary,
        _progress(console) as progress,
    ):
        for cell in cells:
            rows = _run_cell(cell, curves, progress)
            rows = [{**row, **{name: f(row) for name, f in extra_summary.items()}}
                    for row in rows]
            summary.write_many(rows)
            summaries.extend(rows)
    return summaries


def _run_cell(cell: Cell, curves: CsvLog, progress: Progress) -> list[dict[str, Any]]:
    ppo = cell.config.ppo
    total = ppo.num_updates * ppo.steps_per_update
    task = progress.add_task(cell.title, total=total, rate="compiling…", ret="-")
    diverged_at: dict[int, int] = {}

    def on_chunk(report: ChunkReport) -> None:
        curves.write_many(_curve_rows(cell.labels, report, ppo.steps_per_update))
        losses = report.losses["loss"]
        for seed in range(losses.shape[0]):
            bad = np.flatnonzero(~np.isfinite(losses[seed]))
            if bad.size and seed not in diverged_at:
                diverged_at[seed] = report.first_update + int(bad[0]) + 1
        latest = report.mean_return[:, -max(1, report.mean_return.shape[1] // 2):]
        ret = _nanmean(latest.ravel())
        rate = report.env_steps * losses.shape[0] / max(report.wall_s, 1e-9)
        progress.update(
            task,
            completed=report.env_steps,
            rate=f"{rate:,.0f} steps/s",
            ret="-" if math.isnan(ret) else f"{ret:.3f}",
        )

    labels = dict(cell.labels)
    start = time.perf_counter()
    try:
        result = run_training(cell.config, on_chunk, env_kwargs=dict(cell.env_kwargs),
                              env_params=dict(cell.env_params))
    except Exception as error:  # a failed cell is data; the sweep goes on
        message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        progress.update(task, rate="[red]failed", ret="-")
        return [
            {**labels, "seed": seed, "status": "error", "final_return": None,
             "best_return": None, "mmer": None, "env_steps": 0,
             "wall_s": round(time.perf_counter() - start, 3), "compile_s": None,
             "env_steps_per_s": None, "message": message}
            for seed in range(cell.config.num_seeds)
        ]
    final, best = summarize_returns(result.mean_return)
    mmer = max_mean_episodic_return(result.mean_return)
    per_seed_rate = result.env_steps / result.train_s if result.train_s > 0 else math.nan
    rows = []
    for seed in range(cell.config.num_seeds):
        diverged = seed in diverged_at
        rows.append({
            **labels,
            "seed": seed,
            "status": "diverged" if diverged else "ok",
            "final_return": float(final[seed]),
            "best_return": float(best[seed]),
            "mmer": float(mmer[seed]),
            "env_steps": result.env_steps,
            "wall_s": round(result.train_s, 3),
            "compile_s": round(result.compile_s, 3),
            "env_steps_per_s": round(per_seed_rate, 1),
            "message": f"non-finite loss at update {diverged_at[seed]}" if diverged else "",
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
