"""The meta-RL figures, drawn from the CSVs of `s5bench meta` run folders alone.

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

A run folder is a meta run when it holds ``trials.csv``. ``draw_meta_figures`` adds its
figures and skip lines to a ``benchmark.figures.Report``, so they land in the same
``index.md``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.figures import (  # noqa: E402
    Figure,
    FigureDataError,
    Report,
    _color,
    _device,
    _model_order,
    _numeric,
    _read_json,
    _save,
    _smooth_per_seed,
    read_table,
)

TRIALS_COLUMNS = ("model", "seed", "split", "env", "trial", "mean_return")
CURVES_COLUMNS = ("model", "seed", "update", "env_steps", "mean_return")
TITLES = {"meta_trials": "Meta-RL: return against trial index (in-context learning)",
          "meta_curves": "Meta-RL training curves"}
SPLITS = ("train", "held-out")


def _table(path: Path, required, numeric) -> pd.DataFrame:
    table = read_table(path, required)
    for column in numeric:
        table[column] = _numeric(table[column], path, column)
    return table


def meta_run_folders(results: Path) -> list[Path]:
    """Folders under ``results`` (any depth) holding a ``trials.csv``."""
    return sorted({p.parent for p in Path(results).rglob("trials.csv")})


def draw_meta_figures(results: Path, out: Path, report: Report) -> None:
    """Draw both meta figures of every meta run under ``results``; record them in ``report``.

    Raises:
      FigureDataError: a meta CSV is unreadable or lacks a required column.
    """
    results, out = Path(results), Path(out)
    folders = meta_run_folders(results)
    if not folders:
        return  # no meta run: nothing to say (the other figures' skip lines stand alone)
    out.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        name = folder.relative_to(results).as_posix() if folder != results else folder.name
        slug = name.replace("/", "-") or "results"
        device = _device(_read_json(folder / "meta.json"))
        trials = _table(folder / "trials.csv", TRIALS_COLUMNS, ("seed", "trial",
                                                                "mean_return"))
        outcome = _draw_trials(trials, folder, slug, device, out)
        _record(report, outcome, "meta_trials", name)
        if (folder / "curves.csv").exists():
            curves = _table(folder / "curves.csv", CURVES_COLUMNS,
                            ("seed", "update", "env_steps", "mean_return"))
            outcome = _draw_curves(curves, folder, slug, device, out)
        else:
            outcome = "no curves.csv"
        _record(report, outcome, "meta_curves", name)


def _record(report: Report, outcome: Figure | str, kind: str, name: str) -> None:
    if isinstance(outcome, str):
        report.skipped.append(f"{TITLES[kind]} ({name}): {outcome}")
    else:
        report.figures.append(outcome)


def _draw_trials(trials: pd.DataFrame, folder: Path, slug: str, device: str,
                 out: Path) -> Figure | str:
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
        for model in _model_order(rows["model"].astype(str)):
            data = rows[rows["model"].astype(str) == model]
            # Mean over base envs per (seed, trial), then mean and range over seeds.
            per_seed = data.groupby(["trial", "seed"])["mean_return"].mean().unstack("seed")
            color = _color(model, extra)
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
    fig.suptitle(f"Meta-RL evaluation (no gradient steps): mean over base envs and {seeds} "
                 f"seeds, band min-max over seeds", fontsize=10)
    stem = f"meta_trials_{slug}"
    caption = ("Each trial's return is scaled by its base environment's trial-return bound "
               "(envs/meta.py RETURN_BOUNDS), so it lies in about [-1, 1]; fresh random "
               "projections, carry reset only at the meta-episode start.")
    return Figure("meta_trials", stem, TITLES["meta_trials"], [folder], device, caption,
                  _save(fig, out, stem))


def _draw_curves(curves: pd.DataFrame, folder: Path, slug: str, device: str,
                 out: Path) -> Figure | str:
    if curves["mean_return"].notna().sum() == 0:
        return "curves.csv has no finished meta-episode"
    fig, ax = plt.subplots(figsize=(5.6, 3.8), layout="constrained")
    extra: dict[str, str] = {}
    window = 1
    for model in _model_order(curves["model"].astype(str)):
        smooth, window = _smooth_per_seed(curves[curves["model"].astype(str) == model])
        if smooth.empty:
            continue
        color = _color(model, extra)
        ax.plot(smooth.index, smooth.mean(axis=1), color=color, label=model)
        ax.fill_between(smooth.index, smooth.min(axis=1), smooth.max(axis=1), color=color,
                        alpha=0.15, lw=0)
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("mean meta-episode return")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("Meta-RL training: mean over seeds, band min-max over seeds", fontsize=10)
    stem = f"meta_curves_{slug}"
    caption = (f"Per-update mean return of the meta-episodes that ended (K trials each), "
               f"each seed smoothed by a trailing mean over {window} updates.")
    return Figure("meta_curves", stem, TITLES["meta_curves"], [folder], device, caption,
                  _save(fig, out, stem))


__all__ = ["FigureDataError", "draw_meta_figures", "meta_run_folders"]
