"""aggregate.csv (benchmark/experiments/aggregate.py): environments weigh equally."""

from __future__ import annotations

import pytest

from benchmark.experiments.aggregate import aggregate_by_model


def test_aggregate_weighs_environments_equally_and_skips_failures():
    """Per-model means average seeds within an env first; failed rows are counted, not used."""
    def row(env, seed, mmer, status="ok"):
        return {"model": "s5", "env": env, "seed": seed, "status": status, "mmer": mmer,
                "final_return": mmer, "wall_s": 10.0, "env_steps_per_s": 100.0}

    rows = [row("A", 0, 1.0), row("A", 1, 0.0), row("B", 0, 0.2), row("C", 0, None, "error")]
    (agg,) = aggregate_by_model(rows)
    assert agg["envs"] == 3 and agg["failed"] == 1
    assert agg["mean_mmer"] == pytest.approx((0.5 + 0.2) / 2)
    assert agg["total_wall_s"] == 20.0
