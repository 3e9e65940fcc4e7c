"""``s5bench compare``: backbones of one or more POPGym run folders, compared with intervals.

The runs' ``summary.csv`` rows are joined (several runs, the shards of a sweep, or runs of
different commands with an ``env`` column) and compared on the environments every backbone
has, with ``benchmark.statistics``: per environment the mean over seeds with its interval,
per backbone the aggregate estimates of the normalised score, and P(X > Y) for every pair;
``report_lines`` gives the tables and sentences the command prints.
Runs measured on different devices or with different presets are refused unless
``allow_mixed``: their numbers do not answer the same question. No JAX here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from benchmark import statistics
from benchmark.results import device_label
from benchmark.schema import SUMMARY_CSV

_REQUIRED = ("model", "env", "seed", "status", *statistics.SCORES)


class CompareError(ValueError):
    """A run folder cannot be compared: missing, unreadable, or mixed without leave."""


@dataclass
class Comparison:
    """What ``compare`` found: the runs, the shared environments and every estimate."""

    runs: list[Path]
    devices: list[str]
    presets: list[str]
    score: str
    envs: list[str]  # environments every model has, in first-seen order
    left_out: dict[str, list[str]]  # model -> its environments not shared by every model
    cells: pd.DataFrame  # statistics.env_intervals on the shared environments
    aggregate: pd.DataFrame  # statistics.aggregate_intervals (normalised scores)
    pairs: pd.DataFrame  # statistics.improvement
    seed_sd: float  # pooled standard deviation over seeds (root mean square over cells)
    failed: dict[str, int] = field(default_factory=dict)  # model -> runs left out


def _run_folders(paths: Sequence[Path]) -> list[Path]:
    """Each path's run folder; a sweep folder not yet merged stands for its shards."""
    folders = []
    for path in map(Path, paths):
        if (path / SUMMARY_CSV).is_file():
            folders.append(path)
            continue
        shards = sorted(p for p in path.glob("shard-*-of-*") if (p / SUMMARY_CSV).is_file())
        if not path.is_dir() or not shards:
            raise CompareError(f"{path}: no {SUMMARY_CSV} (not a POPGym run folder, nor a "
                               "sweep with shard folders)")
        folders.extend(shards)
    return folders


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_summary(folder: Path) -> pd.DataFrame:
    path = folder / SUMMARY_CSV
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise CompareError(f"{path}: not a readable CSV ({error})") from None
    for column in _REQUIRED:
        if column not in table.columns:
            raise CompareError(f"{path}: missing column {column!r} (compare reads POPGym runs, "
                               f"whose rows are labelled by env)")
    return table


def _preset(config: dict) -> str:
    """The preset a run folder's config.json names: every run's (older folders keep no
    options), or ``unknown``."""
    names = {str(run.get("preset")) for run in config.get("runs", []) if run.get("preset")}
    return ", ".join(sorted(names)) or "unknown"


def _labelled(tables: dict[Path, pd.DataFrame]) -> pd.DataFrame:
    """The runs' rows joined; a model whose (model, env) cells occur in more than one run
    is named ``model (run folder)`` in each, so that two settings of one backbone stay
    apart, while the shards of one sweep (disjoint cells) keep the plain name."""
    owners: dict[tuple[str, str], set[Path]] = {}
    for path, table in tables.items():
        for model, env in table[["model", "env"]].astype(str).drop_duplicates().itertuples(
                index=False):
            owners.setdefault((model, env), set()).add(path)
    clashing = {model for (model, _), paths in owners.items() if len(paths) > 1}
    names = [p.name for p in tables]
    frames = []
    for path, table in tables.items():
        run = path.name if names.count(path.name) == 1 else str(path)
        table = table.assign(model=table["model"].astype(str), env=table["env"].astype(str))
        table["model"] = table["model"].map(
            lambda m, run=run: f"{m} ({run})" if m in clashing else m)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def compare(paths: Sequence[Path], *, score: str = "mmer", allow_mixed: bool = False,
            reps: int = statistics.BOOTSTRAP_REPS,
            seed: int = statistics.BOOTSTRAP_SEED) -> Comparison:
    """Compare the backbones of the run folders ``paths`` on the environments they share.

    Raises:
      CompareError: a folder without a POPGym summary.csv, runs from different devices or
        presets (unless ``allow_mixed``), or no environment that every backbone has.
    """
    if score not in statistics.SCORES:
        raise CompareError(f"--score {score!r}: valid: {', '.join(statistics.SCORES)}")
    folders = _run_folders(paths)
    tables = {folder: _read_summary(folder) for folder in folders}
    devices = {folder: device_label(_read_json(folder / "meta.json")) for folder in folders}
    presets = {folder: _preset(_read_json(folder / "config.json")) for folder in folders}
    for what, values in (("devices", devices), ("presets", presets)):
        if len(set(values.values())) > 1 and not allow_mixed:
            listing = "; ".join(
                f"{value}: {', '.join(str(f) for f, v in values.items() if v == value)}"
                for value in dict.fromkeys(values.values()))
            raise CompareError(f"the runs come from different {what} ({listing}); pass "
                               "--allow-mixed to compare them anyway")
    rows = _labelled(tables)
    scores = statistics.run_scores(rows).dropna(subset=[score])
    models = statistics.models_in(scores)
    envs_of = {m: list(dict.fromkeys(scores.loc[scores["model"] == m, "env"])) for m in models}
    shared = [e for e in envs_of[models[0]] if all(e in envs_of[m] for m in models)] if (
        models) else []
    if not shared:
        raise CompareError("no environment has an ok run of every backbone: "
                           + "; ".join(f"{m}: {', '.join(envs)}" for m, envs in envs_of.items()))
    left_out = {m: [e for e in envs if e not in shared] for m, envs in envs_of.items()}
    scores = scores[scores["env"].isin(shared)]
    normalised = statistics.normalise(scores)
    # Pooled over cells (the root of the mean variance), as a power calculation wants it:
    # a median would be set by the many cells whose seeds all reach the same return.
    variance = normalised.groupby(["model", "env"])[score].var(ddof=1).dropna()
    failed = rows[rows["status"].astype(str) != "ok"].groupby("model").size()
    return Comparison(
        runs=folders, devices=sorted(set(devices.values())),
        presets=sorted(set(presets.values())), score=score, envs=shared,
        left_out={m: envs for m, envs in left_out.items() if envs},
        cells=statistics.env_intervals(scores, score, reps=reps, seed=seed),
        aggregate=statistics.aggregate_intervals(normalised, reps=reps, seed=seed),
        pairs=statistics.improvement(scores, score, reps=reps, seed=seed),
        seed_sd=float(np.sqrt(variance.mean())) if len(variance) else float("nan"),
        failed={str(m): int(n) for m, n in failed.items()})


