"""`s5bench envs --bench`: one row per environment, port and reference timed, CSV schema."""

from __future__ import annotations

import math
import os
import signal
from types import SimpleNamespace

import jax
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.measure import env_bench
from benchmark.measure.env_bench import EnvBenchConfig, reference_classes
from benchmark.measure.timing import Timing
from benchmark.schema import BENCH_COLUMNS
from tests.envs.stubs import Clock

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
    assert (frame.port_min_steps_per_s <= frame.port_steps_per_s).all()
    assert (frame.port_steps_per_s <= frame.port_max_steps_per_s).all()
    assert frame.speedup[0] == pytest.approx(frame.port_steps_per_s[0]
                                             / frame.reference_steps_per_s[0])
    assert list(frame.batch) == [4, 4] and list(frame.num_steps) == [8, 8]
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


def test_port_row_counts_the_steps_it_times(monkeypatch):
    """One timed call steps each of the 4 environments 8 times (a Clock's count reaches 8,
    its rewards 1 + ... + 8 = 36 each), and the row divides those 32 steps by the injected
    times: median 1.0 s -> 32 steps/s, slowest 2.0 s -> 16, fastest 0.5 s -> 64."""
    env = Clock()
    params = env.default_params.replace(max_steps_in_episode=10**6)  # never resets here
    monkeypatch.setattr(env_bench, "make", lambda env_id: (env, params))
    outputs = []

    def time_function(fn, args, *, repeats, **kwargs):
        outputs.append(jax.jit(fn)(*args))
        return Timing(compile_s=0.25, times_s=(2.0, 0.5, 1.0), peak_memory_bytes=None)

    monkeypatch.setattr(env_bench, "time_function", time_function)
    row = env_bench.bench_env("Clock", EnvBenchConfig(batch=4, num_steps=8, repeats=3), "dev")
    (_, state, reward_sum), = outputs
    assert state.time.tolist() == [8, 8, 8, 8] and float(reward_sum) == 4 * 36
    reference, speedup = row.pop("reference_steps_per_s"), row.pop("speedup")
    assert math.isnan(reference) and math.isnan(speedup)  # Clock has no popgym reference
    assert row == {"env": "Clock", "batch": 4, "num_steps": 8, "device": "dev",
                   "compile_s": 0.25, "port_steps_per_s": 32.0,
                   "port_min_steps_per_s": 16.0, "port_max_steps_per_s": 64.0}


def test_reference_rate_counts_every_step(monkeypatch):
    """The reference is stepped (resetting at each episode end) until the clock, read every
    100 steps, passes the budget: 300 steps at 0.7 s per 100 -> 300 / 2.1 s = 142.857/s."""
    made = []

    class Reference:
        """Episodes of 7 steps; counts steps and resets."""

        def __init__(self):
            self.steps, self.resets, self.t = 0, 0, 0
            self.action_space = SimpleNamespace(seed=lambda seed: None, sample=lambda: 0)
            made.append(self)

        def reset(self, seed=None):
            self.resets, self.t = self.resets + 1, 0
            return None, {}

        def step(self, action):
            self.steps, self.t = self.steps + 1, self.t + 1
            return None, 0.0, self.t == 7, False, {}

    clock = iter([0.0, 0.7, 1.4, 2.1])
    monkeypatch.setattr(env_bench, "reference_classes", lambda: {"Reference": Reference})
    monkeypatch.setattr(env_bench, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    rate = env_bench.time_reference("Reference", seconds=2.0)
    assert rate == pytest.approx(300 / 2.1)
    (reference,) = made
    assert reference.steps == 300 and reference.resets == 1 + 300 // 7


def test_envs_bench_stops_on_sigterm_and_resumes_the_rest(tmp_path, monkeypatch):
    """SIGTERM while an environment is timed: its row is written, the bench stops with exit
    130 and the resume command, and --resume times only the environments left."""
    timed = []
    real = env_bench.time_port

    def stopping(env_id, config):
        timed.append(env_id)
        if len(timed) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets the flag
        return real(env_id, config)

    monkeypatch.setattr(env_bench, "time_port", stopping)
    monkeypatch.setattr(env_bench, "time_reference", lambda env_id, seconds: 100.0)
    result = runner.invoke(cli.app, ["envs", "--bench", "--env", "MemoryProbe,RepeatFirstEasy",
                                     "--batch", "4", "--steps", "8", "--repeats", "1",
                                     "--out", str(tmp_path), "--run-id", "b"])
    output = " ".join(result.output.split())
    assert result.exit_code == 130, result.output
    assert "stopped after 1 of 2 environments" in output
    assert f"s5bench envs --bench --resume {tmp_path / 'b'}" in output
    assert list(pd.read_csv(tmp_path / "b" / "env_bench.csv").env) == ["MemoryProbe"]
    again = runner.invoke(cli.app, ["envs", "--bench", "--resume", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    assert timed == ["MemoryProbe", "RepeatFirstEasy"]
    frame = pd.read_csv(tmp_path / "b" / "env_bench.csv")
    assert list(frame.env) == ["MemoryProbe", "RepeatFirstEasy"] and list(frame.batch) == [4, 4]
