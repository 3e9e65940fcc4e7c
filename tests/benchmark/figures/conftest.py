"""Fixtures of the figures' tests: a writable fixture results folder, the drawn figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.benchmark.figures.support import FIXTURES


@pytest.fixture
def results(tmp_path) -> Path:
    """A writable copy of the fixture results folder."""
    copy = tmp_path / "results"
    shutil.copytree(FIXTURES, copy)
    return copy



@pytest.fixture
def drawn(monkeypatch) -> dict:
    """Every figure ``draw_figures`` draws, by kind, as the matplotlib Figure it saved."""
    from benchmark.figures import style

    captured = {}
    real = style.save_figure

    def capture(kind, run, fig, out, caption, title=None):
        captured[kind] = fig
        return real(kind, run, fig, out, caption, title)

    monkeypatch.setattr(style, "save_figure", capture)
    return captured

