"""The meta-RL experiment: in-context learning over randomly projected environments.

Lu et al. (2023, §5.3) train one agent on a suite of control tasks, each seen through a
random linear projection of its observations and actions (``envs/meta_rl.py``), for several
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
from rich.table import Table

from benchmark.config import (
    PRESETS,
    ConfigError,
    EnvConfig,
    RunConfig,
    build_run_config,
)
from benchmark.experiments.types import Cell, Experiment, Plan
from benchmark.options import MetaOptions
from benchmark.results import CsvLog, read_rows
from benchmark.schema import META_LABELS, TRIAL_COLUMNS, TRIALS_CSV
from benchmark.selection import validated_models
from benchmark.train.loop import RunResult, build_network
from envs.meta_rl import (
    DEFAULT_HELD_OUT,
    SAME_START_SUITES,
    STANDALONE_SUITES,
    suite_env_kwargs,
    suite_members,
    suite_names,
)
from envs.wrappers import make_training_env

# Per preset: the training suite, trials per meta-episode and the cap on a trial's steps.
# quick keeps a meta-episode (4 x 32 steps) equal to the quick rollout (128 steps); paper
# runs the paper's meta-CartPole (popjaxrl's NoisyStatelessMetaCartPole) with its 16 trials
# of up to 200 steps (meta-episodes then span several rollouts).
PRESET_SETTINGS = {
    "quick": {"suite": "MetaControl", "num_trials": 4, "trial_length": 32, "eval_trials": 0},
    # The paper's code evaluates past its training horizon: 16 trials trained, 32 evaluated.
    "paper": {"suite": "MetaCartPole", "num_trials": 16, "trial_length": 200,
              "eval_trials": 32},
}


@dataclass(frozen=True, kw_only=True)
class MetaSettings:
    """What the meta experiment trains on and how it evaluates; saved in config.json."""

    suite: str = "MetaControl"  # training suite (envs.meta_rl.suite_names())
    held_out: str | None = "MetaControlHeldOut"  # evaluation-only suite, or None
    num_trials: int = 4  # K: trials per meta-episode
    trial_length: int = 32  # cap on one trial's steps (0: each base env's own limit)
    obs_size: int = 16  # projected observation size (MetaCartPole: the paper's 4)
    action_size: int = 4  # agent action vector size (MetaEnv suites; MetaCartPole: Discrete(2))
    include_action: bool = True  # previous action in the meta observation (off: bandit probe)
    eval_episodes: int = 64  # evaluation meta-episodes per (seed, base environment)
    eval_trials: int = 0  # trials per evaluation meta-episode (0: num_trials)
    # every trial restarts from the meta-episode's first start state (the paper's CartPole)
    same_start: bool = False
    eval_seed: int = 1_000_003  # evaluation keys: key(eval_seed + seed), folded per env

    def __post_init__(self):
        for name, value in (("suite", self.suite), ("held_out", self.held_out)):
            if value is not None and value not in suite_names():
                raise ConfigError(name, f"unknown meta suite {value!r}; valid suites: "
                                  f"{', '.join(suite_names())}")
        standalone = {self.suite, self.held_out} & set(STANDALONE_SUITES)
        if self.held_out is not None and standalone:
            raise ConfigError("held_out", f"{', '.join(sorted(standalone))} has no held-out "
                              f"suite (no other suite shares its observation and action "
                              f"spaces); use none")
        if self.held_out is not None:
            shared = set(suite_members(self.suite)) & set(suite_members(self.held_out))
            if shared:
                raise ConfigError("held_out", f"{self.held_out} overlaps the training suite "
                                  f"{self.suite}: {', '.join(sorted(shared))}")
        for name in ("num_trials", "obs_size", "action_size", "eval_episodes"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be a positive integer, got "
                                  f"{getattr(self, name)}")
        for name in ("trial_length", "eval_trials"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")

    @property
    def evaluated_trials(self) -> int:
        """Trials per evaluation meta-episode."""
        return self.eval_trials or self.num_trials

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The suite environment's constructor arguments (``envs.meta_rl.suite_env_kwargs``)."""
        return suite_env_kwargs(self.suite, num_trials=self.num_trials,
                                trial_length=self.trial_length, obs_size=self.obs_size,
                                action_size=self.action_size,
                                include_action=self.include_action,
                                same_start=self.same_start)

    def env_config(self) -> EnvConfig:
        """The training environment: the suite's ``MetaEnv``. The previous-action wrapper
        is off: the meta observation already carries the previous action (and reward and
        trial-start flag)."""
        return EnvConfig(env_id=self.suite, previous_action=False, kwargs=self.env_kwargs)

    def splits(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(split, suite, base env ids)`` evaluated: ``train`` then ``held-out``."""
        out = [("train", self.suite, suite_members(self.suite))]
        if self.held_out is not None:
            out.append(("held-out", self.held_out, suite_members(self.held_out)))
        return out


def make_settings(preset: str, suite: str | None = None, held_out: str | None = "default",
                  num_trials: int | None = None, trial_length: int | None = None,
                  eval_trials: int | None = None, **kwargs) -> MetaSettings:
    """Settings for ``preset``; ``suite=None`` picks the preset's suite (quick MetaControl,
    paper MetaCartPole), ``held_out="default"`` the suite's default held-out, and trials
    restart from one start state in the suites that do so (the paper's CartPole). A
    standalone suite's own projection width (MetaCartPole: the paper's 4) replaces the
    ``MetaEnv`` default.
    """
    if preset not in PRESETS:
        raise ConfigError("preset", f"unknown preset {preset!r}; valid presets: "
                          f"{', '.join(PRESETS)}")
    base = PRESET_SETTINGS[preset]
    suite = base["suite"] if suite is None else suite
    if suite in STANDALONE_SUITES:
        kwargs.setdefault("obs_size", STANDALONE_SUITES[suite].PAPER_OBS_SIZE)
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
        same_start=suite in SAME_START_SUITES or suite in STANDALONE_SUITES,
        **kwargs,
    )


def build_cells(models: Sequence[str], settings: MetaSettings, preset: str, seeds: int,
                seed: int, total_steps: int | None, assignments: Sequence[str]) -> list[Cell]:
    """One validated cell per model on the training suite; raises ValueError on bad input.

    Built by ``config.build_run_config``, the suite's environment (``env_config``) as the
    experiment's adaptation.
    """
    def adapt(config: RunConfig) -> RunConfig:
        return dataclasses.replace(config, env=settings.env_config())

    return [make_cell(build_run_config(preset, model, settings.suite, num_seeds=seeds,
                                       seed=seed, adapt=adapt, assignments=assignments,
                                       total_timesteps=total_steps))
            for model in models]


def make_cell(config: RunConfig) -> Cell:
    """A meta run's cell: its labels come from its config."""
    return Cell({"model": config.model, "suite": config.env.env_id}, config)


