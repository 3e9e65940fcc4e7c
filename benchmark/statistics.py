"""Verdicts with their uncertainty: normalised scores, interval estimates, probability of
improvement and performance profiles (numpy, pandas and scipy only; no JAX).

Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021), and their library ``rliable`` (``rliable/metrics.py``, ``library.py``,
version 1.2.0) define what is computed here:

- a run is one seed of one (backbone, environment) cell; its scores are its MMER and its
  final return (``benchmark.metrics``), each normalised by the environment's score range
  (``SCORE_RANGES``) so that 0 is the lowest return an episode can have and 1 the highest;
- per backbone, over environments x seeds (``ESTIMATORS``): the interquartile mean (IQM,
  the mean of the middle 50% of all runs), the mean and the median of the per-environment
  means, and the optimality gap (how far the runs fall short of 1, a score above 1
  counting as 1);
- per pair of backbones X, Y: the probability of improvement P(X > Y), the chance that a
  run of X on an environment beats a run of Y there (ties count one half), averaged over
  the environments both have;
- the performance profile: the fraction of runs whose score exceeds tau.

Each comes with a 95% stratified-bootstrap confidence interval (percentile method, as
rliable's default): a resample draws, within each environment separately, as many runs
as it has, with replacement, so that every resample keeps every environment and its number
of runs. That is the uncertainty of re-running the same environments with other seeds.

The estimators are written here, vectorised over resamples and taking one array of runs
per environment (a seed that diverged leaves its environment with fewer runs), and tested
equal to rliable's on rectangular tables. rliable's own bootstrap (``rliable.library``)
cannot be imported beside pandas 3: it imports ``arch``, which rliable 1.2.0 caps below
8.0, and arch 7.2.0 fails to import against pandas 3's ``deprecate_kwarg``. The resampling
is therefore ``scipy.stats.bootstrap`` with each environment's runs as an independent
sample (``paired=False``), which is rliable's stratification, seeded by ``BOOTSTRAP_SEED``
so that the CSVs written from these numbers are the same file every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from benchmark.schema import INTERVAL_METRICS, INTERVAL_SCORES

CONFIDENCE = 0.95  # two-sided coverage of every interval
BOOTSTRAP_REPS = 10_000  # resamples per interval
BOOTSTRAP_SEED = 0  # the intervals in aggregate.csv and comparison.csv use this seed
SCORES = INTERVAL_SCORES  # the two scores of a run (summary.csv's columns)
ALL_ENVS = "all"  # comparison.csv's env for the probability over every shared environment

# Lowest and highest return one episode can have, per POPGym family (popgym 1.0.7, as the
# ports in envs/popgym/ pay it; each module's docstring works the bounds out). POPGym
# scales rewards so that returns lie in [-1, 1]; where a family cannot go below 0 its
# range starts at 0, so that a normalised 0 is always the worst episode possible.
SCORE_RANGES: dict[str, tuple[float, float]] = {
    "Autoencode": (-1.0, 1.0),  # +-1/N per card played back
    "Battleship": (-1.0, 1.0),  # +1/12 per hit, -1/(S^2 - 12) per miss
    "Concentration": (-1.0, 1.0),  # +2/N per match; -1/L per wasted flip, at worst
    "CountRecall": (-1.0, 1.0),  # +-1/(N - 1) per step
    "HigherLower": (-1.0, 1.0),  # +-1/N per guess, 0 on equal cards
    "LabyrinthEscape": (-1.0, 1.0),  # -1/L per step, +1 at the exit
    "LabyrinthExplore": (-1.0, 1.0),  # +1/F per new cell, -1/1024 per other step
    "MineSweeper": (-1.0, 1.0),  # +1/L per clear tile; re-clicks and a mine sum to -1
    "MultiarmedBandit": (-1.0, 1.0),  # +-1/L per pull
    "NoisyPositionOnlyCartPole": (0.0, 1.0),  # +1/L per step the pole stays up
    "NoisyPositionOnlyPendulum": (-1.0, 1.0),  # cost mapped to [-1/L, 1/L] per step
    "PositionOnlyCartPole": (0.0, 1.0),
    "PositionOnlyPendulum": (-1.0, 1.0),
    "RepeatFirst": (-1.0, 1.0),  # +-1/(N - 1) per card
    "RepeatPrevious": (-1.0, 1.0),  # +-1/(N - k) per card
    "VelocityOnlyCartPole": (0.0, 1.0),
    # bsuite's memory task (gymnax MemoryChain-bsuite): +1 right, -1 wrong, at the end.
    "MemoryChain-bsuite": (-1.0, 1.0),
}
DIFFICULTIES = ("Easy", "Medium", "Hard")


def score_range(env: str) -> tuple[float, float] | None:
    """The (lowest, highest) episode return of ``env``, or None when it has none here.

    POPGym ids are a family and a difficulty (``RepeatPreviousMedium``); every difficulty
    of a family shares its range.
    """
    if env in SCORE_RANGES:
        return SCORE_RANGES[env]
    for difficulty in DIFFICULTIES:
        family = env.removesuffix(difficulty)
        if family != env and family in SCORE_RANGES:
            return SCORE_RANGES[family]
    return None


def run_scores(summary: pd.DataFrame) -> pd.DataFrame:
    """The runs every statistic and figure rests on: ``summary.csv``'s rows with status
    ``ok``, as model, env, seed and the two ``SCORES``.

    A seed that diverged or a cell that failed is left out (``aggregate.csv`` counts it in
    ``failed``), so the heat map, the tables and ``aggregate.csv`` share one definition.
    A row whose score is missing (no episode finished) is left out of that score only.
    """
    ok = summary[summary["status"].astype(str) == "ok"]
    table = pd.DataFrame({"model": ok["model"].astype(str), "env": ok["env"].astype(str),
                          "seed": ok["seed"]})
    for score in SCORES:
        table[score] = pd.to_numeric(ok[score], errors="coerce").astype(float)
    return table.reset_index(drop=True)


def env_means(scores: pd.DataFrame, score: str) -> pd.Series:
    """The mean of ``score`` over each (model, env) cell's runs, indexed (model, env) in
    the order the cells first appear: what the heat map shows in a cell and what
    ``aggregate.csv``'s raw means average over environments."""
    return scores.groupby(["model", "env"], sort=False)[score].mean()


