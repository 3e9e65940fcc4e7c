"""Every figure, drawn from the CSVs of run folders alone (nothing retrains or re-measures).

``draw_figures(results, out)`` finds every run folder under ``results`` (at any depth, so
``results/reference/<device>/...`` too), reads and checks its CSVs, and draws each figure
whose data is present, one figure per run folder:

===================  ==========================  ==============================================
figure               from                        shows
===================  ==========================  ==============================================
``scaling``          ``speed.csv``               median time per call against sequence length,
                                                 log-log, one panel per mode, one line per
                                                 backbone (S5 parallel and sequential apart)
``speed_ratio``      ``speed.csv``               each backbone's time over S5's (the faster S5
                                                 evaluation at each length), per mode
``memory_length``    memory ``summary.csv``      the paper's Figure 1: device memory of the
                                                 training program, training time (log-log
                                                 slope in the legend) and final return (mean,
                                                 min-max band over seeds) against length
``popgym_curves``    POPGym ``curves.csv``       mean return against env steps, one panel per
                                                 environment, band over seeds
``popgym_summary``   POPGym ``curves.csv`` and   MMER per environment and backbone, the mean
                     ``summary.csv``             over environments, and wall time per backbone
``return_vs_cost``   POPGym ``summary.csv``      final return against training wall time, one
                                                 point per (backbone, environment)
===================  ==========================  ==============================================

Each figure is written as PNG and SVG, and ``index.md`` lists them with the run folders
they come from. A figure whose data is absent is skipped with a one-line reason. A CSV
that cannot be parsed, lacks a required column or holds text where numbers belong raises
``FigureDataError`` naming the file (and the column), before anything is drawn.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.metrics import mmer_per_seed  # noqa: E402
from benchmark.results import device_label  # noqa: E402

# Deterministic SVG ids and no timestamps, so redrawing unchanged data changes no file.
matplotlib.rcParams["svg.hashsalt"] = "s5bench"
_SAVE_METADATA = {"png": {"Software": None}, "svg": {"Date": None}}
FORMATS = ("png", "svg")

SPEED_COLUMNS = ("model", "evaluation", "mode", "seq_len", "batch", "status", "median_s",
                 "device")
MEMORY_SUMMARY_COLUMNS = ("model", "memory_length", "seed", "status", "final_return",
                          "wall_s")
POPGYM_CURVES_COLUMNS = ("model", "env", "seed", "update", "env_steps", "mean_return")
POPGYM_SUMMARY_COLUMNS = ("model", "env", "seed", "status", "final_return", "wall_s")
_NUMERIC = {"seq_len", "batch", "median_s", "min_s", "max_s", "tokens_per_s", "d_model",
            "num_layers", "memory_length", "seed", "update", "env_steps", "mean_return",
            "final_return", "best_return", "wall_s", "trial", "memory_bytes"}

MODES = ("train", "infer", "rollout")
_MODE_TITLES = {"train": "train (forward + backward + update)",
                "infer": "infer (forward over the sequence)",
                "rollout": "rollout (T single-step calls)"}
_COLORS = {"s5": "C0", "gru": "C1", "lstm": "C2", "trxl": "C3", "attention": "C4",
           "lru": "C5", "mamba": "C6", "mingru": "C8", "mlp": "C7"}
# Models not named above (a backbone registered later): tab10's last colour, then others.
_EXTRA_COLORS = ("C9", "black", "gold", "navy")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

FIGURE_TITLES = {
    "scaling": "Scaling: time against sequence length",
    "speed_ratio": "Speed relative to S5",
    "memory_length": "Memory length: device memory, training time and return",
    "popgym_curves": "POPGym learning curves",
    "popgym_summary": "POPGym summary: MMER and wall time",
    "return_vs_cost": "Return against cost",
}
_SOURCE_TEXT = {"speed": "speed run (speed.csv)",
                "memory": "memory run (summary.csv with memory_length)",
                "popgym": "POPGym run (curves.csv/summary.csv with env)"}


class FigureDataError(ValueError):
    """A CSV cannot be read, lacks a required column or holds malformed values."""


@dataclass
class Run:
    """One run folder and the tables read from it."""

    path: Path  # the run folder
    name: str  # its path relative to the results folder, e.g. reference/cpu-2core/memory
    kind: str  # speed | memory | popgym
    device: str  # where timings were taken, from meta.json (or speed.csv)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # csv stem -> table
    files: dict[str, Path] = field(default_factory=dict)  # csv stem -> path
    config: dict[str, Any] = field(default_factory=dict)  # its config.json, if any

    @property
    def slug(self) -> str:
        return self.name.replace("/", "-").replace("\\", "-") or "results"


@dataclass
class Figure:
    """A drawn figure: its files and where its data came from."""

    kind: str
    stem: str
    title: str
    runs: list[Path]
    device: str
    caption: str
    files: list[Path]


@dataclass
class Report:
    """What ``draw_figures`` did."""

    figures: list[Figure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line each
    index: Path | None = None

    @property
    def nothing_to_draw(self) -> bool:
        return not self.figures

    def add(self, outcome: Figure | str, title: str, run_name: str) -> None:
        """Record a drawn figure, or the reason (a drawer's string) it was not drawn."""
        if isinstance(outcome, str):
            self.skipped.append(f"{title} ({run_name}): {outcome}")
        else:
            self.figures.append(outcome)


# ----------------------------------------------------------------------------- reading


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
        if column in _NUMERIC:
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


def _kind(folder: Path) -> str | None:
    """speed | memory | popgym for a run folder, from its config.json or CSV header."""
    if (folder / "speed.csv").exists():
        return "speed"
    command = _read_json(folder / "config.json").get("command")
    if command in ("memory", "popgym"):
        return command
    for name in ("summary.csv", "curves.csv"):
        if (folder / name).exists():
            header = _header(folder / name)
            if "memory_length" in header:
                return "memory"
            if "env" in header:
                return "popgym"
    return None


def find_run_folders(results: Path) -> list[Path]:
    """Folders under ``results`` (any depth) holding a speed, curves or summary CSV."""
    names = ("speed.csv", "curves.csv", "summary.csv")
    folders = {p.parent for name in names for p in Path(results).rglob(name)}
    return sorted(folders)


_TABLES = {
    "speed": {"speed": SPEED_COLUMNS},
    "memory": {"summary": MEMORY_SUMMARY_COLUMNS},
    "popgym": {"curves": POPGYM_CURVES_COLUMNS, "summary": POPGYM_SUMMARY_COLUMNS},
}


def read_run(folder: Path, results: Path, kind: str,
             tables: dict[str, Sequence[str]]) -> Run:
    """``folder``'s Run with each of ``tables`` (csv stem -> required columns) that exists
    read and checked; shared with figures_meta so both name and read runs alike.

    Raises:
      FigureDataError: on the first CSV that is unreadable or lacks a required column.
    """
    name = folder.relative_to(results).as_posix() if folder != results else folder.name
    run = Run(path=folder, name=name, kind=kind,
              device=device_label(_read_json(folder / "meta.json")),
              config=_read_json(folder / "config.json"))
    for stem, required in tables.items():
        path = folder / f"{stem}.csv"
        if path.exists():
            run.tables[stem] = read_table(path, required)
            run.files[stem] = path
    return run


def load_runs(results: Path) -> list[Run]:
    """Every speed, memory and POPGym run folder under ``results`` with its checked tables.

    Raises:
      FigureDataError: on the first CSV that is unreadable or lacks a required column.
    """
    results = Path(results)
    runs = []
    for folder in find_run_folders(results):
        kind = _kind(folder)
        if kind is None:
            continue
        run = read_run(folder, results, kind, _TABLES[kind])
        if kind == "speed" and "speed" in run.tables:
            devices = run.tables["speed"]["device"].dropna().unique()
            if len(devices):
                run.device = ", ".join(str(d) for d in devices)
        runs.append(run)
    return runs


# ----------------------------------------------------------------------------- drawing


def draw_figures(results: Path, out: Path) -> Report:
    """Draw every figure whose data is under ``results`` into ``out``; write index.md.

    Raises:
      FileNotFoundError: ``results`` is not a folder.
      FigureDataError: a CSV is unreadable or lacks a required column (nothing drawn).
    """
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} does not exist")
    from benchmark.figures_meta import draw_meta_figures, load_meta_runs

    # Every CSV, the meta runs' too, is read and checked before anything is drawn.
    runs = load_runs(results)
    meta_runs = load_meta_runs(results)
    report = Report()
    if not runs and not meta_runs:
        return report
    by_kind: dict[str, list[Run]] = {}
    for run in runs:
        by_kind.setdefault(run.kind, []).append(run)
    out.mkdir(parents=True, exist_ok=True)
    drawers = {  # figure -> (the kind of run it is drawn from, its drawer)
        "scaling": ("speed", _draw_scaling),
        "speed_ratio": ("speed", _draw_speed_ratio),
        "memory_length": ("memory", _draw_memory_length),
        "popgym_curves": ("popgym", _draw_popgym_curves),
        "popgym_summary": ("popgym", _draw_popgym_summary),
        "return_vs_cost": ("popgym", _draw_return_vs_cost),
    }
    for kind, (source, drawer) in drawers.items():
        sources = by_kind.get(source, [])
        if not sources:
            report.skipped.append(f"{FIGURE_TITLES[kind]}: no {_SOURCE_TEXT[source]} "
                                  f"under {results}")
        for run in sources:
            report.add(drawer(run, out), FIGURE_TITLES[kind], run.name)
    draw_meta_figures(meta_runs, out, report)  # meta-RL runs (trials.csv): figures_meta.py
    report.index = write_index(out, report, results)
    return report


