"""Long runs: checkpoints, exact resume after SIGKILL, damaged checkpoints, bad --resume.

A resumed run must end where the same run done in one go ends, to the bit, on CPU: same
parameters (from the final checkpoints) and the same curves.csv numbers (every column but
the wall clock).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.config import override, quick, to_dict
from benchmark.experiments.resume import prepare_resume
from benchmark.experiments.types import Cell
from benchmark.train.checkpoint import MANIFEST, CellCheckpoints, CheckpointSettings
from benchmark.train.loop import TrainingInterrupted, run_training
from tests.cli_checks import assert_one_error_line

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()

# 16 updates of 2 seeds on the memory probe, 2 updates per chunk: ~2 s of training here.
LONG_UPDATES = 16
LONG = ["popgym", "--model", "gru", "--env", "MemoryProbe", "--seeds", "2",
        "--total-steps", str(LONG_UPDATES * 16 * 32), "--set", "ppo.num_envs=16",
        "--set", "ppo.num_steps=32", "--set", "ppo.updates_per_chunk=2",
        "--checkpoint-every", "0"]
# 8 updates of 2 seeds, 2 per chunk: for the in-process checks.
SHORT_SETTINGS = ["ppo.num_envs=8", "ppo.num_steps=16", "ppo.num_minibatches=2",
                  "ppo.update_epochs=1", "ppo.updates_per_chunk=2", "ppo.total_timesteps=1024"]
SHORT = ["popgym", "--model", "mlp", "--env", "MemoryProbe", "--seeds", "2",
         *[arg for setting in SHORT_SETTINGS for arg in ("--set", setting)],
         "--checkpoint-every", "0", "--keep-checkpoints", "3"]


def _short_config(num_seeds: int = 2, *extra: str):
    return override(quick("mlp", "MemoryProbe", num_seeds=num_seeds), [*SHORT_SETTINGS, *extra])
WALL_CLOCK = ["wall_s", "compile_s", "env_steps_per_s"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), *args]


def _final_params(run_dir: Path) -> list[np.ndarray]:
    """Parameters of the final checkpoint of the run's only cell, as numpy leaves."""
    import orbax.checkpoint as ocp

    (cell,) = (run_dir / "checkpoints").iterdir()
    step = max(int(p.name) for p in cell.iterdir() if p.name.isdigit())
    state = ocp.StandardCheckpointer().restore((cell / str(step) / "state").absolute())
    params = {name: value for name, value in state.items() if name.startswith(".params")}
    assert params, sorted(state)
    return [np.asarray(params[name]) for name in sorted(params)]


