"""POPGym verdicts with their uncertainty (Agarwal et al., NeurIPS 2021; rliable's plots).

- ``popgym_intervals`` (``aggregate.csv``): per backbone, the IQM, median, mean and
  optimality gap of the normalised MMER (top row) and final return (bottom row) over
  environments x seeds, each a bar from the lower to the upper bound of its 95%
  stratified-bootstrap interval with a tick at the point estimate.
- ``popgym_profiles`` (``summary.csv``): performance profiles, the fraction of runs whose
  normalised score exceeds tau against tau, with a 95% band, for MMER and final return
  (``statistics.performance_profile``).
- ``popgym_improvement`` (``comparison.csv``): P(X > Y) over the shared environments for
  every pair of backbones, with its 95% interval; an interval clear of 1/2 is a difference
  these seeds can tell.

The numbers are those ``benchmark.statistics`` wrote into the CSVs (or, for the profiles,
computes from ``summary.csv`` with the same fixed bootstrap seed).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark import statistics
from benchmark.figures import style
from benchmark.figures.data import Run

_SCORE_NAMES = {"mmer": "MMER", "final_return": "final return"}
_METRIC_NAMES = {"iqm": "IQM", "median": "median", "mean": "mean",
                 "optimality_gap": "optimality gap (lower is better)"}
TAUS = np.linspace(0.0, 1.0, 101)  # profile thresholds, in normalised score


def _runs_text(table: pd.DataFrame) -> str:
    envs, runs = int(table["scored_envs"].max()), int(table["runs"].max())
    return f"{envs} environment{'s' if envs != 1 else ''}, {runs} runs per backbone"


def draw_popgym_intervals(run: Run, out: Path) -> style.Figure | str:
    """Per backbone and estimator, the point and 95% interval of each normalised score."""
    if "aggregate" not in run.tables:
        return "no aggregate.csv (written for a POPGym run over several environments)"
    table = run.tables["aggregate"]
    table = table[table["scored_envs"] > 0]
    if table.empty:
        return (f"{run.files['aggregate']} has no backbone with a normalised score (no "
                "environment with a known score range)")
    bounds = [c for c in table.columns if c.endswith(("_lo", "_hi"))]
    if table[bounds].isna().all(axis=None):
        return (f"{run.files['aggregate']} has no interval: one seed per environment says "
                "nothing of the seed-to-seed spread")
    models = style.model_order(table["model"].astype(str))[::-1]  # first at the top
    table = table.set_index(table["model"].astype(str)).loc[models]
    fig, axes = plt.subplots(len(_SCORE_NAMES), len(_METRIC_NAMES),
                             figsize=(3.2 * len(_METRIC_NAMES), 0.8 + 0.32 * len(models) * 2),
                             squeeze=False, layout="constrained", sharey=True)
    extra: dict[str, str] = {}
    colours = [style.color(m, extra) for m in models]
    for row, (score, score_name) in enumerate(_SCORE_NAMES.items()):
        for col, (metric, metric_name) in enumerate(_METRIC_NAMES.items()):
            ax = axes[row, col]
            name = f"{score}_{metric}"
            low, high = table[f"{name}_lo"].to_numpy(float), table[f"{name}_hi"].to_numpy(float)
            ax.barh(range(len(models)), high - low, left=low, height=0.6, color=colours,
                    alpha=0.55)
            ax.scatter(table[name], range(len(models)), marker="|", s=160, color="black",
                       zorder=3)
            ax.set_yticks(range(len(models)), models, fontsize=9)
            ax.set_title(f"{metric_name}", fontsize=9)
            ax.set_xlabel(f"normalised {score_name}", fontsize=8)
            ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"POPGym: aggregate scores with 95% intervals on {run.device} "
                 f"({_runs_text(table)})", fontsize=11)
    caption = ("Scores normalised per environment by its score range (benchmark/statistics.py, "
               "SCORE_RANGES: 0 the lowest return an episode can have, 1 the highest). IQM: "
               "mean of the middle 50% of all runs (environments x seeds); median and mean: "
               "of the per-environment means; optimality gap: 1 less the mean of min(score, "
               "1). Bars: 95% stratified-bootstrap intervals (seeds resampled within each "
               "environment), tick: the point estimate; from aggregate.csv.")
    return style.save_figure("popgym_intervals", run, fig, out, caption)


def draw_popgym_profiles(run: Run, out: Path) -> style.Figure | str:
    """Fraction of runs above each normalised-score threshold, a line and band per model."""
    if "summary" not in run.tables:
        return "no summary.csv"
    scores = statistics.normalise(statistics.run_scores(run.tables["summary"]))
    if scores.empty:
        return (f"{run.files['summary']} has no ok row on an environment with a known score "
                "range")
    fig, axes = plt.subplots(1, len(_SCORE_NAMES), figsize=(5.2 * len(_SCORE_NAMES), 4.2),
                             squeeze=False, layout="constrained", sharey=True)
    extra: dict[str, str] = {}
    for ax, (score, score_name) in zip(axes.flat, _SCORE_NAMES.items(), strict=True):
        profile = statistics.performance_profile(scores, score, TAUS)
        for model in style.model_order(profile["model"]):
            line = profile[profile["model"] == model]
            color = style.color(model, extra)
            ax.plot(line["tau"], line["fraction"], color=color, label=model)
            ax.fill_between(line["tau"], line["lo"], line["hi"], color=color, alpha=0.15,
                            lw=0)
        ax.set_xlabel(f"normalised {score_name} tau")
        ax.set_title(score_name, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes.flat[0].set_ylabel("fraction of runs with score > tau")
    axes.flat[0].legend(fontsize=8)
    envs, seeds = scores["env"].nunique(), int(scores["seed"].nunique())
    fig.suptitle(f"POPGym performance profiles on {run.device} ({envs} environment"
                 f"{'s' if envs != 1 else ''}, up to {seeds} seeds)", fontsize=11)
    caption = ("Fraction of runs (every environment's seeds) whose normalised score exceeds "
               "tau; band: 95% stratified-bootstrap interval (seeds resampled within each "
               "environment). A profile above another everywhere dominates it.")
    return style.save_figure("popgym_profiles", run, fig, out, caption)


def draw_popgym_improvement(run: Run, out: Path) -> style.Figure | str:
    """P(X > Y) over the shared environments, with its interval, for every pair."""
    if "comparison" not in run.tables:
        return "no comparison.csv (written for a POPGym run of several backbones)"
    table = run.tables["comparison"]
    table = table[table["env"].astype(str) == statistics.ALL_ENVS]
    if table.empty:
        return f"{run.files['comparison']} has no row over all shared environments"
    scores = list(dict.fromkeys(table["score"].astype(str)))
    pairs = table[table["score"] == scores[0]]
    height = 0.8 + 0.26 * len(pairs)
    fig, axes = plt.subplots(1, len(scores), figsize=(4.8 * len(scores) + 1.6, height),
                             squeeze=False, layout="constrained", sharey=True)
    for ax, score in zip(axes.flat, scores, strict=True):
        rows = table[table["score"] == score].reset_index(drop=True)
        labels = [f"P({x} > {y})" for x, y in zip(rows["model_x"], rows["model_y"],
                                                  strict=True)]
        ys = np.arange(len(rows))[::-1]
        decided = [statistics.verdict(lo, hi) != 0 for lo, hi in zip(rows["lo"], rows["hi"],
                                                                       strict=True)]
        colours = ["C0" if d else "0.6" for d in decided]
        ax.barh(ys, rows["hi"] - rows["lo"], left=rows["lo"], height=0.6, color=colours,
                alpha=0.6)
        ax.scatter(rows["probability"], ys, marker="|", s=120, color="black", zorder=3)
        ax.axvline(0.5, color="black", lw=0.8, ls=":")
        ax.set_xlim(-0.02, 1.02)
        ax.set_yticks(ys, labels, fontsize=8)
        ax.set_xlabel(f"probability of improvement, {_SCORE_NAMES.get(score, score)}")
        ax.grid(True, axis="x", alpha=0.3)
    envs = int(pairs["envs"].max())
    fig.suptitle(f"POPGym: probability of improvement on {run.device} (over {envs} "
                 f"environment{'s' if envs != 1 else ''})", fontsize=11)
    caption = ("P(X > Y): per environment, the chance that a run of X beats a run of Y "
               "(ties count one half), averaged over the environments both have; bars: 95% "
               "stratified-bootstrap intervals, blue where the interval is clear of 1/2 (a "
               "difference these seeds can tell), grey where it holds 1/2; from "
               "comparison.csv.")
    return style.save_figure("popgym_improvement", run, fig, out, caption)


# figure kind -> (the kind of run it is drawn from, its drawer)
FIGURES = {"popgym_intervals": ("popgym", draw_popgym_intervals),
           "popgym_profiles": ("popgym", draw_popgym_profiles),
           "popgym_improvement": ("popgym", draw_popgym_improvement)}
