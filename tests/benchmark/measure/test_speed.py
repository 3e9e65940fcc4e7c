"""`s5bench speed`: length parsing, bad input, CSV schema, resume, failures written as rows."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import time

import jax
import jax.numpy as jnp
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from benchmark.measure import speed, timing
from benchmark.measure.speed import SpeedConfig, run_sweep
from benchmark.options import parse_lengths
from benchmark.schema import SPEED_COLUMNS
from models import BACKBONES
from tests.cli_checks import assert_one_error_line

runner = CliRunner()

TINY = ["--seq-len", "8..16", "--models", "s5,mlp", "--modes", "infer,rollout", "--batch", "2",
        "--d-model", "8", "--layers", "1", "--repeats", "2"]


@pytest.mark.parametrize("text,lengths", [
    ("1024..65536", [1024, 2048, 4096, 8192, 16384, 32768, 65536]),
    ("8..8", [8]),
    ("1..4", [1, 2, 4]),
    (" 4096, 1000,256,1000 ", [256, 1000, 4096]),
    ("7", [7]),
])
def test_parse_lengths_accepts_ranges_and_lists(text, lengths):
    """A..B gives every power of two from A to B; a comma list gives its sorted unique values."""
    assert parse_lengths(text) == lengths


@pytest.mark.parametrize("text,needle", [
    ("65536..1024", "reversed"),
    ("0..8", "0 is not a positive power of two"),
    ("1000..4000", "1000 is not a positive power of two"),
    ("1024..3000", "3000 is not a positive power of two"),
    ("", "no lengths given"),
    (" , ", "no lengths given"),
    ("a..8", "needs two integers"),
    ("256,x", "'x'"),
    ("256,-4", "not positive"),
    ("0", "not positive"),
])
def test_parse_lengths_rejects_bad_input(text, needle):
    """Reversed, zero, non-power-of-two, empty and non-integer lengths raise a one-line error."""
    with pytest.raises(ValueError, match=needle) as info:
        parse_lengths(text)
    assert "\n" not in str(info.value)


@pytest.fixture
def no_sweep(monkeypatch):
    """Fail the test if a command reaches the sweep (validation must come first)."""
    def boom(*args, **kwargs):
        raise AssertionError("the sweep started despite bad input")

    monkeypatch.setattr(speed, "run_sweep", boom)


@pytest.mark.parametrize("args,needle", [
    (["--seq-len", "65536..1024"], "--seq-len: range '65536..1024' is reversed"),
    (["--seq-len", "0..8"], "0 is not a positive power of two"),
    (["--seq-len", "1000..4000"], "1000 is not a positive power of two"),
    (["--seq-len", ""], "no lengths given"),
    (["--models", "s6"], "valid models: s5, gru, lstm"),
    (["--models", ""], "no model given"),
    (["--modes", "train,fwd"], "unknown mode 'fwd'; valid modes: train, infer, rollout"),
    (["--modes", ","], "no mode given"),
    (["--batch", "0"], "--batch must be a positive integer"),
    (["--d-model", "-1"], "--d-model must be a positive integer"),
    (["--layers", "0"], "--layers must be a positive integer"),
    (["--repeats", "0"], "--repeats must be a positive integer"),
    (["--max-seconds", "0"], "--max-seconds must be positive"),
    (["--resume", "nope"], "--resume nope: no such folder"),
    (["--resume", "x", "--run-id", "x"], "it takes no --run-id or --force"),
])
def test_bad_input_exits_2_with_one_line(args, needle, no_sweep, tmp_path):
    """Bad input: exit status 2, one line naming the problem, nothing written or compiled."""
    result = runner.invoke(cli.app, ["speed", *args, "--out", str(tmp_path)])
    assert_one_error_line(result, needle)
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real tiny sweep through the CLI, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("speed")
    result = runner.invoke(cli.app, ["speed", *TINY, "--out", str(out), "--run-id", "t"])
    assert result.exit_code == 0, result.output
    return out / "t", result.output


def test_tiny_sweep_writes_the_csv_schema(tiny_run):
    """A real sweep writes config.json, meta.json and one ok row per cell with exact columns."""
    run_dir, output = tiny_run
    rows = pd.read_csv(run_dir / "speed.csv", keep_default_na=False)
    assert list(rows.columns) == list(SPEED_COLUMNS)
    # s5 twice (parallel, sequential) and mlp once, x 2 modes x 2 lengths
    assert len(rows) == 3 * 2 * 2
    assert set(zip(rows.model, rows.evaluation, strict=True)) == {
        ("s5", "parallel"), ("s5", "sequential"), ("mlp", "")}
    assert (rows.status == "ok").all(), rows.message.tolist()
    assert rows[["model", "evaluation", "mode", "seq_len", "batch"]].duplicated().sum() == 0
    medians = rows.median_s.astype(float)
    assert ((rows.min_s.astype(float) <= medians) & (medians <= rows.max_s.astype(float))).all()
    tokens_per_s = rows.seq_len * rows.batch / medians
    assert (rows.tokens_per_s.astype(float) - tokens_per_s).abs().max() < 1e-3
    assert (rows.compile_s.astype(float) > 0).all() and (rows.repeats == 2).all()
    assert (rows.d_model == 8).all() and (rows.num_layers == 1).all()
    assert (rows.backend != "").all() and (rows.device != "").all()
    # XLA's plan holds at least the call's arguments (parameters and the [T, B] data).
    for _, row in rows[rows.model == "mlp"].iterrows():
        backbone = BACKBONES["mlp"]().sized(8, 1)
        _, args = timing.make_workload(backbone, row["mode"], int(row.seq_len), 2,
                                       network_width=8)
        arguments = sum(x.nbytes for x in jax.tree.leaves(args) if hasattr(x, "nbytes"))
        assert int(row.peak_memory_bytes) >= arguments > 0
    config = json.loads((run_dir / "config.json").read_text())
    fields = {f.name for f in dataclasses.fields(SpeedConfig)}
    assert SpeedConfig(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in config.items() if k in fields}).seq_lens == (8, 16)
    assert config["command"] == "speed" and config["options"]["seq_len"] == [8, 16]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert {"git_commit", "backend", "device_kind", "versions"} <= set(meta)
    assert "T=16" in output and "results:" in output


def test_resume_skips_finished_rows(tiny_run, tmp_path, monkeypatch):
    """--resume measures only the cells missing from speed.csv and keeps the rows already there."""
    run_dir = tmp_path / "t"
    shutil.copytree(tiny_run[0], run_dir)
    csv_path = run_dir / "speed.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    kept = lines[:-3]  # header + 9 rows: the last 3 cells are "lost"
    csv_path.write_text("".join(kept))
    measured = []
    real = timing.time_function

    def counting(fn, args, **kwargs):
        measured.append(jax.tree.leaves(args)[0].shape)
        return real(fn, args, **kwargs)

    monkeypatch.setattr(timing, "time_function", counting)
    # The folder knows its own settings: --resume DIR alone continues the sweep.
    result = runner.invoke(cli.app, ["speed", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert len(measured) == 3
    after = csv_path.read_text().splitlines(keepends=True)
    assert after[:len(kept)] == kept and len(after) == len(lines)
    keys = pd.read_csv(csv_path)[["model", "evaluation", "mode", "seq_len", "batch"]]
    assert keys.duplicated().sum() == 0
    assert len(json.loads((run_dir / "meta.json").read_text())["resumes"]) == 1


def test_resume_with_other_sizes_is_refused(tiny_run, tmp_path, no_sweep):
    """--resume with a different d_model exits 2 naming the setting, before any compile."""
    shutil.copytree(tiny_run[0], tmp_path / "t")
    args = [a if a != "8" else "16" for a in TINY]  # --d-model 8 -> 16 (8..16 is one token)
    result = runner.invoke(cli.app, ["speed", *args, "--resume", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    assert (f"--d-model: the run in {tmp_path / 't'} was started with 8, this command line "
            f"says 16") in " ".join(result.output.split()), result.output


def test_existing_run_folder_is_not_overwritten(tiny_run, no_sweep):
    """Without --resume or --force an existing run folder is refused with exit 2."""
    result = runner.invoke(cli.app, ["speed", *TINY, "--out", str(tiny_run[0].parent),
                                     "--run-id", "t"])
    assert result.exit_code == 2 and "--resume" in result.output, result.output


def _config(**kwargs) -> SpeedConfig:
    base = dict(seq_lens=(8, 16, 32), models=("mlp",), modes=("infer",), batch=2, d_model=8,
                num_layers=1, repeats=2, warmup=1)
    return SpeedConfig(**{**base, **kwargs})


def _inject(monkeypatch, wrap):
    """Make the workload of length >= 16 ``wrap(fn)`` (the others are untouched)."""
    real = timing.make_workload

    def make_workload(backbone, mode, seq_len, batch, **kwargs):
        fn, args = real(backbone, mode, seq_len, batch, **kwargs)
        return (wrap(fn) if seq_len == 16 else fn), args

    monkeypatch.setattr(timing, "make_workload", make_workload)


@pytest.mark.parametrize("status,error", [
    ("oom", jax.errors.JaxRuntimeError(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 64.00GiB.")),
    ("error", ValueError("injected failure")),
])
def test_injected_failure_is_a_row_and_longer_lengths_are_skipped(status, error, monkeypatch,
                                                                 tmp_path):
    """A cell raising while compiling becomes an oom/error row; longer lengths become skipped."""
    def failing(fn):
        def wrapped(*args):
            raise error
        return wrapped

    _inject(monkeypatch, failing)
    rows = run_sweep(_config(), tmp_path / "speed.csv")
    written = pd.read_csv(tmp_path / "speed.csv", keep_default_na=False)
    assert written.status.tolist() == ["ok", status, "skipped"] == [r["status"] for r in rows]
    assert str(error) in written.message[1]
    assert "at seq_len 16" in written.message[2]


def test_injected_timeout_is_a_row_and_longer_lengths_are_skipped(monkeypatch, tmp_path):
    """A cell whose first call would blow --max-seconds becomes a timeout row; longer: skipped."""
    def slow(fn):
        def wrapped(*args):
            pause = jax.pure_callback(lambda: (time.sleep(0.3), jnp.float32(0))[1],
                                      jax.ShapeDtypeStruct((), jnp.float32))
            return fn(*args), pause
        return wrapped

    _inject(monkeypatch, slow)
    run_sweep(_config(max_seconds=0.6), tmp_path / "speed.csv")
    written = pd.read_csv(tmp_path / "speed.csv", keep_default_na=False)
    assert written.status.tolist() == ["ok", "timeout", "skipped"]
    assert "--max-seconds 0.6" in written.message[1]
    assert written.compile_s[1] != "" and written.median_s[1] == ""


def _seq_len(args) -> int:
    """T of a workload's arguments (every mode's last argument is [T, B] or a key after it)."""
    return max(x.shape[0] for x in jax.tree.leaves(args) if getattr(x, "ndim", 0) >= 2
               and x.dtype == jnp.bool_)


def test_timeout_after_k_of_n_repeats_keeps_the_repeats_done(monkeypatch, tmp_path):
    """Injected call times at T=16 (warm-up 0.1 s, then 0.1, 0.1, 0.9 s) cross --max-seconds
    1 during the 3rd of 5 repeats: a timeout row with those 3 repeats' statistics (median
    0.1, max 0.9, 16 x 2 / 0.1 = 320 tokens/s) and the compile time; T=32 is skipped."""
    times = iter([0.1, 0.1, 0.1, 0.9])
    monkeypatch.setattr(timing, "run_once",
                        lambda compiled, args: next(times) if _seq_len(args) == 16 else 0.001)
    rows = run_sweep(_config(repeats=5, max_seconds=1.0), tmp_path / "speed.csv")
    written = pd.read_csv(tmp_path / "speed.csv", keep_default_na=False)
    assert written.status.tolist() == ["ok", "timeout", "skipped"]
    timed_out = rows[1]
    assert "stopped after 3 of 5 repeats" in timed_out["message"]
    assert timed_out["repeats"] == 3 and timed_out["compile_s"] > 0
    assert (timed_out["median_s"], timed_out["min_s"], timed_out["max_s"]) == (0.1, 0.1, 0.9)
    assert timed_out["tokens_per_s"] == pytest.approx(320.0)
    assert float(written.max_s[1]) == 0.9 and int(written.repeats[1]) == 3


def test_a_recompile_inside_a_sweep_is_an_error_row(monkeypatch, tmp_path):
    """A cell whose function is traced again on every call (injected at T=16) is refused by
    the trace count: an error row naming RecompileError, no time reported; T=32 skipped."""
    real = timing.compile_function

    def retracing_compile(fn, args):
        if _seq_len(args) != 16:
            return real(fn, args)
        fn(*args)  # "compile": one trace
        return fn  # each call runs the Python function again: a trace per call

    monkeypatch.setattr(timing, "compile_function", retracing_compile)
    rows = run_sweep(_config(), tmp_path / "speed.csv")
    assert [r["status"] for r in rows] == ["ok", "error", "skipped"]
    assert rows[1]["message"].startswith("RecompileError: the timed function was traced")
    assert rows[1]["median_s"] is None and rows[1]["repeats"] == 0


def test_peak_memory_bytes_is_the_compiled_programs_planned_memory(monkeypatch, tmp_path):
    """peak_memory_bytes is what planned_memory_bytes reports for the compiled cell (a
    sentinel injected here), for every ok row."""
    seen = []

    def planned(compiled):
        seen.append(compiled)
        return 123_456_789 + len(seen)

    monkeypatch.setattr(timing, "planned_memory_bytes", planned)
    rows = run_sweep(_config(seq_lens=(8, 16)), tmp_path / "speed.csv")
    assert [r["peak_memory_bytes"] for r in rows] == [123_456_790, 123_456_791]
    assert all(isinstance(c, jax.stages.Compiled) for c in seen)
    written = pd.read_csv(tmp_path / "speed.csv")
    assert written.peak_memory_bytes.tolist() == [123_456_790, 123_456_791]


def _fake_measure(calls):
    """A ``measure`` that records each seq_len and reports 0.1 s per call per 8 steps."""
    def measure(cell, config, device, backend, on_phase=None):
        calls.append(cell.seq_len)
        row = speed._row(cell, config, device, backend)
        return {**row, "status": "ok", **speed._stats([0.1 * cell.seq_len / 8] * 2, cell)}

    return measure


def test_predicted_timeout_skips_compiling(tmp_path):
    """When the last length's time scaled to this length is over budget, nothing is compiled."""
    calls = []
    run_sweep(_config(seq_lens=(8, 16, 32, 64), max_seconds=1.0), tmp_path / "speed.csv",
              measure=_fake_measure(calls))
    written = pd.read_csv(tmp_path / "speed.csv", keep_default_na=False)
    # 16: 0.2 s x 3 calls fits 1 s; 32: 0.4 s x 3 does not.
    assert calls == [8, 16]
    assert written.status.tolist() == ["ok", "ok", "timeout", "skipped"]
    assert written.message[2].startswith("predicted, not run")