def normalise(scores: pd.DataFrame) -> pd.DataFrame:
    """``run_scores`` with each score mapped by ``(x - low) / (high - low)``, the
    environment's ``score_range``; rows of environments without one are dropped."""
    bounds = np.array([score_range(env) or (math.nan, math.nan) for env in scores["env"]],
                      dtype=float).reshape(-1, 2)
    known = scores[~np.isnan(bounds[:, 0])].copy()
    low, high = bounds[~np.isnan(bounds[:, 0])].T
    for score in SCORES:
        known[score] = (known[score].to_numpy(float) - low) / (high - low)
    return known.reset_index(drop=True)


# ----------------------------------------------------------------------------- estimators
# Each takes one array per environment, runs on the last axis, any leading (resample) axes,
# and returns the statistic over those leading axes.


def _pooled(samples: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(s, dtype=float) for s in samples], axis=-1)


def iqm(samples: Sequence[np.ndarray]) -> np.ndarray:
    """Interquartile mean of every run of every environment: the mean after trimming 25%
    at each end (``scipy.stats.trim_mean``, as ``rliable.metrics.aggregate_iqm``)."""
    return scipy.stats.trim_mean(_pooled(samples), 0.25, axis=-1)


def _env_means(samples: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(s, dtype=float).mean(axis=-1) for s in samples], axis=-1)


def mean_of_means(samples: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over environments of the mean over each environment's runs."""
    return _env_means(samples).mean(axis=-1)


def median_of_means(samples: Sequence[np.ndarray]) -> np.ndarray:
    """Median over environments of the mean over each environment's runs."""
    return np.median(_env_means(samples), axis=-1)


def optimality_gap(samples: Sequence[np.ndarray], gamma: float = 1.0) -> np.ndarray:
    """``gamma`` less the mean over every run of ``min(score, gamma)``: how far the runs
    fall short of the best score, a run above it counting as reaching it."""
    return gamma - np.minimum(_pooled(samples), gamma).mean(axis=-1)


_ESTIMATOR_OF = {"iqm": iqm, "mean": mean_of_means, "median": median_of_means,
                 "optimality_gap": optimality_gap}
# The per-backbone estimators, in aggregate.csv's order (schema.INTERVAL_METRICS).
ESTIMATORS: dict[str, Callable[[Sequence[np.ndarray]], np.ndarray]] = {
    metric: _ESTIMATOR_OF[metric] for metric in INTERVAL_METRICS}


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]
                               ) -> np.ndarray:
    """P(X > Y): per environment, the fraction of (run of X, run of Y) pairs in which X
    scores higher, a tie counting one half (Mann-Whitney's U over nx * ny), then the mean
    over environments; ``x[e]`` and ``y[e]`` are the runs of X and Y on environment e."""
    per_env = []
    for xs, ys in zip(x, y, strict=True):
        xs = np.asarray(xs, dtype=float)[..., :, None]  # [..., nx, 1] against [..., 1, ny]
        ys = np.asarray(ys, dtype=float)[..., None, :]
        per_env.append(((xs > ys) + 0.5 * (xs == ys)).mean(axis=(-2, -1)))
    return np.mean(per_env, axis=0)


