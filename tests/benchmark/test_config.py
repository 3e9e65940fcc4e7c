"""Configs: presets build, round-trip through JSON, and overrides are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.config import (
    PRESETS,
    from_dict,
    make_preset,
    override,
    settable_keys,
    to_dict,
)
from models import BACKBONES


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", sorted(BACKBONES))
def test_every_preset_builds_and_round_trips_through_json(preset, model):
    """make_preset(...) -> JSON -> from_dict gives back an equal config."""
    config = make_preset(preset, model, "RepeatFirstEasy", num_seeds=3)
    assert from_dict(json.loads(json.dumps(to_dict(config)))) == config


def test_paper_preset_is_the_papers_settings():
    """The paper preset holds Lu et al.'s POPGym hyperparameters."""
    config = make_preset("paper", "s5")
    p = config.ppo
    assert (p.num_envs, p.num_steps, p.total_timesteps) == (64, 1024, 15_000_000)
    assert (p.update_epochs, p.num_minibatches, p.lr) == (30, 8, 5e-5)
    assert (p.gamma, p.gae_lambda, p.clip_eps, p.ent_coef, p.vf_coef, p.max_grad_norm) == (
        0.99, 1.0, 0.2, 0.0, 1.0, 0.5)
    b = config.backbone
    assert (b.d_model, b.state_size, b.num_layers, b.activation, b.layer_norm) == (
        256, 256, 4, "full_glu", False)
    assert (b.c_init, b.input_projection) == ("lecun_normal", False)
    assert config.network.encoder == (128, 256) and config.network.head == (128, 128)
    assert config.network.head_scale == 2.0 and not config.ppo.bootstrap_truncated
    assert config.env.joint_action and not make_preset("quick", "s5").env.joint_action
    assert make_preset("paper", "gru").backbone.d_model == 256


def test_tuple_settings_are_set_as_comma_lists():
    """--set network.encoder=64,32 gives a tuple of ints; an invalid width is refused."""
    config = override(make_preset("paper", "gru"), ["network.encoder=64,32",
                                                   "network.head=16"])
    assert config.network.encoder == (64, 32) and config.network.head == (16,)
    with pytest.raises(ValueError, match="widths must be positive"):
        override(config, ["network.head=16,0"])


REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


@pytest.mark.parametrize("path", sorted(REFERENCE.glob("*/*/config.json")),
                         ids=lambda p: p.parent.name)
def test_committed_reference_runs_rebuild_the_runs_they_describe(path):
    """Every run in a committed reference config.json, from every version of the format,
    rebuilds through from_dict into the cell that ran: files from before the network and S5
    settings existed rebuild the network they ran with; rebuilt_runs brings old files to
    today's form (memory lengths beside the config, meta settings at the top), and today's
    form survives a JSON round trip."""
    from benchmark.config import rebuilt_run, rebuilt_runs
    from benchmark.experiments import jobs

    doc = json.loads(path.read_text())
    runs = doc.get("runs", [])
    if not runs:  # speed and envs --bench folders: settings, not runs
        assert doc.get("command", "speed") in ("speed", "envs --bench")
        return
    exp = jobs.experiment(doc["command"])
    for run, new in zip(runs, rebuilt_runs(doc)["runs"], strict=True):
        cell = exp.make_cell(from_dict(new))
        assert rebuilt_run(new) == new
        assert cell.config.model == run["model"]
        if doc["command"] == "memory":
            assert cell.labels["memory_length"] == run["memory_length"]
            assert dict(cell.config.env.params) == run["env_params"]
        if doc["command"] == "meta":
            assert cell.config.env.kwargs["num_trials"] == doc["num_trials"]
            assert cell.config.env.kwargs["trial_length"] == doc["trial_length"]
        config = from_dict(run)
        if "head_size" in run:  # written before the network was a setting
            assert config.network.encoder == (run["head_size"],)
            assert config.network.head == (run["head_size"],)
            if config.model == "s5":
                assert config.backbone.c_init == "trunc_standard_normal"
                assert config.backbone.input_projection
        if "hidden_size" in run["backbone"]:  # written before the field was renamed
            new = "state_size" if config.model == "mingru" else "d_model"
            assert getattr(config.backbone, new) == run["backbone"]["hidden_size"]


def test_override_replaces_fields_without_mutating():
    """--set values are parsed to the field's type and produce a new config."""
    base = make_preset("quick", "s5")
    changed = override(base, ["ppo.lr=3e-4", "backbone.num_layers=3",
                              "env.previous_action=false", "seed=7"])
    assert (changed.ppo.lr, changed.backbone.num_layers) == (3e-4, 3)
    assert changed.env.previous_action is False and changed.seed == 7
    assert base.ppo.lr != 3e-4, "the original config must not change"
    assert to_dict(base) != to_dict(changed)


@pytest.mark.parametrize("assignment,message", [
    ("ppo.lrr=1", "unknown key 'ppo.lrr'"),
    ("ppo.lr", "expects key=value"),
    ("ppo.num_envs=2.5", "expected int"),
    ("ppo.anneal_lr=maybe", "expected true or false"),
    ("ppo.num_envs=30", "divisible"),
    ("backbone.evaluation=fast", "evaluation must be one of"),
])
def test_bad_overrides_are_rejected(assignment, message):
    """Unknown keys, malformed values and broken invariants raise ValueError with a reason."""
    with pytest.raises(ValueError, match=message):
        override(make_preset("quick", "s5"), [assignment])


def test_unknown_key_error_lists_valid_keys():
    """The unknown-key message names the valid keys."""
    config = make_preset("quick", "gru")
    with pytest.raises(ValueError) as error:
        override(config, ["nope=1"])
    for key in settable_keys(config):
        assert key in str(error.value)
