"""``--multihost`` for real: several ``s5bench`` processes joined by JAX's distributed runtime.

Each test starts its processes on this machine with the README's variables
(``JAX_COORDINATOR_ADDRESS`` on 127.0.0.1, ``S5BENCH_NUM_PROCESSES``,
``S5BENCH_PROCESS_ID``), exactly as a user would on several hosts: each process sees its
own CPU device, and cross-process collectives go through JAX's CPU implementation (gloo).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.train.checkpoint import MANIFEST

REPO = Path(__file__).resolve().parents[3]

UPDATES = 8  # of 8 envs x 16 steps, one per chunk, a checkpoint after each
RUN = ["popgym", "--model", "gru", "--env", "MemoryProbe", "--seeds", "2",
       "--total-steps", str(UPDATES * 8 * 16), "--set", "ppo.num_envs=8",
       "--set", "ppo.num_steps=16", "--set", "ppo.updates_per_chunk=1",
       "--checkpoint-every", "0", "--keep-checkpoints", str(UPDATES)]
WALL_CLOCK = ["wall_s", "compile_s", "env_steps_per_s"]
# A killed process is declared dead after this many seconds without a heartbeat (JAX's
# default is 100 s; the README says what to set on a cluster).
HEARTBEAT_S = 5


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: list[str], num_processes: int, logs: Path, *, multihost: bool = True,
           extra_env: dict[str, str] | None = None,
           args_of=lambda process_id, args: args) -> list[subprocess.Popen]:
    """Start ``num_processes`` copies of ``s5bench ARGS --multihost``, one per process id.

    Output goes to files in ``logs`` (a pipe nobody reads would stall a process). Each
    process gets a compilation cache of its own (two processes must not write one at
    once), kept across launches so a resume loads what the first run compiled.
    """
    port = _free_port()
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for process_id in range(num_processes):
        env = {**os.environ, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
               "S5BENCH_NUM_PROCESSES": str(num_processes),
               "S5BENCH_PROCESS_ID": str(process_id),
               "S5BENCH_HEARTBEAT_TIMEOUT": str(HEARTBEAT_S), **(extra_env or {})}
        if "JAX_COMPILATION_CACHE_DIR" in os.environ:
            env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
                os.environ["JAX_COMPILATION_CACHE_DIR"], f"process-{process_id}")
        command = [sys.executable, str(REPO / "cli.py"), *args_of(process_id, args)]
        stem = logs / f"{len(list(logs.glob('*.out')))}-process-{process_id}"
        proc = subprocess.Popen(command + (["--multihost"] if multihost else []), env=env,
                                stdout=open(f"{stem}.out", "w"),
                                stderr=open(f"{stem}.err", "w"), cwd=REPO)
        proc.stem, proc.started = stem, time.monotonic()
        procs.append(proc)
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[Finished]:
    """Wait for every process (killing all of them past ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout
    done = []
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise AssertionError(f"a process hung past {timeout} s: "
                                 f"{Path(f'{proc.stem}.err').read_text()[-2000:]}") from None
        done.append(Finished(proc.returncode, Path(f"{proc.stem}.out").read_text(),
                             Path(f"{proc.stem}.err").read_text(),
                             time.monotonic() - proc.started))
    return done


def _wait_for_checkpoint(run_dir: Path, procs, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(run_dir.glob(f"checkpoints/*/*/{MANIFEST}")):
        assert all(p.poll() is None for p in procs), "a process ended before its checkpoint"
        assert time.monotonic() < deadline, f"no checkpoint within {timeout} s"
        time.sleep(0.02)


def _params(run_dir: Path, step: int) -> list[np.ndarray]:
    """The parameters saved at ``step`` (updates done) for the run's only cell."""
    import jax
    import orbax.checkpoint as ocp

    (cell,) = (run_dir / "checkpoints").iterdir()
    path = (cell / str(step) / "state").absolute()
    checkpointer = ocp.StandardCheckpointer()
    # A two-process checkpoint names two processes' devices: read it onto this one.
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {name: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=here)
              for name, leaf in dict(checkpointer.metadata(path).item_metadata).items()}
    state = checkpointer.restore(path, target)
    return [np.asarray(state[name]) for name in sorted(state) if name.startswith(".params")]


def _largest(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def _numbers(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=WALL_CLOCK, errors="ignore")


def test_processes_get_past_initialisation_before_anything_touches_the_backend(tmp_path):
    """Two --multihost processes on 127.0.0.1 both initialise the distributed runtime (which
    must come before any import that starts XLA) and then reject a bad --env with exit 2."""
    results = finish(launch(["popgym", "--env", "NoSuchEnv", "--out", str(tmp_path)], 2,
                            tmp_path / "logs"), timeout=120)
    for result in results:
        assert "must be called before" not in result.stderr, result.stderr[-2000:]
        assert result.returncode == 2, result.stderr[-2000:]
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: --env: unknown environment 'NoSuchEnv'"), line


# Its cost (four launches of two processes and one of one: about 60 s alone on the quiet
# 2-core Intel Xeon, 80 s inside the suite, where its processes also slow the other worker)
# does not fit the fast suite's 10 minutes: it runs with --all. The fast suite keeps a real
# two-process training run (the SIGTERM test) and every start-up check.
@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_after_a_sigkill(tmp_path):
    """Two processes train one run: exit 0 in both, only process 0 writes, meta.json records
    the processes; after one update they agree with a one-process run up to 1e-3 of an
    update. One process SIGKILLed mid-run ends the other within the heartbeat timeout, and
    --resume --multihost ends bit for bit where the uninterrupted two-process run ends."""
    logs = tmp_path / "logs"
    # Process 1 is given another --out and --run-id: it follows process 0's folder and
    # must write nothing anywhere (its own folder never appears).
    elsewhere = tmp_path / "process-1-out"

    def process_1_elsewhere(process_id, args):
        return args if process_id == 0 else [*args[:-4], "--out", str(elsewhere),
                                             "--run-id", "other"]

    whole = finish(launch([*RUN, "--out", str(tmp_path), "--run-id", "whole"], 2, logs,
                          args_of=process_1_elsewhere))
    for result in whole:
        assert result.returncode == 0, result.stderr[-3000:]
    whole_dir = tmp_path / "whole"
    assert not elsewhere.exists()
    curves = pd.read_csv(whole_dir / "curves.csv")
    assert len(curves) == 2 * UPDATES and not curves.duplicated(["seed", "update"]).any()
    assert len(pd.read_csv(whole_dir / "summary.csv")) == 2
    meta = json.loads((whole_dir / "meta.json").read_text())
    assert meta["process_count"] == 2 and meta["device_count"] == 2
    assert sorted(meta["process_devices"]) == ["0", "1"]
    assert all(len(devices) == 1 for devices in meta["process_devices"].values())
    assert "--run-id whole" in meta["command_line"]  # process 0's, the only writer
    (layout,) = [cell["devices"] for cell in meta["cells"].values()]
    assert layout == {"devices": 2, "seed_shards": 2, "env_shards": 1}

    # The same run in one process on one device: another partitioned program, so after
    # one update (from the same parameters and the same first rollout) the parameters
    # differ by rounding, bounded by 1e-3 of an update's size (tests/benchmark/
    # test_sharding.py says why this holds by construction); the first update's episodes
    # are the same ones, so its mean return agrees to float32 rounding of one mean.
    single = finish(launch([*RUN, "--out", str(tmp_path), "--run-id", "single"], 1, logs,
                           multihost=False))
    assert single[0].returncode == 0, single[0].stderr[-3000:]
    single_dir = tmp_path / "single"
    first = [_numbers(d / "curves.csv").query("update == 1").reset_index(drop=True)
             for d in (single_dir, whole_dir)]
    assert first[0].episodes.tolist() == first[1].episodes.tolist()
    np.testing.assert_allclose(first[0].mean_return, first[1].mean_return, rtol=0, atol=1e-5)
    update_size = _largest(_params(single_dir, 2), _params(single_dir, 1))
    after_one = _largest(_params(single_dir, 1), _params(whole_dir, 1))
    print(f"one process vs two, after one update: {after_one:.3g} "
          f"(an update moves parameters by {update_size:.3g}); after {UPDATES}: "
          f"{_largest(_params(single_dir, UPDATES), _params(whole_dir, UPDATES)):.3g}")
    assert update_size > 1e-4 and after_one <= 1e-3 * update_size

    killed_dir = tmp_path / "killed"
    procs = launch([*RUN, "--out", str(tmp_path), "--run-id", "killed"], 2, logs)
    _wait_for_checkpoint(killed_dir, procs)
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    survivor, _ = finish(procs, timeout=120)
    ended_after = time.monotonic() - killed_at
    assert survivor.returncode != 0
    assert ended_after < HEARTBEAT_S + 30, f"process 0 took {ended_after:.0f} s to end"
    # The survivor's next collective fails (its peer is gone): the cell is recorded as an
    # error naming that, and JAX's coordination service then ends the process.
    assert "another task died" in survivor.stderr, survivor.stderr[-3000:]
    summary = pd.read_csv(killed_dir / "summary.csv")
    assert (summary.status == "error").all(), "killed too late to test"

    resumed = finish(launch(["popgym", "--resume", str(killed_dir)], 2, logs))
    for result in resumed:
        assert result.returncode == 0, result.stderr[-3000:]
    (resume,) = json.loads((killed_dir / "meta.json").read_text())["resumes"]
    (from_update,) = resume["from_update"].values()
    assert 0 < from_update < UPDATES and resume["process_count"] == 2
    # Same program (two processes, same mesh) from the same checkpoint: bit for bit.
    for name in ("curves.csv", "summary.csv"):
        pd.testing.assert_frame_equal(_numbers(whole_dir / name), _numbers(killed_dir / name))
    for a, b in zip(_params(whole_dir, UPDATES), _params(killed_dir, UPDATES), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigterm_to_every_process_saves_and_exits_130(tmp_path):
    """SIGTERM to both processes (a scheduler's pre-emption): they agree to stop after the
    same chunk, save it together, and both exit 130 with the command that resumes."""
    run_dir = tmp_path / "run"
    procs = launch([*RUN, "--total-steps", str(64 * 8 * 16), "--out", str(tmp_path),
                    "--run-id", "run"], 2, tmp_path / "logs")
    _wait_for_checkpoint(run_dir, procs)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for result in finish(procs, timeout=120):
        assert result.returncode == 130, result.stderr[-3000:]
        assert f"Resume with: s5bench popgym --resume {run_dir}" in result.stderr
    (cell,) = (run_dir / "checkpoints").iterdir()
    steps = [int(p.name) for p in cell.iterdir() if p.name.isdigit()]
    assert all((cell / str(step) / MANIFEST).is_file() for step in steps)
    assert max(steps) < 64


def test_processes_given_different_options_stop_with_one_line(tmp_path):
    """A process started with another --seeds than process 0: both exit 2 before compiling,
    with one line naming the setting that differs."""
    results = finish(launch([*RUN, "--out", str(tmp_path)], 2, tmp_path / "logs",
                            args_of=lambda i, args: [*args, "--seeds", "4"] if i else args),
                     timeout=120)
    for result in results:
        assert result.returncode == 2, result.stderr[-3000:]
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: process 1's settings differ from process 0's:"), line
        assert "seeds" in line
    assert not list(tmp_path.glob("*/curves.csv"))


def test_process_id_out_of_range_and_absent_coordinator_are_one_line(tmp_path):
    """S5BENCH_PROCESS_ID >= S5BENCH_NUM_PROCESSES is refused at once; a process whose
    coordinator never answers gives up after S5BENCH_INIT_TIMEOUT with one line, exit 2."""
    (out_of_range,) = finish(launch(["popgym", "--out", str(tmp_path)], 1, tmp_path / "logs",
                                    extra_env={"S5BENCH_NUM_PROCESSES": "2",
                                               "S5BENCH_PROCESS_ID": "2"}), timeout=60)
    assert out_of_range.returncode == 2
    assert out_of_range.stderr.strip().splitlines() == [
        "error: --multihost: S5BENCH_PROCESS_ID=2 is out of range for "
        "S5BENCH_NUM_PROCESSES=2: choose 0..1"]

    # Process 1 of 2 alone: nobody listens at the coordinator's address.
    (alone,) = finish(launch(["popgym", "--out", str(tmp_path)], 1, tmp_path / "logs",
                             extra_env={"S5BENCH_NUM_PROCESSES": "2",
                                        "S5BENCH_PROCESS_ID": "1",
                                        "S5BENCH_INIT_TIMEOUT": "3"}), timeout=60)
    assert alone.returncode == 2 and alone.seconds < 30
    (line,) = alone.stderr.strip().splitlines()
    assert line.startswith("error: --multihost: could not join the run at 127.0.0.1:"), line
    assert "within 3 s (S5BENCH_INIT_TIMEOUT)" in line
