"""`s5bench compare`: the committed backbones run with intervals and verdicts; runs joined,
labelled and refused as the README says."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

import cli
from benchmark.experiments.compare import compare
from tests.cli_checks import assert_one_error_line

ROOT = Path(__file__).resolve().parents[3]
BACKBONES = ROOT / "results" / "reference" / "cpu-2core" / "popgym-backbones-quick"
runner = CliRunner()


def _run(folder: Path, cells: dict[tuple[str, str], list[float]], *, backend: str = "cpu",
         preset: str = "quick") -> Path:
    """A run folder: summary.csv with one ok row per seed of each (model, env) cell."""
    folder.mkdir(parents=True)
    pd.DataFrame([{"model": m, "env": e, "seed": s, "status": "ok", "mmer": v,
                   "final_return": v} for (m, e), values in cells.items()
                  for s, v in enumerate(values)]).to_csv(folder / "summary.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"backend": backend, "cpu_count": 2,
                                                  "device_kind": backend}))
    (folder / "config.json").write_text(json.dumps({"command": "popgym",
                                                    "runs": [{"preset": preset}]}))
    return folder


def test_compare_prints_the_committed_backbones_run_with_intervals_and_verdicts():
    """Per-environment means with intervals, the aggregate IQM, the pairs that differ and
    those that cannot be told apart, from the committed 9 x 3 x 3 run."""
    result = runner.invoke(cli.app, ["compare", str(BACKBONES)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # rich wraps titles and sentences
    for env in ("RepeatPreviousMedium", "PositionOnlyCartPoleHard", "CountRecallEasy"):
        assert f"{env}: MMER, mean over seeds" in out
    # lru's RepeatPreviousMedium seeds (summary.csv): 0.549, 0.505, 0.357 -> mean 0.471
    assert "0.471 [" in out
    assert "trxl > mlp: P = 1.00 [1.00, 1.00]" in out
    assert "cannot be told apart with these seeds:" in out and "s5 ~ trxl" in out
    assert "Aggregate over 3 environment(s): normalised MMER" in out


def test_runs_of_one_backbone_in_two_folders_are_told_apart_and_shards_are_joined(tmp_path):
    """The same (model, env) in two runs names each `model (run)`; shards, whose cells are
    disjoint, keep plain names and compare on the environments every model has."""
    a = _run(tmp_path / "a", {("s5", "E1"): [0.1, 0.2], ("gru", "E1"): [0.0, 0.1]})
    b = _run(tmp_path / "b", {("s5", "E1"): [0.5, 0.6], ("s5", "E2"): [0.3, 0.3]})
    result = compare([a, b], reps=200)
    assert set(result.cells["model"]) == {"s5 (a)", "s5 (b)", "gru"}
    assert result.envs == ["E1"] and result.left_out == {"s5 (b)": ["E2"]}
    sweep = tmp_path / "sweep"
    _run(sweep / "shard-1-of-2", {("s5", "E1"): [0.1, 0.2], ("gru", "E2"): [0.0, 0.1]})
    _run(sweep / "shard-2-of-2", {("s5", "E2"): [0.5, 0.6], ("gru", "E1"): [0.3, 0.3]})
    joined = compare([sweep], reps=200)
    assert set(joined.cells["model"]) == {"s5", "gru"} and joined.envs == ["E1", "E2"]
    # P(s5 > gru): E1 {0.1, 0.2} vs {0.3, 0.3}: 0 of 4; E2 {0.5, 0.6} vs {0.0, 0.1}: 4 of 4
    overall = joined.pairs[joined.pairs["env"] == "all"]
    assert overall["probability"].tolist() == [0.5]


def test_mixed_devices_are_refused_in_one_line_unless_allowed(tmp_path):
    """Runs from two devices: one line naming them, exit 2; --allow-mixed compares them."""
    a = _run(tmp_path / "a", {("s5", "E"): [0.1, 0.2]})
    b = _run(tmp_path / "b", {("gru", "E"): [0.3, 0.4]}, backend="gpu")
    result = runner.invoke(cli.app, ["compare", str(a), str(b)])
    assert_one_error_line(result, "different devices")
    result = runner.invoke(cli.app, ["compare", str(a), str(b), "--allow-mixed"])
    assert result.exit_code == 0, result.output
    assert "gru > s5: P = 1.00" in result.output


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    """A folder without summary.csv, an unknown --score, mixed presets and runs sharing no
    environment are each one line naming the problem, exit 2."""
    a = _run(tmp_path / "a", {("s5", "E1"): [0.1, 0.2]})
    b = _run(tmp_path / "b", {("gru", "E2"): [0.3, 0.4]})
    c = _run(tmp_path / "c", {("lstm", "E1"): [0.3, 0.4]}, preset="paper")
    assert_one_error_line(runner.invoke(cli.app, ["compare", str(tmp_path / "none")]),
                          "no summary.csv")
    assert_one_error_line(runner.invoke(cli.app, ["compare", str(a), "--score", "best"]),
                          "valid: mmer, final_return")
    assert_one_error_line(runner.invoke(cli.app, ["compare", str(a), str(c)]),
                          "different presets")
    assert_one_error_line(runner.invoke(cli.app, ["compare", str(a), str(b)]),
                          "no environment has an ok run of every backbone")
