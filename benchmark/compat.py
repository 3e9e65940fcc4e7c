"""Every rule that lets a run folder written by an earlier version rebuild, resume and redraw.

One module, so that what old folders need is in one place and the rest of the code reads
only today's form: a config.json run (``upgraded_run``, used by ``config.from_dict``), a whole
config.json whose settings lived beside its runs (``upgraded_config``, used by
``config.rebuilt_runs``), the command a speed folder belongs to (``folder_command``), the
options of a speed folder (or ``envs --bench`` folder) written before config.json kept them
(``speed_options``, ``env_bench_options``) and option fields renamed since
(``upgraded_options``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import envs
from envs.meta_rl import suite_env_kwargs
from models.actor_critic import NetworkConfig

# Settings a config.json written before the setting existed ran with (where that is not
# today's default): such a file rebuilds the run it describes, not today's preset.
# Before ppo.bootstrap_truncated existed, the loop bootstrapped a truncation from
# V(final observation) exactly where the registry then flagged the environment as
# truncating: these POPGym families and every gymnax environment. Every other environment
# bootstrapped from 0, Battleship, Concentration, LabyrinthEscape, LabyrinthExplore,
# MineSweeper and MultiarmedBandit included (they truncate, but were not flagged yet).
_LEGACY_TRUNCATING_FAMILIES = ("PositionOnlyCartPole", "NoisyPositionOnlyCartPole",
                               "VelocityOnlyCartPole", "PositionOnlyPendulum",
                               "NoisyPositionOnlyPendulum")
_LEGACY_BACKBONE = {"s5": {"c_init": "trunc_standard_normal", "input_projection": True}}
# Backbone fields renamed since (old name -> new name): every backbone's width is d_model,
# and minGRU's recurrent width is state_size, as LRU's and Mamba's state widths are named.
_RENAMED_BACKBONE = {
    "gru": {"hidden_size": "d_model"},
    "lstm": {"hidden_size": "d_model"},
    "mlp": {"hidden_size": "d_model"},
    "mingru": {"hidden_size": "state_size"},
}
# The suite settings a meta config.json written before they lived in each run's env.kwargs
# ran with where the file does not name them: the meta settings' defaults then (same_start
# did not exist yet: every trial started afresh).
_LEGACY_META_SETTINGS = {"num_trials": 4, "trial_length": 32, "obs_size": 16,
                         "action_size": 4, "include_action": True, "same_start": False}


def legacy_bootstrap_truncated(env_id: str) -> bool:
    """The return target a run written before ``ppo.bootstrap_truncated`` used on ``env_id``:
    True (V(final observation)) where the environment was then flagged as truncating."""
    entry = envs.ENVS[envs.resolve(env_id)]
    return entry.suite == "gymnax" or entry.family in _LEGACY_TRUNCATING_FAMILIES


def upgraded_run(data: dict) -> dict:
    """A config.json run in today's form, as plain data (``config.from_dict`` builds it).

    A missing setting takes the value those versions used (``_LEGACY_*``;
    ``ppo.bootstrap_truncated`` per environment, ``legacy_bootstrap_truncated``), a renamed
    backbone field takes its new name (``_RENAMED_BACKBONE``), and a memory run's
    ``env_params`` (kept beside the config then) become ``env.params``, and ``head_size``
    (one encoder layer and one hidden layer per head, before the network was a setting)
    becomes ``NetworkConfig.single_layer``.
    """
    data = dict(data)
    # Memory runs written before the environment's settings lived in EnvConfig kept them
    # beside the config.
    data.pop("memory_length", None)
    legacy_env_params = data.pop("env_params", None)
    renamed = _RENAMED_BACKBONE.get(data["model"], {})
    backbone = {renamed.get(name, name): value for name, value in data["backbone"].items()}
    ppo = dict(data["ppo"])
    if "bootstrap_truncated" not in ppo:
        ppo["bootstrap_truncated"] = legacy_bootstrap_truncated(data["env"]["env_id"])
    if "network" not in data:
        data["network"] = dataclasses.asdict(NetworkConfig.single_layer(data.pop("head_size")))
    return {**data, "backbone": {**_LEGACY_BACKBONE.get(data["model"], {}), **backbone},
            "ppo": ppo, "env": {"params": legacy_env_params or {}, **data["env"]}}


def upgraded_config(doc: dict) -> dict:
    """A config.json whose settings lived beside its runs, with them moved into the runs.

    A meta config.json written before the suite's settings lived in each run's
    ``env.kwargs`` kept them at the top (``suite``, ``num_trials``, ...): each run gets the
    suite environment's constructor arguments (``envs.meta_rl.suite_env_kwargs``), a setting
    the file does not name taking its value then (``_LEGACY_META_SETTINGS``). A run that
    has its ``env.kwargs`` keeps them; any other config.json is returned as it is. The runs
    are not rebuilt here (``config.rebuilt_runs`` does it).
    """
    if doc.get("command") != "meta":
        return doc
    settings = {name: doc.get(name, default) for name, default in _LEGACY_META_SETTINGS.items()}
    kwargs = suite_env_kwargs(doc["suite"], **settings)
    return {**doc, "runs": [{**run, "env": {"kwargs": kwargs, **run["env"]}}
                            for run in doc.get("runs", [])]}


def folder_command(saved: dict[str, Any]) -> str | None:
    """The command a config.json belongs to; speed folders written before config.json
    named its command hold a ``SpeedConfig`` (``seq_lens`` among its fields)."""
    return saved.get("command", "speed" if "seq_lens" in saved else None)


def speed_options(saved: dict) -> dict:
    """The options of a speed folder written before config.json kept them."""
    return {"seq_len": saved["seq_lens"], "model": saved["models"], "mode": saved["modes"],
            "batch": saved["batch"], "d_model": saved["d_model"], "layers": saved["num_layers"],
            "repeats": saved["repeats"], "warmup": saved["warmup"],
            "max_seconds": saved["max_seconds"]}


# Option fields renamed since (old name -> new name): ``--set``'s assignments were kept under
# typer's parameter name before each command's options were a dataclass.
_RENAMED_OPTIONS = {"set_": "overrides"}


def upgraded_options(options: dict[str, Any]) -> dict[str, Any]:
    """A config.json ``"options"`` entry in today's field names (``_RENAMED_OPTIONS``)."""
    return {_RENAMED_OPTIONS.get(name, name): value for name, value in options.items()}


def env_bench_options(saved: dict) -> dict:
    """The options of an ``envs --bench`` folder written before config.json kept them."""
    return {"env": saved["envs"], "batch": saved["batch"], "steps": saved["num_steps"],
            "repeats": saved["repeats"]}
