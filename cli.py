"""The ``s5bench`` command line: parse, validate, then call the library. No maths here.

Every command checks its arguments before anything is compiled: bad input gets one line
on stderr naming the problem and the valid choices, and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="s5bench",
    help="Benchmark memory backbones (S5, GRU, LSTM, Transformer-XL) for RL under one PPO loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Piped or captured output has no terminal width; 120 columns keep result tables readable.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


class BadInput(Exception):
    """Raised by a validator; the command prints it in one line and exits with status 2."""


def _fail(message: str) -> typer.Exit:
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _split(values: list[str] | None) -> list[str]:
    """``["s5,gru", "lstm"]`` -> ``["s5", "gru", "lstm"]`` (repeatable or comma lists)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


# ----------------------------------------------------- options every training command takes

SeedsOption = Annotated[int, typer.Option(help="Seeds trained at once (a vmap axis).")]
SeedOption = Annotated[int, typer.Option(help="Base seed; seed i uses key(seed + i).")]
OutOption = Annotated[Path, typer.Option(help="Parent folder of the run folder.")]
RunIdOption = Annotated[str | None, typer.Option(
    help="Name of the run folder (default: the start time).")]
ForceOption = Annotated[bool, typer.Option(help="Overwrite the CSVs of an existing run folder.")]
ResumeOption = Annotated[Path | None, typer.Option(
    "--resume", help="Continue the run in this folder from its last checkpoint, appending "
    "to its CSVs, with the options it was started with (kept in its config.json). An "
    "option given beside it must agree with the saved one: a difference is named, exit 2.")]
CheckpointEveryOption = Annotated[float, typer.Option(
    "--checkpoint-every", help="Minutes of training between checkpoints (0: after every "
    "chunk). A cell is also saved when it ends and on Ctrl-C or SIGTERM.")]
KeepCheckpointsOption = Annotated[int, typer.Option(
    "--keep-checkpoints", help="Newest checkpoints kept per cell (the final one included).")]
DevicesOption = Annotated[int | None, typer.Option(
    "--devices", help="Use at most N of the visible devices (default: all). Seeds are "
    "split over them, then environments.")]
MultihostOption = Annotated[bool, typer.Option(
    "--multihost", help="Join a multi-host run (one process per host) with "
    "jax.distributed.initialize; process 0 writes the results. See the README.")]


@dataclasses.dataclass(frozen=True)
class LongRun:
    """The options every training command shares (checkpointing, resume, devices)."""

    resume: Path | None
    checkpoint_every: float
    keep_checkpoints: int
    devices: int | None
    multihost: bool

    def settings(self):
        from benchmark.checkpoint import CheckpointSettings

        try:
            return CheckpointSettings(every_minutes=self.checkpoint_every,
                                      keep=self.keep_checkpoints)
        except ValueError as error:
            raise BadInput(str(error)) from None


def _validate_long_run(long: LongRun, command: str, config_doc: dict, run_id: str | None,
                       force: bool) -> None:
    """Check the checkpoint settings, --devices and --resume before anything compiles."""
    long.settings()
    if long.multihost:
        from benchmark.sharding import init_multihost

        init_multihost()
    if long.devices is not None:
        from benchmark.sharding import available_devices

        try:
            available_devices(long.devices)
        except ValueError as error:
            raise BadInput(str(error)) from None
    if long.resume is None:
        return
    if run_id is not None or force:
        raise BadInput(f"--resume continues {long.resume}; it takes no --run-id or --force")
    from benchmark.results import config_difference

    saved = _saved_run_config(long.resume, command)
    if "options" not in saved:  # written before run folders kept their options
        config_doc = {k: v for k, v in config_doc.items() if k != "options"}
    # The options agree (``_run_options``); what is left to differ is the code that turns
    # them into settings (say a preset changed since the run started).
    difference = config_difference(saved, config_doc)
    if difference is not None:
        raise BadInput(f"--resume {long.resume}: {difference}")


def _saved_run_config(run_dir: Path, command: str) -> dict:
    """``run_dir``'s config.json, checked to be a ``command`` run folder (else BadInput)."""
    from benchmark.results import read_run_config

    try:
        saved = read_run_config(run_dir)
    except ValueError as error:
        raise BadInput(f"--resume {run_dir}: {error}") from None
    # Speed folders written before config.json named its command hold a SpeedConfig.
    if saved.get("command", "speed" if "seq_lens" in saved else None) != command:
        raise BadInput(f"--resume {run_dir}: a {saved.get('command')!r} run folder, "
                       f"not a {command!r} one")
    return saved


def _typed_here(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on this command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _flag(ctx: typer.Context, name: str) -> str:
    """The option's name as the user types it, e.g. ``--model`` for ``model``."""
    param = next(p for p in ctx.command.params if p.name == name)
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])


def _shown(value) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if value else "nothing"
    return "nothing" if value is None else str(value)