def test_predicted_timeout_follows_the_series_own_growth(tmp_path):
    """A series whose time grows as T^2 (attention) is predicted with its own log-log slope:
    0.01 s at T=8 and 0.04 s at 16 predict 0.16 s at 32, so 3 calls exceed 0.3 s and 32 is
    not compiled (linear scaling would have predicted 0.08 s x 3 = 0.24 s and run it)."""
    calls = []

    def quadratic(cell, config, device, backend, on_phase=None):
        calls.append(cell.seq_len)
        row = speed._row(cell, config, device, backend)
        return {**row, "status": "ok",
                **speed._stats([0.01 * (cell.seq_len / 8) ** 2] * 2, cell)}

    run_sweep(_config(seq_lens=(8, 16, 32), max_seconds=0.3), tmp_path / "speed.csv",
              measure=quadratic)
    written = pd.read_csv(tmp_path / "speed.csv", keep_default_na=False)
    assert calls == [8, 16]
    assert written.status.tolist() == ["ok", "ok", "timeout"]
    assert "about 0.16 s here" in written.message[2]


def test_a_cell_planned_over_the_device_memory_is_an_oom_row_not_run(tmp_path, monkeypatch):
    """When XLA plans more memory for a call than the device has, the cell is not run: an
    oom row with the planned size, and the longer lengths of its series are skipped."""
    monkeypatch.setattr(timing, "device_memory_bytes", lambda: 1024)
    ran = []
    real = timing.run_once
    monkeypatch.setattr(timing, "run_once", lambda *a: ran.append(1) or real(*a))
    rows = run_sweep(_config(seq_lens=(8, 16)), tmp_path / "speed.csv")
    assert not ran
    assert [r["status"] for r in rows] == ["oom", "skipped"]
    assert "out of memory, not run: XLA planned" in rows[0]["message"]


