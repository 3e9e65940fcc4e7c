"""Typed options: one declaration per field, its help the command's --help, JSON round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest
import typer

import cli
from benchmark.compat import upgraded_options
from benchmark.errors import ConfigError
from benchmark.options import (
    TRAINING_OPTIONS,
    CheckOptions,
    CompareOptions,
    EnvBenchOptions,
    EnvsOptions,
    FiguresOptions,
    FolderOptions,
    MemoryOptions,
    MergeOptions,
    PopgymOptions,
    ReferenceOptions,
    RunControl,
    SpeedOptions,
    TrainOptions,
)

COMMANDS = {**{name: (cls, RunControl) for name, cls in TRAINING_OPTIONS.items()},
            "speed": (SpeedOptions, FolderOptions),
            "envs": (EnvsOptions, EnvBenchOptions, FolderOptions),
            "reference": (ReferenceOptions,), "figures": (FiguresOptions,),
            "merge": (MergeOptions,), "compare": (CompareOptions,), "check": (CheckOptions,)}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_field_is_an_option_whose_help_is_the_field_s(command):
    """Each field of the command's options classes is one of its options, with the field's
    own help text and default (nothing is declared twice)."""
    params = {p.name: p for p in typer.main.get_command(cli.app).commands[command].params}
    fields = [field for cls in COMMANDS[command] for field in dataclasses.fields(cls)]
    assert sorted(params) == sorted(field.name for field in fields)  # nothing else either
    for field in fields:
        param = params[field.name]
        assert param.help == field.metadata["help"]
        if field.metadata["parse"] is not None:  # typed as text, kept parsed
            assert field.metadata["parse"](param.default) == field.default
        elif isinstance(field.default, tuple):  # repeatable: () is shown as unset
            assert (param.default or []) == list(field.default), field.name
        elif field.default is not dataclasses.MISSING and field.default is not ...:
            assert param.default == field.default, field.name


def test_training_commands_share_one_declaration():
    """popgym, memory and meta take every TrainOptions field; each redeclares only what
    differs (memory's seeds default is 3, popgym's model default s5)."""
    shared = {f.name for f in dataclasses.fields(TrainOptions)}
    for cls in TRAINING_OPTIONS.values():
        assert shared <= {f.name for f in dataclasses.fields(cls)}
    assert (MemoryOptions().seeds, PopgymOptions().seeds) == (3, 1)
    assert (PopgymOptions().model, MemoryOptions().model) == (("s5",), None)


@pytest.mark.parametrize("options", [
    PopgymOptions(model=("s5", "gru"), overrides=("ppo.lr=3e-4",), shard="2/3"),
    MemoryOptions(lengths="4..16"), SpeedOptions(seq_len=(8, 64), mode=("train",)),
    EnvBenchOptions(env=("all",), batch=8)])
def test_options_round_trip_through_config_json(options):
    """asdict -> JSON -> from_dict rebuilds the same options (lists back to tuples)."""
    saved = json.loads(json.dumps(dataclasses.asdict(options)))
    assert type(options).from_dict(saved) == options


def test_old_option_names_are_upgraded_and_unknown_keys_ignored():
    """config.json written before the options were typed kept --set under set_; a key no
    field has (an option since removed) is ignored, a missing one takes its default."""
    saved = {"model": ["mlp"], "env": ["MemoryProbe"], "set_": ["ppo.lr=0.5"], "gone": 1}
    options = PopgymOptions.from_dict(upgraded_options(saved))
    assert options.overrides == ("ppo.lr=0.5",) and options.seeds == 1


def test_resume_with_run_id_or_force_is_refused_by_the_options():
    """A resume continues its own folder: --run-id or --force beside it is a ConfigError."""
    with pytest.raises(ConfigError, match="takes no --run-id or --force") as error:
        FolderOptions(resume="r", force=True)
    assert error.value.field == "resume"
    assert FolderOptions().out_for("speed").as_posix() == "results/speed"
