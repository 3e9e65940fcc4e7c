"""The accelerator reference behind ``s5bench reference`` (``make reference-gpu``).

Every headline claim of Lu et al. (2023) is an accelerator claim, so one command measures
both of them on the device at hand and writes ``<out>/<device>/``:

1. ``speed/``: a ``speed`` sweep at the paper's width (d_model 256, 4 layers) of the
   paper's backbones and the attention baseline, training time against sequence length
   (S5 with both evaluations);
2. ``paper-throughput/``: the ``paper`` preset end to end on the paper's five Table-5
   environments (Stateless and NoisyStateless CartPoleHard and PendulumHard,
   RepeatPreviousHard) for S5 and the GRU, 8 seeds vmapped, for a few updates (a
   ``popgym`` run folder), and ``throughput.csv``: environment steps per second per seed,
   compile apart, and the wall time the paper's 15M-step run would take at that rate, per
   environment and averaged over the five, per vmapped run of all seeds and per seed; the
   paper's A40 figures are per seed averaged over those five environments, so they stand
   beside the averaged per-seed projection;
3. ``figures/``: every figure those CSVs give.

The ``full`` size is for one H100/H200-class GPU (a few minutes, compilation included);
the ``tiny`` size runs the same code path on a CPU in about a minute, so the command is
tested in the suite and never reaches a GPU broken. ``benchmark.experiments.jobs
.run_reference`` runs both parts through the job path every command takes; this module
says what they measure and turns the end-to-end summary into ``throughput.csv``.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmark.config import make_preset, override
from benchmark.options import PopgymOptions, SpeedOptions
from benchmark.results import CsvLog, device_name, read_rows, write_json
from benchmark.schema import SUMMARY_CSV, THROUGHPUT_COLUMNS, THROUGHPUT_CSV

# Lu et al. (2023), section 5.2: POPGym end to end on one NVIDIA A40, 15M environment
# steps, wall time per seed averaged over the five environments of its Table 5.
PAPER_TOTAL_STEPS = 15_000_000
PAPER_A40_SECONDS_PER_SEED = {"s5": 218.0, "gru": 1484.0}
# The paper's Table 5 environments, by the paper's names (aliases of the POPGym ids).
TABLE5_ENVS = ("StatelessCartPoleHard", "NoisyStatelessCartPoleHard", "StatelessPendulumHard",
               "NoisyStatelessPendulumHard", "RepeatPreviousHard")
# The ``env`` label of a model's row averaged over the spec's environments.
MEAN_ENV = "mean"


SIZES = ("full", "tiny")


@dataclass(frozen=True)
class ReferenceSpec:
    """What one reference run measures (``reference.json``; each part's own config.json)."""

    size: str  # full (one GPU) | tiny (a CPU, for the test suite)
    speed: SpeedOptions  # the speed sweep
    models: tuple[str, ...]  # trained end to end with the preset below
    envs: tuple[str, ...]  # each trained as its own cell
    preset: str
    seeds: int  # vmapped
    updates: int  # PPO updates per seed (total steps = updates x the preset's update size)
    overrides: tuple[str, ...] = ()  # ``--set`` assignments on the preset (tiny only)

    def popgym_options(self) -> PopgymOptions:
        """The end-to-end part as ``s5bench popgym`` options."""
        return PopgymOptions(model=self.models, env=self.envs, seeds=self.seeds,
                             preset=self.preset, total_steps=total_steps(self),
                             overrides=self.overrides)


def reference_spec(size: str = "full") -> ReferenceSpec:
    """The ``full`` size for one H100/H200-class GPU, or the ``tiny`` one for a CPU.

    Full: T = 1024..65536 in factors of 4 (each length is its own compile, and compiles
    dominate a GPU sweep's time), training only (the paper's scaling claim), a batch of 16
    sequences, 3 timed calls and 20 s per cell; a series whose cell runs past its budget or
    out of memory skips its longer lengths (``speed``'s rules). End to end: the five
    Table-5 environments x s5 and gru, 2 paper updates each (one compiled chunk of
    2 x 64 envs x 1024 steps per seed): ten cells in about the time two cells of 4 updates
    and ten compiles take.
    """
    if size == "full":
        return ReferenceSpec(
            size=size,
            speed=SpeedOptions(
                seq_len=(1024, 4096, 16384, 65536),
                model=("s5", "gru", "lstm", "trxl", "attention", "mlp"),
                mode=("train",), batch=16, d_model=256, layers=4, repeats=3,
                warmup=1, max_seconds=20.0),
            models=("s5", "gru"), envs=TABLE5_ENVS, preset="paper", seeds=8, updates=2)
    if size == "tiny":
        return ReferenceSpec(
            size=size,
            speed=SpeedOptions(
                seq_len=(8, 32), model=("s5", "gru"), mode=("train",), batch=2,
                d_model=8, layers=1, repeats=1, warmup=1, max_seconds=30.0),
            models=("s5",), envs=("StatelessCartPoleHard",), preset="quick", seeds=2,
            updates=2, overrides=("ppo.num_envs=4", "ppo.num_steps=16",
                                  "ppo.num_minibatches=2", "ppo.update_epochs=1",
                                  "backbone.num_layers=1"))
    raise ValueError(f"unknown reference size {size!r}; valid sizes: {', '.join(SIZES)}")


def total_steps(spec: ReferenceSpec) -> int:
    """Environment steps per seed of the end-to-end part: ``updates`` whole updates."""
    config = override(make_preset(spec.preset, spec.models[0], spec.envs[0]), spec.overrides)
    return spec.updates * config.ppo.steps_per_update


def folder_name(info: Mapping[str, Any], size: str = "full") -> str:
    """``gpu-nvidia-h200``, ``cpu-2core`` (``-tiny`` appended for the tiny size)."""
    if info["backend"] == "cpu":
        name = f"cpu-{info['cpu_count']}core"
    else:
        kind = re.sub(r"[^a-z0-9]+", "-", str(info["device_kind"]).lower()).strip("-")
        name = f"{info['backend']}-{kind}"
        if info.get("device_count", 1) > 1:
            name += f"-x{info['device_count']}"
    return name if size == "full" else f"{name}-{size}"


def throughput_rows(summary: Iterable[Mapping[str, Any]], spec: ReferenceSpec, device: str
                    ) -> list[dict[str, Any]]:
    """One row per (model, environment) from the end-to-end run's ``summary.csv`` rows, then
    one per model averaged over its environments (``env`` = ``MEAN_ENV``).

    ``env_steps_per_s`` in the summary is per seed: a seed's environment steps over the
    training wall time of all seeds together (compile excluded). At that rate the paper's
    15M steps take ``15e6 / rate`` seconds for one vmapped run of all ``seeds`` seeds
    (``projected_15m_s``), that is ``/ seeds`` seconds per seed
    (``projected_15m_s_per_seed``). The paper's A40 figure is per seed averaged over its
    five environments: it is given on the mean row only, beside the mean of the per-seed
    projections (a mean of times, as the paper's is).
    """
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in summary:
        cells.setdefault((str(row["model"]), str(row["env"])), []).append(row)
    rows = []
    for (model, env), seeds in cells.items():
        rate = statistics.median(float(row["env_steps_per_s"]) for row in seeds)
        ok = rate > 0 and all(row["status"] == "ok" for row in seeds)
        projected = PAPER_TOTAL_STEPS / rate if ok else None
        rows.append({
            "model": model, "env": env, "preset": spec.preset,
            "seeds": len(seeds), "env_steps": seeds[0]["env_steps"],
            "compile_s": float(seeds[0]["compile_s"]), "train_s": float(seeds[0]["wall_s"]),
            "env_steps_per_s_per_seed": rate,
            "projected_15m_s": None if projected is None else round(projected, 1),
            "projected_15m_s_per_seed": None if projected is None
            else round(projected / len(seeds), 1),
            "paper_a40_s_per_seed": None,
            "device": device,
        })
    return rows + [_mean_row(model, [r for r in rows if r["model"] == model], spec, device)
                   for model in dict.fromkeys(r["model"] for r in rows)]


def _mean_row(model: str, rows: list[dict[str, Any]], spec: ReferenceSpec, device: str
              ) -> dict[str, Any]:
    """A model's row averaged over its environments: mean times, and the rate that gives the
    mean projected time; no projection if any environment has none."""
    projected = [r["projected_15m_s"] for r in rows]
    complete = None not in projected
    mean_projected = statistics.fmean(projected) if complete else None
    return {
        "model": model, "env": MEAN_ENV, "preset": spec.preset, "seeds": rows[0]["seeds"],
        "env_steps": rows[0]["env_steps"],
        "compile_s": statistics.fmean(r["compile_s"] for r in rows),
        "train_s": statistics.fmean(r["train_s"] for r in rows),
        "env_steps_per_s_per_seed": PAPER_TOTAL_STEPS / mean_projected if complete else None,
        "projected_15m_s": None if mean_projected is None else round(mean_projected, 1),
        "projected_15m_s_per_seed": None if mean_projected is None
        else round(mean_projected / rows[0]["seeds"], 1),
        "paper_a40_s_per_seed": PAPER_A40_SECONDS_PER_SEED.get(model),
        "device": device,
    }


def write_results(folder: Path, spec: ReferenceSpec) -> list[dict[str, Any]]:
    """``throughput.csv`` from the end-to-end run's summary, and ``reference.json``; the
    rows."""
    rows = throughput_rows(read_rows(folder / "paper-throughput" / SUMMARY_CSV), spec,
                           device_name())
    (folder / THROUGHPUT_CSV).unlink(missing_ok=True)
    with CsvLog(folder / THROUGHPUT_CSV, THROUGHPUT_COLUMNS) as log:
        log.write_many(rows)
    write_json(folder / "reference.json", dataclasses.asdict(spec))
    return rows


def throughput_table(rows: list[dict[str, Any]]) -> Table:
    """The rows of ``throughput.csv`` as the command prints them."""

    def number(value) -> str:
        return "-" if value is None else f"{value:,.1f}"

    table = Table(title="End to end: the paper preset's throughput and the paper's 15M steps "
                        "(the paper's A40 figure: per seed, mean of its five environments)")
    for column in ("model", "env", "seeds", "compile s", "env steps/s per seed",
                   "15M steps, one vmapped run (s)", "per seed (s)",
                   "paper A40 per seed (s)"):
        table.add_column(column, justify="left" if column in ("model", "env") else "right")
    for row in rows:
        table.add_row(row["model"], row["env"], str(row["seeds"]), f"{row['compile_s']:.1f}",
                      number(row["env_steps_per_s_per_seed"]), number(row["projected_15m_s"]),
                      number(row["projected_15m_s_per_seed"]),
                      number(row["paper_a40_s_per_seed"]))
    return table