def _run_options(ctx: typer.Context, command: str, resume: Path | None,
                 options: dict[str, object], *, extendable: tuple[str, ...] = (),
                 legacy: Callable[[dict], dict | None] = lambda saved: None,
                 ) -> dict[str, object]:
    """The options a run is built from: this command line's, or with --resume its own.

    Every run folder keeps the (normalised) options that built it in config.json, so
    ``--resume DIR`` alone continues the run. An option typed beside ``--resume`` must
    agree with the saved one, else BadInput names it in the user's words; options in
    ``extendable`` (lists) are joined with the saved ones instead. For a folder written
    before options were kept, ``legacy(saved config)`` may rebuild them; if it cannot,
    this command line is used and compared field by field later.
    """
    options = json.loads(json.dumps(options))  # tuples -> lists, as config.json holds them
    if resume is None:
        return options
    saved_config = _saved_run_config(resume, command)
    saved = saved_config.get("options") or legacy(saved_config)
    if saved is None:
        return options
    merged = dict(options)
    for name, value in options.items():
        if name not in saved:
            continue
        if not _typed_here(ctx, name):
            merged[name] = saved[name]
        elif name in extendable:
            merged[name] = list(dict.fromkeys([*saved[name], *value]))
        elif value != saved[name]:
            raise BadInput(f"{_flag(ctx, name)}: the run in {resume} was started with "
                           f"{_shown(saved[name])}, this command line says {_shown(value)}")
    return merged


def _start_session(command: str, config_doc: dict, cells: list, label_columns, out: Path,
                   run_id: str | None, force: bool, long: LongRun, stop,
                   extra_csvs: dict[str, tuple[str, ...]] | None = None):
    """Create (or reopen, with --resume) the run folder; the ``Session`` its cells share."""
    import datetime as dt

    from benchmark.results import (
        RunExistsError,
        collect_meta,
        device_info,
        make_run_dir,
        write_json,
    )
    from benchmark.sweep import Session, prepare_resume

    settings = long.settings()
    checkpoint_meta = {"every_minutes": settings.every_minutes, "keep": settings.keep}
    plan = None
    if long.resume is not None:
        run_dir = long.resume
        meta_path = run_dir / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else collect_meta()
        plan = prepare_resume(run_dir, cells, label_columns, settings, extra_csvs)
        meta.setdefault("resumes", []).append({
            "when": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command_line": " ".join(["s5bench", *sys.argv[1:]]),
            "from_update": plan.from_update(cells, label_columns),
            "finished_cells": len(plan.done),
            "checkpoint": checkpoint_meta,
            **{k: v for k, v in device_info().items() if k != "devices"},
        })
        for note in plan.notes:
            err_console.print(f"resume: {note}", markup=False, highlight=False, soft_wrap=True)
    else:
        try:
            run_dir = make_run_dir(out, run_id, force)
        except (RunExistsError, OSError) as error:
            raise _fail(str(error)) from None
        write_json(run_dir / "config.json", config_doc)
        meta = collect_meta(_backbone_meta(cell.config for cell in cells))
        meta["checkpoint"] = checkpoint_meta
    meta["devices_limit"] = long.devices
    write_json(run_dir / "meta.json", meta)
    return Session(run_dir, checkpoint=settings, devices=long.devices,
                   should_stop=stop.requested, resume=plan, meta=meta)


def _resume_hint(command: str, run_dir: Path) -> str:
    """The short command that continues a stopped run: the folder knows its own options."""
    import shlex

    return shlex.join(["s5bench", command, "--resume", str(run_dir)])


def _train(command: str, config_doc: dict, cells: list, label_columns, out: Path,
           run_id: str | None, force: bool, long: LongRun, train, *, what: str = "",
           extra_csvs: dict[str, tuple[str, ...]] | None = None):
    """Open (or, with --resume, reopen) the run folder and call ``train(session)``.

    Ctrl-C and SIGTERM are caught for the whole run; a stop becomes one line saying how to
    resume, and exit status 130. Returns ``(run_dir, whatever train returned)``.
    """
    from benchmark.training import StopRequest, TrainingInterrupted

    with StopRequest(err_console.print) as stop:
        session = _start_session(command, config_doc, cells, label_columns, out, run_id,
                                 force, long, stop, extra_csvs)
        console.print(f"[bold]s5bench {command}[/]: {len(cells)} cell(s){what}, writing to "
                      f"{session.run_dir}")
        try:
            return session.run_dir, train(session)
        except TrainingInterrupted as error:
            raise _stopped(error, command, session.run_dir) from None


def _finish(rows: list[dict], run_dir: Path) -> None:
    """Name the run folder; exit 1 unless every seed of every cell finished."""
    console.print(f"results: {run_dir}")
    if any(row["status"] != "ok" for row in rows):
        raise typer.Exit(code=1)


def _stopped(error, command: str, run_dir: Path) -> typer.Exit:
    saved = "checkpoint saved" if error.saved else "nothing new to save"
    err_console.print(f"stopped at update {error.update} of {error.num_updates} ({saved}); "
                      f"every finished row is in {run_dir}. Resume with: "
                      f"{_resume_hint(command, run_dir)}", markup=False, highlight=False,
                      soft_wrap=True)
    return typer.Exit(code=130)