def _figure(kind: str, run: Run, fig, out: Path, caption: str,
            title: str | None = None) -> Figure:
    """Save ``fig`` as ``<kind>_<run slug>`` in every format, close it and describe it."""
    stem = f"{kind}_{run.slug}"
    files = []
    for fmt in FORMATS:
        path = out / f"{stem}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata=_SAVE_METADATA[fmt])
        files.append(path)
    plt.close(fig)
    return Figure(kind, stem, title or FIGURE_TITLES[kind], [run.path], run.device, caption,
                  files)


def _color(name: str, seen: dict[str, str]) -> str:
    base = name.split(" ")[0]
    if base in _COLORS:
        return _COLORS[base]
    if base not in seen:
        seen[base] = _EXTRA_COLORS[len(seen) % len(_EXTRA_COLORS)]
    return seen[base]


def _model_order(names: Iterable[str]) -> list[str]:
    order = list(_COLORS)
    return sorted(set(names), key=lambda n: (order.index(n.split(" ")[0])
                                             if n.split(" ")[0] in order else len(order), n))


# --- speed


def _speed_lines(table: pd.DataFrame) -> pd.DataFrame:
    """Measured rows with a ``line`` label: ``s5 (parallel)``, ``gru``, ... (+ sizes)."""
    ok = table[table["status"].astype(str) == "ok"].copy()
    ok = ok[ok["median_s"].notna() & ok["seq_len"].notna()]
    evaluation = ok["evaluation"].fillna("").astype(str).str.strip()
    ok["line"] = np.where(evaluation != "", ok["model"].astype(str) + " (" + evaluation + ")",
                          ok["model"].astype(str))
    sizes = [c for c in ("batch", "d_model", "num_layers") if c in ok.columns]
    if sizes and len(ok[sizes].drop_duplicates()) > 1:
        ok["line"] = ok["line"] + ok[sizes].apply(
            lambda r: " " + ",".join(f"{c}={int(r[c])}" for c in sizes if pd.notna(r[c])),
            axis=1)
    return ok


