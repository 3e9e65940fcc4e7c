"""`s5bench envs --bench`: one row per environment, port and reference timed, CSV schema."""

from __future__ import annotations

import math

import pandas as pd
from typer.testing import CliRunner

import cli
from benchmark.env_bench import BENCH_COLUMNS, reference_classes

runner = CliRunner()


def test_every_popgym_port_has_a_reference_class():
    """Each registered POPGym port has a popgym class of the same name to be timed against."""
    from envs import families

    ports = {env_id for ids in families("popgym").values() for env_id in ids}
    assert len(ports) == 48
    assert ports <= set(reference_classes())


def test_envs_bench_writes_rows(tmp_path):
    """A tiny bench writes one finite row per environment with the documented columns."""
    result = runner.invoke(cli.app, ["envs", "--bench", "--env", "RepeatFirstEasy,MemoryProbe",
                                     "--batch", "4", "--steps", "8", "--repeats", "2",
                                     "--out", str(tmp_path), "--run-id", "b"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "b" / "env_bench.csv")
    assert list(frame.columns) == list(BENCH_COLUMNS)
    assert list(frame.env) == ["RepeatFirstEasy", "MemoryProbe"]
    assert (frame.port_steps_per_s > 0).all() and frame.reference_steps_per_s[0] > 0
    assert math.isnan(frame.reference_steps_per_s[1]), "the probe has no popgym reference"


def test_envs_bench_bad_input_exits_2(tmp_path):
    """A non-positive batch or step count or an unknown env exits 2 with one line naming
    it (by its option), writing nothing."""
    for args, needle in ((["--batch", "0"], "--batch "), (["--steps", "0"], "--steps "),
                         (["--env", "Nope"], "Nope")):
        result = runner.invoke(cli.app, ["envs", "--bench", *args, "--out", str(tmp_path)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], result.output
    assert not any(tmp_path.iterdir())
