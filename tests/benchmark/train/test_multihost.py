"""``--multihost`` for real: several ``s5bench`` processes joined by JAX's distributed runtime.

Each test starts its processes on this machine with the README's variables
(``JAX_COORDINATOR_ADDRESS`` on 127.0.0.1, ``S5BENCH_NUM_PROCESSES``,
``S5BENCH_PROCESS_ID``), exactly as a user would on several hosts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: list[str], num_processes: int, *,
           env_of=lambda process_id, env: env) -> list[subprocess.Popen]:
    """Start ``num_processes`` copies of ``s5bench ARGS --multihost``, one per process id."""
    port = _free_port()
    procs = []
    for process_id in range(num_processes):
        env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   S5BENCH_NUM_PROCESSES=str(num_processes),
                   S5BENCH_PROCESS_ID=str(process_id))
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "cli.py"), *args, "--multihost"],
            env=env_of(process_id, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=REPO))
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[Finished]:
    """Wait for every process (killing all of them past ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            out, err = proc.communicate()
            raise AssertionError(f"a process hung past {timeout} s: {err[-2000:]}") from None
        done.append(Finished(proc.returncode, out, err))
    return done


def test_processes_get_past_initialisation_before_anything_touches_the_backend(tmp_path):
    """Two --multihost processes on 127.0.0.1 both initialise the distributed runtime (which
    must come before any import that starts XLA) and then reject a bad --env with exit 2."""
    started = time.monotonic()
    results = finish(launch(["popgym", "--env", "NoSuchEnv", "--out", str(tmp_path)], 2),
                     timeout=120)
    for result in results:
        assert "must be called before" not in result.stderr, result.stderr[-2000:]
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [
            "error: --env: unknown environment 'NoSuchEnv'; see `s5bench envs` for the list"]
    assert time.monotonic() - started < 120