def _sizes_text(table: pd.DataFrame) -> str:
    parts = []
    for column, label in (("batch", "B"), ("d_model", "H"), ("num_layers", "L")):
        if column in table.columns:
            values = sorted(int(v) for v in table[column].dropna().unique())
            if values:
                parts.append(f"{label}={'/'.join(str(v) for v in values)}")
    return ", ".join(parts)


def _unmeasured(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(mode, line, "timeout from T=32768")`` for every (line, mode) with non-ok rows."""
    bad = table[table["status"].astype(str) != "ok"]
    notes = []
    for (model, evaluation, mode), group in bad.groupby(
            [bad["model"].astype(str), bad["evaluation"].fillna("").astype(str),
             bad["mode"].astype(str)], sort=True):
        first = group.sort_values("seq_len").iloc[0]
        label = f"{model} ({evaluation})" if evaluation else model
        notes.append((mode, label, f"{first['status']} from T={int(first['seq_len'])}"))
    return notes


def _modes(table: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(table["mode"].astype(str)))
    return [m for m in MODES if m in present] + [m for m in present if m not in MODES]


def _ok_speed_rows(run: Run) -> pd.DataFrame | str:
    """speed.csv's measured rows with their line labels, or why there are none."""
    if "speed" not in run.tables:
        return "no speed.csv"
    ok = _speed_lines(run.tables["speed"])
    if ok.empty:
        return f"{run.files['speed']} has no row with status ok"
    return ok


def _draw_scaling(run: Run, out: Path) -> Figure | str:
    ok = _ok_speed_rows(run)
    if isinstance(ok, str):
        return ok
    table = run.tables["speed"]
    modes = _modes(ok)
    unmeasured = _unmeasured(table)
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 4.4), squeeze=False,
                             layout="constrained")
    extra: dict[str, str] = {}
    for ax, mode in zip(axes[0], modes, strict=True):
        rows = ok[ok["mode"] == mode]
        for line in _model_order(rows["line"]):
            data = rows[rows["line"] == line].groupby("seq_len").agg(
                median_s=("median_s", "median"),
                lo=("min_s" if "min_s" in rows else "median_s", "min"),
                hi=("max_s" if "max_s" in rows else "median_s", "max"),
            ).sort_index()
            style = "--" if "sequential" in line else "-"
            color = _color(line, extra)
            ax.plot(data.index, data["median_s"], style, marker="o", ms=3.5, color=color,
                    label=line)
            ax.fill_between(data.index, data["lo"], data["hi"], color=color, alpha=0.15,
                            lw=0)
        _log2_ticks(ax, table.loc[table["mode"].astype(str) == mode, "seq_len"].dropna())
        ax.set_yscale("log")
        notes = [f"{line}: {what}" for m, line, what in unmeasured if m == mode]
        if notes:
            ax.text(0.98, 0.02, "not measured:\n" + "\n".join(notes), transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7, color="0.3")
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel("median time per call (s)")
        ax.set_title(_MODE_TITLES.get(mode, mode), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    sizes = _sizes_text(ok)
    fig.suptitle(f"Time against sequence length on {run.device} ({sizes}); band: min-max "
                 "over repeats", fontsize=11)
    caption = (f"Median seconds per call against T, log-log, {sizes}; one panel per mode; "
               "S5's parallel (solid) and sequential (dashed) evaluations apart.")
    if unmeasured:
        caption += " Not measured: " + "; ".join(
            f"{line} {mode}: {what}" for mode, line, what in unmeasured) + "."
    return _figure("scaling", run, fig, out, caption)


def _draw_speed_ratio(run: Run, out: Path) -> Figure | str:
    ok = _ok_speed_rows(run)
    if isinstance(ok, str):
        return ok
    is_s5 = ok["model"].astype(str) == "s5"
    if not is_s5.any():
        return f"{run.files['speed']} has no measured s5 row to compare with"
    if is_s5.all():
        return f"{run.files['speed']} has only s5 rows"
    reference = ok[is_s5].groupby(["mode", "seq_len"])["median_s"].min()
    modes = [m for m in _modes(ok) if m in reference.index.get_level_values(0)]
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 4.4), squeeze=False,
                             layout="constrained")
    extra: dict[str, str] = {}
    for ax, mode in zip(axes[0], modes, strict=True):
        rows = ok[(ok["mode"] == mode) & ~is_s5]
        for line in _model_order(rows["line"]):
            data = rows[rows["line"] == line].groupby("seq_len")["median_s"].median()
            ref = reference.loc[mode].reindex(data.index)
            ratio = (data / ref).dropna()
            if ratio.empty:
                continue
            ax.plot(ratio.index, ratio.values, marker="o", ms=3.5, color=_color(line, extra),
                    label=line)
        ax.axhline(1.0, color=_COLORS["s5"], lw=1.2, ls=":", label="S5 (= 1)")
        _log2_ticks(ax, rows["seq_len"])
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel("time per call / S5's time (ratio)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_title(_MODE_TITLES.get(mode, mode), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Time relative to S5 (the faster S5 evaluation at each T) on {run.device}; "
                 "above 1 = slower than S5", fontsize=11)
    caption = ("Each backbone's median time per call divided by S5's at the same T and mode "
               "(S5 = the faster of its parallel and sequential evaluations there).")
    return _figure("speed_ratio", run, fig, out, caption)


