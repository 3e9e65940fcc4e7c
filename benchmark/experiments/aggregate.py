"""Per-model aggregates over environments and pairwise comparisons, from summary rows
(POPGym's headline numbers: ``aggregate.csv`` and ``comparison.csv``).

The statistics are ``benchmark.statistics``'s; this module shapes them into the rows of
the two CSVs (columns in ``benchmark.schema``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from benchmark import statistics
from benchmark.schema import AGGREGATE_COLUMNS, COMPARISON_COLUMNS, INTERVAL_COLUMNS


def aggregate_by_model(rows: Sequence[Mapping[str, Any]], *,
                       reps: int = statistics.BOOTSTRAP_REPS,
                       seed: int = statistics.BOOTSTRAP_SEED) -> list[dict[str, Any]]:
    """One row per model: raw means over environments and interval estimates.

    ``mean_mmer`` and ``mean_final_return`` average environments, each counting once (its
    seeds averaged first, ``statistics.env_means``), so an environment with more seeds does
    not weigh more. The interval columns are ``statistics.aggregate_intervals`` of the
    normalised scores. Both rest on ``statistics.run_scores``: rows whose status is not
    ``ok`` are counted in ``failed`` and left out.
    """
    table = pd.DataFrame(list(rows))
    scores = statistics.run_scores(table)
    means = {score: statistics.env_means(scores, score).groupby(level="model").mean()
             for score in statistics.SCORES}
    intervals = statistics.aggregate_intervals(statistics.normalise(scores), reps=reps,
                                               seed=seed).set_index("model")
    out = []
    for model, model_rows in table.groupby("model", sort=False):
        ok = model_rows[model_rows["status"] == "ok"]
        # Seeds of one cell share one compiled program: its wall time is counted once.
        cells = ok.groupby("env", sort=False)
        rates = cells["env_steps_per_s"].apply(lambda r: _mean(r) * len(r)).dropna()
        row = {
            "model": model,
            "envs": int(model_rows["env"].nunique()),
            "seeds": int(model_rows["seed"].nunique()),
            "mean_mmer": float(means["mmer"].get(model, math.nan)),
            "mean_final_return": float(means["final_return"].get(model, math.nan)),
            "total_wall_s": round(float(cells["wall_s"].first().astype(float).sum()), 3),
            "mean_env_steps_per_s": round(float(rates.mean()), 1) if len(rates) else None,
            "failed": int(len(model_rows) - len(ok)),
            "scored_envs": 0, "runs": 0,
            **dict.fromkeys(INTERVAL_COLUMNS, math.nan),
            "bootstrap_reps": reps, "bootstrap_seed": seed,
        }
        if model in intervals.index:
            estimates = intervals.loc[model]
            row.update({column: float(estimates[column]) for column in INTERVAL_COLUMNS})
            row["scored_envs"] = int(estimates["scored_envs"])
            row["runs"] = int(estimates["runs"])
        out.append({column: row[column] for column in AGGREGATE_COLUMNS})
    return out


def comparison_rows(rows: Sequence[Mapping[str, Any]], *,
                    reps: int = statistics.BOOTSTRAP_REPS,
                    seed: int = statistics.BOOTSTRAP_SEED) -> list[dict[str, Any]]:
    """``comparison.csv``: P(X > Y) of every pair of models, per environment they share and
    over all of them, for each score (``statistics.improvement``)."""
    scores = statistics.run_scores(pd.DataFrame(list(rows)))
    frames = [statistics.improvement(scores, score, reps=reps, seed=seed)
              for score in statistics.SCORES]
    table = pd.concat(frames, ignore_index=True).assign(bootstrap_reps=reps,
                                                        bootstrap_seed=seed)
    return table[list(COMPARISON_COLUMNS)].to_dict("records")


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan
