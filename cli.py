"""The ``s5bench`` command line: parse, validate, then call the library. No maths here.

Every command checks its arguments before anything is compiled: bad input gets one line
on stderr naming the problem and the valid choices, and exit status 2.
"""

from __future__ import annotations

import os
import sys
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


ShardOption = Annotated[str | None, typer.Option(
    "--shard", help="I/N: train only every N-th cell of the sweep, starting at the I-th, "
    "into RUN_ID/shard-I-of-N (needs --run-id). N jobs (a SLURM array) split one sweep; "
    "`s5bench merge OUT/RUN_ID` joins them. See the README.")]

# Config fields -> the option that sets them, where the names differ (error lines name
# the option the user typed).
_OPTION_OF_FIELD = {
    "num_seeds": "seeds", "ppo.total_timesteps": "total_steps", "memory_lengths": "lengths",
    "num_trials": "trials", "seq_lens": "seq_len", "models": "model", "modes": "mode",
    "num_layers": "layers", "num_steps": "steps", "checkpoint.every_minutes":
    "checkpoint_every", "checkpoint.keep": "keep_checkpoints",
}


def _error_line(ctx: typer.Context, error: Exception) -> str:
    """A library error in the user's words: the flag of the option at fault, not its field."""
    from benchmark.config import OverrideError
    from benchmark.errors import ConfigError
    from benchmark.run_folder import OptionConflict, RunFolderError

    if isinstance(error, OptionConflict):
        return f"{_flag(ctx, error.option)}: {error.problem}"
    if isinstance(error, ConfigError):
        option = _OPTION_OF_FIELD.get(error.field, error.field)
        if not any(param.name == option for param in ctx.command.params):
            return str(error)
        # "--seeds must be positive" reads as a sentence; other problems follow a colon.
        joint = " " if error.problem.startswith("must") else ": "
        return f"{_flag(ctx, option)}{joint}{error.problem}"
    if isinstance(error, OverrideError):
        return f"--set {error}"
    if isinstance(error, RunFolderError):
        return f"--resume {error}"
    return str(error)


def _typed(ctx: typer.Context, names) -> set[str]:
    """The options given on this command line (not left at their defaults)."""
    typed = set()
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            typed.add(name)
    return typed


def _flag(ctx: typer.Context, name: str) -> str:
    """The option's name as the user types it, e.g. ``--model`` for ``model``."""
    param = next(p for p in ctx.command.params if p.name == name)
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])


def _train_command(ctx: typer.Context, name: str, given: dict[str, object], *, out: Path,
                   run_id: str | None, force: bool, resume: Path | None,
                   checkpoint_every: float, keep_checkpoints: int, devices: int | None,
                   multihost: bool) -> None:
    """The one path of every training command (popgym, memory, meta).

    Validates everything before anything compiles (bad input: one line, exit 2), opens the
    run folder, trains, prints the tables. Ctrl-C and SIGTERM are caught for the whole run;
    a stop becomes one line saying how to resume, and exit status 130. Exit status 1 when a
    seed diverged or a cell failed.
    """
    if multihost:
        # First of all: jax.distributed.initialize() must run before anything initialises
        # the XLA backend, and importing the library does (gymnax builds arrays at import).
        from benchmark.train.sharding import MultihostError, init_multihost

        def give_up(problem: str) -> None:  # from the watchdog's thread: nothing written yet
            err_console.print(f"error: --multihost: {problem}", markup=False,
                              highlight=False, soft_wrap=True)
            os._exit(2)

        try:
            init_multihost(on_timeout=give_up)
        except MultihostError as error:
            raise _fail(f"--multihost: {error}") from None
    from benchmark.experiments import jobs
    from benchmark.run_folder import (
        RunExistsError,
        StopRequest,
        resolve_options,
        resume_command,
    )
    from benchmark.train.checkpoint import CheckpointSettings
    from benchmark.train.loop import TrainingInterrupted

    experiment = jobs.experiment(name)
    try:
        if resume is not None and (run_id is not None or force):
            raise _fail(f"--resume continues {resume}; it takes no --run-id or --force")
        if given.get("shard") is not None and run_id is None and resume is None:
            raise _fail("--shard needs --run-id: every shard of a sweep writes into the "
                        "same sweep folder")
        options = resolve_options(name, resume, given, _typed(ctx, given))
        job = jobs.prepare(
            experiment, options, resume=resume, devices=devices,
            checkpoint=CheckpointSettings(every_minutes=checkpoint_every,
                                          keep=keep_checkpoints))
    except ValueError as error:
        raise _fail(_error_line(ctx, error)) from None
    with StopRequest(err_console.print) as stop:
        try:
            folder, resume_plan = jobs.open_folder(job, out, run_id, force)
        except RunExistsError as error:
            raise _fail(f"{error}; pass --force to overwrite, choose another --run-id, or "
                        f"--resume it") from None
        except ValueError as error:
            raise _fail(_error_line(ctx, error)) from None
        for note in resume_plan.notes if resume_plan else ():
            err_console.print(f"resume: {note}", markup=False, highlight=False,
                              soft_wrap=True)
        console.print(f"[bold]s5bench {name}[/]: {len(job.plan.cells)} cell(s)"
                      f"{job.plan.describe}, writing to {folder.path}")
        try:
            outcome = jobs.train(job, folder, resume_plan, console, stop.requested)
        except TrainingInterrupted as error:
            saved = "checkpoint saved" if error.saved else "nothing new to save"
            err_console.print(
                f"stopped at update {error.update} of {error.num_updates} ({saved}); every "
                f"finished row is in {folder.path}. Resume with: "
                f"{resume_command(name, folder.path)}", markup=False, highlight=False,
                soft_wrap=True)
            raise typer.Exit(code=130) from None
    _report(experiment, outcome, folder.path)