# --- memory


def memory_success_lengths(summary: pd.DataFrame) -> dict[str, int | None]:
    """Per model, the largest memory length up to which every measured length succeeded.

    A length succeeds when the majority of its seeds have ``success`` true (``None`` if
    the model never succeeded; models without a ``success`` column are left out).
    """
    if "success" not in summary.columns:
        return {}
    result: dict[str, int | None] = {}
    for model, group in summary.groupby(summary["model"].astype(str)):
        solved = group.groupby("memory_length")["success"].apply(
            lambda s: (s.astype(str).str.lower() == "true").mean() > 0.5).sort_index()
        last = None
        for length, ok in solved.items():
            if not ok:
                break
            last = int(length)
        result[model] = last
    return result


def _ok_summary_rows(run: Run) -> pd.DataFrame | str:
    """summary.csv rows with status ok and a final return, or why there are none."""
    if "summary" not in run.tables:
        return "no summary.csv"
    summary = run.tables["summary"]
    ok = summary[(summary["status"].astype(str) == "ok") & summary["final_return"].notna()]
    if ok.empty:
        return f"{run.files['summary']} has no row with status ok"
    return ok


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of log y against log x (None with fewer than two points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0) & np.isfinite(y)
    if keep.sum() < 2:
        return None
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def _draw_memory_length(run: Run, out: Path) -> Figure | str:
    """The paper's Figure 1: device memory, training time and return against length."""
    ok = _ok_summary_rows(run)
    if isinstance(ok, str):
        return ok
    fig, (mem_ax, time_ax, ret_ax) = plt.subplots(1, 3, figsize=(15, 4.4),
                                                  layout="constrained")
    extra: dict[str, str] = {}
    seeds = int(ok.groupby(["model", "memory_length"]).size().max())
    has_memory = "memory_bytes" in ok and ok["memory_bytes"].notna().any()
    for model in _model_order(ok["model"].astype(str)):
        rows = ok[ok["model"].astype(str) == model]
        stats = rows.groupby("memory_length").agg(
            mean=("final_return", "mean"), lo=("final_return", "min"),
            hi=("final_return", "max"), wall=("wall_s", "max"),
            memory=("memory_bytes", "max") if has_memory else ("wall_s", "size"),
        ).sort_index()
        color = _color(model, extra)
        ret_ax.plot(stats.index, stats["mean"], marker="o", ms=4, color=color, label=model)
        ret_ax.fill_between(stats.index, stats["lo"], stats["hi"], color=color, alpha=0.15,
                            lw=0)
        slope = loglog_slope(stats.index, stats["wall"])
        time_ax.plot(stats.index, stats["wall"], marker="o", ms=4, color=color,
                     label=model if slope is None else f"{model} (slope {slope:.2f})")
        if has_memory:
            mem_ax.plot(stats.index, stats["memory"] / 2**20, marker="o", ms=4, color=color,
                        label=model)
    if not has_memory:
        mem_ax.text(0.5, 0.5, "no memory_bytes in summary.csv\n(a run from before it was "
                    "recorded)", ha="center", va="center", transform=mem_ax.transAxes,
                    color="0.4")
    ret_ax.axhline(0.0, color="k", lw=0.8, ls=":", label="chance (no memory)")
    ret_ax.set_ylim(min(-0.25, float(ok["final_return"].min()) - 0.05), 1.05)
    ret_ax.set_ylabel("final mean episodic return")
    ret_ax.set_title(f"(c) Return (mean over {seeds} seeds; band: min-max)", fontsize=10)
    time_ax.set_yscale("log")
    time_ax.set_ylabel("training time per cell (s, log)")
    time_ax.set_title(f"(b) Training time ({seeds} seeds vmapped, compile excluded)",
                      fontsize=10)
    mem_ax.set_yscale("log")
    mem_ax.set_ylabel("device memory of the training program (MiB, log)")
    mem_ax.set_title("(a) Memory XLA planned for one compiled chunk", fontsize=10)
    for ax in (mem_ax, time_ax, ret_ax):
        _log2_ticks(ax, ok["memory_length"])
        ax.set_xlabel("memory length L (the cue is L - 1 steps before the decision)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"MemoryChain (bsuite): memory, training time and return against memory "
                 f"length, on {run.device}", fontsize=11)
    caption = ("(a) arguments + outputs + temporaries XLA planned for one compiled training "
               "chunk (all seeds); (b) seconds of the compiled chunks (the legend gives each "
               "backbone's log-log slope: 1 = linear in L, 2 = quadratic); (c) final return = "
               "mean episodic return over the last 10% of updates; 1 = every cue recalled, "
               "0 = chance.")
    solved = memory_success_lengths(run.tables["summary"])
    if solved:
        threshold = run.config.get("success_return", "the run's threshold")
        parts = [f"{m}: {'none' if solved[m] is None else solved[m]}"
                 for m in _model_order(solved)]
        caption += (" Largest memory length up to which every length succeeded (success: "
                    f"best return, the best window of 10% of the updates, >= {threshold}, "
                    "for most seeds): " + ", ".join(parts) + ".")
    return _figure("memory_length", run, fig, out, caption)


