"""The speed sweep behind ``s5bench speed``: cells, status rows, resume and progress.

A *cell* is one (model, evaluation, mode, seq_len, batch). Every registered backbone is
measured; a backbone config with an ``evaluation`` field (S5) is measured once per
evaluation (``parallel`` and ``sequential``) and the rows say which. Lengths are swept in
increasing order in an outer Python loop, so each length compiles its own program.

Failure is data. A cell that runs out of memory, runs past ``max_seconds`` or raises
anything else becomes a row with status ``oom``, ``timeout`` or ``error`` and the message;
the longer lengths of that (model, evaluation, mode) become ``skipped`` rows, and the sweep
goes on. Rows are appended to ``speed.csv`` and flushed as they are measured; a resumed
sweep skips every (model, evaluation, mode, seq_len, batch) already in the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmark.compat import speed_options
from benchmark.errors import ConfigError, Stopped
from benchmark.measure import timing
from benchmark.measure.timing import Timing
from benchmark.options import EXTENDABLE, FolderOptions, SpeedOptions
from benchmark.plugins import plugin_records
from benchmark.results import (
    CsvLog,
    device_info,
    device_name,
    filter_rows,
    read_rows,
    write_json,
)
from benchmark.run_folder import create, reopen, resolve_options, saved_config
from benchmark.schema import EVALUATIONS, MODES, SPEED_COLUMNS
from benchmark.selection import validated_models
from benchmark.train.devices import is_out_of_memory
from models import backbone_config_class, registered_backbones

# Fields that change what a row means: a resumed sweep must keep them.
_MEASUREMENT_FIELDS = ("batch", "d_model", "num_layers", "repeats", "warmup", "obs_size",
                       "num_actions", "seed")




@dataclass(frozen=True, kw_only=True)
class SpeedConfig:
    """One speed sweep. Saved as ``config.json`` next to its ``speed.csv``."""

    seq_lens: tuple[int, ...]  # T values, measured in increasing order
    models: tuple[str, ...]  # registered backbone names
    modes: tuple[str, ...] = MODES  # train | infer | rollout
    batch: int = 4  # B: sequences per call
    d_model: int = 64  # width of every backbone (``config.sized``) and of the heads
    num_layers: int = 2  # L: layers of every backbone
    repeats: int = 5  # timed calls per cell
    warmup: int = 1  # untimed calls before them
    max_seconds: float = 60.0  # per-cell budget for warm-up + repeats (compile excluded)
    obs_size: int = 16  # D of the synthetic observations
    num_actions: int = 4  # discrete actions of the policy head
    seed: int = 0  # parameters and synthetic data

    def __post_init__(self):
        if not self.seq_lens:
            raise ConfigError("seq_lens", "no sequence lengths given")
        if any(t <= 0 for t in self.seq_lens):
            raise ConfigError("seq_lens", f"must be positive, got {list(self.seq_lens)}")
        if not self.models:
            raise ConfigError("models", "no model given")
        if not self.modes:
            raise ConfigError("modes", f"no mode given; valid modes: {', '.join(MODES)}")
        for mode in self.modes:
            if mode not in MODES:
                raise ConfigError("modes", f"unknown mode {mode!r}; valid modes: "
                                  f"{', '.join(MODES)}")
        for name in ("batch", "d_model", "num_layers", "repeats", "warmup", "obs_size",
                     "num_actions"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be a positive integer, "
                                  f"got {getattr(self, name)}")
        if not self.max_seconds > 0:
            raise ConfigError("max_seconds", f"must be positive, got {self.max_seconds}")


@dataclass(frozen=True)
class SpeedCell:
    """One measurement: a backbone config in one mode at one length."""

    model: str
    evaluation: str  # "parallel" / "sequential" for configs that have one, else ""
    mode: str
    seq_len: int
    batch: int
    backbone: Any  # the backbone config to build

    @property
    def key(self) -> tuple:
        return (self.model, self.evaluation, self.mode, self.seq_len, self.batch)

    @property
    def series(self) -> tuple:
        """The (model, evaluation, mode) line this cell is one length of."""
        return (self.model, self.evaluation, self.mode)

    @property
    def title(self) -> str:
        model = f"{self.model} ({self.evaluation})" if self.evaluation else self.model
        return f"{model} · {self.mode} · T={self.seq_len:,} B={self.batch}"


def backbone_variants(model: str, d_model: int, num_layers: int) -> list[tuple[str, Any]]:
    """``[(evaluation, config)]`` for one registered backbone at the given size.

    The registry's defaults (the paper's settings) resized with ``sized``; a config with an
    ``evaluation`` field yields one variant per entry of ``EVALUATIONS``.
    """
    config = backbone_config_class(model)().sized(d_model, num_layers)
    if "evaluation" in {f.name for f in dataclasses.fields(config)}:
        return [(e, dataclasses.replace(config, evaluation=e)) for e in EVALUATIONS]
    return [("", config)]


def make_cells(config: SpeedConfig) -> list[SpeedCell]:
    """Every cell of the sweep, each series' lengths in increasing order."""
    cells = []
    for model in config.models:
        for evaluation, backbone in backbone_variants(model, config.d_model, config.num_layers):
            for mode in config.modes:
                for seq_len in sorted(config.seq_lens):
                    cells.append(SpeedCell(model, evaluation, mode, seq_len, config.batch,
                                           backbone))
    return cells


