"""Speed figures from ``speed.csv``: time against sequence length, and time over S5's.

===============  =================================================================
figure           shows
===============  =================================================================
``scaling``      median time per call against sequence length, log-log, one panel
                 per mode, one line per backbone (S5 parallel and sequential apart),
                 band min-max over repeats; cells not measured noted in the panel
``speed_ratio``  each backbone's time over S5's (the faster S5 evaluation at each
                 length), per mode
===============  =================================================================
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from benchmark.figures import style
from benchmark.figures.data import Run
from benchmark.schema import MODES

_MODE_TITLES = {"train": "train (forward + backward + update)",
                "infer": "infer (forward over the sequence)",
                "rollout": "rollout (T single-step calls)"}


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


def draw_scaling(run: Run, out: Path) -> style.Figure | str:
    """Median time per call against T, log-log, a panel per mode, a line per backbone."""
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
        for line in style.model_order(rows["line"]):
            data = rows[rows["line"] == line].groupby("seq_len").agg(
                median_s=("median_s", "median"),
                lo=("min_s" if "min_s" in rows else "median_s", "min"),
                hi=("max_s" if "max_s" in rows else "median_s", "max"),
            ).sort_index()
            dashes = "--" if "sequential" in line else "-"
            color = style.color(line, extra)
            ax.plot(data.index, data["median_s"], dashes, marker="o", ms=3.5, color=color,
                    label=line)
            ax.fill_between(data.index, data["lo"], data["hi"], color=color, alpha=0.15,
                            lw=0)
        style.log2_ticks(ax, table.loc[table["mode"].astype(str) == mode, "seq_len"].dropna())
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
    return style.save_figure("scaling", run, fig, out, caption)


def draw_speed_ratio(run: Run, out: Path) -> style.Figure | str:
    """Each backbone's time over S5's (its faster evaluation) at each T, per mode."""
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
        for line in style.model_order(rows["line"]):
            data = rows[rows["line"] == line].groupby("seq_len")["median_s"].median()
            ref = reference.loc[mode].reindex(data.index)
            ratio = (data / ref).dropna()
            if ratio.empty:
                continue
            ax.plot(ratio.index, ratio.values, marker="o", ms=3.5, color=style.color(line, extra),
                    label=line)
        ax.axhline(1.0, color=style.COLORS["s5"], lw=1.2, ls=":", label="S5 (= 1)")
        style.log2_ticks(ax, rows["seq_len"])
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
    return style.save_figure("speed_ratio", run, fig, out, caption)


# figure kind -> (the kind of run it is drawn from, its drawer)
FIGURES = {"scaling": ("speed", draw_scaling), "speed_ratio": ("speed", draw_speed_ratio)}