# ----------------------------------------------------------------------------- popgym


def _validate_models(names: list[str]) -> list[str]:
    from models import backbone_config_class

    if not names:
        raise BadInput("no model given; valid models: " + ", ".join(_model_names()))
    for name in names:
        try:
            backbone_config_class(name)
        except ValueError as error:
            raise BadInput(str(error)) from None
    return list(dict.fromkeys(names))


def _model_names() -> list[str]:
    from models import BACKBONES

    return list(BACKBONES)


def _validate_envs(selections: list[str]) -> list[str]:
    from envs import expand

    if not selections:
        raise BadInput("no environment given; give an id, alias or family from "
                       "`s5bench envs`, or all")
    env_ids: list[str] = []
    for selection in selections:
        try:
            env_ids += expand(selection)
        except ValueError as error:
            raise BadInput(str(error)) from None
    return list(dict.fromkeys(env_ids))


def _build_run_configs(models: list[str], env_ids: list[str], preset: str, seeds: int,
                       seed: int, total_steps: int | None, assignments: list[str]):
    """One validated ``RunConfig`` per (model, env); raises BadInput on any bad value."""
    from benchmark.config import check_run_size, make_preset, override, with_total_timesteps

    try:
        check_run_size(seeds, total_steps)
    except ValueError as error:
        raise BadInput(str(error)) from None
    configs = {}
    for model in models:
        for env_id in env_ids:
            try:
                config = make_preset(preset, model, env_id, num_seeds=seeds)
                config = dataclasses.replace(config, seed=seed)
                config = override(config, assignments)
                if total_steps is not None:
                    config = with_total_timesteps(config, total_steps)
            except ValueError as error:
                raise BadInput(str(error)) from None
            configs[model, env_id] = config
    return configs


@app.command()
def popgym(
    ctx: typer.Context,
    model: Annotated[list[str], typer.Option(
        "--model", "-m", help="Backbone(s): a name from `s5bench models`, repeatable or "
        "comma-separated.")] = ["s5"],  # noqa: B006 (typer needs a literal default)
    env: Annotated[list[str], typer.Option(
        "--env", "-e", help="Environment id, alias, family name (all three difficulties) "
        "or `all` (every POPGym environment); repeatable or comma-separated.")] = [  # noqa: B006
        "RepeatPreviousEasy"],
    seeds: SeedsOption = 1,
    preset: Annotated[str, typer.Option(
        help="quick (CPU-sized, minutes) or paper (Lu et al.: 64 envs x 1024 steps, 15M "
        "steps).")] = "quick",
    total_steps: Annotated[int | None, typer.Option(
        help="Environment steps per seed (overrides the preset's ppo.total_timesteps).")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override any config field, e.g. --set ppo.lr=3e-4 --set "
        "backbone.num_layers=2; repeatable. An unknown key lists the valid ones.")] = None,
    seed: SeedOption = 0,
    out: OutOption = Path(
        "results/popgym"),
    run_id: RunIdOption = None,
    force: ForceOption = False,
    resume: ResumeOption = None,
    checkpoint_every: CheckpointEveryOption = 10.0,
    keep_checkpoints: KeepCheckpointsOption = 2,
    devices: DevicesOption = None,
    multihost: MultihostOption = False,
) -> None:
    """Train backbones with PPO on POPGym (or any registered) environments.

    Writes OUT/RUN_ID/ with config.json, meta.json, curves.csv (one row per model, env,
    seed and update), summary.csv (one row per model, env and seed) and checkpoints/.
    Exit status: 0 when every seed finished, 1 when a seed diverged or a cell failed,
    2 for bad input, 130 when stopped (Ctrl-C; the printed command resumes).
    """
    from benchmark.config import to_dict
    from benchmark.sweep import Cell, run_cells, summary_table

    long = LongRun(resume, checkpoint_every, keep_checkpoints, devices, multihost)
    try:
        options = _run_options(ctx, "popgym", resume, {
            "model": _split(model), "env": _split(env), "seeds": seeds, "preset": preset,
            "total_steps": total_steps, "set_": set_ or [], "seed": seed})
        models = _validate_models(options["model"])
        env_ids = _validate_envs(options["env"])
        configs = _build_run_configs(models, env_ids, options["preset"], options["seeds"],
                                     options["seed"], options["total_steps"], options["set_"])
        config_doc = {"command": "popgym", "options": options,
                      "runs": [to_dict(c) for c in configs.values()]}
        _validate_long_run(long, "popgym", config_doc, run_id, force)
    except BadInput as error:
        raise _fail(str(error)) from None
    cells = [Cell({"model": model, "env": env_id}, config)
             for (model, env_id), config in configs.items()]
    labels = ("model", "env")
    run_dir, rows = _train("popgym", config_doc, cells, labels, out, run_id, force, long,
                           lambda session: run_cells(cells, session.run_dir, labels, console,
                                                     session=session))
    console.print(summary_table(rows, labels, "popgym: mean over seeds"))
    if len({row["env"] for row in rows}) > 1:
        from benchmark.aggregate import aggregate_by_model
        from benchmark.results import CsvLog
        from benchmark.schema import AGGREGATE_COLUMNS

        with CsvLog(run_dir / "aggregate.csv", AGGREGATE_COLUMNS) as log:
            log.write_many(aggregate_by_model(rows))
    _finish(rows, run_dir)