def _numbers(csv_path: Path) -> pd.DataFrame:
    return pd.read_csv(csv_path).drop(columns=WALL_CLOCK, errors="ignore")


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    """Killed (SIGKILL) after its first checkpoint and resumed, a run ends bit-for-bit where
    the uninterrupted run ends: same final parameters, same curves.csv and summary numbers."""
    out = str(tmp_path)
    whole = subprocess.run(_cli(*LONG, "--out", out, "--run-id", "whole"),
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*LONG, "--out", out, "--run-id", "killed"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(killed_dir.glob(f"checkpoints/*/*/{MANIFEST}")):
        assert proc.poll() is None, f"run ended before its first checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    summary = killed_dir / "summary.csv"
    assert not summary.exists() or len(pd.read_csv(summary)) == 0, "killed too late to test"

    # The run folder knows its own options: --resume DIR alone continues it.
    resumed = subprocess.run(_cli("popgym", "--resume", str(killed_dir)),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    meta = json.loads((killed_dir / "meta.json").read_text())
    (resume,) = meta["resumes"]
    (from_update,) = resume["from_update"].values()
    assert 0 < from_update < LONG_UPDATES

    for name in ("curves.csv", "summary.csv"):
        pd.testing.assert_frame_equal(_numbers(tmp_path / "whole" / name),
                                      _numbers(killed_dir / name))
    for a, b in zip(_final_params(tmp_path / "whole"), _final_params(killed_dir), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigint_saves_and_prints_how_to_resume(tmp_path):
    """Ctrl-C (SIGINT) stops after the chunk in flight with a checkpoint, exit status 130
    and a line holding the command that resumes; that command finishes the run."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_cli(*LONG, "--out", str(tmp_path), "--run-id", "run"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run_dir / "curves.csv").is_file() or len(
            (run_dir / "curves.csv").read_text().splitlines()) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    line = next(line for line in stderr.splitlines() if "Resume with:" in line)
    assert "checkpoint saved" in line
    assert line.endswith(f"Resume with: s5bench popgym --resume {run_dir}"), line
    assert list(run_dir.glob(f"checkpoints/*/*/{MANIFEST}"))
    command = line.split("Resume with: ", 1)[1].split()
    assert command[0] == "s5bench"
    finished = subprocess.run(_cli(*command[1:]), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert len(pd.read_csv(run_dir / "curves.csv")) == 2 * LONG_UPDATES


def test_sigterm_saves_and_prints_how_to_resume(tmp_path, monkeypatch):
    """SIGTERM (what a scheduler sends before pre-empting; injected into this process as the
    first chunk's rows are written) stops like Ctrl-C: after the chunk in flight, with a
    checkpoint, exit status 130 and the command that resumes; that command finishes the run."""
    import benchmark.experiments.cells as experiment

    real = experiment._curve_rows
    sent = []

    def curve_rows(*args):
        if not sent:
            sent.append(signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(experiment, "_curve_rows", curve_rows)
    before = signal.getsignal(signal.SIGTERM)
    run_dir = tmp_path / "run"
    result = runner.invoke(cli.app, [*SHORT, "--out", str(tmp_path), "--run-id", "run"])
    assert signal.getsignal(signal.SIGTERM) is before, "the SIGTERM handler was not restored"
    assert result.exit_code == 130, result.output
    text = " ".join(result.output.split())
    assert "SIGTERM: stopping after the current chunk" in text
    assert "stopped at update 2 of 8 (checkpoint saved)" in text
    assert text.endswith(f"Resume with: s5bench popgym --resume {run_dir}"), text
    assert list(run_dir.glob(f"checkpoints/*/2/{MANIFEST}"))
    assert len(pd.read_csv(run_dir / "curves.csv")) == 2 * 2  # seeds x the first chunk
    finished = runner.invoke(cli.app, ["popgym", "--resume", str(run_dir)])
    assert finished.exit_code == 0, finished.output
    curves = pd.read_csv(run_dir / "curves.csv")
    assert sorted(zip(curves["seed"], curves["update"], strict=True)) == [
        (seed, update) for seed in (0, 1) for update in range(1, 9)]  # each row once


def test_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path):
    """A checkpoint truncated on disk is caught by its manifest: resume says so in one line,
    continues from the previous checkpoint, and still ends with the uninterrupted numbers."""
    result = runner.invoke(cli.app, [*SHORT, "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "r"
    whole_curves = _numbers(run_dir / "curves.csv")
    whole_params = _final_params(run_dir)
    (cell_dir,) = (run_dir / "checkpoints").iterdir()
    assert sorted(int(p.name) for p in cell_dir.iterdir()) == [4, 6, 8]

    # As if killed after the final checkpoint but before the summary, with the final
    # checkpoint's biggest file then cut in half on disk.
    (run_dir / "summary.csv").write_text((run_dir / "summary.csv").read_text().splitlines()[0]
                                         + "\n")
    biggest = max((p for p in (cell_dir / "8").rglob("*") if p.is_file()
                   and p.name != MANIFEST), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])

    resumed = runner.invoke(cli.app, [*SHORT, "--resume", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    notes = [line for line in resumed.output.splitlines() if "update 8" in line]
    assert len(notes) == 1 and "truncated" in notes[0], resumed.output
    meta = json.loads((run_dir / "meta.json").read_text())
    assert list(meta["resumes"][0]["from_update"].values()) == [6]
    pd.testing.assert_frame_equal(whole_curves, _numbers(run_dir / "curves.csv"))
    for a, b in zip(whole_params, _final_params(run_dir), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_without_manifest_counts_as_unfinished(tmp_path):
    """A step whose manifest is missing (the save never finished) is skipped."""
    config = _short_config(1, "ppo.total_timesteps=512", "ppo.updates_per_chunk=1")
    checkpoints = CellCheckpoints(tmp_path, CheckpointSettings(every_minutes=0, keep=5))
    run_training(config, checkpoints=checkpoints)
    assert checkpoints.steps() == [1, 2, 3, 4]
    (tmp_path / "4" / MANIFEST).unlink()
    step, problems = checkpoints.latest_valid()
    assert step == 3 and len(problems) == 1 and "did not finish" in problems[0]


def test_stop_request_checkpoints_the_chunk_in_flight(tmp_path):
    """A stop asked for mid-run saves the state after the current chunk and raises."""
    config = _short_config(1, "ppo.total_timesteps=512", "ppo.updates_per_chunk=1")
    checkpoints = CellCheckpoints(tmp_path, CheckpointSettings(every_minutes=60, keep=2))
    chunks = []
    with pytest.raises(TrainingInterrupted) as stopped:
        run_training(config, on_chunk=chunks.append, checkpoints=checkpoints,
                     should_stop=lambda: len(chunks) >= 2)
    assert stopped.value.update == 2 and stopped.value.saved
    assert checkpoints.latest_valid() == (2, [])


def test_resume_drops_rows_past_the_checkpoint_and_cut_off_lines(tmp_path):
    """Rows written after the last checkpoint (and a half-written last line) are dropped, so
    the resumed run appends each row exactly once."""
    result = runner.invoke(cli.app, [*SHORT, "--out", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "r"
    curves = (run_dir / "curves.csv").read_text()
    (run_dir / "summary.csv").write_text("")
    (run_dir / "curves.csv").write_text(curves + "mlp,MemoryProbe,0,9,11")  # cut-off write
    (cell_dir,) = (run_dir / "checkpoints").iterdir()
    shutil.rmtree(cell_dir / "8")  # as if killed between the last rows and their checkpoint
    cells = [Cell({"model": "mlp", "env": "MemoryProbe"}, _short_config())]
    plan = prepare_resume(run_dir, cells, ("model", "env"), CheckpointSettings())
    assert plan.start == {("mlp", "MemoryProbe"): 6} and not plan.done
    kept = pd.read_csv(run_dir / "curves.csv")
    assert kept["update"].max() == 6 and len(kept) == 2 * 6
    assert any("dropped 5 row(s)" in note for note in plan.notes)  # 2 seeds x 2 + the cut one


@pytest.mark.parametrize("extra,needle", [
    (["--model", "s5"], "--model: the run in {dir} was started with mlp, this command line "
                        "says s5"),
    (["--seeds", "3"], "--seeds: the run in {dir} was started with 2, this command line says 3"),
    (["--env", "RepeatFirstEasy,MemoryProbe"],
     "--env: the run in {dir} was started with MemoryProbe, this command line says "
     "RepeatFirstEasy,MemoryProbe"),
    (["--set", "ppo.lr=0.5"], "--set: the run in {dir} was started with ppo.num_envs=8,"),
    (["--preset", "paper"], "--preset: the run in {dir} was started with quick, this command "
                            "line says paper"),
])
def test_resume_with_an_option_that_disagrees_exits_2_naming_it(extra, needle, tmp_path,
                                                                 no_compile):
    """An option typed beside --resume that differs from the run's own is named in the
    user's words (the flag, both values); nothing is compiled or written."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    options = {"model": ["mlp"], "env": ["MemoryProbe"], "seeds": 2, "preset": "quick",
               "total_steps": None, "set_": SHORT_SETTINGS, "seed": 0}
    config_doc = {"command": "popgym", "options": options,
                  "runs": [to_dict(_short_config())]}
    (run_dir / "config.json").write_text(json.dumps(config_doc))
    result = runner.invoke(cli.app, ["popgym", *extra, "--resume", str(run_dir)])
    assert_one_error_line(result, needle.format(dir=run_dir))
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json"]


@pytest.mark.parametrize("extra,needle", [
    (["--set", "ppo.lr=0.5"], "runs[0].ppo.lr is 0.001 in its config.json but 0.5"),
    (["--seeds", "3"], "runs[0].num_seeds is 2 in its config.json but 3"),
    (["--run-id", "x"], "takes no --run-id or --force"),
])
def test_resume_of_a_folder_without_options_compares_settings(extra, needle, tmp_path):
    """A folder written before run folders kept their options is resumed with the options
    typed here; the first setting that differs from its config.json is named."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    config_doc = {"command": "popgym", "runs": [to_dict(_short_config())]}
    (run_dir / "config.json").write_text(json.dumps(config_doc))
    result = runner.invoke(cli.app, [*SHORT, *extra, "--resume", str(run_dir)])
    assert_one_error_line(result, needle)


@pytest.mark.parametrize("make,needle", [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "not a run folder (it has no config.json)"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"command": "memory"}')),
     "a 'memory' run folder, not a 'popgym' one"),
])
def test_resume_of_something_that_is_not_a_run_exits_2(make, needle, tmp_path):
    target = tmp_path / "nope"
    make(target)
    result = runner.invoke(cli.app, [*SHORT, "--resume", str(target)])
    assert_one_error_line(result, needle)


def test_bad_checkpoint_settings_exit_2(tmp_path):
    for extra, needle in ((["--keep-checkpoints", "0"], "--keep-checkpoints must be at least 1"),
                          (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
                          (["--devices", "99"], "choose 1..")):
        result = runner.invoke(cli.app, [*SHORT, *extra, "--out", str(tmp_path)])
        assert result.exit_code == 2 and needle in result.output, result.output
    assert not any(tmp_path.iterdir())


def _cut_back(run_dir: Path, slug: str, step: int, labels: dict[str, str]) -> None:
    """Make a finished run look killed just after cell ``slug`` saved update ``step``.

    Its later checkpoints and its summary rows go; its curve rows past ``step`` and its
    rows in other CSVs (trials.csv) stay, as a kill before the next checkpoint leaves them:
    the resume must drop them.
    """
    cell_dir = run_dir / "checkpoints" / slug
    for newer in [p for p in cell_dir.iterdir() if int(p.name) > step]:
        shutil.rmtree(newer)
    summary = pd.read_csv(run_dir / "summary.csv")
    mine = np.logical_and.reduce([summary[k].astype(str) == v for k, v in labels.items()])
    summary[~mine].to_csv(run_dir / "summary.csv", index=False)


def test_memory_resume_skips_finished_cells_and_continues_the_cut_one(tmp_path):
    """`s5bench memory --resume`: the finished length is not trained again, the interrupted
    one continues from its checkpoint, and the CSVs end equal to the uninterrupted run's."""
    args = ["memory", "--models", "mlp", "--lengths", "4,8", "--seeds", "2",
            *[arg for setting in SHORT_SETTINGS for arg in ("--set", setting)],
            "--checkpoint-every", "0", "--keep-checkpoints", "4"]
    whole = runner.invoke(cli.app, [*args, "--out", str(tmp_path), "--run-id", "whole"])
    assert whole.exit_code == 0, whole.output
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    _cut_back(tmp_path / "cut", "mlp-8", 4, {"model": "mlp", "memory_length": "8"})

    resumed = runner.invoke(cli.app, [*args, "--resume", str(tmp_path / "cut")])
    assert resumed.exit_code == 0, resumed.output
    meta = json.loads((tmp_path / "cut" / "meta.json").read_text())
    assert meta["resumes"][0]["from_update"] == {"mlp · 8": 4}
    assert meta["resumes"][0]["finished_cells"] == 1
    for name in ("curves.csv", "summary.csv"):
        pd.testing.assert_frame_equal(_numbers(tmp_path / "whole" / name),
                                      _numbers(tmp_path / "cut" / name))
    # The finished cell was not trained again: its row still has the first run's compile time.
    first, again = (pd.read_csv(tmp_path / d / "summary.csv") for d in ("whole", "cut"))
    assert first.compile_s[0] == again.compile_s[0]


@pytest.mark.slow
def test_meta_resume_writes_every_trial_row_once(tmp_path):
    """`s5bench meta --resume`: trial rows of the unfinished cell are dropped and written
    again after its evaluation, equal to the uninterrupted run's."""
    args = ["meta", "--models", "mlp,gru", "--trials", "2", "--trial-length", "4",
            "--eval-episodes", "4", "--set", "ppo.num_envs=8", "--set", "ppo.num_steps=8",
            "--set", "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1",
            "--set", "ppo.updates_per_chunk=1", "--total-steps", "256",
            "--checkpoint-every", "0", "--keep-checkpoints", "4"]
    whole = runner.invoke(cli.app, [*args, "--out", str(tmp_path), "--run-id", "whole"])
    assert whole.exit_code == 0, whole.output
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    _cut_back(tmp_path / "cut", "gru-MetaControl", 2, {"model": "gru"})

    resumed = runner.invoke(cli.app, [*args, "--resume", str(tmp_path / "cut")])
    assert resumed.exit_code == 0, resumed.output
    for name in ("curves.csv", "summary.csv", "trials.csv"):
        pd.testing.assert_frame_equal(_numbers(tmp_path / "whole" / name),
                                      _numbers(tmp_path / "cut" / name))