def _report(experiment, outcome, run_dir: Path) -> None:
    """Print the summary and the experiment's tables; exit 1 unless every seed finished."""
    from benchmark.experiments.cells import summary_table

    console.print(summary_table(outcome.rows, experiment.labels, experiment.summary_title))
    for table in outcome.tables:
        console.print(table)
    console.print(f"results: {run_dir}")
    if any(row["status"] != "ok" for row in outcome.rows):
        raise typer.Exit(code=1)


def _model_names() -> list[str]:
    from models import registered_backbones

    return registered_backbones()


# ----------------------------------------------------------------------------- popgym


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
    shard: ShardOption = None,
) -> None:
    """Train backbones with PPO on POPGym (or any registered) environments.

    Writes OUT/RUN_ID/ with config.json, meta.json, curves.csv (one row per model, env,
    seed and update), summary.csv (one row per model, env and seed) and checkpoints/.
    Exit status: 0 when every seed finished, 1 when a seed diverged or a cell failed,
    2 for bad input, 130 when stopped (Ctrl-C; the printed command resumes).
    """
    _train_command(
        ctx, "popgym", {"model": _split(model), "env": _split(env), "seeds": seeds,
                        "preset": preset, "total_steps": total_steps, "set_": set_ or [],
                        "seed": seed, "shard": shard},
        out=out, run_id=run_id, force=force, resume=resume, checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, devices=devices, multihost=multihost)


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
        ">= L + 1 (one whole episode), and ppo.num_envs shrinks by the same factor so "
        "updates keep the preset's size (with fewer environments than "
        "ppo.num_minibatches, each minibatch is one environment); the previous-action "
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
    shard: ShardOption = None,
) -> None:
    """Train backbones with PPO on bsuite's MemoryChain over a sweep of memory lengths.

    The cue shows at the first step; L steps later the agent must take the action it
    named (+1 right, -1 wrong; no memory scores 0). One compiled program per (model,
    length), seeds vmapped. Writes OUT/RUN_ID/ with config.json, meta.json, curves.csv
    (one row per model, memory_length, seed and update) and summary.csv (one row per
    model, memory_length and seed, with success = best return >= 0.8, i.e. at least 90%
    of cues recalled).
    """
    _train_command(
        ctx, "memory", {"model": _split(model) if model is not None else _model_names(),
                        "lengths": lengths, "seeds": seeds, "preset": preset,
                        "total_steps": total_steps, "set_": set_ or [], "seed": seed,
                        "shard": shard},
        out=out, run_id=run_id, force=force, resume=resume, checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, devices=devices, multihost=multihost)


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
    from benchmark.measure import speed as speed_sweep
    from benchmark.run_folder import RunExistsError, resume_command

    if resume is not None and (run_id is not None or force):
        raise _fail(f"--resume continues {resume}; it takes no --run-id or --force")
    given = {"seq_len": seq_len, "model": None if model is None else _split(model),
             "mode": None if mode is None else _split(mode), "batch": batch,
             "d_model": d_model, "layers": layers, "repeats": repeats, "warmup": warmup,
             "max_seconds": max_seconds}
    try:
        options, config = speed_sweep.prepare(given, _typed(ctx, given), resume)
        folder = speed_sweep.open_sweep(options, config, out, run_id, force, resume)
    except RunExistsError as error:
        raise _fail(f"{error}; pass --force to overwrite (or --resume "
                    f"{out / run_id if run_id else 'DIR'} to continue it)") from None
    except ValueError as error:
        raise _fail(_error_line(ctx, error)) from None
    console.print(f"[bold]s5bench speed[/]: {', '.join(config.models)} x "
                  f"{', '.join(config.modes)} at T in {list(config.seq_lens)}, B={config.batch}; "
                  f"writing to {folder.path}")
    try:
        rows = speed_sweep.run_sweep(config, folder.path / "speed.csv", console)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: every finished row is in {folder.path}; continue "
                          f"with: {resume_command('speed', folder.path)}", markup=False,
                          highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    speed_sweep.close_sweep(folder)
    console.print(speed_sweep.summary_table(rows, f"median seconds per call on "
                                            f"{folder.meta['backend']} "
                                            f"({rows[0]['device'] if rows else '?'})"))
    console.print(f"results: {folder.path}")
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
    mlp), paper-throughput/ (the paper preset on the paper's five Table-5 environments, s5
    and gru, 8 seeds vmapped, 2 updates each), throughput.csv (env steps per second per
    seed, compile apart, and the projected time of the paper's 15M-step run per vmapped run
    and per seed, per environment and averaged over the five, the average beside the
    paper's A40 figures, which are per seed averaged over those five) and figures/. Sized
    for one H100/H200-class GPU: a few minutes with compilation.
    """
    from benchmark.measure.reference import folder_name, reference_plan, total_steps, write_results
    from benchmark.results import device_info

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
        popgym(ctx, model=list(plan.models), env=list(plan.envs), seeds=plan.seeds,
               preset=plan.preset, total_steps=total_steps(plan),
               set_=list(plan.overrides), seed=0, out=folder, run_id="paper-throughput",
               force=force, resume=None, checkpoint_every=10.0, keep_checkpoints=1,
               devices=None, multihost=False)
    except typer.Exit as stop:
        if stop.exit_code != 1:
            raise
        failed = True
    rows = write_results(folder, plan)
    console.print(_throughput_table(rows))
    figures(results=folder, out=folder / "figures")
    if failed:
        raise typer.Exit(code=1)


def _throughput_table(rows: list[dict]):
    from rich.table import Table

    def number(value) -> str:
        return "-" if value is None else f"{value:,.1f}"

    table = Table(title="End to end: the paper preset's throughput and the paper's 15M steps "
                        "(the paper's A40 figure: per seed, mean of its five environments)")
    for column in ("model", "env", "seeds", "compile s", "env steps/s per seed",
                   "15M steps, one vmapped run (s)", "per seed (s)",
                   "paper A40 per seed (s)"):
        table.add_column(column, justify="left" if column in ("model", "env") else "right")
    for row in rows:
        table.add_row(row["model"], row["env"], str(row["seeds"]), f"{row['compile_s']:.1f}",
                      number(row["env_steps_per_s_per_seed"]), number(row["projected_15m_s"]),
                      number(row["projected_15m_s_per_seed"]),
                      number(row["paper_a40_s_per_seed"]))
    return table


# ----------------------------------------------------------------------------- meta


@app.command()
def meta(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option(
        "--models", "--model", "-m", help="Backbones from `s5bench models`, comma-separated "
        "or repeated (default: all, the mlp control included).")] = None,
    suite: Annotated[str | None, typer.Option(
        help="Training suite (`s5bench envs --suite meta`): MetaControl (gymnax Pendulum, "
        "MountainCarContinuous, Reacher, Swimmer and POPGym's PositionOnlyPendulumEasy), "
        "MetaCartPole (the paper's: position-only CartPole through a random 2 -> 4 map, "
        "every trial from one start state), ProjectedCartPole (s5bench's variant) or "
        "ProjectedBandit (default: quick MetaControl, paper MetaCartPole).")] = None,
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
    shard: ShardOption = None,
) -> None:
    """In-context meta-RL: train on randomly projected tasks, evaluate trial by trial.

    Each meta-episode samples a base environment of the suite and random observation and
    action projections (the paper's MetaCartPole: a random observation map of its
    position-only CartPole, every trial from one start state), and runs K trials of it; the
    agent's carry resets only between meta-episodes (envs/meta_rl.py, envs/meta_cartpole.py).
    After training, the policy is evaluated with no gradient step on fresh projections of
    every training and held-out environment. Writes
    OUT/RUN_ID/ with config.json, meta.json, curves.csv, summary.csv and trials.csv (one
    row per model, seed, split, base env and trial index: the in-context learning curve).
    """
    _train_command(
        ctx, "meta", {"model": _split(model) if model is not None else _model_names(),
                      "suite": suite, "held_out": held_out, "trials": trials,
                      "trial_length": trial_length, "eval_episodes": eval_episodes,
                      "eval_trials": eval_trials, "seeds": seeds, "preset": preset,
                      "total_steps": total_steps, "set_": set_ or [], "seed": seed,
                      "shard": shard},
        out=out, run_id=run_id, force=force, resume=resume, checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, devices=devices, multihost=multihost)


@app.command()
def merge(
    sweep: Annotated[Path, typer.Argument(
        help="The sweep folder whose shard-I-of-N folders are joined (OUT/RUN_ID).")],
    mixed_devices: Annotated[bool, typer.Option(
        "--mixed-devices", help="Merge shards that ran on different kinds of device (their "
        "timings do not compare; refused without this).")] = False,
) -> None:
    """Join the shards of a sweep (--shard I/N) into the tables one job would have written.

    Every shard must have finished. SWEEP then holds config.json (every run, in the sweep's
    order), meta.json (naming each shard's), curves.csv, summary.csv and the experiment's
    other tables (aggregate.csv, trials.csv), so `s5bench figures` draws it as one run.
    meta.json records each shard's device.
    """
    from benchmark.experiments import jobs

    try:
        outcome, experiment = jobs.merge(sweep, mixed_devices=mixed_devices)
    except ValueError as error:
        raise _fail(str(error)) from None
    _report(experiment, outcome, sweep)


# ----------------------------------------------------------------------------- compare


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(
        help="POPGym run folders (or sweep folders of shards) whose backbones are compared "
        "on the environments every backbone has.")],
    score: Annotated[str, typer.Option(
        help="Score of a run: mmer (its best update's mean return) or final_return (the "
        "mean over the last 10% of updates).")] = "mmer",
    allow_mixed: Annotated[bool, typer.Option(
        "--allow-mixed", help="Compare runs from different devices or presets.")] = False,
) -> None:
    """Compare backbones with 95% intervals: per environment, aggregate, and which differ.

    Per environment: each backbone's mean over seeds with its stratified-bootstrap
    interval. Aggregate: IQM, median, mean and optimality gap of the normalised score.
    Then P(X > Y) for every pair, naming the pairs whose interval is clear of 1/2 and those
    the seeds at hand cannot tell apart. Nothing is retrained.
    """
    from benchmark.experiments.compare import CompareError
    from benchmark.experiments.compare import compare as compare_runs

    try:
        result = compare_runs(runs, score=score, allow_mixed=allow_mixed)
    except CompareError as error:
        raise _fail(str(error)) from None
    for line in _compare_lines(result):
        console.print(line, highlight=False)


def _interval(point: float, low: float, high: float) -> str:
    if low != low:  # NaN: one seed, no interval
        return f"{point:.3f} (one seed)"
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def _compare_lines(result) -> list:
    """The tables and sentences `s5bench compare` prints, in order."""
    from rich.table import Table

    from benchmark import statistics

    name = {"mmer": "MMER", "final_return": "final return"}[result.score]
    lines: list = [
        f"[bold]s5bench compare[/]: {len(result.runs)} run folder(s) on "
        f"{', '.join(result.devices)}, preset {', '.join(result.presets)}; {name} on "
        f"{len(result.envs)} shared environment(s)"]
    for model, envs in result.left_out.items():
        lines.append(f"  {model}: left out {', '.join(envs)} (not every backbone has them)")
    for model, count in result.failed.items():
        lines.append(f"  {model}: {count} run(s) diverged or failed, left out")
    pairs = result.pairs
    for env in result.envs:
        cells = result.cells[result.cells["env"] == env].sort_values("mean", ascending=False)
        table = Table(title=f"{env}: {name}, mean over seeds [95% interval]")
        for column in ("backbone", "seeds", name):
            table.add_column(column, justify="left" if column == "backbone" else "right")
        for row in cells.itertuples():
            table.add_row(row.model, str(row.runs), _interval(row.mean, row.lo, row.hi))
        lines.append(table)
        lines += _verdict_lines(pairs[pairs["env"] == env], f" on {env}", undecided=False)
    table = Table(title=f"Aggregate over {len(result.envs)} environment(s): normalised {name} "
                        "[95% interval]")
    for column in ("backbone", "runs", *statistics.ESTIMATORS):
        table.add_column(column, justify="left" if column == "backbone" else "right")
    for row in result.aggregate.sort_values(f"{result.score}_iqm", ascending=False).to_dict(
            "records"):
        table.add_row(row["model"], str(row["runs"]), *(
            _interval(*(row[f"{result.score}_{metric}{bound}"] for bound in ("", "_lo", "_hi")))
            for metric in statistics.ESTIMATORS))
    lines.append(table)
    lines.append(f"Over the {len(result.envs)} shared environment(s), P(X > Y) at 95%:")
    lines += _verdict_lines(pairs[pairs["env"] == statistics.ALL_ENVS], "", undecided=True)
    if result.seed_sd == result.seed_sd:
        need = {d: statistics.seeds_for_difference(result.seed_sd, d) for d in (0.05, 0.1, 0.2)}
        lines.append(
            f"Seed noise: the standard deviation over seeds of a cell's normalised {name}, "
            f"pooled over cells, is {result.seed_sd:.3f}; to tell apart two cells whose mean "
            f"normalised scores are 0.05 / 0.1 / 0.2 apart (95%, power 0.8) takes about "
            f"{need[0.05]} / {need[0.1]} / {need[0.2]} seeds each.")
    return lines


def _verdict_lines(pairs, where: str, *, undecided: bool) -> list[str]:
    """`lru > s5 on E: P = 0.83 [0.61, 0.97]` for the pairs whose interval is clear of 1/2,
    then, if ``undecided``, the pairs these seeds cannot tell apart."""
    from benchmark.statistics import verdict

    told, untold = [], []
    for row in pairs.itertuples():
        sign = verdict(row.lo, row.hi)
        if sign == 0:
            untold.append(f"{row.model_x} ~ {row.model_y} (P = {row.probability:.2f} "
                          f"[{row.lo:.2f}, {row.hi:.2f}])")
        else:
            better, worse = (row.model_x, row.model_y) if sign > 0 else (row.model_y, row.model_x)
            p, low, high = ((row.probability, row.lo, row.hi) if sign > 0 else
                            (1 - row.probability, 1 - row.hi, 1 - row.lo))
            told.append(f"  {better} > {worse}{where}: P = {p:.2f} [{low:.2f}, {high:.2f}]")
    if undecided:
        told.append("  cannot be told apart with these seeds: " + (", ".join(untold) or "none"))
    return told


# ----------------------------------------------------------------------------- listings


@app.command()
def models() -> None:
    """List the backbones, built-in and installed plugins, one line each, with parameter
    counts (a plugin's line names its distribution and version). A plugin that cannot be
    used is one error line naming it, and exit status 2."""
    from benchmark.describe import backbone_lines

    lines, problems = backbone_lines()
    for line in lines:
        typer.echo(line)
    _plugin_problems(problems)


def _plugin_problems(problems: list[str]) -> None:
    for problem in problems:
        err_console.print(f"error: {problem}", markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(code=2)


@app.command()
def check(
    model: Annotated[list[str] | None, typer.Argument(
        help="Backbones: names from `s5bench models` (plugins included) or import paths "
        "package.module:ConfigClass.", show_default=False)] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", help="Environments to check instead (or as well): ids from `s5bench "
        "envs` or import paths package.module:factory; repeatable or comma-separated.")
    ] = None,
) -> None:
    """Check that backbones keep the Memory contract (and environments the gymnax one).

    Per backbone (its quick() config at width 16, 2 layers): a deterministic zero initial
    carry and shapes; one call over T steps equal to T single steps; chunks composing;
    nothing crossing a reset; packed episodes equal to separate ones; parallel equal to
    sequential where the config has both evaluations; finite gradients through a PPO loss;
    the config rebuilding from its JSON. Per environment: jit and vmap of reset and step,
    static shapes, done flags, random-policy episodes that end, observations in their
    space. One row per property with the measured maximum error and the tolerance. Exit
    status 0 when all hold, 1 naming the failed properties, 2 for bad input.
    """
    from rich.table import Table

    from benchmark.measure.conformance import check_backbone, check_config, check_env
    from benchmark.selection import validated_envs, validated_models

    if not model and not env:
        raise _fail("give a MODEL to check (a name from `s5bench models` or an import path "
                    "package.module:ConfigClass), or --env ID")
    try:
        names = validated_models(_split(model)) if model else []
        configs = {name: check_config(name) for name in names}
        env_ids = validated_envs(_split(env)) if env else []
    except ValueError as error:  # a ConfigError on the field model (MODEL) or env (--env)
        where = "MODEL" if getattr(error, "field", None) == "model" else "--env"
        raise _fail(f"{where}: {getattr(error, 'problem', error)}") from None
    table = Table(title="s5bench check: max error (mixed abs/rel, |a-b|/(1+|b|)) against "
                        "tolerance")
    for column in ("subject", "property", "max error", "tolerance", "result"):
        table.add_column(column, justify="right" if "error" in column or column ==
                         "tolerance" else "left")
    failures = []
    subjects = [(name, lambda c=config: check_backbone(c)) for name, config in configs.items()]
    subjects += [(env_id, lambda e=env_id: check_env(e)) for env_id in env_ids]
    for subject, run in subjects:
        console.print(f"checking {subject} …")
        results = run()
        for result in results:
            verdict = "ok" if result.passed else f"FAIL {result.note}".strip()
            table.add_row(subject, result.name, f"{result.error:.2e}",
                          f"{result.tolerance:.0e}", verdict)
        bad = [result.name for result in results if not result.passed]
        if bad:
            failures.append(f"{subject}: {', '.join(bad)}")
    console.print(table)
    if failures:
        err_console.print(f"failed: {'; '.join(failures)}", markup=False, highlight=False,
                          soft_wrap=True)
        raise typer.Exit(code=1)
    console.print("every property holds")


@app.command()
def envs(
    ctx: typer.Context,
    suite: Annotated[str | None, typer.Option(
        help="Only this suite (popgym, probe, meta, gymnax, plugin).")] = None,
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
        _bench_envs(ctx, env, batch, steps, repeats, out, run_id)
        return
    from benchmark.describe import env_lines

    try:
        lines, problems = env_lines(suite)
    except ValueError as error:
        raise _fail(str(error)) from None
    for line in lines:
        typer.echo(line)
    _plugin_problems(problems)


def _bench_envs(ctx: typer.Context, selection: list[str], batch: int, steps: int,
                repeats: int, out: Path, run_id: str | None) -> None:
    from rich.table import Table

    from benchmark.measure.env_bench import EnvBenchConfig, bench_envs, open_bench
    from benchmark.selection import validated_envs

    try:
        env_ids = validated_envs(_split(selection))
        config = EnvBenchConfig(batch=batch, num_steps=steps, repeats=repeats)
        folder = open_bench(env_ids, config, out, run_id)
    except ValueError as error:
        raise _fail(_error_line(ctx, error)) from None
    table = Table(title=f"environment steps/s on {folder.meta['device_kind']} (port: batch "
                        f"{batch})")
    for name in ("env", "port steps/s", "reference steps/s", "speedup", "compile s"):
        table.add_column(name, justify="left" if name == "env" else "right")
    for row in bench_envs(folder, env_ids, config,
                          on_start=lambda env_id: console.print(f"timing {env_id} …")):
        table.add_row(row["env"], f"{row['port_steps_per_s']:,.0f}",
                      f"{row['reference_steps_per_s']:,.0f}", f"{row['speedup']:,.0f}x",
                      f"{row['compile_s']:.1f}")
    console.print(table)
    console.print(f"results: {folder.path}")


if __name__ == "__main__":
    app()