# ----------------------------------------------------------------------------- intervals


def stratified_interval(samples: Sequence[np.ndarray],
                        statistic: Callable[..., np.ndarray], *,
                        reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A statistic of per-environment runs with its stratified-bootstrap interval.

    Args:
      samples: one 1-D array of runs per stratum (environment; for a pair of backbones,
        X's environments then Y's).
      statistic: ``statistic(samples) -> value`` (a scalar or a vector), vectorised over
        leading axes as the estimators above are.
      reps, seed: resamples, and the seed of the generator that draws them.

    Returns:
      ``(point, lower, upper)``. Each stratum is resampled on its own (scipy's
      ``paired=False``); a stratum of one run is held fixed, as resampling it could only
      repeat it. Without any stratum of two or more runs nothing varies and the bounds
      are NaN: one seed per cell carries no estimate of the seed-to-seed spread.
    """
    samples = [np.asarray(s, dtype=float) for s in samples]
    point = np.asarray(statistic(samples), dtype=float)
    varying = [i for i, s in enumerate(samples) if s.size > 1]
    if not varying:
        nan = np.full_like(point, math.nan)
        return point, nan, nan.copy()

    def resampled(*drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = drawn[0].shape[:-1]
        full = [np.broadcast_to(s, (*batch, s.size)) for s in samples]
        for i, values in zip(varying, drawn, strict=True):
            full[i] = values
        return statistic(full)

    result = scipy.stats.bootstrap(
        tuple(samples[i] for i in varying), resampled, n_resamples=reps, paired=False,
        vectorized=True, axis=-1, confidence_level=CONFIDENCE, method="percentile",
        rng=np.random.default_rng(seed))
    return point, np.asarray(result.confidence_interval.low), np.asarray(
        result.confidence_interval.high)


def _runs_by_env(scores: pd.DataFrame, model: str, score: str,
                 envs: Sequence[str]) -> list[np.ndarray]:
    rows = scores[scores["model"] == model]
    return [rows.loc[rows["env"] == env, score].dropna().to_numpy(float) for env in envs]


def models_in(scores: pd.DataFrame) -> list[str]:
    """The models of a score table, in the order they first appear."""
    return list(dict.fromkeys(scores["model"]))


def aggregate_intervals(normalised: pd.DataFrame, *, reps: int = BOOTSTRAP_REPS,
                        seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per model, every ``METRICS`` estimate of both ``SCORES`` with its interval.

    Args:
      normalised: ``normalise(run_scores(summary))``.

    Returns:
      One row per model: ``scored_envs`` and ``runs`` (the environments and runs the
      MMER estimates rest on), then ``<score>_<metric>``, ``..._lo``, ``..._hi`` for
      every score and metric (``schema.INTERVAL_COLUMNS``). Every (model, score, metric)
      is resampled from the same seed, so a row does not depend on which other models the
      table holds.
    """
    rows = []
    for model in models_in(normalised):
        envs = list(dict.fromkeys(normalised.loc[normalised["model"] == model, "env"]))
        row: dict[str, object] = {"model": model}
        for score in SCORES:
            samples = [s for s in _runs_by_env(normalised, model, score, envs) if s.size]
            if score == SCORES[0]:
                row["scored_envs"] = len(samples)
                row["runs"] = int(sum(s.size for s in samples))
            for metric, estimator in ESTIMATORS.items():
                point, low, high = ((math.nan,) * 3 if not samples else
                                    stratified_interval(samples, estimator, reps=reps,
                                                        seed=seed))
                row[f"{score}_{metric}"] = float(point)
                row[f"{score}_{metric}_lo"] = float(low)
                row[f"{score}_{metric}_hi"] = float(high)
        rows.append(row)
    columns = ["model", "scored_envs", "runs", *(
        f"{score}_{metric}{bound}" for score in SCORES for metric in ESTIMATORS
        for bound in ("", "_lo", "_hi"))]
    return pd.DataFrame(rows, columns=columns)


def env_intervals(scores: pd.DataFrame, score: str, *, reps: int = BOOTSTRAP_REPS,
                  seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per (model, env): the mean of ``score`` over the seeds, with its interval.

    Returns:
      Rows of model, env, runs, mean, lo, hi (NaN bounds for a cell of one run).
    """
    rows = []
    for (model, env), cell in scores.groupby(["model", "env"], sort=False):
        runs = cell[score].dropna().to_numpy(float)
        if runs.size == 0:
            continue
        point, low, high = stratified_interval([runs], mean_of_means, reps=reps, seed=seed)
        rows.append({"model": model, "env": env, "runs": runs.size, "mean": float(point),
                     "lo": float(low), "hi": float(high)})
    return pd.DataFrame(rows, columns=["model", "env", "runs", "mean", "lo", "hi"])


def improvement(scores: pd.DataFrame, score: str, *, reps: int = BOOTSTRAP_REPS,
                seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """P(X > Y) for every pair of models, per shared environment and over all of them.

    Raw scores serve: the probability compares runs within an environment, so any
    increasing map of an environment's returns (the normalisation) leaves it unchanged, and
    environments without a score range count too.

    Returns:
      Rows of score, model_x, model_y (X before Y in ``models_in`` order), env (an id, or
      ``ALL_ENVS`` for the mean over the ``envs`` environments both have), envs, runs_x,
      runs_y, probability, lo, hi.
    """
    models = models_in(scores)
    rows = []
    for i, x in enumerate(models):
        for y in models[i + 1:]:
            envs_x = set(scores.loc[scores["model"] == x, "env"])
            envs = [e for e in dict.fromkeys(scores.loc[scores["model"] == y, "env"])
                    if e in envs_x]
            xs = _runs_by_env(scores, x, score, envs)
            ys = _runs_by_env(scores, y, score, envs)
            shared = [(e, a, b) for e, a, b in zip(envs, xs, ys, strict=True)
                      if a.size and b.size]
            groups = [(env, [a], [b]) for env, a, b in shared]
            if shared:
                groups.append((ALL_ENVS, [a for _, a, _ in shared], [b for _, _, b in shared]))
            for env, sx, sy in groups:
                point, low, high = stratified_interval(
                    [*sx, *sy], _split_pair(len(sx)), reps=reps, seed=seed)
                rows.append({"score": score, "model_x": x, "model_y": y, "env": env,
                             "envs": len(sx), "runs_x": int(sum(s.size for s in sx)),
                             "runs_y": int(sum(s.size for s in sy)),
                             "probability": float(point), "lo": float(low),
                             "hi": float(high)})
    return pd.DataFrame(rows, columns=["score", "model_x", "model_y", "env", "envs",
                                       "runs_x", "runs_y", "probability", "lo", "hi"])


def _split_pair(count: int) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """P(X > Y) of strata listed as X's ``count`` environments, then Y's."""
    return lambda samples: probability_of_improvement(samples[:count], samples[count:])


def verdict(lo: float, hi: float) -> int:
    """+1 when P(X > Y)'s interval lies above 1/2 (X better), -1 below it (Y better),
    0 when it holds 1/2 or is undefined: the seeds at hand cannot tell the two apart."""
    if lo > 0.5:
        return 1
    if hi < 0.5:
        return -1
    return 0


def performance_profile(normalised: pd.DataFrame, score: str, taus: np.ndarray, *,
                        reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
                        ) -> pd.DataFrame:
    """Per model and threshold tau: the fraction of runs (every environment's) whose
    normalised ``score`` exceeds tau, with its interval (``rliable``'s run-score profile).

    Returns:
      Rows of model, tau, fraction, lo, hi.
    """
    taus = np.asarray(taus, dtype=float)

    def above(samples):
        pooled = _pooled(samples)[..., None, :]  # [..., 1, runs] against [taus, 1]
        return np.moveaxis((pooled > taus[:, None]).mean(axis=-1), -1, 0)

    frames = []
    for model in models_in(normalised):
        envs = list(dict.fromkeys(normalised.loc[normalised["model"] == model, "env"]))
        samples = [s for s in _runs_by_env(normalised, model, score, envs) if s.size]
        if not samples:
            continue
        point, low, high = stratified_interval(samples, above, reps=reps, seed=seed)
        frames.append(pd.DataFrame({"model": model, "tau": taus, "fraction": point,
                                    "lo": low, "hi": high}))
    if not frames:
        return pd.DataFrame(columns=["model", "tau", "fraction", "lo", "hi"])
    return pd.concat(frames, ignore_index=True)


def seeds_for_difference(sd: float, difference: float, *, power: float = 0.8) -> int:
    """Seeds per backbone that a two-sided test at ``CONFIDENCE`` needs to tell apart two
    means ``difference`` apart, with probability ``power``, when one run's score has
    standard deviation ``sd``: ``n = 2 ((z_(1 - alpha/2) + z_power) sd / difference)^2``
    (the normal approximation for two independent samples), rounded up."""
    z_alpha = scipy.stats.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    z_power = scipy.stats.norm.ppf(power)
    return math.ceil(2 * ((z_alpha + z_power) * sd / difference) ** 2)
