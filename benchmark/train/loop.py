"""Host side of a training run: build, compile (timed), run chunks, report between them.

Everything here is outside ``jit``: it turns a ``RunConfig`` into a compiled, seed-
vmapped ``Trainer`` sharded over the devices (``benchmark/train/sharding.py``), times compilation
apart from running, hands each chunk's metrics (as numpy) to a callback that writes CSV
rows and refreshes the display, and saves checkpoints between chunks
(``benchmark/train/checkpoint.py``) so that a stopped run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from benchmark.config import RunConfig
from benchmark.errors import Stopped
from benchmark.train.checkpoint import CellCheckpoints
from benchmark.train.devices import planned_memory_bytes
from benchmark.train.ppo import RunnerState, Trainer, make_train
from benchmark.train.sharding import (
    MeshShape,
    any_process,
    available_devices,
    choose_mesh,
    gather,
    make_mesh,
    runner_shardings,
)
from envs.wrappers import make_training_env
from models.actor_critic import ActorCritic
from models.heads import ActionSpec


def build_network(config: RunConfig, action_spec: ActionSpec) -> ActorCritic:
    """The agent of ``config`` (backbone, encoder and heads) acting through ``action_spec``."""
    return ActorCritic(backbone=config.backbone.build(), action_spec=action_spec,
                       network=config.network)


def build_trainer(config: RunConfig) -> tuple[Trainer, ActorCritic]:
    """The PPO trainer and network for ``config`` (nothing compiled yet).

    ``config.env.kwargs`` go to the environment's constructor; ``config.env.params``
    replace fields of its default ``EnvParams`` (e.g. MemoryChain's ``memory_length``).
    """
    training_env = make_training_env(
        config.env.env_id, previous_action=config.env.previous_action,
        env_params=dict(config.env.params), joint_action=config.env.joint_action,
        **config.env.kwargs
    )
    network = build_network(config, training_env.action_spec)
    trainer = make_train(config.ppo, network, training_env.env, training_env.params,
                         env_truncates=training_env.truncates)
    return trainer, network


@dataclass
class ChunkReport:
    """What the host sees after each compiled chunk (all numpy, seeds first)."""

    chunk: int  # 0-based chunk index
    first_update: int  # update index of the chunk's first update (0-based)
    episodes: np.ndarray  # [S, K] episodes finished in each update
    mean_return: np.ndarray  # [S, K] mean return of those episodes, NaN where none
    losses: dict[str, np.ndarray]  # name -> [S, K]
    diverged_at: np.ndarray  # [S] update (1-based) at which a seed diverged, 0 if it has not
    wall_s: float  # training seconds (compiled chunks alone) up to the end of this chunk
    start_wall_s: float  # the same clock at the start of this chunk
    env_steps: int  # environment steps per seed done so far


@dataclass
class RunResult:
    runner: RunnerState  # final state, seeds stacked
    compile_s: float
    train_s: float  # seconds of the compiled chunks alone (earlier sessions included)
    host_s: float  # seconds of host work between chunks this session (CSV, display, saves)
    memory_bytes: int | None  # device memory XLA planned for one chunk (all seeds)
    env_steps: int  # per seed
    mean_return: np.ndarray  # [S, num_updates], NaN where no episode ended
    diverged_at: np.ndarray  # [S] update at which each seed diverged, 0 if it did not
    mesh: MeshShape  # how seeds and environments were spread over devices


class TrainingInterrupted(Stopped):
    """A stop was asked for (Ctrl-C, SIGTERM); the state is checkpointed at ``update``."""

    def __init__(self, update: int, num_updates: int, saved: bool):
        super().__init__(f"stopped at update {update} of {num_updates} "
                         f"({'checkpoint saved' if saved else 'nothing new to save'})")
        self.update, self.num_updates, self.saved = update, num_updates, saved


def seed_keys(config: RunConfig) -> jax.Array:
    return jax.vmap(jax.random.key)(np.arange(config.num_seeds) + config.seed)


def compile_trainer(config: RunConfig, trainer: Trainer, devices: int | None = None):
    """Compile ``init`` and ``run_chunk`` for all seeds, sharded over the devices.

    Returns:
      ``(init, run_chunk, keys, mesh_shape)``: compiled functions and the seed keys, placed
      on the mesh (seed axis over ``seed_shards`` devices, environments over the rest).
    """
    shape = choose_mesh(config.num_seeds, config.ppo.num_envs, available_devices(devices))
    mesh = make_mesh(shape)
    by_seed = NamedSharding(mesh, P("seed"))
    # Made under jit with its output sharding, so that on several processes each makes its
    # own devices' keys (device_put cannot place an array on another process's devices).
    keys = jax.jit(lambda: seed_keys(config), out_shardings=by_seed)()
    init_all = jax.vmap(trainer.init)
    runner_shapes = jax.eval_shape(init_all, keys)
    shardings = runner_shardings(runner_shapes, mesh, config.ppo.num_envs)
    init = jax.jit(init_all, out_shardings=shardings).lower(keys).compile()
    run_chunk = jax.jit(
        jax.vmap(trainer.run_chunk), in_shardings=(shardings,),
        out_shardings=(shardings, by_seed),
    ).lower(runner_shapes).compile()
    return init, run_chunk, keys, shape


def run_training(
    config: RunConfig,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    *,
    checkpoints: CellCheckpoints | None = None,
    resume_from: int | None = None,
    devices: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_compiled: Callable[[MeshShape, float], None] | None = None,
    on_saved: Callable[[int], None] | None = None,
) -> RunResult:
    """Train ``config.num_seeds`` seeds at once and report after every chunk.

    Compile time is measured apart (``lower().compile()``) and excluded from ``train_s``,
    which counts the compiled chunks alone; host work between them (``on_chunk``,
    checkpoints) is ``host_s``.
    With ``checkpoints``, the state is saved when ``checkpoints.due()`` and after the
    last chunk, and ``resume_from`` (a step ``checkpoints.latest_valid`` approved)
    continues from that step: the same compiled
    program on the same state, so on one backend it gives the numbers an uninterrupted run
    gives. When ``should_stop()`` turns true the state is saved after the chunk in flight
    and ``TrainingInterrupted`` is raised.
    """
    trainer, _ = build_trainer(config)
    start = time.perf_counter()
    init, run_chunk, keys, shape = compile_trainer(config, trainer, devices)
    runner = init(keys)
    compile_s = time.perf_counter() - start
    memory_bytes = planned_memory_bytes(run_chunk)
    if on_compiled is not None:
        on_compiled(shape, compile_s)

    done, train_s_before, returns = 0, 0.0, []
    if resume_from is not None:
        checkpoints.discard_after(resume_from)
        restored = checkpoints.restore(resume_from, like=runner)
        runner, done, train_s_before = restored.runner, restored.update, restored.train_s
        returns.append(restored.mean_return)
    if done % trainer.chunk_size:
        raise ValueError(f"checkpoint at update {done} is not at a chunk boundary "
                         f"({trainer.chunk_size} updates per chunk)")
    num_updates = trainer.num_chunks * trainer.chunk_size
    steps_per_chunk = trainer.chunk_size * config.ppo.steps_per_update

    def history() -> np.ndarray:
        return np.concatenate(returns, axis=1) if returns else np.zeros((config.num_seeds, 0))

    (stop_asked,) = any_process(should_stop())
    if stop_asked and done < num_updates:
        raise TrainingInterrupted(done, num_updates, saved=done > 0)
    # Training time counts the compiled chunks alone (each ends when its metrics reach the
    # host); CSV rows, the progress display and checkpoints are host work, timed apart.
    train_s, host_s = train_s_before, 0.0
    for chunk in range(done // trainer.chunk_size, trainer.num_chunks):
        chunk_start_s = train_s
        started = time.perf_counter()
        runner, metrics = run_chunk(runner)
        metrics, diverged_at = gather((metrics, runner.diverged_at))
        train_s += time.perf_counter() - started
        chunk_end_s = train_s
        host_started = time.perf_counter()
        episodes = np.asarray(metrics.pop("episodes"))
        return_sum = np.asarray(metrics.pop("return_sum"))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_return = np.where(episodes > 0, return_sum / np.maximum(episodes, 1), np.nan)
        returns.append(mean_return)
        if on_chunk is not None:
            on_chunk(ChunkReport(
                chunk=chunk,
                first_update=chunk * trainer.chunk_size,
                episodes=episodes,
                mean_return=mean_return,
                losses={k: np.asarray(v) for k, v in metrics.items()},
                diverged_at=np.asarray(diverged_at),
                wall_s=chunk_end_s,
                start_wall_s=chunk_start_s,
                env_steps=(chunk + 1) * steps_per_chunk,
            ))
        # Rows first, then the checkpoint: a kill in between leaves rows past the last
        # checkpoint, which a resume drops (experiments.resume.prepare_resume), never a gap.
        # Every process must take the same decision (saving is collective): a stop asked of
        # any process, or a save due on any, applies to all of them.
        last = chunk == trainer.num_chunks - 1
        stop_asked, due = any_process(should_stop(),
                                      checkpoints is not None and checkpoints.due())
        stopping = stop_asked and not last
        saved = checkpoints is not None and (last or stopping or due)
        if saved:
            checkpoints.save(runner, (chunk + 1) * trainer.chunk_size, chunk_end_s, history())
            if on_saved is not None:
                on_saved((chunk + 1) * trainer.chunk_size)
        host_s += time.perf_counter() - host_started
        if stopping:
            raise TrainingInterrupted((chunk + 1) * trainer.chunk_size, num_updates, saved)
    jax.block_until_ready(runner)
    return RunResult(
        runner=runner,
        compile_s=compile_s,
        train_s=train_s,
        host_s=host_s,
        memory_bytes=memory_bytes,
        env_steps=trainer.num_chunks * steps_per_chunk,
        mean_return=history(),
        diverged_at=np.asarray(gather(runner.diverged_at)),
        mesh=shape,
    )
