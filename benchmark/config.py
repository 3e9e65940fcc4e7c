"""Typed, frozen configuration: one dataclass per concern, composed by ``RunConfig``.

Presets are functions returning a ``RunConfig`` (``paper``, ``quick``); ``override`` applies
``--set key=value`` pairs with ``dataclasses.replace``. Configs are never mutated, and
every run saves ``to_dict(config)`` as ``config.json`` beside its results.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmark import compat
from benchmark.errors import ConfigError
from models import backbone_config_class
from models.actor_critic import NetworkConfig


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """PPO hyperparameters. Defaults are the paper's POPGym settings (Lu et al. 2023)."""

    lr: float = 5e-5  # Adam learning rate
    anneal_lr: bool = False  # decay the learning rate linearly to 0 over training
    gamma: float = 0.99  # discount
    gae_lambda: float = 1.0  # GAE lambda
    clip_eps: float = 0.2  # PPO ratio clip
    ent_coef: float = 0.0  # entropy bonus coefficient
    vf_coef: float = 1.0  # value loss coefficient
    max_grad_norm: float = 0.5  # global gradient-norm clip
    num_envs: int = 64  # B: parallel environments per seed
    num_steps: int = 1024  # T: rollout length per update
    num_minibatches: int = 8  # minibatches per epoch (split over environments, never time)
    update_epochs: int = 30  # passes over each rollout
    total_timesteps: int = 15_000_000  # environment steps per seed
    updates_per_chunk: int = 0  # updates per compiled chunk between host updates; 0 = auto
    # Return targets where an episode is cut by a time limit (truncated): False ends the
    # return there as at a termination (next value 0), as the paper's code does at every
    # done; True bootstraps from V(final observation), gymnax 1.x's semantics.
    bootstrap_truncated: bool = False

    def __post_init__(self):
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs",
                     "total_timesteps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ppo.{name} must be positive, got {getattr(self, name)}")
        if self.num_envs % self.num_minibatches:
            raise ValueError(
                f"ppo.num_envs ({self.num_envs}) must be divisible by ppo.num_minibatches "
                f"({self.num_minibatches}): minibatches split environments, never time"
            )
        if self.total_timesteps < self.steps_per_update:
            raise ValueError(
                f"ppo.total_timesteps ({self.total_timesteps}) is less than one update "
                f"(num_envs x num_steps = {self.steps_per_update})"
            )
        if self.updates_per_chunk < 0:
            raise ValueError("ppo.updates_per_chunk must be >= 0")

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.steps_per_update

    @property
    def chunk_size(self) -> int:
        """Updates per compiled chunk: a divisor of ``num_updates``, so one compile serves all.

        Auto aims at roughly 256k environment steps per chunk, so the progress display
        refreshes every few seconds without the host round-trip costing throughput.
        """
        target = self.updates_per_chunk or max(1, 262_144 // self.steps_per_update)
        target = min(target, self.num_updates)
        return max(d for d in range(1, target + 1) if self.num_updates % d == 0)


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Which environment, with which settings, and how it is presented to the agent."""

    env_id: str = "RepeatPreviousEasy"  # any id from `s5bench envs`
    previous_action: bool = True  # append previous action + episode-start flag (the paper's)
    # A MultiDiscrete action (Battleship's and MineSweeper's (row, column)) as one
    # categorical over every combination, with a one-hot of them as the previous action:
    # the paper's agent (paper preset). False: one categorical per component (quick).
    joint_action: bool = False
    # Fields of the environment's EnvParams replaced (e.g. MemoryChain's memory_length).
    params: Mapping[str, Any] = field(default_factory=dict)
    # Arguments of the environment's constructor (e.g. MetaEnv's trials per episode).
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything one training run needs; saved as config.json."""

    model: str  # the backbone's registry name or import path (`s5bench models`)
    backbone: Any  # that backbone's config dataclass
    ppo: PPOConfig = field(default_factory=PPOConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)  # encoder and heads
    num_seeds: int = 1  # seeds trained at once (a vmap axis)
    seed: int = 0  # base seed; seed i of a run uses jax.random.key(seed + i)
    preset: str = "custom"  # which preset built this config (informational)

    def __post_init__(self):
        cls = backbone_config_class(self.model)
        if not isinstance(self.backbone, cls):
            raise ValueError(f"backbone config for {self.model!r} must be a {cls.__name__}")
        if self.num_seeds <= 0:
            raise ValueError(f"num_seeds must be positive, got {self.num_seeds}")


# ----------------------------------------------------------------------------- presets


def paper(model: str, env_id: str = EnvConfig.env_id, num_seeds: int = 1) -> RunConfig:
    """The paper's agent and POPGym settings (Lu et al. 2023, popjaxrl ``run_popgym.py``).

    Its actor-critic (``NetworkConfig()``), the backbone's defaults (S5 256 x 256 x 4 with
    the paper's initialisation; one GRU cell of 256), PPO with 64 envs x 1024 steps, 15M
    steps, 30 epochs, 8 minibatches, lr 5e-5, every done ending the return, and one
    categorical over every (row, column) in Battleship and MineSweeper.
    """
    return RunConfig(
        model=model,
        backbone=backbone_config_class(model)(),
        ppo=PPOConfig(),
        env=EnvConfig(env_id=env_id, joint_action=True),
        network=NetworkConfig(),
        num_seeds=num_seeds,
        preset="paper",
    )


def quick(model: str, env_id: str = EnvConfig.env_id, num_seeds: int = 1) -> RunConfig:
    """Small enough to learn a memory task on a 2-core CPU in a few minutes."""
    return RunConfig(
        model=model,
        backbone=backbone_config_class(model).quick(),
        ppo=PPOConfig(
            lr=1e-3,
            anneal_lr=True,
            gamma=0.99,
            gae_lambda=0.95,
            ent_coef=0.01,
            vf_coef=0.5,
            num_envs=32,
            num_steps=128,
            num_minibatches=4,
            update_epochs=4,
            total_timesteps=1_048_576,  # 2^20: 256 updates, so chunks divide evenly
            bootstrap_truncated=True,
        ),
        env=EnvConfig(env_id=env_id),
        network=NetworkConfig.single_layer(64),
        num_seeds=num_seeds,
        preset="quick",
    )


PRESETS = {"paper": paper, "quick": quick}


def make_preset(name: str, model: str, env_id: str = EnvConfig.env_id,
                num_seeds: int = 1) -> RunConfig:
    """Build preset ``name``; a ``ConfigError`` lists the valid presets."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; valid presets: "
                          f"{', '.join(PRESETS)}")
    return PRESETS[name](model, env_id, num_seeds)


def build_run_config(preset: str, model: str, env_id: str, *, num_seeds: int = 1,
                     seed: int = 0, adapt: Callable[[RunConfig], RunConfig] | None = None,
                     assignments: Sequence[str] = (),
                     total_timesteps: int | None = None) -> RunConfig:
    """The one way a run's config is built, in this order, each step validated:

    1. the preset (``paper`` or ``quick``) for ``model`` on ``env_id``, ``num_seeds`` and
       ``seed``;
    2. ``adapt``: what an experiment changes for its task (the memory length's rollout and
       environment settings, the meta suite's environment), before the user's overrides;
    3. ``assignments``: ``key=value`` overrides (``override``), so the user has the last
       word on every field;
    4. ``total_timesteps``, the run's budget, if given.

    Raises ``ConfigError`` (a field and what is wrong with it) on any bad value.
    """
    if num_seeds <= 0:
        raise ConfigError("num_seeds", f"must be a positive integer, got {num_seeds}")
    if total_timesteps is not None and total_timesteps <= 0:
        raise ConfigError("ppo.total_timesteps",
                          f"must be a positive integer, got {total_timesteps}")
    config = dataclasses.replace(make_preset(preset, model, env_id, num_seeds), seed=seed)
    if adapt is not None:
        config = adapt(config)
    config = override(config, assignments)
    if total_timesteps is not None:
        config = with_total_timesteps(config, total_timesteps)
    return config


# ----------------------------------------------------------------------------- overrides


def settable_keys(config: RunConfig) -> list[str]:
    """Every key ``override`` accepts, e.g. ``ppo.lr``, ``backbone.d_model``, ``seed``."""
    keys = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(value)
                     if not isinstance(getattr(value, g.name), Mapping)]
        elif f.name not in ("model", "preset"):
            keys.append(f.name)
    return keys


class OverrideError(ValueError):
    """A ``key=value`` override that names no field or holds a malformed value."""


def _parse(text: str, current: Any, key: str) -> Any:
    if isinstance(current, tuple):  # e.g. network.encoder=128,256
        return tuple(_parse(part.strip(), 0, key) for part in text.split(",") if part.strip())
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise OverrideError(f"{key}: expected true or false, got {text!r}")
    try:
        if isinstance(current, int):
            value = float(text)
            if not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(text)
    except ValueError:
        kind = type(current).__name__
        raise OverrideError(f"{key}: expected {kind}, got {text!r}") from None
    return text


def override(config: RunConfig, assignments: Sequence[str]) -> RunConfig:
    """Apply ``key=value`` assignments; unknown keys and malformed values: ``OverrideError``.

    Validation (``__post_init__``) reruns on every replaced dataclass, so an override
    that breaks an invariant (say num_envs not divisible by num_minibatches) fails here.
    """
    valid = settable_keys(config)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep:
            raise OverrideError(f"expects key=value, got {assignment!r}")
        if key not in valid:
            raise OverrideError(f"unknown key {key!r}; valid keys: {', '.join(valid)}")
        if "." in key:
            section, name = key.split(".", 1)
            sub = getattr(config, section)
            value = _parse(text.strip(), getattr(sub, name), key)
            section_value = dataclasses.replace(sub, **{name: value})
            config = dataclasses.replace(config, **{section: section_value})
        else:
            value = _parse(text.strip(), getattr(config, key), key)
            config = dataclasses.replace(config, **{key: value})
    return config


def with_total_timesteps(config: RunConfig, total: int) -> RunConfig:
    return dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, total_timesteps=total))


# ----------------------------------------------------------------------------- JSON


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(data: dict) -> RunConfig:
    """Inverse of ``to_dict``: the backbone section is rebuilt from the model name.

    Files written by earlier versions rebuild the run they describe
    (``compat.upgraded_run``).
    """
    data = compat.upgraded_run(data)
    backbone_cls = backbone_config_class(data["model"])
    return RunConfig(
        **{
            **data,
            "backbone": backbone_cls(**data["backbone"]),
            "ppo": PPOConfig(**data["ppo"]),
            "env": EnvConfig(**data["env"]),
            "network": NetworkConfig(**data["network"]),
        }
    )


def rebuilt_run(run: dict) -> dict:
    """A config.json run rebuilt through ``from_dict``: today's form, as JSON holds it."""
    return json.loads(json.dumps(to_dict(from_dict(run))))


def rebuilt_runs(doc: dict) -> dict:
    """``doc`` (a config.json) with every run in today's form (``rebuilt_run``), settings
    that an earlier version kept beside the runs moved into them first
    (``compat.upgraded_config``)."""
    doc = compat.upgraded_config(doc)
    return {**doc, "runs": [rebuilt_run(run) for run in doc.get("runs", [])]}

