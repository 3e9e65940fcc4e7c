"""Figures come from CSVs alone (``s5bench figures``, benchmark/figures/__init__.py): every
figure from small fixture runs, the CLI's reports, and the package's import layers."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from benchmark.figures import draw_figures
from benchmark.figures.style import FORMATS
from tests.benchmark.figures.support import (
    EXPECTED,
    FIXTURES,
    ROOT,
    nonempty_lines,
    runner,
)


def test_every_figure_is_drawn_as_png_and_svg_with_an_index(tmp_path):
    """Each figure of the fixture runs is written as PNG and SVG and listed in index.md."""
    out = tmp_path / "figures"
    report = draw_figures(FIXTURES, out)
    assert sorted(f.stem for f in report.figures) == sorted(EXPECTED)
    assert report.skipped == []
    for stem in EXPECTED:
        for fmt in FORMATS:
            path = out / f"{stem}.{fmt}"
            assert path.is_file() and path.stat().st_size > 1000, path
    index = (out / "index.md").read_text()
    for stem in EXPECTED:
        assert f"]({stem}.png)" in index
    for kind in ("speed", "memory", "popgym"):
        assert f"`{(FIXTURES / kind / 'fixture').as_posix()}`" in index
    assert "device: cpu (2 cores)" in index
    assert "gru rollout: timeout from T=256" in index  # non-ok speed rows are reported

def test_redrawing_the_same_csvs_gives_identical_svgs(tmp_path):
    """SVGs carry no timestamp or random ids, so unchanged data redraws byte for byte."""
    first, second = tmp_path / "a", tmp_path / "b"
    draw_figures(FIXTURES / "memory", first)
    draw_figures(FIXTURES / "memory", second)
    svg = "memory_length_fixture.svg"
    assert (first / svg).read_bytes() == (second / svg).read_bytes()

def test_absent_data_skips_a_figure_with_a_reason(results, tmp_path):
    """Only a memory run present: its figure is drawn, every other one skipped with a reason."""
    shutil.rmtree(results / "speed")
    shutil.rmtree(results / "popgym")
    report = draw_figures(results, tmp_path / "figures")
    assert [f.kind for f in report.figures] == ["memory_length"]
    assert len(report.skipped) == 9  # scaling, speed_ratio and seven POPGym figures
    assert any("no speed run (speed.csv)" in line for line in report.skipped)
    assert any("no POPGym run" in line for line in report.skipped)

def test_cli_figures_on_an_empty_folder_exits_0_with_nothing_to_draw(tmp_path):
    """`s5bench figures` on a folder without runs says there is nothing to draw, status 0."""
    (tmp_path / "results").mkdir()
    result = runner.invoke(cli.app, ["figures", "--results", str(tmp_path / "results"),
                                     "--out", str(tmp_path / "figures")])
    assert result.exit_code == 0, result.output
    lines = nonempty_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("nothing to draw"), result.output

def test_cli_figures_on_a_corrupt_csv_exits_2_naming_the_file(results, tmp_path):
    """A CSV that does not parse: exit status 2 and one line naming the file."""
    path = results / "popgym/fixture/curves.csv"
    path.write_text("model,env,seed\ns5,E,0\ns5,E,0,1,2,3,4\n\x00\x01garbage,,,,,,,,\n")
    result = runner.invoke(cli.app, ["figures", "--results", str(results),
                                     "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2, result.output
    lines = nonempty_lines(result.output)
    assert len(lines) == 1 and str(path) in lines[0], result.output
    # a parse error, not the missing-column check that any short header would also trip
    assert "not a readable CSV" in lines[0], result.output

def test_cli_figures_on_a_missing_folder_exits_2(tmp_path):
    """A results folder that does not exist is bad input: exit status 2, one line."""
    result = runner.invoke(cli.app, ["figures", "--results", str(tmp_path / "nope"),
                                     "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2
    assert len(nonempty_lines(result.output)) == 1 and "does not exist" in result.output

def test_cli_figures_draws_and_reports_each_file(tmp_path):
    """`s5bench figures` on the fixtures prints one line per figure and the index path."""
    out = tmp_path / "figures"
    result = runner.invoke(cli.app, ["figures", "--results", str(FIXTURES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("drew ") for line in nonempty_lines(result.output)) == len(EXPECTED)
    assert f"index: {out / 'index.md'}" in result.output

FIGURE_MODULES = ("data", "style", "speed", "memory", "popgym", "intervals", "meta_rl")

DRAWING_MODULES = ("speed", "memory", "popgym", "intervals", "meta_rl")

@pytest.mark.parametrize("module", ["benchmark.figures",
                                    *(f"benchmark.figures.{m}" for m in FIGURE_MODULES)])
def test_each_figures_module_imports_first_in_a_fresh_process_without_jax(module):
    """Each module of the package imports on its own first (an import circle fails here with
    a partially initialised module) and none of them pulls in JAX."""
    code = (f"import sys, {module}\n"
            "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr

def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as written (``from a import b`` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names

def _figures_imports(path: Path) -> set[str]:
    """The ``benchmark.figures`` submodules ``path`` imports (by their short names)."""
    prefix = "benchmark.figures."
    return {name[len(prefix):].split(".")[0] for name in _imports(path)
            if name.startswith(prefix) and name[len(prefix):].split(".")[0] in FIGURE_MODULES}

def test_figures_package_imports_in_layers_and_only_cli_imports_it():
    """data imports no drawing (nor matplotlib); style only data; each drawing module only
    data and style; outside the package, no library module imports benchmark.figures."""
    package = ROOT / "benchmark" / "figures"
    data_imports = _imports(package / "data.py")
    assert _figures_imports(package / "data.py") == set()
    assert not any(name.startswith("matplotlib") for name in data_imports)
    assert _figures_imports(package / "style.py") == {"data"}
    for module in DRAWING_MODULES:
        assert _figures_imports(package / f"{module}.py") <= {"data", "style"}, module
    library = [p for folder in ("benchmark", "models", "envs") for p in (ROOT / folder).rglob(
        "*.py") if package not in p.parents]
    assert len(library) > 20
    importers = [p for p in library
                 if any(name.startswith("benchmark.figures") for name in _imports(p))]
    assert importers == []
    assert "benchmark.figures" in _imports(ROOT / "cli.py")
