"""Meta-RL figures from a ``s5bench meta`` run's ``trials.csv`` and ``curves.csv``.

===============  =====================  =====================================================
figure           from                   shows
===============  =====================  =====================================================
``meta_trials``  ``trials.csv``         mean evaluation return against trial index, one line
                                        per backbone, the training suite and the held-out
                                        suite side by side (mean over base environments,
                                        band min-max over seeds): the in-context learning
                                        curve
``meta_curves``  ``curves.csv``         mean meta-episode return during training against
                                        environment steps, band min-max over seeds
===============  =====================  =====================================================

A run folder is a meta run when it holds ``trials.csv``. A results folder without one adds
no skip line: the other figures stand alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from benchmark.figures import style
from benchmark.figures.data import Run, smooth_per_seed

SPLITS = ("train", "held-out")


def draw_meta_trials(run: Run, out: Path) -> style.Figure | str:
    """Evaluation return against trial index, train and held-out suites side by side."""
    trials = run.tables["trials"]
    if trials["mean_return"].notna().sum() == 0:
        return "trials.csv has no return"
    splits = [s for s in SPLITS if (trials["split"] == s).any()]
    if not splits:
        return f"trials.csv has no split in {', '.join(SPLITS)}"
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 3.8), squeeze=False,
                             layout="constrained", sharey=True)
    extra: dict[str, str] = {}
    for ax, split in zip(axes[0], splits, strict=True):
        rows = trials[trials["split"] == split]
        for model in style.model_order(rows["model"].astype(str)):
            data = rows[rows["model"].astype(str) == model]
            # Mean over base envs per (seed, trial), then mean and range over seeds.
            per_seed = data.groupby(["trial", "seed"])["mean_return"].mean().unstack("seed")
            color = style.color(model, extra)
            ax.plot(per_seed.index, per_seed.mean(axis=1), color=color, marker="o", ms=4,
                    label=model)
            ax.fill_between(per_seed.index, per_seed.min(axis=1), per_seed.max(axis=1),
                            color=color, alpha=0.15, lw=0)
        envs = ", ".join(dict.fromkeys(rows["env"].astype(str)))
        ax.set_title(f"{split}: {envs}", fontsize=8, wrap=True)
        ax.set_xlabel("trial index")
        ax.set_xticks(sorted(rows["trial"].dropna().unique().astype(int)))
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("mean scaled return of the trial")
    axes[0, 0].legend(fontsize=8)
    seeds = int(trials.groupby("model")["seed"].nunique().max())
    fig.suptitle(f"Meta-RL evaluation on {run.device} (no gradient steps): mean over base "
                 f"envs and {seeds} seeds, band min-max over seeds", fontsize=10)
    caption = ("Each trial's return is scaled by its base environment's trial-return bound "
               "(envs/meta_rl.py RETURN_BOUNDS), so it lies in about [-1, 1]; fresh random "
               "projections, carry reset only at the meta-episode start.")
    return style.save_figure("meta_trials", run, fig, out, caption)


def draw_meta_curves(run: Run, out: Path) -> style.Figure | str:
    """Mean meta-episode return during training against env steps, band over seeds."""
    if "curves" not in run.tables:
        return "no curves.csv"
    curves = run.tables["curves"]
    if curves["mean_return"].notna().sum() == 0:
        return "curves.csv has no finished meta-episode"
    fig, ax = plt.subplots(figsize=(5.6, 3.8), layout="constrained")
    extra: dict[str, str] = {}
    window = 1
    for model in style.model_order(curves["model"].astype(str)):
        smooth, window = smooth_per_seed(curves[curves["model"].astype(str) == model])
        if smooth.empty:
            continue
        color = style.color(model, extra)
        ax.plot(smooth.index, smooth.mean(axis=1), color=color, label=model)
        ax.fill_between(smooth.index, smooth.min(axis=1), smooth.max(axis=1), color=color,
                        alpha=0.15, lw=0)
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("mean meta-episode return")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"Meta-RL training on {run.device}: mean over seeds, band min-max over "
                 f"seeds", fontsize=10)
    caption = (f"Per-update mean return of the meta-episodes that ended (K trials each), "
               f"each seed smoothed by a trailing mean over {window} updates.")
    return style.save_figure("meta_curves", run, fig, out, caption)


# figure kind -> (the kind of run it is drawn from, its drawer)
FIGURES = {"meta_trials": ("meta", draw_meta_trials), "meta_curves": ("meta", draw_meta_curves)}
