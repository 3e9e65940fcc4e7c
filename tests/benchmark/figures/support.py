"""What the figures' tests share: the fixture results folder and small CSV writers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "figures" / "results"

EXPECTED = ("scaling_speed-fixture", "speed_ratio_speed-fixture",
            "memory_length_memory-fixture", "popgym_curves_popgym-fixture",
            "popgym_summary_popgym-fixture", "popgym_mmer_vs_time_popgym-fixture",
            "return_vs_cost_popgym-fixture", "popgym_intervals_popgym-fixture",
            "popgym_profiles_popgym-fixture", "popgym_improvement_popgym-fixture")

runner = CliRunner()


def nonempty_lines(output: str) -> list[str]:
    """The output's lines that are not blank."""
    return [line for line in output.splitlines() if line.strip()]


def write_csv(folder: Path, name: str, rows: list[dict]) -> None:
    """``rows`` as ``folder/name``, a CSV as the commands write them."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / name, index=False)


def line_of(ax, label: str):
    """The x and y data of the line labelled ``label`` on ``ax``."""
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return list(line.get_xdata()), [float(y) for y in line.get_ydata()]


def write_popgym(run: Path, returns: dict, walls: dict) -> None:
    """curves.csv ((model, env) -> [per seed [per update return]]) and summary.csv (walls,
    and each seed's MMER: its best update, as the sweep writes it)."""
    write_csv(run, "curves.csv", [
        {"model": m, "env": e, "seed": s, "update": u + 1, "env_steps": 100 * (u + 1),
         "mean_return": r}
        for (m, e), seeds in returns.items() for s, per in enumerate(seeds)
        for u, r in enumerate(per)])
    write_csv(run, "summary.csv", [
        {"model": m, "env": e, "seed": s, "status": "ok", "final_return": 0.0,
         "mmer": max(r for r in returns[(m, e)][s] if r is not None), "wall_s": w}
        for (m, e), w in walls.items() for s in (0, 1)])

