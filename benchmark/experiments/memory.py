"""The memory-length experiment: bsuite's MemoryChain swept over memory lengths.

Lu et al. (2023, §5.1) train an actor-critic on bsuite's memory-length task (Osband et
al., "Behaviour Suite for Reinforcement Learning", 2020) with the LSTM swapped for
attention or S5, and plot return and training time against memory length. The task is a
T-maze: a cue (+1 or -1) is shown, the agent walks on (the observation shows only the time
left) and at the last step must take the action the cue named: reward +1 if right, -1 if
wrong, 0 on every other step. An episode is ``L + 1`` steps (actions 0..L, the decision at
step L); a policy without memory scores 0 on average, one that remembers scores 1.

Exactly what is measured: gymnax's port returns, from each step, the observation of the
state *before* it, so the cue is in the first two observations (steps 0 and 1) and the
decision at step ``L`` must recall it from ``L - 1`` steps back. A backbone with a finite
window (Transformer-XL, the attention cache) is widened to the whole episode, ``L + 1``
steps (``memory_config``), so no length is out of its reach by construction.

The environment is gymnax's ``MemoryChain-bsuite`` (a port of bsuite's ``memory_chain``),
with ``memory_length`` set through its ``EnvParams``. Each (model, memory length) is one
``Cell``: one compiled program, all seeds vmapped, trained by the one PPO loop
(``benchmark.experiments.cells.run_cells``). Everything here is host-side configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from benchmark.config import ConfigError, RunConfig, build_run_config
from benchmark.experiments.types import Cell, Experiment, Plan
from benchmark.options import MemoryOptions, parse_lengths
from benchmark.schema import MEMORY_LABELS
from benchmark.selection import validated_models

ENV_ID = "MemoryChain-bsuite"
# A cell-seed succeeds when its best mean return (best window of 10% of the updates,
# see ``cells.summarize_returns``) reaches this: at least 90% of cues recalled,
# since return = 2 * (fraction correct) - 1. Chance (no memory) is 0.
SUCCESS_RETURN = 0.8


def episode_steps(memory_length: int) -> int:
    """Steps in one MemoryChain episode: the cue step, then ``memory_length`` more."""
    return memory_length + 1


def rollout_length(memory_length: int, preset_num_steps: int) -> int:
    """``ppo.num_steps`` for a memory length: the preset's, or more to cover one episode.

    The smallest power of two that is at least ``memory_length + 1`` (an episode), if that
    is longer than the preset's rollout; so a whole episode fits in one training sequence
    and the gradient can reach the cue from the decision.
    """
    needed = 1 << (episode_steps(memory_length) - 1).bit_length()
    return max(preset_num_steps, needed)


def env_params(memory_length: int) -> dict[str, int]:
    """MemoryChain ``EnvParams`` fields for ``memory_length``.

    gymnax's default time limit (1000 steps) would truncate episodes of memory length
    999 and more before the decision step; the limit is set one step past the episode, so
    episodes always end by termination.
    """
    return {"memory_length": memory_length,
            "max_steps_in_episode": episode_steps(memory_length) + 1}


def memory_config(base: RunConfig, memory_length: int) -> RunConfig:
    """Adapt a preset to one memory length (before any ``--set`` overrides).

    - ``ppo.num_steps`` = ``rollout_length(memory_length, preset num_steps)``;
    - ``ppo.num_envs`` shrinks by the same factor, so an update still has the preset's
      environment steps and the number of updates stays the same across memory lengths;
      when fewer environments than ``ppo.num_minibatches`` remain, the minibatches drop
      to one environment each (minibatches split environments, never time). Only a
      rollout longer than the preset's whole update (one environment left) makes an
      update larger than the preset's: at ``quick``, from memory length 4096 on;
    - ``env.previous_action`` is off: with two actions and a one-bit cue, a feed-forward
      policy could carry the cue in its own previous action (repeat the cued action every
      step), which would defeat the point of the task;
    - a backbone with a finite window (``with_reach``: Transformer-XL's per-layer memory,
      the attention backbone's cache) reaches back over the whole episode;
    - ``env.params`` set the memory length and the time limit (``env_params``).
    """
    ppo = base.ppo
    num_steps = rollout_length(memory_length, ppo.num_steps)
    num_envs = max(1, ppo.num_envs * ppo.num_steps // num_steps)
    num_minibatches = min(ppo.num_minibatches, num_envs)
    num_envs -= num_envs % num_minibatches
    total = max(ppo.total_timesteps, num_envs * num_steps)
    with_reach = getattr(base.backbone, "with_reach", None)
    return dataclasses.replace(
        base,
        backbone=with_reach(episode_steps(memory_length)) if with_reach else base.backbone,
        ppo=dataclasses.replace(ppo, num_steps=num_steps, num_envs=num_envs,
                                num_minibatches=num_minibatches, total_timesteps=total),
        env=dataclasses.replace(base.env, env_id=ENV_ID, previous_action=False,
                                params=env_params(memory_length)),
    )


def validate_lengths(lengths: Sequence[int]) -> list[int]:
    """Distinct memory lengths in the given order; a ConfigError if any is below 1."""
    if not lengths:
        raise ConfigError("memory_lengths", "no memory length given")
    for length in lengths:
        if length < 1:
            raise ConfigError("memory_lengths", f"must be at least 1, got {length}")
    return list(dict.fromkeys(lengths))


def build_cells(models: Sequence[str], lengths: Sequence[int], preset: str, seeds: int,
                seed: int = 0, total_steps: int | None = None,
                assignments: Sequence[str] = ()) -> list[Cell]:
    """One ``Cell`` per (model, memory length); a ValueError names any bad setting.

    Built by ``config.build_run_config`` with ``memory_config`` as the experiment's
    adaptation (so ``--set`` overrides come after it). An override that leaves the
    rollout shorter than an episode is an error.
    """
    cells = []
    for model in models:
        for length in validate_lengths(lengths):
            config = build_run_config(
                preset, model, ENV_ID, num_seeds=seeds, seed=seed,
                adapt=lambda base, length=length: memory_config(base, length),
                assignments=assignments, total_timesteps=total_steps)
            if config.ppo.num_steps < episode_steps(length):
                raise ConfigError(
                    "ppo.num_steps", f"{config.ppo.num_steps} does not cover an episode of "
                    f"memory length {length} ({episode_steps(length)} steps)")
            cells.append(make_cell(config))
    return cells


def make_cell(config: RunConfig) -> Cell:
    """A memory run's cell: its labels come from its config."""
    return Cell({"model": config.model, "memory_length": config.env.params["memory_length"]},
                config)


def success(row: dict[str, Any]) -> bool | None:
    """The summary's ``success`` column: best return >= SUCCESS_RETURN (None if unknown)."""
    best = row.get("best_return")
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return None
    return bool(best >= SUCCESS_RETURN)


EXTRA_SUMMARY = {"success": success}


def plan(options: MemoryOptions) -> Plan:
    """Every (model, memory length) cell of ``s5bench memory``'s options."""
    names = validated_models(options.model)
    try:
        parsed = parse_lengths(options.lengths)
    except ValueError as error:
        raise ConfigError("memory_lengths", str(error)) from None
    lengths = validate_lengths(parsed)
    cells = build_cells(names, lengths, options.preset, options.seeds, options.seed,
                        options.total_steps, options.overrides)
    return Plan(cells, settings={"env_id": ENV_ID, "success_return": SUCCESS_RETURN,
                                 "models": names, "memory_lengths": lengths})


EXPERIMENT = Experiment(name="memory", labels=MEMORY_LABELS, plan=plan,
                        make_cell=make_cell, summary_title="memory: mean over seeds",
                        extra_summary=EXTRA_SUMMARY)
