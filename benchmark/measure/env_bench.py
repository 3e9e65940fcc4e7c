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
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jax
from rich.table import Table

from benchmark.compat import env_bench_options
from benchmark.errors import ConfigError, Stopped
from benchmark.measure.timing import time_function
from benchmark.options import EnvBenchOptions, FolderOptions
from benchmark.results import CsvLog, device_name, filter_rows, read_rows, write_json
from benchmark.run_folder import RunFolder, create, reopen, resolve_options
from benchmark.schema import BENCH_COLUMNS, ENV_BENCH_CSV
from benchmark.selection import validated_envs
from envs import make

COMMAND = "envs --bench"  # what config.json names the command


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
    import popgym.envs  # the reference package (and gymnasium): imported only to be timed

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


@dataclass(frozen=True)
class BenchJob:
    """One validated ``envs --bench`` run: what it times and where; nothing written yet."""

    options: EnvBenchOptions  # a resume's own
    env_ids: tuple[str, ...]
    config: EnvBenchConfig
    folder: FolderOptions


def prepare(options: EnvBenchOptions, folder: FolderOptions, typed: Collection[str] = ()
            ) -> BenchJob:
    """The environments and settings to time; with ``folder.resume`` the run's own, and
    environments given beside it add to them. Raises ValueError (``ConfigError``,
    ``RunFolderError``) on bad input, before anything is compiled."""
    options = resolve_options(COMMAND, folder.resume, options, typed, extendable=("env",),
                              legacy=env_bench_options)
    config = EnvBenchConfig(batch=options.batch, num_steps=options.steps,
                            repeats=options.repeats)
    return BenchJob(options, tuple(validated_envs(options.env)), config, folder)


def open_bench(job: BenchJob) -> RunFolder:
    """The run folder, created or (resume) reopened, with config.json and meta.json."""
    doc = {"command": COMMAND, "options": dataclasses.asdict(job.options),
           "envs": list(job.env_ids), **dataclasses.asdict(job.config)}
    if job.folder.resume is None:
        return create(job.folder.out_for("envs"), job.folder.run_id, job.folder.force, doc)
    folder = reopen(job.folder.resume)
    write_json(folder.path / "config.json", doc)  # the environments may have grown
    return folder


def bench_envs(folder: RunFolder, job: BenchJob,
               on_start: Callable[[str], None] = lambda env_id: None,
               should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Time each environment not yet in env_bench.csv, appending its row as soon as it is
    measured; yields every row, those already there first. Stops before the next
    environment once ``should_stop()`` is true (``errors.Stopped``)."""
    path = folder.path / ENV_BENCH_CSV
    filter_rows(path, lambda row: True)  # drops a line a kill cut off mid-write
    existing = read_rows(path)
    yield from existing
    todo = [env_id for env_id in job.env_ids
            if env_id not in {row["env"] for row in existing}]
    device = device_name()
    with CsvLog(path, BENCH_COLUMNS) as log:
        for index, env_id in enumerate(todo):
            if should_stop():
                raise Stopped(f"stopped after {index} of {len(todo)} environments")
            on_start(env_id)
            row = bench_env(env_id, job.config, device)
            log.write(row)
            yield row


def bench_table(rows: Iterable[Mapping[str, Any]], device_kind: str, batch: int) -> Table:
    """env_bench.csv's rows as the command prints them."""
    table = Table(title=f"environment steps/s on {device_kind} (port: batch {batch})")
    for name in ("env", "port steps/s", "reference steps/s", "speedup", "compile s"):
        table.add_column(name, justify="left" if name == "env" else "right")

    def number(value, suffix: str = "") -> str:  # a resumed run's rows read NaN as None
        return "nan" if value is None else f"{value:,.0f}{suffix}"

    for row in rows:
        table.add_row(row["env"], number(row["port_steps_per_s"]),
                      number(row["reference_steps_per_s"]), number(row["speedup"], "x"),
                      f"{row['compile_s']:.1f}")
    return table
