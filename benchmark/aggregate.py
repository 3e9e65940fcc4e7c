"""Per-model aggregates over environments, from summary rows (POPGym's headline numbers)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def aggregate_by_model(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model: MMER and final return averaged over environments.

    Each environment counts once: seeds are averaged within an environment first, then
    environments are averaged, so an environment with more seeds does not weigh more.
    Rows whose status is not ``ok`` are counted in ``failed`` and left out of the means.
    """
    by_model: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {}).setdefault(row["env"], []).append(row)
    out = []
    for model, by_env in by_model.items():
        env_mmer, env_final, wall, rates, failed, seeds = [], [], 0.0, [], 0, set()
        for env_rows in by_env.values():
            ok = [r for r in env_rows if r["status"] == "ok"]
            failed += len(env_rows) - len(ok)
            seeds.update(r["seed"] for r in env_rows)
            if ok:
                env_mmer.append(_mean(r["mmer"] for r in ok))
                env_final.append(_mean(r["final_return"] for r in ok))
                wall += float(ok[0]["wall_s"])  # seeds of one env share one program
                rates.append(_mean(r["env_steps_per_s"] for r in ok) * len(ok))
        out.append({
            "model": model,
            "envs": len(by_env),
            "seeds": len(seeds),
            "mean_mmer": _mean(env_mmer),
            "mean_final_return": _mean(env_final),
            "total_wall_s": round(wall, 3),
            "mean_env_steps_per_s": round(_mean(rates), 1) if rates else None,
            "failed": failed,
        })
    return out


def _mean(values) -> float:
    values = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan
