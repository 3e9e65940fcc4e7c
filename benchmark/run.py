"""Host side of a training run: build, compile (timed), run chunks, report between them.

Everything here is outside ``jit``: it turns a ``RunConfig`` into a compiled, seed-
vmapped ``Trainer``, times compilation apart from running, and hands each chunk's
metrics (as numpy) to a callback that writes CSV rows and refreshes the display.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np

from benchmark.config import RunConfig
from benchmark.ppo import RunnerState, Trainer, make_train
from envs.registry import ENVS, resolve
from envs.wrappers import action_spec, make_training_env
from models.actor_critic import ActorCritic


def build_network(config: RunConfig, env, env_params) -> ActorCritic:
    spec = action_spec(env.action_space(env_params))
    return ActorCritic(
        backbone=config.backbone.build(), action_spec=spec, hidden_size=config.head_size
    )


def build_trainer(config: RunConfig, env_kwargs: dict | None = None,
                  env_params: dict | None = None) -> tuple[Trainer, ActorCritic]:
    """The PPO trainer and network for ``config`` (nothing compiled yet).

    ``env_kwargs`` go to the environment's constructor; ``env_params`` replace fields of
    its default ``EnvParams`` (e.g. MemoryChain's ``memory_length``).
    """
    env, env_params = make_training_env(
        config.env.env_id, previous_action=config.env.previous_action,
        env_params=env_params, **(env_kwargs or {})
    )
    network = build_network(config, env, env_params)
    truncates = ENVS[resolve(config.env.env_id)].truncates
    trainer = make_train(config.ppo, network, env, env_params, bootstrap_truncated=truncates)
    return trainer, network


@dataclass
class ChunkReport:
    """What the host sees after each compiled chunk (all numpy, seeds first)."""

    chunk: int  # 0-based chunk index
    first_update: int  # update index of the chunk's first update (0-based)
    episodes: np.ndarray  # [S, K] episodes finished in each update
    mean_return: np.ndarray  # [S, K] mean return of those episodes, NaN where none
    losses: dict[str, np.ndarray]  # name -> [S, K]
    wall_s: float  # seconds since training started, at the end of this chunk (compile excluded)
    start_wall_s: float  # the same clock at the start of this chunk
    env_steps: int  # environment steps per seed done so far


@dataclass
class RunResult:
    runner: RunnerState  # final state, seeds stacked
    compile_s: float
    train_s: float  # wall seconds of the chunks (compile excluded)
    env_steps: int  # per seed
    mean_return: np.ndarray  # [S, num_updates], NaN where no episode ended


def seed_keys(config: RunConfig) -> jax.Array:
    return jax.vmap(jax.random.key)(np.arange(config.num_seeds) + config.seed)


def run_training(
    config: RunConfig,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    env_kwargs: dict | None = None,
    env_params: dict | None = None,
) -> RunResult:
    """Train ``config.num_seeds`` seeds at once and report after every chunk.

    Compile time is measured apart (``lower().compile()``) and excluded from ``train_s``.
    """
    trainer, _ = build_trainer(config, env_kwargs, env_params)
    keys = seed_keys(config)
    start = time.perf_counter()
    init = jax.jit(jax.vmap(trainer.init)).lower(keys).compile()
    runner = init(keys)
    run_chunk = jax.jit(jax.vmap(trainer.run_chunk)).lower(runner).compile()
    compile_s = time.perf_counter() - start

    steps_per_chunk = trainer.chunk_size * config.ppo.steps_per_update
    returns = []
    start = time.perf_counter()
    chunk_start_s = 0.0
    for chunk in range(trainer.num_chunks):
        runner, metrics = run_chunk(runner)
        metrics = jax.device_get(metrics)
        episodes = np.asarray(metrics.pop("episodes"))
        return_sum = np.asarray(metrics.pop("return_sum"))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_return = np.where(episodes > 0, return_sum / np.maximum(episodes, 1), np.nan)
        returns.append(mean_return)
        chunk_end_s = time.perf_counter() - start
        if on_chunk is not None:
            on_chunk(ChunkReport(
                chunk=chunk,
                first_update=chunk * trainer.chunk_size,
                episodes=episodes,
                mean_return=mean_return,
                losses={k: np.asarray(v) for k, v in metrics.items()},
                wall_s=chunk_end_s,
                start_wall_s=chunk_start_s,
                env_steps=(chunk + 1) * steps_per_chunk,
            ))
        chunk_start_s = chunk_end_s
    jax.block_until_ready(runner)
    train_s = time.perf_counter() - start
    return RunResult(
        runner=runner,
        compile_s=compile_s,
        train_s=train_s,
        env_steps=trainer.num_chunks * steps_per_chunk,
        mean_return=np.concatenate(returns, axis=1),
    )