def _backbone_meta(configs) -> dict:
    """Settings resolved at run time (e.g. which S5 evaluation ran on this backend)."""
    meta = {}
    for config in configs:
        resolved = getattr(config.backbone, "resolved_evaluation", None)
        if resolved is not None:
            meta[f"{config.model}_evaluation"] = resolved
    return meta


# ----------------------------------------------------------------------------- memory


@app.command()
def memory(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option(
        "--models", "--model", "-m", help="Backbones from `s5bench models`, comma-separated "
        "or repeated (default: all, the mlp control included).")] = None,
    lengths: Annotated[str, typer.Option(
        help="Memory lengths (steps between the cue and the decision): A..B (every power "
        "of two from A to B, both powers of two) or a comma list such as 5,10,30.")
    ] = "4..1024",
    seeds: SeedsOption = 3,
    preset: Annotated[str, typer.Option(
        help="quick (CPU-sized) or paper (Lu et al.'s PPO settings). Per memory length L, "
        "ppo.num_steps becomes the larger of the preset's and the smallest power of two "
        ">= L + 1 (one whole episode), and ppo.num_envs shrinks by the same factor (not "
        "below ppo.num_minibatches) so updates keep the preset's size; the previous-action "
        "input is off (it could carry the cue).")] = "quick",
    total_steps: Annotated[int | None, typer.Option(
        help="Environment steps per seed and memory length (overrides the preset's "
        "ppo.total_timesteps).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override any config field after the per-length choice above, e.g. "
        "--set ppo.lr=3e-4; repeatable. The rollout must still cover an episode.")] = None,
    seed: SeedOption = 0,
    out: OutOption = Path(
        "results/memory"),
    run_id: RunIdOption = None,
    force: ForceOption = False,
    resume: ResumeOption = None,
    checkpoint_every: CheckpointEveryOption = 10.0,
    keep_checkpoints: KeepCheckpointsOption = 2,
    devices: DevicesOption = None,
    multihost: MultihostOption = False,
) -> None:
    """Train backbones with PPO on bsuite's MemoryChain over a sweep of memory lengths.

    The cue shows at the first step; L steps later the agent must take the action it
    named (+1 right, -1 wrong; no memory scores 0). One compiled program per (model,
    length), seeds vmapped. Writes OUT/RUN_ID/ with config.json, meta.json, curves.csv
    (one row per model, memory_length, seed and update) and summary.csv (one row per
    model, memory_length and seed, with success = best return >= 0.8, i.e. at least 90%
    of cues recalled).
    """
    from benchmark.config import to_dict
    from benchmark.memory import (
        ENV_ID,
        EXTRA_SUMMARY,
        LABEL_COLUMNS,
        SUCCESS_RETURN,
        build_cells,
    )
    from benchmark.speed import parse_lengths
    from benchmark.sweep import run_cells, summary_table

    long = LongRun(resume, checkpoint_every, keep_checkpoints, devices, multihost)
    try:
        options = _run_options(ctx, "memory", resume, {
            "model": _split(model) if model is not None else _model_names(),
            "lengths": lengths, "seeds": seeds, "preset": preset, "total_steps": total_steps,
            "set_": set_ or [], "seed": seed})
        names = _validate_models(options["model"])
        try:
            memory_lengths = parse_lengths(options["lengths"])
        except ValueError as error:
            raise BadInput(f"--lengths: {error}") from None
        try:
            cells = build_cells(names, memory_lengths, options["preset"], options["seeds"],
                                options["seed"], options["total_steps"], options["set_"])
        except ValueError as error:
            raise BadInput(str(error)) from None
        runs = [{**to_dict(cell.config), "memory_length": cell.labels["memory_length"],
                 "env_params": dict(cell.env_params)} for cell in cells]
        config_doc = {"command": "memory", "options": options, "env_id": ENV_ID,
                      "success_return": SUCCESS_RETURN, "models": names,
                      "memory_lengths": memory_lengths, "runs": runs}
        _validate_long_run(long, "memory", config_doc, run_id, force)
    except BadInput as error:
        raise _fail(str(error)) from None
    run_dir, rows = _train(
        "memory", config_doc, cells, LABEL_COLUMNS, out, run_id, force, long,
        lambda session: run_cells(cells, session.run_dir, LABEL_COLUMNS, console,
                                  extra_summary=EXTRA_SUMMARY, session=session))
    console.print(summary_table(rows, LABEL_COLUMNS, "memory: mean over seeds"))
    _finish(rows, run_dir)


# ----------------------------------------------------------------------------- figures