# --- popgym


def mmer(curves: pd.DataFrame) -> pd.Series:
    """MMER per (model, env): each seed's MMER (``metrics.mmer_per_seed``), mean over seeds."""
    return mmer_per_seed(curves).groupby(level=["model", "env"]).mean()


def _smooth_per_seed(data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``[env_steps, seed]`` returns, each seed smoothed over its updates with an episode.

    Updates in which no episode ended carry no return (NaN); each seed's finished-episode
    returns get a trailing mean over about 5% of its updates, and the value holds until the
    seed's next finished episode, so that seeds can be averaged at every env step.
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


def _log2_ticks(ax, values: Iterable[float]) -> None:
    """A base-2 log x axis labelled with the plain values present (4, 8, 16, ...)."""
    ticks = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if len(ticks) > 8:
        for label in ax.get_xticklabels():
            label.set_rotation(45)


def _grid(count: int) -> tuple[int, int]:
    cols = min(4, count)
    return math.ceil(count / cols), cols


def _draw_popgym_curves(run: Run, out: Path) -> Figure | str:
    if "curves" not in run.tables:
        return "no curves.csv"
    curves = run.tables["curves"]
    if curves["mean_return"].notna().sum() == 0:
        return f"{run.files['curves']} has no finished episode"
    envs = list(dict.fromkeys(curves["env"].astype(str)))
    rows_n, cols_n = _grid(len(envs))
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(4.6 * cols_n, 3.6 * rows_n),
                             squeeze=False, layout="constrained")
    extra: dict[str, str] = {}
    window = 1
    for ax, env in zip(axes.flat, envs, strict=False):
        rows = curves[curves["env"].astype(str) == env]
        for model in _model_order(rows["model"].astype(str)):
            data = rows[rows["model"].astype(str) == model]
            smooth, window = _smooth_per_seed(data)
            if smooth.empty:
                continue
            color = _color(model, extra)
            ax.plot(smooth.index, smooth.mean(axis=1), color=color, label=model,
                    marker="o" if len(smooth) < 30 else None, ms=3)
            ax.fill_between(smooth.index, smooth.min(axis=1), smooth.max(axis=1),
                            color=color, alpha=0.15, lw=0)
        ax.set_title(env, fontsize=10)
        ax.set_xlabel("environment steps per seed")
        ax.set_ylabel("mean episodic return")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    seeds = int(curves.groupby(["model", "env"])["seed"].nunique().max())
    fig.suptitle(f"POPGym learning curves on {run.device}: mean over {seeds} seeds, band "
                 f"min-max over seeds", fontsize=11)
    caption = (f"Per-update mean episodic return, each seed smoothed by a trailing mean over "
               f"about 5% of the updates ({window} updates), then averaged over seeds.")
    return _figure("popgym_curves", run, fig, out, caption)