# ----------------------------------------------------------------------------- report


def _interval(point: float, low: float, high: float) -> str:
    if low != low:  # NaN: one seed, no interval
        return f"{point:.3f} (one seed)"
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def report_lines(result: Comparison) -> list:
    """The tables and sentences `s5bench compare` prints, in order."""
    name = {"mmer": "MMER", "final_return": "final return"}[result.score]
    lines: list = [
        f"[bold]s5bench compare[/]: {len(result.runs)} run folder(s) on "
        f"{', '.join(result.devices)}, preset {', '.join(result.presets)}; {name} on "
        f"{len(result.envs)} shared environment(s)"]
    for model, envs in result.left_out.items():
        lines.append(f"  {model}: left out {', '.join(envs)} (not every backbone has them)")
    for model, count in result.failed.items():
        lines.append(f"  {model}: {count} run(s) diverged or failed, left out")
    pairs = result.pairs
    for env in result.envs:
        cells = result.cells[result.cells["env"] == env].sort_values("mean", ascending=False)
        table = Table(title=f"{env}: {name}, mean over seeds [95% interval]")
        for column in ("backbone", "seeds", name):
            table.add_column(column, justify="left" if column == "backbone" else "right")
        for row in cells.itertuples():
            table.add_row(row.model, str(row.runs), _interval(row.mean, row.lo, row.hi))
        lines.append(table)
        lines += _verdict_lines(pairs[pairs["env"] == env], f" on {env}", undecided=False)
    table = Table(title=f"Aggregate over {len(result.envs)} environment(s): normalised {name} "
                        "[95% interval]")
    for column in ("backbone", "runs", *statistics.ESTIMATORS):
        table.add_column(column, justify="left" if column == "backbone" else "right")
    for row in result.aggregate.sort_values(f"{result.score}_iqm", ascending=False).to_dict(
            "records"):
        table.add_row(row["model"], str(row["runs"]), *(
            _interval(*(row[f"{result.score}_{metric}{bound}"] for bound in ("", "_lo", "_hi")))
            for metric in statistics.ESTIMATORS))
    lines.append(table)
    lines.append(f"Over the {len(result.envs)} shared environment(s), P(X > Y) at 95%:")
    lines += _verdict_lines(pairs[pairs["env"] == statistics.ALL_ENVS], "", undecided=True)
    if result.seed_sd == result.seed_sd:
        need = {d: statistics.seeds_for_difference(result.seed_sd, d) for d in (0.05, 0.1, 0.2)}
        lines.append(
            f"Seed noise: the standard deviation over seeds of a cell's normalised {name}, "
            f"pooled over cells, is {result.seed_sd:.3f}; to tell apart two cells whose mean "
            f"normalised scores are 0.05 / 0.1 / 0.2 apart (95%, power 0.8) takes about "
            f"{need[0.05]} / {need[0.1]} / {need[0.2]} seeds each.")
    return lines


def _verdict_lines(pairs, where: str, *, undecided: bool) -> list[str]:
    """`lru > s5 on E: P = 0.83 [0.61, 0.97]` for the pairs whose interval is clear of 1/2,
    then, if ``undecided``, the pairs these seeds cannot tell apart."""
    told, untold = [], []
    for row in pairs.itertuples():
        sign = statistics.verdict(row.lo, row.hi)
        if sign == 0:
            untold.append(f"{row.model_x} ~ {row.model_y} (P = {row.probability:.2f} "
                          f"[{row.lo:.2f}, {row.hi:.2f}])")
        else:
            better, worse = (row.model_x, row.model_y) if sign > 0 else (row.model_y, row.model_x)
            p, low, high = ((row.probability, row.lo, row.hi) if sign > 0 else
                            (1 - row.probability, 1 - row.hi, 1 - row.lo))
            told.append(f"  {better} > {worse}{where}: P = {p:.2f} [{low:.2f}, {high:.2f}]")
    if undecided:
        told.append("  cannot be told apart with these seeds: " + (", ".join(untold) or "none"))
    return told