@app.command()
def figures(
    results: Annotated[Path, typer.Option(
        help="Folder searched (at any depth) for run folders: speed.csv, curves.csv, "
        "summary.csv.")] = Path("results"),
    out: Annotated[Path, typer.Option(help="Where the PNG/SVG files and index.md go.")] = Path(
        "figures"),
) -> None:
    """Draw every figure whose data is present, from CSVs only; list them in OUT/index.md.

    Figures: scaling and speed ratio to S5 (speed runs); return and wall time against
    memory length (memory runs); learning curves, MMER and wall time, return against cost
    (POPGym runs). A figure without data is skipped with one line saying why; a CSV that
    cannot be read or lacks a column is an error (exit 2) naming the file.
    """
    from benchmark.figures import FigureDataError, draw_figures

    if not results.is_dir():
        raise _fail(f"results folder {results} does not exist")
    try:
        report = draw_figures(results, out)
    except FigureDataError as error:
        raise _fail(str(error)) from None
    for figure in report.figures:
        files = ", ".join(str(path) for path in figure.files)
        typer.echo(f"drew {figure.title}: {files} (from {', '.join(map(str, figure.runs))})")
    for line in report.skipped:
        typer.echo(f"skipped {line}")
    if report.nothing_to_draw:
        typer.echo(f"nothing to draw: no figure's data (speed.csv, or curves.csv/summary.csv "
                   f"of a memory or POPGym run) under {results}")
    else:
        typer.echo(f"index: {report.index}")


# ----------------------------------------------------------------------------- speed


@app.command()
def speed(
    ctx: typer.Context,
    seq_len: Annotated[str, typer.Option(
        help="Sequence lengths T: A..B (every power of two from A to B, both powers of "
        "two) or a comma list such as 256,1000,4096.")] = "1024..65536",
    model: Annotated[list[str] | None, typer.Option(
        "--models", "--model", "-m", help="Backbones from `s5bench models`, comma-separated "
        "or repeated (default: all). S5 is timed with both its parallel and sequential "
        "evaluation.")] = None,
    mode: Annotated[list[str] | None, typer.Option(
        "--modes", "--mode", help="train (forward + backward + optimizer update over "
        "[T, B]), infer (one forward over [T, B]), rollout (T single-step calls threading "
        "the carry); comma-separated (default: all three).")] = None,
    batch: Annotated[int, typer.Option(help="B: sequences per call.")] = 4,
    d_model: Annotated[int, typer.Option(
        help="Width of every backbone (and of the actor-critic heads).")] = 64,
    layers: Annotated[int, typer.Option(help="Layers of every backbone.")] = 2,
    repeats: Annotated[int, typer.Option(help="Timed calls per cell (median, IQR).")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed calls before the repeats.")] = 1,
    max_seconds: Annotated[float, typer.Option(
        help="Budget per cell for warm-up + repeats (compile excluded); a cell over it is "
        "a `timeout` row and longer lengths of its series are `skipped`.")] = 60.0,
    out: OutOption = Path("results/speed"),
    run_id: RunIdOption = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the sweep in this folder, skipping the cells already in "
        "its speed.csv, with the settings it was started with. --seq-len, --models and "
        "--modes given beside it add to the sweep; any other option must agree.")] = None,
    force: Annotated[bool, typer.Option(
        help="Overwrite the CSV of an existing run folder.")] = False,
) -> None:
    """Time training, inference and rollout of each backbone against sequence length.

    Writes OUT/RUN_ID/ with config.json, meta.json and speed.csv: one row per (model,
    evaluation, mode, seq_len, batch) with compile seconds, median/min/max/IQR seconds of
    the timed repeats, tokens per second and a status (ok, oom, timeout, error, skipped).
    The defaults are CPU-sized (B 4, width 64, 2 layers, 5 repeats, 60 s per cell).
    """
    import os

    from benchmark.results import RunExistsError, collect_meta, make_run_dir, write_json
    from benchmark.speed import (
        SpeedConfig,
        check_resumable,
        parse_lengths,
        run_sweep,
        summary_table,
    )

    try:
        if resume is not None and (run_id is not None or force):
            raise BadInput(f"--resume continues {resume}; it takes no --run-id or --force")
        try:
            lengths = parse_lengths(seq_len)
        except ValueError as error:
            raise BadInput(f"--seq-len: {error}") from None
        names = _validate_models(_split(model)) if model is not None else _model_names()
        modes = _split(mode) if mode is not None else ["train", "infer", "rollout"]
        options = _run_options(
            ctx, "speed", resume,
            {"seq_len": lengths, "model": names, "mode": list(dict.fromkeys(modes)),
             "batch": batch, "d_model": d_model, "layers": layers, "repeats": repeats,
             "warmup": warmup, "max_seconds": max_seconds},
            extendable=("seq_len", "model", "mode"), legacy=_legacy_speed_options)
        try:
            config = SpeedConfig(
                seq_lens=tuple(sorted(options["seq_len"])), models=tuple(options["model"]),
                modes=tuple(options["mode"]), batch=options["batch"],
                d_model=options["d_model"], num_layers=options["layers"],
                repeats=options["repeats"], warmup=options["warmup"],
                max_seconds=options["max_seconds"])
            if resume is not None:
                check_resumable(_saved_run_config(resume, "speed"), config)
        except ValueError as error:
            raise BadInput(str(error)) from None
    except BadInput as error:
        raise _fail(str(error)) from None

    # Timings on a shared machine depend on what else runs: keep the load beside them.
    session = collect_meta({"load_average": list(os.getloadavg())})
    if resume is not None:
        run_dir = resume
        meta = json.loads((run_dir / "meta.json").read_text()) if (
            run_dir / "meta.json").is_file() else dict(session)
        meta.setdefault("resumed", []).append(session)
    else:
        try:
            run_dir = make_run_dir(out, run_id, force)
        except (RunExistsError, OSError) as error:
            raise _fail(f"{error} (or --resume {out / run_id if run_id else 'DIR'} to "
                        f"continue it)") from None
        meta = session
    write_json(run_dir / "config.json",
               {"command": "speed", "options": options, **dataclasses.asdict(config)})
    write_json(run_dir / "meta.json", meta)
    console.print(f"[bold]s5bench speed[/]: {', '.join(config.models)} x "
                  f"{', '.join(config.modes)} at T in {list(config.seq_lens)}, B={config.batch}; "
                  f"writing to {run_dir}")
    try:
        rows = run_sweep(config, run_dir / "speed.csv", console)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: every finished row is in {run_dir}; continue with: "
                          f"{_resume_hint('speed', run_dir)}", markup=False, highlight=False,
                          soft_wrap=True)
        raise typer.Exit(code=130) from None
    session["load_average_end"] = list(os.getloadavg())
    write_json(run_dir / "meta.json", meta)
    console.print(summary_table(rows, f"median seconds per call on {meta['backend']} "
                                      f"({rows[0]['device'] if rows else '?'})"))
    console.print(f"results: {run_dir}")
    if any(row["status"] == "error" for row in rows):
        err_console.print("some cells failed with an error; see the message column")
        raise typer.Exit(code=1)


