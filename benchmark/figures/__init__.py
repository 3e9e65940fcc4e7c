"""Every figure, drawn from the CSVs of run folders alone (nothing retrains or re-measures).

``draw_figures(results, out)`` finds every run folder under ``results`` (at any depth, so
``results/reference/<device>/...`` too), reads and checks its CSVs, and draws each figure
whose data is present, one figure per run folder. The figures, by module:

- ``speed``: ``scaling``, ``speed_ratio`` (from ``speed.csv``);
- ``memory``: ``memory_length`` (a memory run's ``summary.csv``);
- ``popgym``: ``popgym_curves``, ``popgym_summary``, ``popgym_mmer_vs_time``,
  ``return_vs_cost`` (a POPGym run's ``curves.csv`` and ``summary.csv``);
- ``intervals``: ``popgym_intervals``, ``popgym_profiles``, ``popgym_improvement`` (a
  POPGym run's ``aggregate.csv``, ``summary.csv`` and ``comparison.csv``);
- ``meta``: ``meta_trials``, ``meta_curves`` (a meta run's ``trials.csv`` and ``curves.csv``).

Each module's docstring says what its figures show. ``data`` finds run folders and reads
the CSVs (it draws nothing); ``style`` holds the titles, colours and saving. Each figure is
written as PNG and SVG, and ``index.md`` lists them with the run folders they come from. A
figure whose data is absent is skipped with a one-line reason. A CSV that cannot be parsed,
lacks a required column or holds text where numbers belong raises ``FigureDataError``
naming the file (and the column), before anything is drawn.

Nothing in the library imports this package (only ``cli.py``), and it never imports JAX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmark.figures import intervals, memory, meta_rl, popgym, speed, style
from benchmark.figures.data import FigureDataError, Run, load_runs
from benchmark.figures.style import Figure

# figure kind -> (the kind of run it is drawn from, its drawer), in the order drawn.
FIGURES = {**speed.FIGURES, **memory.FIGURES, **popgym.FIGURES, **intervals.FIGURES,
           **meta_rl.FIGURES}
# What a figure needs, for the skip line when no run of that kind exists. Meta runs are
# optional extras: without one, their figures are left out silently.
_SOURCE_TEXT = {"speed": "speed run (speed.csv)",
                "memory": "memory run (summary.csv with memory_length)",
                "popgym": "POPGym run (curves.csv/summary.csv with env)"}


@dataclass
class Report:
    """What ``draw_figures`` did."""

    figures: list[Figure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line each
    index: Path | None = None

    @property
    def nothing_to_draw(self) -> bool:
        return not self.figures

    def add(self, outcome: Figure | str, title: str, run_name: str) -> None:
        """Record a drawn figure, or the reason (a drawer's string) it was not drawn."""
        if isinstance(outcome, str):
            self.skipped.append(f"{title} ({run_name}): {outcome}")
        else:
            self.figures.append(outcome)


def draw_figures(results: Path, out: Path) -> Report:
    """Draw every figure whose data is under ``results`` into ``out``; write index.md.

    Raises:
      FileNotFoundError: ``results`` is not a folder.
      FigureDataError: a CSV is unreadable or lacks a required column (nothing drawn).
    """
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} does not exist")
    runs = load_runs(results)  # every CSV is read and checked before anything is drawn
    report = Report()
    if not runs:
        return report
    by_kind: dict[str, list[Run]] = {}
    for run in runs:
        by_kind.setdefault(run.kind, []).append(run)
    out.mkdir(parents=True, exist_ok=True)
    for kind, (source, drawer) in FIGURES.items():
        sources = by_kind.get(source, [])
        if not sources and source in _SOURCE_TEXT:
            report.skipped.append(f"{style.TITLES[kind]}: no {_SOURCE_TEXT[source]} "
                                  f"under {results}")
        for run in sources:
            report.add(drawer(run, out), style.TITLES[kind], run.name)
    report.index = write_index(out, report, results)
    return report


def write_index(out: Path, report: Report, results: Path) -> Path:
    """``out/index.md``: every figure with its files, run folders and device; the skips."""
    lines = ["# Figures", "",
             f"Drawn by `s5bench figures --results {results.as_posix()} --out {out.as_posix()}` "
             "from the CSVs of the run folders listed; nothing was retrained or re-measured.",
             ""]
    for figure in report.figures:
        png, *others = [f.name for f in figure.files]
        runs = ", ".join(f"`{p.as_posix()}`" for p in figure.runs)
        lines += [f"## {figure.title} (`{figure.stem}`)", "",
                  f"![{figure.title}]({png})", "",
                  f"- files: {', '.join([png, *others])}",
                  f"- run folders: {runs}",
                  f"- device: {figure.device}",
                  f"- {figure.caption}", ""]
    if report.skipped:
        lines += ["## Not drawn", ""] + [f"- {line}" for line in report.skipped] + [""]
    path = out / "index.md"
    path.write_text("\n".join(lines))
    return path


__all__ = ["FIGURES", "Figure", "FigureDataError", "Report", "draw_figures", "write_index"]
