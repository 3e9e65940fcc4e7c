"""The meta-RL experiment: in-context learning over randomly projected environments.

Lu et al. (2023, §5.3) train one agent on a suite of control tasks, each seen through a
random linear projection of its observations and actions (``envs/meta.py``), for several
trials per meta-episode; a memory backbone learns to identify the task in context, so its
return rises from trial to trial, on the training tasks and on held-out ones.

``s5bench meta`` trains each backbone with the one PPO loop on the training suite's
``MetaEnv`` (one ``Cell`` per model, seeds vmapped; rollouts are carried across updates
like any other run, and the quick preset's 128-step rollout spans one 4 x 32-step
meta-episode), then evaluates the trained parameters with no gradient step: for every base
environment of the training suite and of the held-out suite on its own, ``eval_episodes``
meta-episodes with fresh projections (keys never used in training), actions sampled from
the policy, the carry reset only at the meta-episode start. ``trials.csv`` gets the mean
(scaled) return of each trial index: the in-context learning curve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console

from benchmark.config import (
    PRESETS,
    EnvConfig,
    RunConfig,
    check_run_size,
    make_preset,
    override,
    with_total_timesteps,
)
from benchmark.results import CsvLog, read_rows
from benchmark.schema import META_LABELS, TRIAL_COLUMNS
from benchmark.sweep import Cell, Session, run_cells
from benchmark.training import RunResult, build_network

LABEL_COLUMNS = META_LABELS

# Per preset: trials per meta-episode and the cap on a trial's steps. quick keeps a
# meta-episode (4 x 32 steps) equal to the quick rollout (128 steps); paper uses the
# paper's code's 16 trials of up to 200 steps (meta-episodes then span several rollouts).
PRESET_SETTINGS = {
    "quick": {"num_trials": 4, "trial_length": 32, "eval_trials": 0},
    # The paper's code evaluates past its training horizon: 16 trials trained, 32 evaluated.
    "paper": {"num_trials": 16, "trial_length": 200, "eval_trials": 32},
}


@dataclass(frozen=True, kw_only=True)
class MetaSettings:
    """What the meta experiment trains on and how it evaluates; saved in config.json."""

    suite: str = "MetaControl"  # training suite (envs.meta.SUITES)
    held_out: str | None = "MetaControlHeldOut"  # evaluation-only suite, or None
    num_trials: int = 4  # K: trials per meta-episode
    trial_length: int = 32  # cap on one trial's steps (0: each base env's own limit)
    obs_size: int = 16  # projected observation size
    action_size: int = 4  # agent action vector size
    include_action: bool = True  # previous action in the meta observation (off: bandit probe)
    eval_episodes: int = 64  # evaluation meta-episodes per (seed, base environment)
    eval_trials: int = 0  # trials per evaluation meta-episode (0: num_trials)
    # every trial restarts from the meta-episode's first start state (the paper's CartPole)
    same_start: bool = False
    eval_seed: int = 1_000_003  # evaluation keys: key(eval_seed + seed), folded per env

    def __post_init__(self):
        from envs.meta import SUITES

        for name, value in (("suite", self.suite), ("held_out", self.held_out)):
            if value is not None and value not in SUITES:
                flag = "--suite" if name == "suite" else "--held-out"
                raise ValueError(f"{flag}: unknown meta suite {value!r}; valid suites: "
                                 f"{', '.join(SUITES)}")
        if self.held_out is not None:
            shared = set(SUITES[self.suite]) & set(SUITES[self.held_out])
            if shared:
                raise ValueError(f"--held-out {self.held_out} overlaps the training suite "
                                 f"{self.suite}: {', '.join(sorted(shared))}")
        for name in ("num_trials", "obs_size", "action_size", "eval_episodes"):
            if getattr(self, name) <= 0:
                flag = "--trials" if name == "num_trials" else name
                raise ValueError(f"{flag} must be a positive integer, got "
                                 f"{getattr(self, name)}")
        if self.trial_length < 0:
            raise ValueError(f"--trial-length must be >= 0, got {self.trial_length}")
        if self.eval_trials < 0:
            raise ValueError(f"--eval-trials must be >= 0, got {self.eval_trials}")

    @property
    def evaluated_trials(self) -> int:
        """Trials per evaluation meta-episode."""
        return self.eval_trials or self.num_trials

    @property
    def env_kwargs(self) -> dict[str, int]:
        """``MetaEnv`` constructor arguments (besides the suite)."""
        return {"num_trials": self.num_trials, "trial_length": self.trial_length,
                "obs_size": self.obs_size, "action_size": self.action_size,
                "include_action": self.include_action, "same_start": self.same_start}

    def splits(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(split, suite, base env ids)`` evaluated: ``train`` then ``held-out``."""
        from envs.meta import SUITES

        out = [("train", self.suite, SUITES[self.suite])]
        if self.held_out is not None:
            out.append(("held-out", self.held_out, SUITES[self.held_out]))
        return out