@app.command()
def reference(
    ctx: typer.Context,
    tiny: Annotated[bool, typer.Option(
        help="The CPU-sized plan (a minute on 2 cores): the same steps, tiny sizes.")] = False,
    out: Annotated[Path, typer.Option(
        help="Parent folder; the run goes to OUT/<device>/ (e.g. gpu-nvidia-h200).")] = Path(
        "results/reference"),
    force: ForceOption = False,
) -> None:
    """Measure the paper's accelerator claims on this device (make reference-gpu).

    Writes OUT/<device>/ with speed/ (training time against T = 1024..65536 at the paper's
    width, d_model 256 and 4 layers: s5 with both evaluations, gru, lstm, trxl, attention,
    mlp), paper-throughput/ (the paper preset on RepeatPreviousHard, s5 and gru, 8 seeds
    vmapped, 4 updates), throughput.csv (env steps per second per seed, compile apart, and
    the projected time of the paper's 15M-step run beside the paper's A40 figures) and
    figures/. Sized for one H100/H200-class GPU: a few minutes with compilation.
    """
    from benchmark.config import to_dict
    from benchmark.reference import (
        folder_name,
        reference_plan,
        throughput_rows,
        total_steps,
    )
    from benchmark.results import CsvLog, device_info, device_name, read_rows, write_json
    from benchmark.schema import THROUGHPUT_COLUMNS

    plan = reference_plan("tiny" if tiny else "full")
    folder = out / folder_name(device_info(), plan.size)
    parts = [folder / "speed", folder / "paper-throughput"]
    if not force and any(part.exists() for part in parts):
        raise _fail(f"{folder} already holds a reference run; --force overwrites it")
    failed = False
    try:
        speed(ctx, seq_len=",".join(map(str, plan.speed.seq_lens)),
              model=list(plan.speed.models), mode=list(plan.speed.modes),
              batch=plan.speed.batch, d_model=plan.speed.d_model,
              layers=plan.speed.num_layers, repeats=plan.speed.repeats,
              warmup=plan.speed.warmup, max_seconds=plan.speed.max_seconds, out=folder,
              run_id="speed", resume=None, force=force)
    except typer.Exit as stop:
        if stop.exit_code != 1:  # 1: some cell failed, its row says why; go on
            raise
        failed = True
    try:
        popgym(ctx, model=list(plan.models), env=[plan.env], seeds=plan.seeds,
               preset=plan.preset, total_steps=total_steps(plan),
               set_=list(plan.overrides), seed=0, out=folder, run_id="paper-throughput",
               force=force, resume=None, checkpoint_every=10.0, keep_checkpoints=1,
               devices=None, multihost=False)
    except typer.Exit as stop:
        if stop.exit_code != 1:
            raise
        failed = True
    rows = throughput_rows(read_rows(parts[1] / "summary.csv"), plan, device_name())
    (folder / "throughput.csv").unlink(missing_ok=True)
    with CsvLog(folder / "throughput.csv", THROUGHPUT_COLUMNS) as log:
        log.write_many(rows)
    write_json(folder / "plan.json", {"size": plan.size, "speed": to_dict(plan.speed),
                                      "models": plan.models, "env": plan.env,
                                      "preset": plan.preset, "seeds": plan.seeds,
                                      "updates": plan.updates, "overrides": plan.overrides})
    console.print(_throughput_table(rows))
    figures(results=folder, out=folder / "figures")
    if failed:
        raise typer.Exit(code=1)