# ----------------------------------------------------------------------------- evaluation


def evaluate(config: RunConfig, params: Any, settings: MetaSettings, suite: str,
             base_id: str, key: jax.Array) -> np.ndarray:
    """Mean return of each trial over fresh meta-episodes of one base env, no gradients.

    Args:
      config: the trained run's config (its backbone and head sizes build the network,
        ``env.previous_action`` picks the wrappers, as in training).
      params: network parameters with a leading seed axis ``[S, ...]``.
      settings: the meta settings the run trained with (the same projection sizes).
      suite: the suite ``base_id`` belongs to (the training or the held-out suite).
      base_id: the base environment evaluated alone (a one-member suite).
      key: evaluation key; seed s uses ``fold_in(key, s)``.

    Returns:
      ``[S, K]`` float (K = ``settings.evaluated_trials``): mean scaled return of trial k
      over ``settings.eval_episodes`` meta-episodes, actions sampled from the policy.
    """
    # The training wrappers (continuous actions clipped to the box, observations encoded),
    # so the policy acts on what it trained on.
    env, env_params, action_spec, _ = make_training_env(
        suite, previous_action=config.env.previous_action,
        joint_action=config.env.joint_action, members=(base_id,),
        **{**settings.env_kwargs, "num_trials": settings.evaluated_trials})
    network = build_network(config, action_spec)
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
            action = pi.sample(act_key)[0]
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
            returns = evaluate(config, params, settings, suite, base_id, key)
            for seed in range(returns.shape[0]):
                for trial in range(returns.shape[1]):
                    yield {"model": model, "seed": seed, "split": split, "suite": suite,
                           "env": base_id, "trial": trial + 1,
                           "mean_return": float(returns[seed, trial]),
                           "meta_episodes": settings.eval_episodes}


# ----------------------------------------------------------------------------- the sweep


def plan(options: MetaOptions) -> Plan:
    """One cell per model of ``s5bench meta``'s options; the settings are the context."""
    names = validated_models(options.model)
    settings = make_settings(options.preset, options.suite, options.held_out, options.trials,
                             options.trial_length, options.eval_trials,
                             eval_episodes=options.eval_episodes)
    cells = build_cells(names, settings, options.preset, options.seeds, options.seed,
                        options.total_steps, options.overrides)
    return Plan(cells, settings=dataclasses.asdict(settings),
                describe=f" on {settings.suite}, K={settings.num_trials}", context=settings)


def evaluate_after_training(settings: MetaSettings, run_dir: Path):
    """The after-cell hook: evaluate each trained cell, append its rows to trials.csv.

    It runs before the cell's summary rows are written, so a cell with summary rows has its
    trial rows too.
    """

    def evaluate_cell(cell: Cell, result: RunResult) -> None:
        rows = trial_rows(cell.config, result.runner.params, settings, cell.labels["model"])
        with CsvLog(run_dir / TRIALS_CSV, TRIAL_COLUMNS) as log:
            log.write_many(rows)

    return evaluate_cell


def finish(settings: MetaSettings, run_dir: Path, rows: list[dict]) -> list[Table]:
    """The in-context learning table: mean return at trial 1 and trial K, per model/split."""
    table = Table(title="meta evaluation: mean return per trial (over base envs and seeds)")
    for name in ("model", "split", "K", "trial 1", "trial K"):
        table.add_column(name, justify="left" if name in ("model", "split") else "right")
    for model, split, last, first_return, last_return in trial_table_rows(
            read_rows(run_dir / TRIALS_CSV)):
        table.add_row(model, split, str(last), f"{first_return:.3f}", f"{last_return:.3f}")
    return [table]


EXPERIMENT = Experiment(
    name="meta", labels=META_LABELS, plan=plan, make_cell=make_cell,
    summary_title="meta training: mean over seeds",
    # trials.csv's suite column is the evaluated split's suite, so its rows go by model
    extra_csvs={TRIALS_CSV: ("model",)},
    after_cell=evaluate_after_training, finish=finish)


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
