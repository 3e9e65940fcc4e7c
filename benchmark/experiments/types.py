"""What a training command is to the job path: its ``Experiment``, a ``Plan`` of cells.

A *cell* is one compiled training program: one backbone on one environment (and, for the
memory experiment, one memory length), all its seeds vmapped. An experiment's ``plan`` turns
the command's typed options into cells; ``benchmark.experiments.jobs`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.config import RunConfig

if TYPE_CHECKING:  # annotations only: the training loop sits higher in the import graph
    from benchmark.train.loop import RunResult


@dataclass(frozen=True)
class Cell:
    """One compiled training program and the labels its CSV rows carry."""

    labels: Mapping[str, Any]  # e.g. {"model": "s5", "env": "RepeatFirstEasy"}
    config: RunConfig  # everything the cell trains with, its environment's settings too

    @property
    def title(self) -> str:
        return " · ".join(str(v) for v in self.labels.values())



@dataclass(frozen=True)
class Plan:
    """What one job of an experiment trains, and what its config.json says."""

    cells: list[Cell]  # in sweep order; with a shard, that shard's cells alone
    settings: dict[str, Any] = field(default_factory=dict)  # config.json beside the runs
    describe: str = ""  # shown after "N cell(s)", e.g. " on MetaControl, K=4"
    context: Any = None  # what ``after_cell`` and ``finish`` need (e.g. MetaSettings)
    shard: tuple[int, int] | None = None  # (I, N), 1-based


@dataclass(frozen=True)
class Experiment:
    """A training command's experiment; see the module docstring."""

    name: str  # also its options class's key in ``options.TRAINING_OPTIONS``
    labels: tuple[str, ...]
    plan: Callable[[Any], Plan]  # the command's options -> every cell (ValueError if bad)
    make_cell: Callable[[RunConfig], Cell]  # a saved run config -> its cell (labels)
    summary_title: str = ""
    extra_summary: Mapping[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    # extra CSV -> the label columns that identify a cell's rows there (resume, merge)
    extra_csvs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    after_cell: Callable[[Any, Path], Callable[[Cell, RunResult], None]] | None = None
    finish: Callable[[Any, Path, list[dict]], list[Any]] | None = None  # -> tables