# ----------------------------------------------------------------------------- one cell


def measure_cell(cell: SpeedCell, config: SpeedConfig, device: str, backend: str,
                 on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time one cell and return its CSV row; never raises for a failing cell."""
    row = _row(cell, config, device, backend)
    try:
        fn, args = timing.make_workload(
            cell.backbone, cell.mode, cell.seq_len, cell.batch, obs_size=config.obs_size,
            num_actions=config.num_actions, network_width=config.d_model, seed=config.seed)
        result = timing.time_function(fn, args, repeats=config.repeats, warmup=config.warmup,
                                      max_seconds=config.max_seconds, on_phase=on_phase)
    except timing.CellTimeout as timeout:
        row.update(status="timeout", message=str(timeout), compile_s=timeout.compile_s)
        if timeout.times_s:
            row.update(_stats(timeout.times_s, cell))
        return row
    except Exception as error:  # noqa: BLE001 (failure is data; the sweep goes on)
        status = "oom" if is_out_of_memory(error) else "error"
        return {**row, "status": status, "message": _one_line(error)}
    row.update(status="ok", compile_s=result.compile_s,
               peak_memory_bytes=result.peak_memory_bytes, **_stats(result.times_s, cell))
    return row


def _stats(times: Sequence[float], cell: SpeedCell) -> dict[str, Any]:
    timing = Timing(compile_s=0.0, times_s=tuple(times), peak_memory_bytes=None)
    return {"median_s": timing.median_s, "min_s": timing.min_s, "max_s": timing.max_s,
            "iqr_s": timing.iqr_s, "repeats": len(times),
            "tokens_per_s": cell.seq_len * cell.batch / timing.median_s}


def _row(cell: SpeedCell, config: SpeedConfig, device: str, backend: str) -> dict[str, Any]:
    row = {column: None for column in SPEED_COLUMNS}
    row.update(model=cell.model, evaluation=cell.evaluation, mode=cell.mode,
               seq_len=cell.seq_len, batch=cell.batch, d_model=config.d_model,
               num_layers=config.num_layers, repeats=0, device=device, backend=backend,
               message="")
    return row


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in f"{type(error).__name__}: {error}".splitlines()]
    return " ".join(line for line in lines if line)[:300]


# ----------------------------------------------------------------------------- the sweep


def _row_key(row: Mapping[str, Any]) -> tuple:
    return (str(row["model"]), str(row["evaluation"] or ""), str(row["mode"]),
            int(row["seq_len"]), int(row["batch"]))


class _SeriesState:
    """Per (model, evaluation, mode): where it failed and its last measured time."""

    def __init__(self):
        self.failed: dict[tuple, tuple[str, int]] = {}  # series -> (status, seq_len)
        self.ok: dict[tuple, dict[int, float]] = {}  # series -> {seq_len: median_s}

    def record(self, series: tuple, seq_len: int, status: str, median_s: float | None):
        if status in ("oom", "timeout", "error"):
            previous = self.failed.get(series)
            if previous is None or seq_len < previous[1]:
                self.failed[series] = (status, seq_len)
        elif status == "ok" and median_s is not None:
            self.ok.setdefault(series, {})[seq_len] = median_s

    def last_two(self, series: tuple) -> list[tuple[int, float]]:
        """The series' longest one or two measured lengths, ``(seq_len, median_s)``."""
        return sorted(self.ok.get(series, {}).items())[-2:]


def skip_reason(cell: SpeedCell, state: _SeriesState) -> str | None:
    """Why ``cell`` is not run: a shorter length of its series failed, or the last
    measured length predicts it would blow the budget. None: run it."""
    failed = state.failed.get(cell.series)
    if failed is not None and cell.seq_len > failed[1]:
        return f"skipped: {failed[0]} at seq_len {failed[1]}"
    return None


def predicted_timeout(cell: SpeedCell, state: _SeriesState, config: SpeedConfig) -> str | None:
    """A timeout message if the series' last measured length, scaled to this length,
    already puts warm-up + repeats over ``max_seconds`` (so nothing is compiled).

    The scaling is the series' own growth between its last two measured lengths (the
    log-log slope: 2 for attention's T^2), clipped to [1, 2]: never less than linear, and
    never more than quadratic, so that noise in short timings cannot skip a linear cell.
    """
    measured = state.last_two(cell.series)
    if not measured or cell.seq_len <= measured[-1][0]:
        return None
    seq_len, median_s = measured[-1]
    exponent = 1.0
    if len(measured) == 2 and measured[0][1] > 0:
        (t0, m0), (t1, m1) = measured
        exponent = min(2.0, max(1.0, math.log(m1 / m0) / math.log(t1 / t0)))
    per_call = median_s * (cell.seq_len / seq_len) ** exponent
    calls = config.warmup + config.repeats
    if per_call * calls <= config.max_seconds:
        return None
    return (f"predicted, not run: {median_s:.3g} s per call at seq_len {seq_len} scales to "
            f"about {per_call:.3g} s here, so {calls} calls would exceed --max-seconds "
            f"{config.max_seconds:g}")


def run_sweep(
    config: SpeedConfig,
    csv_path: Path,
    console=None,
    measure: Callable[..., dict[str, Any]] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    """Measure every cell not already in ``csv_path``, appending a row per cell.

    ``measure(cell, config, device, backend, on_phase=...) -> row`` defaults to
    ``measure_cell``. When ``should_stop()`` turns true the sweep stops after the cell in
    flight, raising ``errors.Stopped`` (its row is written; a resume measures the rest).

    Returns:
      Every row of the sweep: those found in the file (numbers as numbers, empty cells as
      None) and the new ones.
    """
    console = console or Console()
    measure = measure or measure_cell
    # A kill can cut the last row off mid-write; that partial line must neither count as a
    # finished cell nor have the next row appended onto it, so it is dropped before reading.
    filter_rows(csv_path, lambda row: True)
    existing = read_rows(csv_path)
    done = {_row_key(row) for row in existing}
    state = _SeriesState()
    for row in existing:
        model, evaluation, mode, seq_len, _ = _row_key(row)
        state.record((model, evaluation, mode), seq_len, row["status"], row["median_s"])
    cells = [cell for cell in make_cells(config) if cell.key not in done]
    device, backend = device_name(), device_info()["backend"]
    rows: list[dict[str, Any]] = list(existing)
    with CsvLog(csv_path, SPEED_COLUMNS) as log, _progress(console) as progress:
        task = progress.add_task("", total=len(cells), cell="", phase="", left=len(cells))
        for index, cell in enumerate(cells):
            if should_stop():
                raise Stopped(f"stopped after {index} of {len(cells)} cells")
            progress.update(task, cell=cell.title, phase="", left=len(cells) - index)
            reason = skip_reason(cell, state)
            if reason is not None:
                row = {**_row(cell, config, device, backend), "status": "skipped",
                       "message": reason}
            elif (message := predicted_timeout(cell, state, config)) is not None:
                row = {**_row(cell, config, device, backend), "status": "timeout",
                       "message": message}
            else:
                started = time.perf_counter()
                row = measure(cell, config, device, backend,
                              on_phase=lambda phase: progress.update(task, phase=phase))
                if row["status"] != "ok":
                    console.print(f"[yellow]{cell.title}: {row['status']}[/] "
                                  f"({time.perf_counter() - started:.1f} s) {row['message']}",
                                  markup=True, highlight=False)
            log.write(row)
            rows.append(row)
            state.record(cell.series, cell.seq_len, row["status"], row["median_s"])
            progress.update(task, advance=1, left=len(cells) - index - 1)
        progress.update(task, cell="done", phase="")
    return rows


def _progress(console):
    return Progress(
        TextColumn("[bold]{task.fields[cell]}"),
        TextColumn("{task.fields[phase]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[left]} cells left"),
        TimeElapsedColumn(),
        console=console,
    )


# ----------------------------------------------------------------------------- config and report


@dataclass(frozen=True)
class SpeedJob:
    """One validated speed sweep: its options (a resume's own, extended), the config it
    measures and where it writes; nothing written yet."""

    options: SpeedOptions
    config: SpeedConfig
    folder: FolderOptions


def prepare(options: SpeedOptions, folder: FolderOptions, typed: Collection[str] = ()
            ) -> SpeedJob:
    """The sweep's options (with ``folder.resume``, the run's own, extended) and its config.

    Models and modes left unset (None) are every registered backbone and every mode.
    ``seq_len``, ``model`` and ``mode`` given beside a resume add to the sweep; any other
    field in ``typed`` must agree with the saved one. Raises ValueError (``ConfigError``,
    ``RunFolderError``) on bad input.
    """
    options = dataclasses.replace(
        options, model=tuple(validated_models(registered_backbones() if options.model is None
                                              else options.model)),
        mode=MODES if options.mode is None else tuple(dict.fromkeys(options.mode)))
    options = resolve_options("speed", folder.resume, options, typed,
                              extendable=EXTENDABLE["speed"], legacy=speed_options)
    config = SpeedConfig(
        seq_lens=tuple(sorted(options.seq_len)),
        models=tuple(validated_models(options.model)),  # a resume's saved ones too
        modes=options.mode, batch=options.batch, d_model=options.d_model,
        num_layers=options.layers, repeats=options.repeats, warmup=options.warmup,
        max_seconds=options.max_seconds)
    if folder.resume is not None:
        _check_same_measurement(saved_config(folder.resume, "speed"), config)
    return SpeedJob(options, config, folder)


def _check_same_measurement(saved: Mapping[str, Any], config: SpeedConfig) -> None:
    """Raise ``ConfigError`` unless ``config`` measures what the saved config measured."""
    current = dataclasses.asdict(config)
    differ = [name for name in _MEASUREMENT_FIELDS if saved.get(name) != current[name]]
    if differ:
        details = ", ".join(f"{name} {saved.get(name)!r} -> {current[name]!r}"
                            for name in differ)
        raise ConfigError("resume", f"a resumed sweep must measure what the run measured; "
                          f"these settings differ from its config.json: {details}")


def open_sweep(job: SpeedJob):
    """The sweep's run folder, created or (``resume``) reopened, config.json (re)written.

    Timings on a shared machine depend on what else runs: meta.json (a resume's entry for a
    resumed sweep) keeps the load average beside them; ``close_sweep`` adds the one at the
    end.
    """
    plugins = plugin_records(job.config.models, ())
    used = {"plugins": plugins} if plugins else {}  # config.json and meta.json keep them
    doc = {"command": "speed", "options": dataclasses.asdict(job.options),
           **dataclasses.asdict(job.config), **used}
    load = {"load_average": list(os.getloadavg())}
    if job.folder.resume is None:
        return create(job.folder.out_for("speed"), job.folder.run_id, job.folder.force, doc,
                      {**load, **used})
    folder = reopen(job.folder.resume, load)
    write_json(folder.path / "config.json", doc)  # the sweep may have grown
    return folder


def close_sweep(folder) -> None:
    """meta.json gains the load average at the sweep's end (beside the one at its start)."""
    entry = folder.meta["resumes"][-1] if folder.resumed else folder.meta
    entry["load_average_end"] = list(os.getloadavg())
    folder.save_meta()


def _cell_text(row: Mapping[str, Any]) -> str:
    status = row["status"]
    if status != "ok":
        return {"skipped": "[dim]skip[/]", "timeout": "[yellow]timeout[/]",
                "oom": "[red]oom[/]", "error": "[red]error[/]"}.get(status, status)
    median = float(row["median_s"])
    return f"{median * 1e3:,.1f} ms" if median < 1 else f"{median:,.2f} s"


def summary_table(rows: Iterable[Mapping[str, Any]], title: str):
    """A rich table: one row per (model, evaluation, mode, batch), median time per length."""
    rows = list(rows)
    lengths = sorted({int(row["seq_len"]) for row in rows})
    series: dict[tuple, dict[int, Mapping[str, Any]]] = {}
    for row in rows:
        key = (row["model"], row["evaluation"] or "", row["mode"], int(row["batch"]))
        series.setdefault(key, {})[int(row["seq_len"])] = row
    table = Table(title=title)
    for name in ("model", "evaluation", "mode", "B"):
        table.add_column(name, no_wrap=True)
    for length in lengths:
        table.add_column(f"T={length:,}", justify="right", no_wrap=True)
    for (model, evaluation, mode, batch), by_length in series.items():
        table.add_row(model, evaluation, mode, str(batch),
                      *(_cell_text(by_length[t]) if t in by_length else "" for t in lengths))
    return table

