"""Run folders (benchmark/run_folder.py): never overwritten by accident, options resolved
against a resumed run's own, stop requests for every command."""

from __future__ import annotations

import os
import signal
import time

import pytest

from benchmark.options import PopgymOptions
from benchmark.results import write_json
from benchmark.run_folder import (
    OptionConflict,
    RunExistsError,
    StopRequest,
    make_run_dir,
    resolve_options,
)


def test_existing_run_folder_is_not_overwritten(tmp_path):
    """A run folder with results is refused unless force is given."""
    run = make_run_dir(tmp_path, "r1")
    (run / "summary.csv").write_text("x\n1\n")
    with pytest.raises(RunExistsError):
        make_run_dir(tmp_path, "r1")
    make_run_dir(tmp_path, "r1", force=True)
    assert not (run / "summary.csv").exists()


def test_stop_request_sigterm_asks_once_and_never_interrupts():
    """SIGTERM sets the stop flag like a first Ctrl-C; a second SIGTERM does not stop at
    once (only a second Ctrl-C does); the handler is restored."""
    before = signal.getsignal(signal.SIGTERM)
    said = []
    with StopRequest(said.append) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested() and said[0].startswith("SIGTERM: stopping after")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert len(said) == 2 and stop.requested()
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_request_first_signal_asks_second_interrupts():
    """SIGINT once sets the flag; twice raises KeyboardInterrupt; handlers are restored."""
    before = signal.getsignal(signal.SIGINT)
    said = []
    with StopRequest(said.append) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.requested() and "stopping after the current chunk" in said[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before



def test_resolve_options_takes_the_saved_ones_and_names_a_conflict(tmp_path):
    """Resuming, an option left at its default takes the run's saved value, one given on the
    command line must agree (else OptionConflict naming it), an extendable list joins the
    saved one, and a field the saved run lacks keeps its given value."""
    write_json(tmp_path / "config.json", {"command": "popgym", "options": {
        "model": ["mlp"], "env": ["MemoryProbe"], "seeds": 2, "set_": ["ppo.lr=0.5"]}})
    given = PopgymOptions(model=("gru",), seeds=3, seed=4)
    resolved = resolve_options("popgym", tmp_path, given, typed={"seed"})
    assert resolved == PopgymOptions(model=("mlp",), env=("MemoryProbe",), seeds=2,
                                     overrides=("ppo.lr=0.5",), seed=4)
    with pytest.raises(OptionConflict) as conflict:
        resolve_options("popgym", tmp_path, given, typed={"seeds"})
    assert (conflict.value.option, conflict.value.saved, conflict.value.given) == ("seeds", 2, 3)
    joined = resolve_options("popgym", tmp_path, given, typed={"model"}, extendable=("model",))
    assert joined.model == ("mlp", "gru")
    assert resolve_options("popgym", None, given, typed=()) is given