def make_settings(preset: str, suite: str = "MetaControl", held_out: str | None = "default",
                  num_trials: int | None = None, trial_length: int | None = None,
                  eval_trials: int | None = None, **kwargs) -> MetaSettings:
    """Settings for ``preset``; ``held_out="default"`` picks the suite's default held-out,
    and trials restart from one start state in the suites that do so (the paper's CartPole).
    """
    from envs.meta import DEFAULT_HELD_OUT, SAME_START_SUITES

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    base = PRESET_SETTINGS[preset]
    if held_out == "default":
        held_out = DEFAULT_HELD_OUT.get(suite)
    elif held_out is not None and held_out.lower() == "none":
        held_out = None
    return MetaSettings(
        suite=suite,
        held_out=held_out,
        num_trials=base["num_trials"] if num_trials is None else num_trials,
        trial_length=base["trial_length"] if trial_length is None else trial_length,
        eval_trials=base["eval_trials"] if eval_trials is None else eval_trials,
        same_start=suite in SAME_START_SUITES,
        **kwargs,
    )


def build_cells(models: Sequence[str], settings: MetaSettings, preset: str, seeds: int,
                seed: int, total_steps: int | None, assignments: Sequence[str]) -> list[Cell]:
    """One validated cell per model on the training suite; raises ValueError on bad input.

    The previous-action wrapper is off: the meta observation already carries the previous
    action (and reward and trial-start flag).
    """
    check_run_size(seeds, total_steps)
    cells = []
    for model in models:
        config = make_preset(preset, model, settings.suite, num_seeds=seeds)
        config = dataclasses.replace(
            config, seed=seed, env=EnvConfig(env_id=settings.suite, previous_action=False))
        config = override(config, list(assignments))
        if total_steps is not None:
            config = with_total_timesteps(config, total_steps)
        cells.append(Cell({"model": model, "suite": settings.suite}, config,
                          env_kwargs=settings.env_kwargs))
    return cells


# ----------------------------------------------------------------------------- evaluation


