"""Spread a run's seeds (and, where seeds are fewer, its environments) over every device.

The seed-vmapped ``RunnerState`` has the seed axis first and, in its environment parts
(environment state, observations, reset flags, backbone carry), the environment axis
second. ``plan_mesh`` picks a 2-D device mesh ``("seed", "env")`` for a run, and
``runner_shardings`` gives every leaf a ``NamedSharding`` on it; ``jax.jit`` with those
shardings then runs each device's share of the seeds (GSPMD inserts the few collectives the
environment split needs: the minibatch shuffle gathers across it). No scheduler of our own:
one process drives every local device, and several hosts join with
``jax.distributed.initialize`` (``init_multihost``), JAX's standard multi-controller launch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from benchmark.errors import ConfigError

AXES = ("seed", "env")


@dataclass(frozen=True)
class MeshPlan:
    """How one training cell is laid out: ``seed_shards x env_shards`` devices."""

    seed_shards: int
    env_shards: int

    @property
    def num_devices(self) -> int:
        return self.seed_shards * self.env_shards

    def describe(self) -> dict[str, int]:
        return {"devices": self.num_devices, "seed_shards": self.seed_shards,
                "env_shards": self.env_shards}


def plan_mesh(num_seeds: int, num_envs: int, num_devices: int) -> MeshPlan:
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
    return MeshPlan(seed_shards, env_shards)


def make_mesh(plan: MeshPlan, devices: list | None = None) -> Mesh:
    devices = list(devices if devices is not None else jax.devices())[: plan.num_devices]
    grid = np.array(devices, dtype=object).reshape(plan.seed_shards, plan.env_shards)
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


def init_multihost() -> None:
    """Join a multi-host run: one process per host, JAX's standard launch.

    ``jax.distributed.initialize`` finds the coordinator, the process count and this
    process's id under SLURM, Open MPI and Kubernetes by itself; elsewhere set
    ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0) and, for every process,
    ``S5BENCH_NUM_PROCESSES`` and ``S5BENCH_PROCESS_ID``.
    """
    num = os.environ.get("S5BENCH_NUM_PROCESSES")
    pid = os.environ.get("S5BENCH_PROCESS_ID")
    jax.distributed.initialize(
        num_processes=int(num) if num else None, process_id=int(pid) if pid else None
    )


def gather(tree):
    """Host numpy copies of (possibly sharded) arrays, from every process of the run."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
