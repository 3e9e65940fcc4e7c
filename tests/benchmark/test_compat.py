"""benchmark/compat.py: every rule that lets a run folder written by an earlier version
rebuild, one test per rule (the committed runs of every format rebuild: test_config.py)."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from benchmark import compat
from benchmark.config import from_dict, make_preset, rebuilt_runs, to_dict
from models.actor_critic import NetworkConfig

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results" / "reference"


def _old_style(config) -> dict:
    """``config`` as config.json holds it, to be edited into an older version's form."""
    return json.loads(json.dumps(to_dict(config)))


# Written by hand from the registry as it was before ppo.bootstrap_truncated existed
# (commit 5726da6~1): only these families, and gymnax, were flagged as truncating.
_BOOTSTRAPPED_THEN = {f"{family}{level}" for family in (
    "PositionOnlyCartPole", "NoisyPositionOnlyCartPole", "VelocityOnlyCartPole",
    "PositionOnlyPendulum", "NoisyPositionOnlyPendulum") for level in ("Easy", "Medium", "Hard")}


def test_popgym_all_rebuilds_each_environments_return_target_as_it_ran():
    """popgym-all-s5-quick predates ppo.bootstrap_truncated: its 15 CartPole and Pendulum
    cells rebuild bootstrapping truncations from V(final observation), its other 33 from 0
    (Battleship, Concentration, LabyrinthEscape/Explore, MineSweeper, MultiarmedBandit
    truncate but were not flagged then: 18 cells that today's quick preset would bootstrap)."""
    doc = json.loads((REFERENCE / "cpu-2core" / "popgym-all-s5-quick" / "config.json")
                     .read_text())
    runs = doc["runs"]
    assert len(runs) == 48 and all("bootstrap_truncated" not in r["ppo"] for r in runs)
    rebuilt = {r["env"]["env_id"]: from_dict(r).ppo.bootstrap_truncated for r in runs}
    assert {env for env, bootstrapped in rebuilt.items() if bootstrapped} == _BOOTSTRAPPED_THEN
    changed = [env for env, bootstrapped in rebuilt.items()
               if not bootstrapped and make_preset("quick", "s5", env).ppo.bootstrap_truncated
               and _truncates(env)]
    assert len(changed) == 18, changed  # 6 families x 3 difficulties
    for family in ("Battleship", "Concentration", "LabyrinthEscape", "LabyrinthExplore",
                   "MineSweeper", "MultiarmedBandit"):
        assert not rebuilt[f"{family}Easy"] and not rebuilt[f"{family}Hard"]


def test_gymnax_runs_from_before_the_setting_bootstrapped():
    """A gymnax run (a memory run's MemoryChain) written before the setting rebuilds with
    bootstrapping on, as the loop then did for every gymnax environment."""
    config = make_preset("quick", "gru", "MemoryChain-bsuite")
    old_style = json.loads(json.dumps(to_dict(config)))
    del old_style["ppo"]["bootstrap_truncated"]
    assert from_dict(old_style).ppo.bootstrap_truncated
    old_style["env"]["env_id"] = "BattleshipEasy"
    assert not from_dict(old_style).ppo.bootstrap_truncated


def _truncates(env_id: str) -> bool:
    import envs

    return envs.ENVS[envs.resolve(env_id)].truncates


@pytest.mark.parametrize(("model", "new"), [("gru", "d_model"), ("lstm", "d_model"),
                                            ("mlp", "d_model"), ("mingru", "state_size")])
def test_renamed_backbone_fields_rebuild_from_old_names(model, new):
    """A config.json with the old name hidden_size rebuilds the backbone with that value under the new name."""
    config = make_preset("quick", model)
    old_style = json.loads(json.dumps(to_dict(config)))
    del old_style["backbone"][new]
    old_style["backbone"]["hidden_size"] = 48
    backbone = dataclasses.replace(config.backbone, **{new: 48})
    assert from_dict(old_style) == dataclasses.replace(config, backbone=backbone)


def test_s5_runs_from_before_its_initialisation_settings_rebuild_as_they_ran():
    """An s5 run without c_init and input_projection rebuilds with the values S5 then had
    (trunc_standard_normal, an input projection), not the paper preset's (lecun_normal,
    none); a file that names them keeps its own."""
    config = make_preset("paper", "s5")
    assert (config.backbone.c_init, config.backbone.input_projection) == ("lecun_normal", False)
    old_style = _old_style(config)
    del old_style["backbone"]["c_init"], old_style["backbone"]["input_projection"]
    rebuilt = from_dict(old_style).backbone
    assert (rebuilt.c_init, rebuilt.input_projection) == ("trunc_standard_normal", True)
    assert from_dict(_old_style(config)) == config


def test_head_size_from_before_the_network_setting_is_one_layer_per_part():
    """A run with head_size and no network section rebuilds NetworkConfig.single_layer: one
    encoder layer and one hidden layer per head, head_size wide."""
    config = make_preset("quick", "gru")
    old_style = _old_style(config)
    del old_style["network"]
    old_style["head_size"] = 48
    network = from_dict(old_style).network
    assert network == NetworkConfig.single_layer(48)
    assert network.encoder == (48,) and network.head == (48,)


