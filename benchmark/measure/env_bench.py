"""Environment-only throughput: each JAX port (vmapped, compiled) beside reference popgym.

The port is timed as the PPO loop uses it: ``batch`` environments stepped in lock-step by a
``vmap``ped gymnax ``step`` (auto-reset included) inside a ``lax.scan`` of ``num_steps``,
with uniformly random actions drawn inside the scan. ``benchmark.measure.timing.time_function``
times it (compile apart, one warm-up, the median of ``repeats`` calls, each from the same
start state and ending in ``block_until_ready``). The reference is the ``popgym`` package
(numpy + gymnasium) stepped in one Python process with random actions, resetting when an
episode ends: the way most PyTorch POPGym pipelines collect data, one environment per worker.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from benchmark.errors import ConfigError
from benchmark.measure.timing import time_function
from benchmark.schema import BENCH_COLUMNS, ENV_BENCH_CSV
from envs import make


@dataclass(frozen=True, kw_only=True)
class EnvBenchConfig:
    """Settings of ``s5bench envs --bench``."""

    batch: int = 1024  # B: environments stepped at once by the port
    num_steps: int = 256  # steps of the scan per timed call
    repeats: int = 5  # timed calls of the port (median reported)
    reference_seconds: float = 2.0  # wall-clock budget for stepping the reference

    def __post_init__(self):
        for name in ("batch", "num_steps", "repeats"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be positive, got {getattr(self, name)}")
        if self.reference_seconds <= 0:
            raise ConfigError("reference_seconds", "must be positive")


def time_port(env_id: str, config: EnvBenchConfig) -> dict[str, float]:
    """Compile and time the vmapped port; returns compile_s and steps/s (median, min, max)."""
    env, params = make(env_id)
    space = env.action_space(params)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(key, state):
        def one_step(carry, _):
            key, state = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = jax.vmap(space.sample)(jax.random.split(act_key, config.batch))
            _, state, reward, *_ = step(jax.random.split(step_key, config.batch), state,
                                        actions, params)
            return (key, state), reward.sum()

        (key, state), rewards = jax.lax.scan(one_step, (key, state), None, config.num_steps)
        return key, state, rewards.sum()

    key = jax.random.key(0)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, config.batch),
                                                        params)
    # The speed harness's timer: compile apart, warm up, repeats ending in
    # block_until_ready, and a check that nothing recompiles between them.
    timing = time_function(rollout, (key, state), repeats=config.repeats)
    steps = config.batch * config.num_steps
    return {
        "compile_s": timing.compile_s,
        "port_steps_per_s": steps / timing.median_s,
        "port_min_steps_per_s": steps / timing.max_s,
        "port_max_steps_per_s": steps / timing.min_s,
    }


def reference_classes() -> dict[str, type]:
    """popgym's environment classes by name (the names the ports are registered under)."""
    import popgym.envs

    return {cls.__name__: cls for cls in popgym.envs.ALL}


def time_reference(env_id: str, seconds: float) -> float:
    """Steps per second of the reference popgym environment under random actions."""
    env = reference_classes()[env_id]()
    env.reset(seed=0)
    env.action_space.seed(0)
    steps = 0
    start = time.perf_counter()
    while True:
        for _ in range(100):  # check the clock every 100 steps, not every step
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            if terminated or truncated:
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def bench_env(env_id: str, config: EnvBenchConfig, device: str) -> dict:
    """One CSV row: the port's and the reference's steps per second for ``env_id``."""
    row = {"env": env_id, "batch": config.batch, "num_steps": config.num_steps,
           "device": device, **time_port(env_id, config)}
    reference = (time_reference(env_id, config.reference_seconds)
                 if env_id in reference_classes() else float("nan"))
    row["reference_steps_per_s"] = reference
    row["speedup"] = row["port_steps_per_s"] / reference
    return row


def open_bench(env_ids: Sequence[str], config: EnvBenchConfig, out: Path,
               run_id: str | None):
    """A new run folder for ``envs --bench`` with its config.json and meta.json."""
    from benchmark.run_folder import create

    return create(out, run_id, False, {"command": "envs --bench", "envs": list(env_ids),
                                       **dataclasses.asdict(config)})


def bench_envs(folder, env_ids: Sequence[str], config: EnvBenchConfig,
               on_start: Callable[[str], None] = lambda env_id: None
               ) -> Iterator[dict[str, Any]]:
    """Time each environment, appending its row to env_bench.csv as soon as it is measured."""
    from benchmark.results import CsvLog, device_name

    device = device_name()
    with CsvLog(folder.path / ENV_BENCH_CSV, BENCH_COLUMNS) as log:
        for env_id in env_ids:
            on_start(env_id)
            row = bench_env(env_id, config, device)
            log.write(row)
            yield row
