"""Deliberately broken: an Elman RNN that ignores resets, so its carry (memory) leaks
across episodes. ``s5bench check s5bench_elman.leaky:LeakyElmanConfig`` names the
properties that catch it.
"""

from __future__ import annotations

from dataclasses import dataclass

from s5bench_elman.backbone import ElmanConfig


@dataclass(frozen=True, kw_only=True)
class LeakyElmanConfig(ElmanConfig):
    """An Elman RNN whose carry leaks across resets (a deliberately broken example)."""

    honours_resets: bool = False
