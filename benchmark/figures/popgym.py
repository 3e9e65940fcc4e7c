"""POPGym figures from a POPGym run's ``curves.csv`` and ``summary.csv``.

==================  =================================  =====================================
figure              from                               shows
==================  =================================  =====================================
``popgym_curves``   ``curves.csv``                     mean return against env steps, one
                                                       panel per environment, band over
                                                       seeds
``popgym_summary``  ``curves.csv`` and ``summary.csv``  MMER per environment and backbone,
                                                       the mean over environments, and wall
                                                       time per backbone
``return_vs_cost``  ``summary.csv``                    final return against training wall
                                                       time, one point per (backbone,
                                                       environment)
==================  =================================  =====================================
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark.figures import style
from benchmark.figures.data import Run, ok_summary_rows, smooth_per_seed
from benchmark.metrics import mmer_per_seed


def mmer(curves: pd.DataFrame) -> pd.Series:
    """MMER per (model, env): each seed's MMER (``metrics.mmer_per_seed``), mean over seeds."""
    return mmer_per_seed(curves).groupby(level=["model", "env"]).mean()


def draw_popgym_curves(run: Run, out: Path) -> style.Figure | str:
    """Mean return against env steps, a panel per environment, a line per backbone."""
    if "curves" not in run.tables:
        return "no curves.csv"
    curves = run.tables["curves"]
    if curves["mean_return"].notna().sum() == 0:
        return f"{run.files['curves']} has no finished episode"
    envs = list(dict.fromkeys(curves["env"].astype(str)))
    rows_n, cols_n = style.panel_grid(len(envs))
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(4.6 * cols_n, 3.6 * rows_n),
                             squeeze=False, layout="constrained")
    extra: dict[str, str] = {}
    window = 1
    for ax, env in zip(axes.flat, envs, strict=False):
        rows = curves[curves["env"].astype(str) == env]
        for model in style.model_order(rows["model"].astype(str)):
            data = rows[rows["model"].astype(str) == model]
            smooth, window = smooth_per_seed(data)
            if smooth.empty:
                continue
            color = style.color(model, extra)
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
    return style.save_figure("popgym_curves", run, fig, out, caption)


def _cell_wall(summary: pd.DataFrame) -> pd.Series:
    """Training wall seconds per (model, env) cell (ok rows only; seeds share one cell)."""
    ok = summary[(summary["status"].astype(str) == "ok") & summary["wall_s"].notna()]
    return ok.groupby([ok["model"].astype(str), ok["env"].astype(str)])["wall_s"].max()


def draw_popgym_summary(run: Run, out: Path) -> style.Figure | str:
    """MMER per environment and backbone, their mean, and wall time per backbone."""
    if "curves" not in run.tables:
        return "no curves.csv (MMER comes from the learning curves)"
    if "summary" not in run.tables:
        return "no summary.csv (wall time comes from the summary)"
    scores = mmer(run.tables["curves"]).dropna()
    if scores.empty:
        return f"{run.files['curves']} has no finished episode"
    wall = _cell_wall(run.tables["summary"])
    models = style.model_order(scores.index.get_level_values("model").astype(str))
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
                 width, color=style.color(model, extra), label=model)
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
        right.bar(wall_models, means, color=[style.color(m, extra) for m in wall_models])
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
    return style.save_figure("popgym_summary", run, fig, out, caption)


def draw_return_vs_cost(run: Run, out: Path) -> style.Figure | str:
    """Final return against training wall time, a point per (backbone, environment)."""
    ok = ok_summary_rows(run)
    if isinstance(ok, str):
        return ok
    cells = ok.groupby([ok["model"].astype(str), ok["env"].astype(str)]).agg(
        final=("final_return", "mean"), wall=("wall_s", "max"))
    envs = list(dict.fromkeys(cells.index.get_level_values(1)))
    markers = len(envs) <= len(style.MARKERS)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    extra: dict[str, str] = {}
    for (model, env), row in cells.iterrows():
        ax.scatter(row["wall"], row["final"], color=style.color(model, extra), s=36,
                   marker=style.MARKERS[envs.index(env)] if markers else "o")
    handles = [plt.Line2D([], [], color=style.color(m, extra), marker="o", ls="", label=m)
               for m in style.model_order(cells.index.get_level_values(0))]
    if markers and len(envs) > 1:
        handles += [plt.Line2D([], [], color="0.4", marker=style.MARKERS[i], ls="", label=env)
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
    return style.save_figure("return_vs_cost", run, fig, out, caption)


# figure kind -> (the kind of run it is drawn from, its drawer)
FIGURES = {"popgym_curves": ("popgym", draw_popgym_curves),
           "popgym_summary": ("popgym", draw_popgym_summary),
           "return_vs_cost": ("popgym", draw_return_vs_cost)}
