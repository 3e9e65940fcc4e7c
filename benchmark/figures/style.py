"""What every figure shares: titles, colours per backbone, axes helpers, and saving.

``save_figure`` writes PNG and SVG with no timestamp and fixed SVG ids, so redrawing
unchanged CSVs changes no file. Each drawing module calls it through this module
(``style.save_figure``), which is also where tests look at a figure before it is saved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from benchmark.figures.data import Run  # noqa: E402

# Deterministic SVG ids and no timestamps, so redrawing unchanged data changes no file.
matplotlib.rcParams["svg.hashsalt"] = "s5bench"
_SAVE_METADATA = {"png": {"Software": None}, "svg": {"Date": None}}
FORMATS = ("png", "svg")

# Every figure's title (index.md heading, skip lines), by figure kind = file-name prefix.
TITLES = {
    "scaling": "Scaling: time against sequence length",
    "speed_ratio": "Speed relative to S5",
    "memory_length": "Memory length: device memory, training time and return",
    "popgym_curves": "POPGym learning curves",
    "popgym_summary": "POPGym summary: MMER and wall time",
    "popgym_mmer_vs_time": "POPGym: normalised MMER against wall-clock time",
    "return_vs_cost": "Return against cost",
    "popgym_intervals": "POPGym: aggregate scores with 95% intervals",
    "popgym_profiles": "POPGym: performance profiles",
    "popgym_improvement": "POPGym: probability of improvement",
    "meta_trials": "Meta-RL: return against trial index (in-context learning)",
    "meta_curves": "Meta-RL training curves",
}

COLORS = {"s5": "C0", "gru": "C1", "lstm": "C2", "trxl": "C3", "attention": "C4",
          "lru": "C5", "mamba": "C6", "mingru": "C8", "mlp": "C7"}
# Models not named above (a backbone registered later): tab10's last colour, then others.
_EXTRA_COLORS = ("C9", "black", "gold", "navy")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass
class Figure:
    """A drawn figure: its files and where its data came from."""

    kind: str
    stem: str
    title: str
    runs: list[Path]
    device: str
    caption: str
    files: list[Path]


def save_figure(kind: str, run: Run, fig, out: Path, caption: str,
                title: str | None = None) -> Figure:
    """Save ``fig`` as ``<kind>_<run slug>`` in every format, close it and describe it."""
    stem = f"{kind}_{run.slug}"
    files = []
    for fmt in FORMATS:
        path = out / f"{stem}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata=_SAVE_METADATA[fmt])
        files.append(path)
    plt.close(fig)
    return Figure(kind, stem, title or TITLES[kind], [run.path], run.device, caption, files)


def color(name: str, seen: dict[str, str]) -> str:
    """The backbone's colour (``name``'s first word); ``seen`` assigns unknown ones."""
    base = name.split(" ")[0]
    if base in COLORS:
        return COLORS[base]
    if base not in seen:
        seen[base] = _EXTRA_COLORS[len(seen) % len(_EXTRA_COLORS)]
    return seen[base]


def model_order(names: Iterable[str]) -> list[str]:
    """The distinct names, known backbones in ``COLORS`` order first, then alphabetical."""
    order = list(COLORS)
    return sorted(set(names), key=lambda n: (order.index(n.split(" ")[0])
                                             if n.split(" ")[0] in order else len(order), n))


def log2_ticks(ax, values: Iterable[float]) -> None:
    """A base-2 log x axis labelled with the plain values present (4, 8, 16, ...)."""
    ticks = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if len(ticks) > 8:
        for label in ax.get_xticklabels():
            label.set_rotation(45)


def panel_grid(count: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` panels, at most four a row."""
    cols = min(4, count)
    return math.ceil(count / cols), cols
