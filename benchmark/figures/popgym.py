"""POPGym figures from a POPGym run's ``curves.csv`` and ``summary.csv``.

- ``popgym_curves`` (``curves.csv``): mean return against env steps, one panel per
  environment, one line per backbone, band min-max over seeds.
- ``popgym_summary`` (``summary.csv``): a heat map, environments as rows (by family, then
  Easy/Medium/Hard), backbones as columns, each cell's MMER (mean over its ok seeds)
  written in it and coloured by MMER normalised within its row (``normalise_rows``), a
  frame round the cells that cannot be told from the row's best (``close_to_best``), a
  last row with the mean over environments (``mmer_table``, aggregate.csv's definition);
  below it, wall time per backbone. Sized by the number of rows and columns, so 48
  environments x 9 backbones stay legible.
- ``popgym_mmer_vs_time`` (``curves.csv`` with ``wall_s``): the paper's Figure 3b, the MMER
  so far, normalised per environment and averaged over environments, against training
  wall-clock time, one line per backbone (``normalised_mmer_vs_time``). Skipped for runs
  from before ``wall_s`` was recorded, and for runs of one backbone (nothing to normalise
  against).
- ``return_vs_cost`` (``summary.csv``): final return against training wall time, one point
  per (backbone, environment).

The tables behind them (``mmer_table``, ``close_to_best``, ``normalise_rows``,
``env_order``, ``running_mmer``, ``normalised_mmer_vs_time``) are pure functions of the
CSVs' DataFrames.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark import statistics
from benchmark.figures import style
from benchmark.figures.data import Run, ok_summary_rows, smooth_per_seed


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


DIFFICULTIES = ("Easy", "Medium", "Hard")


def split_env_id(env: str) -> tuple[str, str]:
    """``RepeatPreviousMedium`` -> ``("RepeatPrevious", "Medium")``; an id without one of
    ``DIFFICULTIES`` at its end is its own family, with difficulty ``""``."""
    for difficulty in DIFFICULTIES:
        if env.endswith(difficulty) and len(env) > len(difficulty):
            return env[: -len(difficulty)], difficulty
    return env, ""


def env_order(envs) -> list[str]:
    """The distinct env ids by family (alphabetical), then Easy, Medium, Hard."""
    def key(env: str) -> tuple[str, int, str]:
        family, difficulty = split_env_id(env)
        rank = DIFFICULTIES.index(difficulty) if difficulty else len(DIFFICULTIES)
        return family, rank, env

    return sorted(set(envs), key=key)


def mmer_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``[env, model]`` MMER, each cell the mean over its ok seeds of ``summary.csv``'s
    per-seed MMER (``statistics.run_scores`` and ``env_means``: a seed that diverged or
    failed is left out), rows in ``env_order``, columns in ``style.model_order``, then a
    last row ``mean``: the mean over environments, ``aggregate.csv``'s ``mean_mmer`` (over
    the environments a backbone has). A (model, env) without an ok seed is NaN."""
    scores = statistics.env_means(statistics.run_scores(summary), "mmer")
    table = scores.unstack("model").reindex(
        index=env_order(scores.index.get_level_values("env").astype(str)),
        columns=style.model_order(scores.index.get_level_values("model").astype(str)))
    table.loc["mean"] = table.mean(axis=0)
    return table


def close_to_best(summary: pd.DataFrame) -> pd.DataFrame:
    """``[env, model]`` True where the cell's 95% interval of the mean MMER over seeds
    (``statistics.env_intervals``) overlaps the interval of its row's best cell (the best
    included): the backbones that these seeds cannot tell from the best. False elsewhere,
    and for a cell of one seed, which has no interval."""
    cells = statistics.env_intervals(statistics.run_scores(summary), "mmer")
    marks = {}
    for env, row in cells.groupby("env"):
        best = row.loc[row["mean"].idxmax()]
        for _, cell in row.iterrows():
            marks[(env, cell["model"])] = bool(cell["hi"] >= best["lo"]
                                               and cell["lo"] <= best["hi"])
    if not marks:
        return pd.DataFrame(dtype=bool)
    return pd.Series(marks).rename_axis(["env", "model"]).unstack("model").fillna(False)


