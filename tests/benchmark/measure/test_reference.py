"""``s5bench reference`` (make reference-gpu): the spec, the projection, and a tiny CPU run."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from benchmark.measure.reference import (
    PAPER_TOTAL_STEPS,
    folder_name,
    reference_spec,
    throughput_rows,
    total_steps,
)
from cli import app


def test_full_spec_is_the_issue_s_specification():
    """The GPU spec sweeps the paper's width over T = 1024..65536 for every baseline, and trains the paper preset for s5 and gru with 8 seeds on the paper's five Table-5 environments."""
    spec = reference_spec("full")
    assert (spec.speed.d_model, spec.speed.layers) == (256, 4)
    assert spec.speed.seq_len[0] == 1024 and spec.speed.seq_len[-1] == 65536
    assert set(spec.speed.model) == {"s5", "gru", "lstm", "trxl", "attention", "mlp"}
    assert "train" in spec.speed.mode
    assert (spec.preset, spec.seeds, spec.models) == ("paper", 8, ("s5", "gru"))
    assert set(spec.envs) == {"StatelessCartPoleHard", "NoisyStatelessCartPoleHard",
                              "StatelessPendulumHard", "NoisyStatelessPendulumHard",
                              "RepeatPreviousHard"}
    assert total_steps(spec) == 2 * 64 * 1024  # 2 updates of 64 envs x 1024 steps


def test_unknown_size_names_the_valid_ones():
    """A size other than full or tiny is refused with the valid choices."""
    with pytest.raises(ValueError, match="valid sizes: full, tiny"):
        reference_spec("huge")


@pytest.mark.parametrize("info, size, expected", [
    ({"backend": "gpu", "device_kind": "NVIDIA H200", "device_count": 1}, "full",
     "gpu-nvidia-h200"),
    ({"backend": "gpu", "device_kind": "NVIDIA A100-SXM4-80GB", "device_count": 4}, "full",
     "gpu-nvidia-a100-sxm4-80gb-x4"),
    ({"backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu_count": 2}, "tiny",
     "cpu-2core-tiny"),
])
def test_folder_names_the_device(info, size, expected):
    """The run folder is named after the device (as the README's reference folders are)."""
    assert folder_name(info, size) == expected


def _summary_row(model, seed, rate, status="ok", env="RepeatPreviousHard"):
    return {"model": model, "env": env, "seed": seed, "status": status,
            "env_steps": 262144, "wall_s": 5.0, "compile_s": 12.5, "env_steps_per_s": rate}


def test_projection_of_the_paper_run_by_hand():
    """50,000 steps/s per seed with 8 seeds: 15M steps take 300 s for one vmapped run of all
    8, 37.5 s per seed; at 25,000 steps/s on a second environment 600 s and 75 s, so the
    mean row (the paper's A40 figure's unit) is 450 s per run, 56.25 s per seed, at the rate
    15M / 450 s; a diverged seed leaves no projection, for its environment and the mean."""
    spec = reference_spec("full")
    rows = throughput_rows(
        [_summary_row("s5", s, 50_000.0) for s in range(8)]
        + [_summary_row("s5", s, 25_000.0, env="PositionOnlyPendulumHard") for s in range(8)]
        + [_summary_row("gru", s, 10_000.0, "diverged" if s == 3 else "ok") for s in range(8)],
        spec, "NVIDIA H200 x1")
    s5, s5_pendulum, gru, s5_mean, gru_mean = rows
    assert s5["projected_15m_s"] == 300.0 and s5["projected_15m_s_per_seed"] == 37.5
    assert s5_pendulum["projected_15m_s"] == 600.0
    assert (s5_mean["env"], s5_mean["projected_15m_s"]) == ("mean", 450.0)
    assert s5_mean["projected_15m_s_per_seed"] == pytest.approx(56.2, abs=0.06)
    assert s5_mean["env_steps_per_s_per_seed"] == pytest.approx(15e6 / 450)
    # the paper's per-seed, five-environment mean stands beside the mean rows only
    assert s5_mean["paper_a40_s_per_seed"] == 218.0 and gru_mean["paper_a40_s_per_seed"] == 1484.0
    assert s5["paper_a40_s_per_seed"] is None
    assert (s5["seeds"], s5["compile_s"], s5["device"]) == (8, 12.5, "NVIDIA H200 x1")
    assert gru["projected_15m_s"] is None and gru["env_steps_per_s_per_seed"] == 10_000.0
    assert gru_mean["projected_15m_s"] is None


def test_tiny_reference_runs_end_to_end_on_the_cpu(tmp_path):
    """`s5bench reference --tiny` writes the speed sweep, the end-to-end run, throughput.csv with the projection, and the figures; a second run needs --force."""
    result = CliRunner().invoke(app, ["reference", "--tiny", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("cpu-") and folder.name.endswith("-tiny")
    spec = reference_spec("tiny")

    with (folder / "speed" / "speed.csv").open() as f:
        speed_rows = list(csv.DictReader(f))
    series = {(r["model"], r["evaluation"]) for r in speed_rows}
    assert series == {("s5", "parallel"), ("s5", "sequential"), ("gru", "")}
    assert {int(r["seq_len"]) for r in speed_rows} == set(spec.speed.seq_len)
    assert all(r["status"] == "ok" and float(r["median_s"]) > 0 for r in speed_rows)

    with (folder / "throughput.csv").open() as f:
        throughput = {(r["model"], r["env"]): r for r in csv.DictReader(f)}
    # the alias StatelessCartPoleHard runs as PositionOnlyCartPoleHard; then the mean row
    assert set(throughput) == {(m, e) for m in spec.models
                               for e in ("PositionOnlyCartPoleHard", "mean")}
    for row in throughput.values():
        rate = float(row["env_steps_per_s_per_seed"])
        assert int(row["env_steps"]) == total_steps(spec)
        assert float(row["projected_15m_s"]) == pytest.approx(PAPER_TOTAL_STEPS / rate, abs=0.1)
        assert int(row["seeds"]) == spec.seeds
        assert row["device"].startswith("cpu (")
    for name in ("scaling_speed.png", "speed_ratio_speed.png", "index.md"):
        assert (folder / "figures" / name).is_file()

    again = CliRunner().invoke(app, ["reference", "--tiny", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output