def test_memory_runs_kept_their_env_params_beside_the_config():
    """A memory run's env_params (and memory_length) beside the config become env.params."""
    config = make_preset("quick", "gru", "MemoryChain-bsuite")
    old_style = _old_style(config)
    del old_style["env"]["params"]
    old_style["memory_length"] = 4
    old_style["env_params"] = {"memory_length": 4, "max_steps_in_episode": 6}
    rebuilt = from_dict(old_style)
    assert dict(rebuilt.env.params) == {"memory_length": 4, "max_steps_in_episode": 6}
    assert rebuilt == dataclasses.replace(config, env=rebuilt.env)


def _old_meta_doc(suite: str, **settings) -> dict:
    """A meta config.json as written before the suite's settings lived in each run."""
    run = _old_style(make_preset("quick", "gru"))
    run["env"] = {"env_id": suite, "previous_action": False}
    return {"command": "meta", "suite": suite, "held_out": None, "eval_episodes": 64,
            "eval_seed": 1_000_003, **settings, "runs": [run, run]}


def test_meta_settings_beside_the_runs_move_into_each_runs_env_kwargs():
    """An old meta config.json's suite settings become every run's env.kwargs; a setting the
    file does not name (same_start, added since) takes its value then, False."""
    doc = _old_meta_doc("ProjectedCartPole", num_trials=3, trial_length=20, obs_size=8,
                        action_size=2, include_action=False)
    upgraded = compat.upgraded_config(doc)
    expected = {"num_trials": 3, "trial_length": 20, "obs_size": 8, "action_size": 2,
                "include_action": False, "same_start": False}
    assert [run["env"]["kwargs"] for run in upgraded["runs"]] == [expected, expected]
    assert {k: v for k, v in upgraded.items() if k != "runs"} == {
        k: v for k, v in doc.items() if k != "runs"}
    # rebuilt_runs applies the rule: the runs then build the suite as it was trained
    assert [dict(from_dict(run).env.kwargs) for run in rebuilt_runs(doc)["runs"]] == [
        expected, expected]


def test_meta_settings_of_a_standalone_suite_are_the_ones_its_class_takes():
    """MetaCartPole takes num_trials, trial_length and obs_size (MetaCartPole.SETTINGS) and no
    action projection: an old doc's action_size and include_action are left out."""
    doc = _old_meta_doc("MetaCartPole", num_trials=16, trial_length=200, obs_size=4,
                        action_size=4, include_action=True, same_start=True)
    kwargs = compat.upgraded_config(doc)["runs"][0]["env"]["kwargs"]
    assert kwargs == {"num_trials": 16, "trial_length": 200, "obs_size": 4}


def test_meta_runs_with_their_own_env_kwargs_and_other_commands_are_left_alone():
    """A run that has env.kwargs keeps them over the settings beside it; a config.json of
    another command is returned unchanged."""
    doc = _old_meta_doc("ProjectedCartPole", num_trials=3)
    doc["runs"][0] = {**doc["runs"][0], "env": {**doc["runs"][0]["env"],
                                                "kwargs": {"num_trials": 5}}}
    upgraded = compat.upgraded_config(doc)
    assert upgraded["runs"][0]["env"]["kwargs"] == {"num_trials": 5}
    assert upgraded["runs"][1]["env"]["kwargs"]["num_trials"] == 3
    popgym = {"command": "popgym", "suite": "MetaControl", "runs": [{"env": {"env_id": "x"}}]}
    assert compat.upgraded_config(popgym) == popgym


def test_speed_folders_from_before_config_json_named_their_command():
    """A config.json without a command is a speed run's if it holds a SpeedConfig (seq_lens),
    else nothing; a named command is read as it is."""
    legacy = json.loads((REFERENCE / "cpu-2core" / "speed" / "config.json").read_text())
    assert "command" not in legacy and compat.folder_command(legacy) == "speed"
    assert compat.folder_command({"runs": []}) is None
    assert compat.folder_command({"command": "memory", "seq_lens": [1]}) == "memory"


def test_speed_options_are_rebuilt_from_an_old_speed_config():
    """The committed legacy speed folder's SpeedConfig gives the options that built it, under
    today's option names (seq_len, model, mode, layers)."""
    legacy = json.loads((REFERENCE / "cpu-2core" / "speed" / "config.json").read_text())
    assert compat.speed_options(legacy) == {
        "seq_len": [256, 512, 1024, 2048, 4096, 8192, 16384],
        "model": ["s5", "gru", "lstm", "trxl", "mlp"], "mode": ["train", "infer", "rollout"],
        "batch": 4, "d_model": 64, "layers": 2, "repeats": 5, "warmup": 1,
        "max_seconds": 30.0}


def test_compat_sits_on_the_ground_floor():
    """compat imports no benchmark module: config imports it, and the experiments sit above."""
    tree = ast.parse((ROOT / "benchmark" / "compat.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] == "benchmark"}, imported