def normalise_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Each row mapped to [0, 1]: ``(x - row min) / (row max - row min)`` over its non-NaN
    cells, so environments with different return scales share one colour scale. A row whose
    cells are all equal (one backbone, or a tie) is 1 throughout; NaN stays NaN."""
    low = table.min(axis=1)
    span = table.max(axis=1) - low
    scaled = table.sub(low, axis=0).div(span.where(span > 0), axis=0)  # NaN on tied rows
    return scaled.mask(table.notna() & (span == 0).to_numpy()[:, None], 1.0)


def draw_popgym_summary(run: Run, out: Path) -> style.Figure | str:
    """A heat map: MMER per environment (rows, by family then difficulty) and backbone
    (columns), written in each cell, coloured by MMER normalised within the row; a last
    row with the mean over environments; under it, wall time per backbone."""
    if "summary" not in run.tables:
        return "no summary.csv (MMER and wall time come from the summary)"
    summary = run.tables["summary"]
    table = mmer_table(summary)
    if table.drop(index="mean").isna().all(axis=None):
        return f"{run.files['summary']} has no ok row with an MMER"
    rows, models = list(table.index), list(table.columns)
    envs_of = table.drop(index="mean").notna().sum()  # environments with an MMER, per model
    near = close_to_best(summary).reindex(index=rows, columns=models, fill_value=False)
    near = near.fillna(False).astype(bool)
    ok = statistics.run_scores(summary).dropna(subset=["mmer"])
    seeds_of = ok.groupby(["env", "model"]).size()
    seeds = int(summary["seed"].nunique())
    # One backbone: nothing to compare within a row, so the cells stay uncoloured.
    compare = len(models) > 1
    colours = normalise_rows(table) if compare else table.notna().astype(float) * 0.1
    # Inches: each cell holds "-0.00*" at 8 pt; the env ids on the left set the margin.
    cell_w, cell_h = 0.72, 0.28
    heat_w = max(3.2, cell_w * len(models))
    heat_h = max(1.2, cell_h * len(rows))
    label_w = 0.07 * max(len(r) for r in rows) + 0.5
    fig = plt.figure(figsize=(label_w + heat_w + 0.4, heat_h + 3.8), layout="constrained")
    grid = fig.add_gridspec(3, 1, height_ratios=[heat_h + 0.7, 0.12, 1.5])
    heat, bar, walls = (fig.add_subplot(grid[i]) for i in range(3))
    cmap = matplotlib.colormaps["viridis" if compare else "Greys"].with_extremes(bad="0.9")
    image = heat.imshow(np.ma.masked_invalid(colours.to_numpy(float)), cmap=cmap, vmin=0.0,
                        vmax=1.0, aspect="auto", interpolation="nearest")
    for i, j in np.ndindex(table.shape):
        value, shade = table.iat[i, j], colours.iat[i, j]
        text = "–" if np.isnan(value) else f"{value:.2f}"
        partial = rows[i] == "mean" and envs_of.iat[j] < len(rows) - 1
        fewer = rows[i] != "mean" and 0 < seeds_of.get((rows[i], models[j]), 0) < seeds
        if compare and near.iat[i, j]:
            heat.add_patch(matplotlib.patches.Rectangle(
                (j - 0.46, i - 0.42), 0.92, 0.84, fill=False, lw=1.4, ec="black"))
        heat.text(j, i, text + ("*" if partial and not np.isnan(value) else "")
                  + ("†" if fewer else ""),
                  ha="center", va="center", fontsize=8,
                  color="0.4" if np.isnan(shade) else (
                      "white" if compare and shade < 0.5 else "black"),
                  fontweight="bold" if rows[i] == "mean" else "normal")
    heat.set_xticks(range(len(models)), models, fontsize=9)
    heat.xaxis.tick_top()
    heat.set_yticks(range(len(rows)), rows, fontsize=8)
    heat.get_yticklabels()[-1].set_fontweight("bold")
    heat.tick_params(length=0)
    families = [split_env_id(r)[0] for r in rows[:-1]]
    for i in range(1, len(families)):
        if families[i] != families[i - 1]:
            heat.axhline(i - 0.5, color="white", lw=2)
    heat.axhline(len(rows) - 1.5, color="black", lw=1.5)
    partial = [f"{m} {envs_of[m]} of {len(rows) - 1}" for m in models
               if envs_of[m] < len(rows) - 1]
    if partial:
        heat.set_xlabel("* mean over fewer environments: " + ", ".join(partial), fontsize=8)
    heat.set_title(f"MMER per environment and backbone (mean over {seeds} "
                   f"seed{'s' if seeds > 1 else ''})", fontsize=10)
    if compare:
        fig.colorbar(image, cax=bar, orientation="horizontal").set_label(
            "colour: (MMER - row min) / (row max - row min)", fontsize=8)
        bar.tick_params(labelsize=7)
    else:
        bar.axis("off")
        bar.text(0.5, 0.5, "one backbone: no colour (it compares backbones within a row)",
                 ha="center", va="center", fontsize=8, color="0.4", transform=bar.transAxes)
    wall = _cell_wall(run.tables["summary"])
    means = [float(wall.xs(m, level=0).mean()) if m in wall.index.get_level_values(0)
             else np.nan for m in models]
    extra: dict[str, str] = {}
    walls.bar(range(len(models)), means, color=[style.color(m, extra) for m in models])
    for j, seconds in enumerate(means):
        if np.isfinite(seconds):
            walls.text(j, seconds, f"{seconds:.0f} s", ha="center", va="bottom", fontsize=7)
    if not np.isfinite(means).any():
        walls.text(0.5, 0.5, "no finished cell in summary.csv", ha="center", va="center",
                   transform=walls.transAxes, color="0.4")
    walls.set_xlim(-0.5, len(models) - 0.5)
    walls.set_xticks(range(len(models)), models, fontsize=9)
    walls.margins(y=0.2)
    walls.set_ylabel("seconds", fontsize=8)
    walls.set_title("training wall time per (backbone, env) cell, mean over envs",
                    fontsize=9)
    walls.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"POPGym summary on {run.device}", fontsize=11)
    caption = ("MMER = for each seed, the max over updates of the per-update mean episodic "
               "return, then the mean over seeds (as POPGym and Lu et al. report it), written "
               "in each cell, over the seeds whose status is ok (a seed that diverged or "
               "failed is left out, as in aggregate.csv; † marks a cell with fewer seeds); "
               "framed: the cell's 95% stratified-bootstrap interval of that mean overlaps "
               "the interval of the row's best (the best included), i.e. these seeds cannot "
               "tell it from the best (a cell of one seed has no interval); colour: MMER "
               "normalised within each row (worst backbone 0, best 1), so environments with "
               "different return scales compare; rows by family, then Easy/Medium/Hard; "
               "`mean`: the mean over environments of the raw MMER (over the environments a "
               "backbone has, aggregate.csv's mean_mmer; * when fewer than all); `–`: no "
               "finished episode. Below: training seconds per (backbone, env) cell, compile "
               "excluded, seeds vmapped.")
    return style.save_figure("popgym_summary", run, fig, out, caption)


def running_mmer(curves: pd.DataFrame) -> pd.DataFrame:
    """The MMER so far at each update: per seed, the running max over updates of the
    update's mean return (an update without a finished episode holds the max so far), then
    the mean over the seeds. Updates before every seed of the cell has finished an episode
    are left out, so each point is a mean over all seeds and the last one is the mean over
    every seed of its MMER (``metrics.mmer_per_seed``).

    Args:
      curves: a POPGym ``curves.csv`` table (model, env, seed, update, wall_s, mean_return).

    Returns:
      One row per (model, env, update) with a value: model, env, update, ``wall_s`` (the
      update's training seconds, compile excluded; seeds share one program) and ``mmer``.
    """
    data = curves.assign(model=curves["model"].astype(str), env=curves["env"].astype(str))
    data = data.sort_values(["model", "env", "seed", "update"])
    best = data.groupby(["model", "env", "seed"])["mean_return"].cummax()
    data["best"] = best.groupby([data["model"], data["env"], data["seed"]]).ffill()
    cell = data.groupby(["model", "env", "update"])
    table = cell.agg(wall_s=("wall_s", "max"), mmer=("best", "mean"),
                     finished=("best", "count")).reset_index()
    seeds = data.groupby(["model", "env"])["seed"].nunique().rename("seeds").reset_index()
    table = table.merge(seeds, on=["model", "env"])
    table = table[(table["finished"] == table["seeds"]) & table["wall_s"].notna()]
    return table[["model", "env", "update", "wall_s", "mmer"]].reset_index(drop=True)


def normalised_mmer_vs_time(curves: pd.DataFrame) -> pd.DataFrame:
    """Per backbone, the MMER so far, normalised per environment and averaged over
    environments, against training wall time (the paper's Figure 3b).

    Normalisation: each environment's ``running_mmer`` is mapped by ``(x - lo) / (hi - lo)``,
    ``hi`` the best *final* MMER of that environment over the run's backbones and ``lo`` the
    lowest MMER so far any backbone had there (its first point: the untrained policy), so
    every curve lies in [0, 1] whatever the environment's return scale, and 1 is the best
    final MMER. (``lo`` = the worst *final* MMER was the first choice; when backbones end
    close together, say 0.99 and 1.00 from a start of -0.5, it sends the early curve to
    -150 and the figure says nothing.) If ``lo == hi`` the environment counts 1 throughout.

    Averaging: a backbone's environments end at different times, so each environment's
    curve is interpolated linearly onto a common time grid (every ``wall_s`` of that
    backbone's environments), holding its last value after it ends. The grid starts when
    every environment has a value (its first update with an episode in every seed). A
    backbone is averaged over the environments it has.

    Returns:
      Rows of model, ``wall_s``, ``normalised_mmer`` and ``envs`` (how many were averaged),
      in time order per model.
    """
    so_far = running_mmer(curves)
    final = so_far.groupby(["model", "env"])["mmer"].last()
    low = so_far.groupby("env")["mmer"].min()
    span = final.groupby(level="env").max() - low
    env_low, env_span = so_far["env"].map(low), so_far["env"].map(span)
    so_far["normalised"] = ((so_far["mmer"] - env_low) / env_span.where(env_span > 0)).where(
        env_span > 0, 1.0)
    lines = []
    for model, rows in so_far.groupby("model"):
        envs = [(g["wall_s"].to_numpy(float), g["normalised"].to_numpy(float))
                for _, g in rows.groupby("env")]
        start = max(times[0] for times, _ in envs)
        grid = np.unique(np.concatenate([times for times, _ in envs]))
        grid = grid[grid >= start]
        mean = np.mean([np.interp(grid, times, values) for times, values in envs], axis=0)
        lines.append(pd.DataFrame({"model": model, "wall_s": grid, "normalised_mmer": mean,
                                   "envs": len(envs)}))
    if not lines:
        return pd.DataFrame(columns=["model", "wall_s", "normalised_mmer", "envs"])
    return pd.concat(lines, ignore_index=True)


def draw_popgym_mmer_vs_time(run: Run, out: Path) -> style.Figure | str:
    """Normalised MMER so far against training wall time, one line per backbone."""
    if "curves" not in run.tables:
        return "no curves.csv"
    curves = run.tables["curves"]
    if "wall_s" not in curves.columns or curves["wall_s"].isna().all():
        return (f"{run.files['curves']} has no wall_s column (a run from before it was "
                "recorded)")
    models = style.model_order(curves["model"].astype(str))
    if len(models) < 2:
        return f"one backbone only ({models[0]}): MMER is normalised between backbones"
    lines = normalised_mmer_vs_time(curves)
    if lines.empty:
        return f"{run.files['curves']} has no update where every seed finished an episode"
    envs = curves["env"].astype(str).nunique()
    fig, ax = plt.subplots(figsize=(6.8, 4.6), layout="constrained")
    extra: dict[str, str] = {}
    for model in style.model_order(lines["model"]):
        line = lines[lines["model"] == model]
        count = int(line["envs"].iat[0])
        label = model if count == envs else f"{model} ({count} of {envs} envs)"
        ax.plot(line["wall_s"], line["normalised_mmer"], color=style.color(model, extra),
                label=label, marker="o" if len(line) < 30 else None, ms=3)
    times = lines["wall_s"][lines["wall_s"] > 0]
    if len(times) and times.max() / times.min() > 10:
        ax.set_xscale("log")
    ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("training wall-clock seconds of each (backbone, env) cell (compile excluded)")
    ax.set_ylabel("normalised MMER so far, mean over environments")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    seeds = int(curves.groupby(["model", "env"])["seed"].nunique().max())
    ax.set_title(f"POPGym: normalised MMER against wall-clock time on {run.device}\n"
                 f"({envs} environment{'s' if envs > 1 else ''}, mean over {seeds} seed"
                 f"{'s' if seeds > 1 else ''})", fontsize=10)
    caption = ("MMER so far = per seed the best update's mean return up to that time, mean "
               "over seeds; normalised per environment from the lowest MMER so far of any "
               "backbone (0, the untrained start) to the best final MMER (1); each "
               "environment's curve is interpolated onto a common time grid, holding its last "
               "value once it ends, then averaged over environments (the paper's Figure 3b).")
    return style.save_figure("popgym_mmer_vs_time", run, fig, out, caption)


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
           "popgym_mmer_vs_time": ("popgym", draw_popgym_mmer_vs_time),
           "return_vs_cost": ("popgym", draw_return_vs_cost)}