def _throughput_table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="End to end: the paper preset's throughput and the paper's 15M steps")
    for column in ("model", "seeds", "compile s", "env steps/s per seed",
                   "15M steps, all seeds (s)", "per seed (s)", "paper A40 per seed (s)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(row["model"], str(row["seeds"]), f"{row['compile_s']:.1f}",
                      f"{row['env_steps_per_s_per_seed']:,.0f}",
                      _shown(row["projected_15m_s"]), _shown(row["projected_15m_s_per_seed"]),
                      _shown(row["paper_a40_s_per_seed"]))
    return table


def _legacy_speed_options(saved: dict) -> dict:
    """The options of a speed folder written before config.json kept them."""
    return {"seq_len": saved["seq_lens"], "model": saved["models"], "mode": saved["modes"],
            "batch": saved["batch"], "d_model": saved["d_model"], "layers": saved["num_layers"],
            "repeats": saved["repeats"], "warmup": saved["warmup"],
            "max_seconds": saved["max_seconds"]}


# ----------------------------------------------------------------------------- meta


@app.command()
def meta(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option(
        "--models", "--model", "-m", help="Backbones from `s5bench models`, comma-separated "
        "or repeated (default: all, the mlp control included).")] = None,
    suite: Annotated[str, typer.Option(
        help="Training suite (`s5bench envs --suite meta`): MetaControl (gymnax Pendulum, "
        "MountainCarContinuous, Reacher, Swimmer and POPGym's PositionOnlyPendulumEasy), "
        "ProjectedCartPole or ProjectedBandit.")] = "MetaControl",
    held_out: Annotated[str, typer.Option(
        help="Evaluation-only suite, sharing no environment with the training suite "
        "(default: the suite's own, MetaControlHeldOut for MetaControl), or none.")
    ] = "default",
    trials: Annotated[int | None, typer.Option(
        help="K: trials per meta-episode (default: quick 4, paper 16).")] = None,
    trial_length: Annotated[int | None, typer.Option(
        help="Cap on one trial's steps, 0 for each environment's own limit (default: quick "
        "32, paper 200).")] = None,
    eval_episodes: Annotated[int, typer.Option(
        help="Evaluation meta-episodes per seed and base environment.")] = 64,
    eval_trials: Annotated[int | None, typer.Option(
        help="Trials per evaluation meta-episode, past the training horizon if larger "
        "(default: quick as --trials, paper 32 as in the paper's code).")] = None,
    seeds: SeedsOption = 1,
    preset: Annotated[str, typer.Option(
        help="quick (CPU-sized, minutes) or paper (Lu et al.'s PPO settings).")] = "quick",
    total_steps: Annotated[int | None, typer.Option(
        help="Environment steps per seed (overrides the preset's ppo.total_timesteps).")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override any config field, e.g. --set ppo.lr=3e-4; repeatable.")
    ] = None,
    seed: SeedOption = 0,
    out: OutOption = Path(
        "results/meta"),
    run_id: RunIdOption = None,
    force: ForceOption = False,
    resume: ResumeOption = None,
    checkpoint_every: CheckpointEveryOption = 10.0,
    keep_checkpoints: KeepCheckpointsOption = 2,
    devices: DevicesOption = None,
    multihost: MultihostOption = False,
) -> None:
    """In-context meta-RL: train on randomly projected tasks, evaluate trial by trial.

    Each meta-episode samples a base environment of the suite and random observation and
    action projections, and runs K trials of it; the agent's carry resets only between
    meta-episodes (envs/meta.py). After training, the policy is evaluated with no gradient
    step on fresh projections of every training and held-out environment. Writes
    OUT/RUN_ID/ with config.json, meta.json, curves.csv, summary.csv and trials.csv (one
    row per model, seed, split, base env and trial index: the in-context learning curve).
    """
    from rich.table import Table

    from benchmark.config import to_dict
    from benchmark.meta_rl import (
        LABEL_COLUMNS,
        build_cells,
        make_settings,
        run_meta,
        trial_table_rows,
    )
    from benchmark.sweep import summary_table

    long = LongRun(resume, checkpoint_every, keep_checkpoints, devices, multihost)
    try:
        options = _run_options(ctx, "meta", resume, {
            "model": _split(model) if model is not None else _model_names(),
            "suite": suite, "held_out": held_out, "trials": trials,
            "trial_length": trial_length, "eval_episodes": eval_episodes,
            "eval_trials": eval_trials, "seeds": seeds,
            "preset": preset, "total_steps": total_steps, "set_": set_ or [], "seed": seed})
        names = _validate_models(options["model"])
        try:
            settings = make_settings(options["preset"], options["suite"], options["held_out"],
                                     options["trials"], options["trial_length"],
                                     options["eval_trials"],
                                     eval_episodes=options["eval_episodes"])
            cells = build_cells(names, settings, options["preset"], options["seeds"],
                                options["seed"], options["total_steps"], options["set_"])
        except ValueError as error:
            raise BadInput(str(error)) from None
        config_doc = {"command": "meta", "options": options, **dataclasses.asdict(settings),
                      "runs": [to_dict(cell.config) for cell in cells]}
        _validate_long_run(long, "meta", config_doc, run_id, force)
    except BadInput as error:
        raise _fail(str(error)) from None
    run_dir, (rows, trials) = _train(
        "meta", config_doc, cells, LABEL_COLUMNS, out, run_id, force, long,
        lambda session: run_meta(cells, settings, session.run_dir, console, session=session),
        what=f" on {settings.suite}, K={settings.num_trials}",
        # trials.csv's suite column is the evaluated split's suite, so match rows by model
        extra_csvs={"trials.csv": ("model",)})
    console.print(summary_table(rows, LABEL_COLUMNS, "meta training: mean over seeds"))
    table = Table(title="meta evaluation: mean return per trial (over base envs and seeds)")
    for name in ("model", "split", "K", "trial 1", "trial K"):
        table.add_column(name, justify="left" if name in ("model", "split") else "right")
    for model_name, split, last, first_return, last_return in trial_table_rows(trials):
        table.add_row(model_name, split, str(last), f"{first_return:.3f}", f"{last_return:.3f}")
    console.print(table)
    _finish(rows, run_dir)