def test_resume_drops_a_row_cut_off_mid_write(tmp_path):
    """A partial last line (a kill mid-write) is measured again, not glued to the next row."""
    csv_path = tmp_path / "speed.csv"
    run_sweep(_config(), csv_path, measure=_fake_measure([]))
    text = csv_path.read_text()
    cut = text[:text.rstrip("\n").rindex("\n") + 1] + "mlp,,infer,3"  # the T=32 row, cut
    csv_path.write_text(cut)
    calls = []
    rows = run_sweep(_config(), csv_path, measure=_fake_measure(calls))
    assert calls == [32]
    written = pd.read_csv(csv_path, keep_default_na=False)
    assert written.seq_len.tolist() == [8, 16, 32] and (written.status == "ok").all()
    assert [r["seq_len"] for r in rows] == [8, 16, 32]


def test_cells_hand_listed():
    """make_cells gives, per model, each evaluation (S5: parallel then sequential), each mode
    in the order given and every length ascending; the cells written out by hand."""
    cells = speed.make_cells(_config(models=("mlp", "s5"), modes=("train", "infer"),
                                     seq_lens=(32, 8, 16)))
    expected = [(model, evaluation, mode, t)
                for model, evaluation in (("mlp", ""), ("s5", "parallel"), ("s5", "sequential"))
                for mode in ("train", "infer") for t in (8, 16, 32)]
    assert [(c.model, c.evaluation, c.mode, c.seq_len) for c in cells] == expected
    assert all(c.batch == 2 for c in cells)
    s5 = [c.backbone for c in cells if c.model == "s5"]
    assert {(b.evaluation, b.d_model, b.state_size, b.num_layers) for b in s5} == {
        ("parallel", 8, 8, 1), ("sequential", 8, 8, 1)}
    assert all(c.backbone.evaluation == c.evaluation for c in cells if c.model == "s5")


