"""The memory-length figure from a memory run's ``summary.csv`` (the paper's Figure 1).

=================  =================================================================
figure             shows
=================  =================================================================
``memory_length``  device memory of the training program, training time (log-log
                   slope in the legend) and final return (mean, min-max band over
                   seeds) against memory length
=================  =================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark.figures import style
from benchmark.figures.data import Run, ok_summary_rows


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


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of log y against log x (None with fewer than two points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0) & np.isfinite(y)
    if keep.sum() < 2:
        return None
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def draw_memory_length(run: Run, out: Path) -> style.Figure | str:
    """The paper's Figure 1: device memory, training time and return against length."""
    ok = ok_summary_rows(run)
    if isinstance(ok, str):
        return ok
    fig, (mem_ax, time_ax, ret_ax) = plt.subplots(1, 3, figsize=(15, 4.4),
                                                  layout="constrained")
    extra: dict[str, str] = {}
    seeds = int(ok.groupby(["model", "memory_length"]).size().max())
    has_memory = "memory_bytes" in ok and ok["memory_bytes"].notna().any()
    for model in style.model_order(ok["model"].astype(str)):
        rows = ok[ok["model"].astype(str) == model]
        stats = rows.groupby("memory_length").agg(
            mean=("final_return", "mean"), lo=("final_return", "min"),
            hi=("final_return", "max"), wall=("wall_s", "max"),
            memory=("memory_bytes", "max") if has_memory else ("wall_s", "size"),
        ).sort_index()
        color = style.color(model, extra)
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
        style.log2_ticks(ax, ok["memory_length"])
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
                 for m in style.model_order(solved)]
        caption += (" Largest memory length up to which every length succeeded (success: "
                    f"best return, the best window of 10% of the updates, >= {threshold}, "
                    "for most seeds): " + ", ".join(parts) + ".")
    return style.save_figure("memory_length", run, fig, out, caption)


# figure kind -> (the kind of run it is drawn from, its drawer)
FIGURES = {"memory_length": ("memory", draw_memory_length)}