def _cell_wall(summary: pd.DataFrame) -> pd.Series:
    """Training wall seconds per (model, env) cell (ok rows only; seeds share one cell)."""
    ok = summary[(summary["status"].astype(str) == "ok") & summary["wall_s"].notna()]
    return ok.groupby([ok["model"].astype(str), ok["env"].astype(str)])["wall_s"].max()


def _draw_popgym_summary(run: Run, out: Path) -> Figure | str:
    if "curves" not in run.tables:
        return "no curves.csv (MMER comes from the learning curves)"
    if "summary" not in run.tables:
        return "no summary.csv (wall time comes from the summary)"
    scores = mmer(run.tables["curves"]).dropna()
    if scores.empty:
        return f"{run.files['curves']} has no finished episode"
    wall = _cell_wall(run.tables["summary"])
    models = _model_order(scores.index.get_level_values("model").astype(str))
    envs = list(dict.fromkeys(scores.index.get_level_values("env").astype(str)))
    groups = [*envs, "mean over envs"]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(max(8.0, 1.1 * len(groups) * max(1, len(models)) / 2 + 6), 4.8),
        gridspec_kw={"width_ratios": [max(2, len(groups)), 1.2]}, layout="constrained")
    width = 0.8 / len(models)
    extra: dict[str, str] = {}
    for i, model in enumerate(models):
        per_env = scores.xs(model, level="model") if model in scores.index.get_level_values(
            "model") else pd.Series(dtype=float)
        values = [per_env.get(env, np.nan) for env in envs]
        values.append(np.nanmean(values) if np.isfinite(values).any() else np.nan)
        left.bar(np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width, values,
                 width, color=_color(model, extra), label=model)
    left.set_xticks(np.arange(len(groups)), groups, rotation=30 if len(groups) > 3 else 0,
                    ha="right" if len(groups) > 3 else "center", fontsize=8)
    left.set_ylabel("MMER (each seed's best update, mean over seeds)")
    left.set_title("MMER per environment and backbone", fontsize=10)
    left.axhline(0.0, color="k", lw=0.6)
    left.grid(True, axis="y", alpha=0.3)
    left.legend(fontsize=8)
    wall_models = [m for m in models if m in wall.index.get_level_values(0)]
    means = [float(wall.xs(m, level=0).mean()) for m in wall_models]
    if wall_models:
        right.bar(wall_models, means, color=[_color(m, extra) for m in wall_models])
    else:
        right.text(0.5, 0.5, "no finished cell\nin summary.csv", ha="center", va="center",
                   transform=right.transAxes, color="0.4")
        right.set_xticks([])
    right.set_ylabel("training wall time per cell (s), mean over envs")
    right.set_title("Wall time for the same budget", fontsize=10)
    right.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"POPGym summary on {run.device}", fontsize=11)
    caption = ("MMER = for each seed, the max over updates of the per-update mean episodic "
               "return, then the mean over seeds (as POPGym and Lu et al. report it); right: "
               "training seconds per (backbone, env) cell, compile excluded, seeds vmapped.")
    return _figure("popgym_summary", run, fig, out, caption)


