"""The ``popgym`` experiment: every backbone on every chosen environment, one cell each.

Cells are labelled ``(model, env)``; with several environments its finish step writes
aggregate.csv, with several backbones comparison.csv (``benchmark.experiments.aggregate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.config import RunConfig, build_run_config
from benchmark.experiments.aggregate import aggregate_by_model, comparison_rows
from benchmark.experiments.types import Cell, Experiment, Plan
from benchmark.options import PopgymOptions
from benchmark.results import CsvLog
from benchmark.schema import (
    AGGREGATE_COLUMNS,
    AGGREGATE_CSV,
    COMPARISON_COLUMNS,
    COMPARISON_CSV,
    POPGYM_LABELS,
)
from benchmark.selection import validated_envs, validated_models


def _popgym_plan(options: PopgymOptions) -> Plan:
    models = validated_models(options.model)
    env_ids = validated_envs(options.env)
    cells = [_popgym_cell(build_run_config(
        options.preset, model, env_id, num_seeds=options.seeds, seed=options.seed,
        assignments=options.overrides, total_timesteps=options.total_steps))
        for model in models for env_id in env_ids]
    return Plan(cells)


def _popgym_cell(config: RunConfig) -> Cell:
    return Cell({"model": config.model, "env": config.env.env_id}, config)


def _popgym_finish(context: Any, run_dir: Path, rows: list[dict]) -> list[Any]:
    """aggregate.csv (one row per model, over environments) when several environments
    ran; comparison.csv (P(X > Y) for every pair of models) when several models did."""
    tables = {AGGREGATE_CSV: (AGGREGATE_COLUMNS, "env", aggregate_by_model),
              COMPARISON_CSV: (COMPARISON_COLUMNS, "model", comparison_rows)}
    for name, (columns, label, build) in tables.items():
        (run_dir / name).unlink(missing_ok=True)
        if len({row[label] for row in rows}) > 1:
            table = build(rows)
            with CsvLog(run_dir / name, columns) as log:
                log.write_many(table)
    return []


EXPERIMENT = Experiment(name="popgym", labels=POPGYM_LABELS,
                        plan=_popgym_plan, make_cell=_popgym_cell,
                        summary_title="popgym: mean over seeds", finish=_popgym_finish)
