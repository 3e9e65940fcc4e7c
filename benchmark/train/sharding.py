"""Spread a run's seeds (and, where seeds are fewer, its environments) over every device.

The seed-vmapped ``RunnerState`` has the seed axis first and, in its environment parts
(environment state, observations, reset flags, backbone carry), the environment axis
second. ``choose_mesh`` picks a 2-D device mesh ``("seed", "env")`` for a run, and
``runner_shardings`` gives every leaf a ``NamedSharding`` on it; ``jax.jit`` with those
shardings then runs each device's share of the seeds (GSPMD inserts the few collectives the
environment split needs: the minibatch shuffle gathers across it). No scheduler of our own:
one process drives every local device, and several hosts join with
``jax.distributed.initialize`` (``init_multihost``), JAX's standard multi-controller launch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from benchmark.errors import ConfigError

AXES = ("seed", "env")


@dataclass(frozen=True)
class MeshShape:
    """How one training cell is laid out: ``seed_shards x env_shards`` devices."""

    seed_shards: int
    env_shards: int

    @property
    def num_devices(self) -> int:
        return self.seed_shards * self.env_shards

    def describe(self) -> dict[str, int]:
        return {"devices": self.num_devices, "seed_shards": self.seed_shards,
                "env_shards": self.env_shards}


def choose_mesh(num_seeds: int, num_envs: int, num_devices: int) -> MeshShape:
    """The largest mesh of at most ``num_devices`` that divides the run evenly.

    Seeds come first: ``seed_shards`` is the largest divisor of ``num_seeds`` that fits.
    The devices left over split the environments (``env_shards`` divides ``num_envs``).
    So 8 seeds on 8 devices are 8 x 1, 1 seed is 1 x 8 (with 64 environments), and 5
    seeds on 8 devices are 5 x 1: an uneven split would leave devices idle anyway.
    """
    if num_devices < 1:
        raise ValueError(f"need at least one device, got {num_devices}")
    seed_shards = max(d for d in range(1, min(num_seeds, num_devices) + 1)
                      if num_seeds % d == 0)
    spare = num_devices // seed_shards
    env_shards = max(d for d in range(1, min(num_envs, spare) + 1) if num_envs % d == 0)
    return MeshShape(seed_shards, env_shards)


def make_mesh(shape: MeshShape, devices: list | None = None) -> Mesh:
    devices = list(devices if devices is not None else jax.devices())[: shape.num_devices]
    grid = np.array(devices, dtype=object).reshape(shape.seed_shards, shape.env_shards)
    return Mesh(grid, AXES)


def runner_shardings(runner_shapes, mesh: Mesh, num_envs: int):
    """A ``NamedSharding`` per leaf of a seed-stacked ``RunnerState`` (shapes suffice).

    Leaves of the environment parts whose second axis is the environment axis are split
    over ``("seed", "env")``; everything else (parameters, optimizer state, keys,
    counters) over ``"seed"`` alone.
    """
    seed_only = NamedSharding(mesh, P("seed"))
    seed_env = NamedSharding(mesh, P("seed", "env"))

    def per_env(leaf):
        has_env_axis = len(leaf.shape) >= 2 and leaf.shape[1] == num_envs
        return seed_env if has_env_axis else seed_only

    env_parts = {name: jax.tree.map(per_env, getattr(runner_shapes, name))
                 for name in ("env_state", "obs", "resets", "carry")}
    rest = {name: jax.tree.map(lambda _: seed_only, getattr(runner_shapes, name))
            for name in runner_shapes._fields if name not in env_parts}
    return type(runner_shapes)(**env_parts, **rest)


def available_devices(limit: int | None) -> int:
    """How many devices a run may use: all of them, or ``limit`` (``--devices``)."""
    count = jax.device_count()
    if limit is None:
        return count
    if not 1 <= limit <= count:
        raise ConfigError("devices", f"{limit}: this machine has {count} device(s) "
                          f"({jax.devices()[0].device_kind}); choose 1..{count}")
    return limit


# Environment variables of a multi-process launch outside SLURM, Open MPI and Kubernetes
# (JAX reads JAX_COORDINATOR_ADDRESS itself), and the timeouts of JAX's coordination service.
NUM_PROCESSES_VAR = "S5BENCH_NUM_PROCESSES"
PROCESS_ID_VAR = "S5BENCH_PROCESS_ID"
# How long a process waits for the coordinator and every other process to join.
INIT_TIMEOUT_VAR = "S5BENCH_INIT_TIMEOUT"
# How long without a heartbeat before the coordination service declares a process dead and
# stops the others: a killed or hung process then ends the run within this time.
HEARTBEAT_TIMEOUT_VAR = "S5BENCH_HEARTBEAT_TIMEOUT"
# JAX's defaults, kept for real clusters: a slow shared file system or a busy host can stall
# a healthy process for tens of seconds.
DEFAULT_INIT_TIMEOUT_S, DEFAULT_HEARTBEAT_TIMEOUT_S = 300, 100


class MultihostError(ValueError):
    """A multi-process run cannot start or go on: one line saying why (exit 2)."""


def _int_variable(name: str, default: int | None, minimum: int) -> int | None:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise MultihostError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise MultihostError(f"{name}={value} must be at least {minimum}")
    return value


def init_multihost(on_timeout: Callable[[str], Any]) -> None:
    """Join a multi-process run: one process per host, JAX's standard launch.

    NOT a pure jittable function: it must run before anything starts the XLA backend
    (a device query, or importing a module that builds an array, as gymnax does).
    ``jax.distributed.initialize`` finds the coordinator, the process count and this
    process's id under SLURM, Open MPI and Kubernetes by itself; elsewhere set
    ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0) and, for every process,
    ``S5BENCH_NUM_PROCESSES`` and ``S5BENCH_PROCESS_ID``. ``S5BENCH_INIT_TIMEOUT`` and
    ``S5BENCH_HEARTBEAT_TIMEOUT`` (seconds) bound how long a process waits for the others
    to join and how soon a dead process ends the run.

    Args:
      on_timeout: called, from another thread, with one line saying so when the processes
        have not all joined within the timeout; it must end the process (JAX would
        otherwise abort it a little later with a C++ stack trace, which no Python
        handler can catch).

    Raises:
      MultihostError: a variable is malformed or out of range.
    """
    num = _int_variable(NUM_PROCESSES_VAR, None, 1)
    pid = _int_variable(PROCESS_ID_VAR, None, 0)
    if num is not None and pid is not None and pid >= num:
        raise MultihostError(f"{PROCESS_ID_VAR}={pid} is out of range for "
                             f"{NUM_PROCESSES_VAR}={num}: choose 0..{num - 1}")
    init_timeout = _int_variable(INIT_TIMEOUT_VAR, DEFAULT_INIT_TIMEOUT_S, 1)
    heartbeat_timeout = _int_variable(HEARTBEAT_TIMEOUT_VAR, DEFAULT_HEARTBEAT_TIMEOUT_S, 1)
    where = os.environ.get("JAX_COORDINATOR_ADDRESS", "the coordinator")
    watchdog = threading.Timer(init_timeout, on_timeout, args=(
        f"could not join the run at {where} within {init_timeout} s ({INIT_TIMEOUT_VAR}): "
        f"the coordinator (process 0) or another process did not answer",))
    watchdog.daemon = True
    watchdog.start()
    try:
        # JAX's own deadline comes later than the watchdog's, so the user reads our line.
        jax.distributed.initialize(
            num_processes=num, process_id=pid, initialization_timeout=init_timeout + 30,
            heartbeat_timeout_seconds=heartbeat_timeout)
    finally:
        watchdog.cancel()


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def exchange(name: str, value: str, timeout_s: float | None = None) -> list[str]:
    """Every process's ``value`` for ``name``, in process order (host work, no devices).

    NOT a pure jittable function: it goes through the key-value store of JAX's coordination
    service, so it works before anything is compiled (to agree on settings) and costs no
    collective. Each ``name`` may be exchanged once per run. With one process it is
    ``[value]``.
    """
    if not is_multiprocess():
        return [value]
    from jax._src import distributed  # the coordination client JAX's own multihost code uses

    client = distributed.global_state.client
    timeout_ms = int(1000 * (timeout_s or _int_variable(
        INIT_TIMEOUT_VAR, DEFAULT_INIT_TIMEOUT_S, 1)))
    client.key_value_set(f"s5bench/{name}/{jax.process_index()}", value)
    try:
        return [client.blocking_key_value_get(f"s5bench/{name}/{i}", timeout_ms)
                for i in range(jax.process_count())]
    except Exception as error:  # jaxlib raises its own XlaRuntimeError on a timeout
        raise MultihostError(f"not every process reached {name!r} within "
                             f"{timeout_ms // 1000} s: {str(error).splitlines()[0]}") from None


def any_process(*flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over the processes (a collective when there are several).

    Decisions between chunks (stop now, save a checkpoint now) must be the same in every
    process: a checkpoint is written by all of them together, and a process that stopped
    alone would leave the others waiting in the next chunk's collectives.
    """
    if not is_multiprocess():
        return tuple(bool(f) for f in flags)
    everyone = np.asarray(multihost_utils.process_allgather(np.asarray(flags, dtype=np.int32)))
    return tuple(bool(v) for v in everyone.reshape(-1, len(flags)).any(axis=0))


def process_layout() -> dict:
    """meta.json's record of a multi-process run: process count and each one's devices."""
    if not is_multiprocess():
        return {}
    layout: dict[str, list[str]] = {}
    for device in jax.devices():
        layout.setdefault(str(device.process_index), []).append(str(device))
    return {"process_count": jax.process_count(), "process_devices": layout}


def gather(tree):
    """Host numpy copies of (possibly sharded) arrays, from every process of the run."""
    if is_multiprocess():
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
