"""Host side of a training sweep: run cells one after another, write CSVs as they go.

A *cell* is one compiled training program: one backbone on one environment (and, for the
memory experiment, one memory length), all its seeds vmapped. ``run_cells`` trains each
cell through ``benchmark.training.run_training`` (the one PPO loop), shows a progress bar per
cell, appends a ``curves.csv`` row per (seed, update) after every chunk and a
``summary.csv`` row per seed at the end of the cell. A failing cell (out of memory, a
compile error) becomes rows with status ``error`` and the sweep goes on; a seed whose loss
or parameters turned non-finite is frozen by the PPO loop and marked ``diverged``.

Between chunks each cell is checkpointed (``Session``); ``prepare_resume`` decides, for an
interrupted run, which cells are finished and where the others continue, and trims the
CSVs to match, so a resumed run appends exactly the rows it had not yet written.
"""

from __future__ import annotations

import json
import math
import re
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

from benchmark.checkpoint import CellCheckpoints, CheckpointSettings
from benchmark.config import ConfigError, RunConfig, from_dict, to_dict
from benchmark.metrics import max_mean_episodic_return
from benchmark.results import CsvLog, filter_rows, read_raw_rows, typed_row, write_json
from benchmark.schema import CURVE_COLUMNS, LOSS_COLUMNS, SUMMARY_COLUMNS
from benchmark.timing import runtime_peak_bytes
from benchmark.training import (
    ChunkReport,
    RunResult,
    TrainingInterrupted,
    run_training,
)

FINAL_FRACTION = 0.1  # final_return averages the last 10% of updates (at least one)


@dataclass(frozen=True)
class Cell:
    """One compiled training program and the labels its CSV rows carry."""

    labels: Mapping[str, Any]  # e.g. {"model": "s5", "env": "RepeatFirstEasy"}
    config: RunConfig  # everything the cell trains with, its environment's settings too

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


# ----------------------------------------------------------------------------- experiments


def rebuilt_run(run: dict) -> dict:
    """A config.json run rebuilt through ``from_dict``: today's form, as JSON holds it."""
    return json.loads(json.dumps(to_dict(from_dict(run))))


def rebuilt_runs(doc: dict) -> dict:
    """``doc`` (a config.json) with every run in today's form (``rebuilt_run``)."""
    return {**doc, "runs": [rebuilt_run(run) for run in doc.get("runs", [])]}


@dataclass(frozen=True)
class Plan:
    """What one job of an experiment trains, and what its config.json says."""

    cells: list[Cell]  # in sweep order; with a shard, that shard's cells alone
    settings: dict[str, Any] = field(default_factory=dict)  # config.json beside the runs
    describe: str = ""  # shown after "N cell(s)", e.g. " on MetaControl, K=4"
    context: Any = None  # what ``after_cell`` and ``finish`` need (e.g. MetaSettings)
    shard: tuple[int, int] | None = None  # (I, N), 1-based


@dataclass(frozen=True)
class Experiment:
    """A training command's experiment; see the module docstring."""

    name: str
    labels: tuple[str, ...]
    plan: Callable[[Mapping[str, Any]], Plan]  # options -> every cell (ValueError if bad)
    make_cell: Callable[[RunConfig], Cell]  # a saved run config -> its cell (labels)
    summary_title: str = ""
    extra_summary: Mapping[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    # extra CSV -> the label columns that identify a cell's rows there (resume, merge)
    extra_csvs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    after_cell: Callable[[Any, Path], Callable[[Cell, RunResult], None]] | None = None
    finish: Callable[[Any, Path, list[dict]], list[Any]] | None = None  # -> tables
    # An older config.json in today's form (settings that moved into the run configs).
    normalise: Callable[[dict], dict] = rebuilt_runs


def validated_models(names: Sequence[str]) -> list[str]:
    """Distinct backbone names in order, each resolved (built-in, plugin or import path).

    ``ConfigError`` on the ``model`` field: an unknown name (listing the valid ones), or a
    plugin that does not import or keep the protocol (naming it).
    """
    from models import backbone, registered_backbones

    if not names:
        raise ConfigError("model", "no model given; valid models: "
                          + ", ".join(registered_backbones()))
    for name in names:
        try:
            backbone(name)
        except ValueError as error:
            raise ConfigError("model", str(error)) from None
    return list(dict.fromkeys(names))


def validated_envs(selections: Sequence[str]) -> list[str]:
    """Environment ids of ids, aliases, families or ``all``; ``ConfigError`` if unknown."""
    from envs import expand

    if not selections:
        raise ConfigError("env", "no environment given; give an id, alias or family from "
                          "`s5bench envs`, or all")
    env_ids: list[str] = []
    for selection in selections:
        try:
            env_ids += expand(selection)
        except ValueError as error:
            raise ConfigError("env", str(error)) from None
    return list(dict.fromkeys(env_ids))


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
    resume: ResumePlan | None = None
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


def cell_key(labels: Mapping[str, Any], label_columns: Sequence[str]) -> tuple[str, ...]:
    """A cell's identity in CSV rows: its label values as text (CSV reads back text)."""
    return tuple(str(labels[c]) for c in label_columns)


def checkpoint_dir(run_dir: Path, cell: Cell, label_columns: Sequence[str]) -> Path:
    slug = "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", part)
                    for part in cell_key(cell.labels, label_columns))
    return Path(run_dir) / "checkpoints" / slug


# ----------------------------------------------------------------------------- resuming


@dataclass
class ResumePlan:
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
                   trim: bool = True) -> ResumePlan:
    """Decide where each cell resumes and make the CSVs agree with that, exactly once.

    A cell is finished when summary.csv holds a row for each of its seeds and none is an
    ``error`` (failed cells are tried again). Every other cell restarts from its newest
    whole checkpoint (damaged newer ones are reported and skipped), so its curves.csv rows
    past that update, its partial summary rows and its rows in ``extra_csvs`` (file name ->
    the label columns that identify a cell's rows there; say trials.csv by model) are
    dropped: they will be written again, the same numbers, in order. A last line without
    its newline (a write cut by the kill) is dropped too. With ``trim=False`` the plan is
    made without touching the CSVs (the processes of a multi-process run that follow
    process 0, which trims them).
    """
    run_dir = Path(run_dir)
    label_columns = tuple(label_columns)
    summary = read_raw_rows(run_dir / "summary.csv")
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
        return ResumePlan(done=done, start=start, notes=notes)
    dropped = filter_rows(run_dir / "curves.csv", keep_curve)
    dropped += filter_rows(run_dir / "summary.csv",
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
    return ResumePlan(done=done, start=start, notes=notes)


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
        CsvLog(run_dir / "curves.csv", (*label_columns, *CURVE_COLUMNS)) as curves,
        CsvLog(run_dir / "summary.csv",
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
        return [
            {**labels, "seed": seed, "status": "error", "final_return": None,
             "best_return": None, "mmer": None, "env_steps": 0,
             "wall_s": round(time.perf_counter() - start, 3), "compile_s": None,
             "env_steps_per_s": None, "memory_bytes": None, "diverged_update": None,
             "message": message}
            for seed in range(cell.config.num_seeds)
        ]
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