# ----------------------------------------------------------------------------- listings


@app.command()
def models() -> None:
    """List the registered backbones, one line each, with parameter counts."""
    from benchmark.describe import backbone_lines

    for line in backbone_lines():
        typer.echo(line)


@app.command()
def envs(
    suite: Annotated[str | None, typer.Option(
        help="Only this suite (popgym, probe, meta, gymnax).")] = None,
    bench: Annotated[bool, typer.Option(
        "--bench", help="Measure env-only steps/s of each JAX port (vmapped, compiled) "
        "beside the reference popgym package, and write env_bench.csv.")] = False,
    env: Annotated[list[str], typer.Option(
        "--env", "-e", help="With --bench: environments, families or `all` (every POPGym "
        "port).")] = ["all"],  # noqa: B006
    batch: Annotated[int, typer.Option(help="With --bench: environments stepped at once.")
    ] = 1024,
    steps: Annotated[int, typer.Option(help="With --bench: steps per timed call.")] = 256,
    repeats: Annotated[int, typer.Option(help="With --bench: timed calls (median).")] = 5,
    out: Annotated[Path, typer.Option(help="With --bench: parent of the run folder.")] = Path(
        "results/envs"),
    run_id: Annotated[str | None, typer.Option(help="With --bench: run folder name.")] = None,
) -> None:
    """List the registered environments, one line each, with their aliases (or --bench them)."""
    if bench:
        _bench_envs(env, batch, steps, repeats, out, run_id)
        return
    from benchmark.describe import env_lines

    try:
        lines = env_lines(suite)
    except ValueError as error:
        raise _fail(str(error)) from None
    for line in lines:
        typer.echo(line)


def _bench_envs(selection: list[str], batch: int, steps: int, repeats: int, out: Path,
                run_id: str | None) -> None:
    from rich.table import Table

    from benchmark.env_bench import EnvBenchConfig, bench_env
    from benchmark.results import (
        CsvLog,
        RunExistsError,
        collect_meta,
        device_name,
        make_run_dir,
        write_json,
    )
    from benchmark.schema import BENCH_COLUMNS

    try:
        env_ids = _validate_envs(_split(selection))
        config = EnvBenchConfig(batch=batch, num_steps=steps, repeats=repeats)
        run_dir = make_run_dir(out, run_id)
    except (BadInput, ValueError, RunExistsError) as error:
        raise _fail(str(error)) from None
    write_json(run_dir / "config.json", {"command": "envs --bench", "envs": env_ids,
                                         **dataclasses.asdict(config)})
    write_json(run_dir / "meta.json", collect_meta())
    device = device_name()
    table = Table(title=f"environment steps/s on {device} (port: batch {batch})")
    for name in ("env", "port steps/s", "reference steps/s", "speedup", "compile s"):
        table.add_column(name, justify="left" if name == "env" else "right")
    with CsvLog(run_dir / "env_bench.csv", BENCH_COLUMNS) as log:
        for env_id in env_ids:
            console.print(f"timing {env_id} …")
            row = bench_env(env_id, config, device)
            log.write(row)
            table.add_row(env_id, f"{row['port_steps_per_s']:,.0f}",
                          f"{row['reference_steps_per_s']:,.0f}", f"{row['speedup']:,.0f}x",
                          f"{row['compile_s']:.1f}")
    console.print(table)
    console.print(f"results: {run_dir}")


if __name__ == "__main__":
    app()