def _draw_return_vs_cost(run: Run, out: Path) -> Figure | str:
    ok = _ok_summary_rows(run)
    if isinstance(ok, str):
        return ok
    cells = ok.groupby([ok["model"].astype(str), ok["env"].astype(str)]).agg(
        final=("final_return", "mean"), wall=("wall_s", "max"))
    envs = list(dict.fromkeys(cells.index.get_level_values(1)))
    markers = len(envs) <= len(_MARKERS)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    extra: dict[str, str] = {}
    for (model, env), row in cells.iterrows():
        ax.scatter(row["wall"], row["final"], color=_color(model, extra), s=36,
                   marker=_MARKERS[envs.index(env)] if markers else "o")
    handles = [plt.Line2D([], [], color=_color(m, extra), marker="o", ls="", label=m)
               for m in _model_order(cells.index.get_level_values(0))]
    if markers and len(envs) > 1:
        handles += [plt.Line2D([], [], color="0.4", marker=_MARKERS[i], ls="", label=env)
                    for i, env in enumerate(envs)]
    ax.legend(handles=handles, fontsize=8)
    walls = cells["wall"].dropna()
    if len(walls) and walls.min() > 0 and walls.max() / walls.min() > 10:
        ax.set_xscale("log")
    ax.set_xlabel("training wall time per cell (s, compile excluded)")
    ax.set_ylabel("final mean episodic return (mean over seeds)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Final return against training time on {run.device}", fontsize=11)
    caption = ("One point per (backbone, environment): final return (last 10% of updates, "
               "mean over seeds) against the cell's training seconds.")
    return _figure("return_vs_cost", run, fig, out, caption)


# ----------------------------------------------------------------------------- index


def write_index(out: Path, report: Report, results: Path) -> Path:
    """``out/index.md``: every figure with its files, run folders and device; the skips."""
    lines = ["# Figures", "",
             f"Drawn by `s5bench figures --results {results.as_posix()} --out {out.as_posix()}` "
             "from the CSVs of the run folders listed; nothing was retrained or re-measured.",
             ""]
    for figure in report.figures:
        png, *others = [f.name for f in figure.files]
        runs = ", ".join(f"`{p.as_posix()}`" for p in figure.runs)
        lines += [f"## {figure.title} (`{figure.stem}`)", "",
                  f"![{figure.title}]({png})", "",
                  f"- files: {', '.join([png, *others])}",
                  f"- run folders: {runs}",
                  f"- device: {figure.device}",
                  f"- {figure.caption}", ""]
    if report.skipped:
        lines += ["## Not drawn", ""] + [f"- {line}" for line in report.skipped] + [""]
    path = out / "index.md"
    path.write_text("\n".join(lines))
    return path