def evaluate(config: RunConfig, params: Any, settings: MetaSettings, base_id: str,
             key: jax.Array) -> np.ndarray:
    """Mean return of each trial over fresh meta-episodes of one base env, no gradients.

    Args:
      config: the trained run's config (its backbone and head sizes build the network).
      params: network parameters with a leading seed axis ``[S, ...]``.
      settings: the meta settings the run trained with (the same projection sizes).
      base_id: the base environment evaluated alone (a one-member suite).
      key: evaluation key; seed s uses ``fold_in(key, s)``.

    Returns:
      ``[S, K]`` float (K = ``settings.evaluated_trials``): mean scaled return of trial k
      over ``settings.eval_episodes`` meta-episodes, actions sampled from the policy.
    """
    from envs.meta import MetaEnv

    env = MetaEnv((base_id,), **{**settings.env_kwargs,
                                 "num_trials": settings.evaluated_trials})
    env_params = env.default_params
    network = build_network(config, env, env_params)
    num_episodes, num_trials = settings.eval_episodes, settings.evaluated_trials
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def one_seed(seed_params, seed_key):
        reset_key, key = jax.random.split(seed_key)
        obs, state = reset(jax.random.split(reset_key, num_episodes), env_params)
        carry = network.initialize_carry(num_episodes)

        def body(loop, _):
            obs, state, carry, first, active, returns, key = loop
            key, act_key, step_key = jax.random.split(key, 3)
            carry, pi, _ = network.apply(seed_params, carry, obs[None], first[None])
            action = jnp.clip(pi.sample(act_key)[0], -1.0, 1.0)
            obs, state, reward, terminated, _, info = step(
                jax.random.split(step_key, num_episodes), state, action, env_params)
            paid = active[:, None] * jax.nn.one_hot(info["trial"], num_trials)
            returns = returns + paid * reward[:, None]
            active = active & ~terminated
            first = jnp.zeros_like(first)
            return (obs, state, carry, first, active, returns, key), None

        loop = (obs, state, carry, jnp.ones(num_episodes, bool), jnp.ones(num_episodes, bool),
                jnp.zeros((num_episodes, num_trials)), key)
        loop, _ = jax.lax.scan(body, loop, None, env.max_meta_steps)
        return loop[5].mean(axis=0)

    num_seeds = jax.tree.leaves(params)[0].shape[0]
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(num_seeds))
    return np.asarray(jax.jit(jax.vmap(one_seed))(params, keys))


def trial_rows(config: RunConfig, params: Any, settings: MetaSettings, model: str):
    """Yield ``trials.csv`` rows: every split, base env, seed and trial of one model."""
    for split, suite, base_ids in settings.splits():
        for index, base_id in enumerate(base_ids):
            key = jax.random.fold_in(jax.random.key(settings.eval_seed + config.seed),
                                     index + (0 if split == "train" else 1000))
            returns = evaluate(config, params, settings, base_id, key)
            for seed in range(returns.shape[0]):
                for trial in range(returns.shape[1]):
                    yield {"model": model, "seed": seed, "split": split, "suite": suite,
                           "env": base_id, "trial": trial + 1,
                           "mean_return": float(returns[seed, trial]),
                           "meta_episodes": settings.eval_episodes}


# ----------------------------------------------------------------------------- the sweep


def run_meta(cells: Sequence[Cell], settings: MetaSettings, run_dir: Path,
             console: Console | None = None, session: Session | None = None,
             ) -> tuple[list[dict], list[dict]]:
    """Train each cell, then evaluate it; append curves/summary/trials CSVs as they come.

    Training is ``sweep.run_cells`` (checkpoints, resume, divergence as for every
    command); each trained cell is evaluated before its summary rows are written, so a
    cell with summary rows has its trial rows too.

    Returns:
      ``(summary rows, trial rows)``. A cell that fails becomes ``error`` summary rows
      (and no trial rows); the sweep goes on. On a resume, the trial rows of cells
      finished earlier are read back from trials.csv.
    """
    console = console or Console()
    trials: list[dict] = []
    with CsvLog(run_dir / "trials.csv", TRIAL_COLUMNS) as trials_log:

        def evaluate_cell(cell: Cell, result: RunResult) -> None:
            rows = list(trial_rows(cell.config, result.runner.params, settings,
                                   cell.labels["model"]))
            trials_log.write_many(rows)
            trials.extend(rows)

        summaries = run_cells(cells, run_dir, LABEL_COLUMNS, console, session=session,
                              after_cell=evaluate_cell)
    if session is not None and session.resume is not None and session.resume.done:
        trials = read_rows(run_dir / "trials.csv")
    return summaries, trials


def trial_table_rows(trials: Sequence[dict]) -> list[tuple[str, str, int, float, float]]:
    """``(model, split, K, return at trial 1, return at trial K)``, mean over envs and seeds."""
    groups: dict[tuple[str, str], dict[int, list[float]]] = {}
    for row in trials:
        groups.setdefault((row["model"], row["split"]), {}).setdefault(
            int(row["trial"]), []).append(float(row["mean_return"]))
    out = []
    for (model, split), by_trial in groups.items():
        last = max(by_trial)
        out.append((model, split, last, float(np.mean(by_trial[1])),
                    float(np.mean(by_trial[last]))))
    return out