def test_every_backbone_is_swept():
    """By default every registered backbone is swept; the linear recurrences (s5, lru, mamba, mingru) once per evaluation (a new backbone must be added to this hand-written list)."""
    config = _config(models=tuple(BACKBONES), seq_lens=(8,), modes=("train", "infer"))
    cells = speed.make_cells(config)
    variants = [(c.model, c.evaluation) for c in cells if c.mode == "train"]
    assert variants == [("s5", "parallel"), ("s5", "sequential"), ("gru", ""), ("lstm", ""),
                        ("trxl", ""), ("attention", ""), ("lru", "parallel"),
                        ("lru", "sequential"), ("mamba", "parallel"), ("mamba", "sequential"),
                        ("mingru", "parallel"), ("mingru", "sequential"), ("mlp", "")]
    assert len(cells) == 2 * len(variants)


def test_sigterm_stops_after_the_cell_in_flight_and_resume_finishes(tmp_path, monkeypatch):
    """SIGTERM during a cell (StopRequest, as for training): that cell's row is written, the
    sweep stops with exit 130 naming the resume command, and --resume measures the rest."""
    measured = []
    real = timing.time_function

    def stopping(fn, args, **kwargs):
        measured.append(1)
        if len(measured) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets the flag
        return real(fn, args, **kwargs)

    monkeypatch.setattr(timing, "time_function", stopping)
    args = ["speed", "--seq-len", "8..16", "--models", "mlp", "--modes", "infer", "--batch",
            "2", "--d-model", "8", "--layers", "1", "--repeats", "1"]
    result = runner.invoke(cli.app, [*args, "--out", str(tmp_path), "--run-id", "s"])
    output = " ".join(result.output.split())
    assert result.exit_code == 130, result.output
    assert "stopped after 1 of 2 cells" in output
    assert f"s5bench speed --resume {tmp_path / 's'}" in output
    assert len(measured) == 1 and len(pd.read_csv(tmp_path / "s" / "speed.csv")) == 1
    again = runner.invoke(cli.app, ["speed", "--resume", str(tmp_path / "s")])
    assert again.exit_code == 0, again.output
    assert len(measured) == 2
    assert list(pd.read_csv(tmp_path / "s" / "speed.csv").seq_len) == [8, 16]
