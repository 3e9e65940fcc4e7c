"""The ``s5bench`` command line: parse, validate, then call the library. No maths here.

Every command takes its options from a typed dataclass of ``benchmark.options`` (a field's
help is its ``--help``) and checks them before anything is compiled: bad input gets one
line on stderr naming the problem and the valid choices, and exit status 2. Commands that
write results run through ``_run_job``, which also turns a stop into exit status 130.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from rich.console import Console

from benchmark.errors import ConfigError
from benchmark.options import (
    TRAINING_OPTIONS,
    CheckOptions,
    CompareOptions,
    EnvBenchOptions,
    EnvsOptions,
    FiguresOptions,
    FolderOptions,
    MergeOptions,
    Options,
    ReferenceOptions,
    RunControl,
    SpeedOptions,
)

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


def _say(message: str) -> None:
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    _say(f"error: {message}")
    return typer.Exit(code=2)


def _split(values: list[str] | None) -> list[str]:
    """``["s5,gru", "lstm"]`` -> ``["s5", "gru", "lstm"]`` (repeatable or comma lists)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


# ----------------------------------------------------------------- options classes -> typer


def _item_type(hint: Any) -> Any:
    """``str`` for ``tuple[str, ...]`` (or ``| None``): a repeatable option; None otherwise."""
    for arg in (hint, *get_args(hint)):
        if get_origin(arg) is tuple:
            return get_args(arg)[0]
    return None


def _parameters(classes: tuple[type[Options], ...]) -> list[inspect.Parameter]:
    """One typer option (or argument) per field of ``classes``: flags, help, default."""
    parameters = []
    for cls in classes:
        hints = cls.field_types()
        for field in dataclasses.fields(cls):
            meta, hint, default = field.metadata, hints[field.name], field.default
            if meta["parse"] is not None:
                hint, default = str, meta["shown"]
            elif (item := _item_type(hint)) is not None:  # repeatable; () shows as unset
                hint = list[item] if default is ... else list[item] | None
                if default not in (..., None):
                    default = list(default) or None
            make = typer.Argument if meta["argument"] else typer.Option
            info = make(*meta["flags"], help=meta["help"], show_default=default not in (None, ...))
            parameters.append(inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[hint, info],
                default=inspect.Parameter.empty if default is ... else default))
    return parameters


def _options(cls: type[Options], values: dict[str, Any]) -> Options:
    """The ``cls`` instance the typed command line gives (ConfigError names the field)."""
    hints, given = cls.field_types(), {}
    for field in dataclasses.fields(cls):
        value, item = values[field.name], _item_type(hints[field.name])
        if field.metadata["parse"] is not None:
            try:
                value = field.metadata["parse"](value)
            except ValueError as error:
                raise ConfigError(field.name, str(error)) from None
        elif item is not None:  # names may also come comma-separated; paths may not
            value = field.default if value is None else tuple(
                _split(value) if item is str else value)
        given[field.name] = value
    return cls(**given)


def _command(name: str, *classes: type[Options]):
    """Register ``run(ctx, *options)`` as command ``name``, its options the fields of
    ``classes`` and its help the first class's docstring."""

    def register(run: Callable[..., None]) -> Callable[..., None]:
        def command(ctx: typer.Context, **values: Any) -> None:
            try:
                options = [_options(cls, values) for cls in classes]
            except ValueError as error:
                raise _fail(_error_line(ctx, error)) from None
            run(ctx, *options)

        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=typer.Context)
        command.__signature__ = inspect.Signature([context, *_parameters(classes)])
        command.__doc__ = classes[0].__doc__
        app.command(name)(command)
        return run

    return register


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


def _typed(ctx: typer.Context, options: Options) -> set[str]:
    """The fields of ``options`` given on this command line (not left at their defaults)."""
    return {field.name for field in dataclasses.fields(options)
            if getattr(ctx.get_parameter_source(field.name), "name", None)
            in ("COMMANDLINE", "ENVIRONMENT")}


def _flag(ctx: typer.Context, name: str) -> str:
    """The option's name as the user types it, e.g. ``--model`` for ``model``."""
    param = next(p for p in ctx.command.params if p.name == name)
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])


# ----------------------------------------------------------------------------- the job path


_EXISTS_HINT = "pass --force to overwrite, choose another --run-id, or --resume it"


def _run_job(ctx: typer.Context, command: str | None, start: Callable[[], tuple[Any, Any]],
             after: str = "the measurement in flight", exists_hint: str = _EXISTS_HINT):
    """The one path of every command that writes results; returns ``(folder, result)``.

    ``start()`` validates everything and opens the run folder, returning it and
    ``measure(should_stop) -> result``. Ctrl-C and SIGTERM are caught for the whole run
    (``StopRequest``): the command stops after ``after`` with one line saying where its
    rows are and, for a ``command`` that resumes, how to go on; exit status 130.
    """
    from benchmark.errors import Stopped
    from benchmark.run_folder import RunExistsError, StopRequest, resume_command

    with StopRequest(_say, after) as stop:
        try:
            folder, measure = start()
        except RunExistsError as error:
            raise _fail(f"{error}; {exists_hint}") from None
        except ValueError as error:
            raise _fail(_error_line(ctx, error)) from None
        try:
            return folder, measure(stop.requested)
        except (Stopped, KeyboardInterrupt) as error:
            path = getattr(folder, "path", folder)
            again = (f"Resume with: {resume_command(command, path)}" if command else
                     "Run it again with --force to measure it whole.")
            _say(f"{error or 'interrupted'}; every finished row is in {path}. {again}")
            raise typer.Exit(code=130) from None


def _join_multihost() -> None:
    """jax.distributed.initialize(), before anything initialises the XLA backend (importing
    the library does: gymnax builds arrays at import)."""
    from benchmark.train.sharding import MultihostError, init_multihost

    def give_up(problem: str) -> None:  # from the watchdog's thread: nothing written yet
        _say(f"error: --multihost: {problem}")
        os._exit(2)

    try:
        init_multihost(on_timeout=give_up)
    except MultihostError as error:
        raise _fail(f"--multihost: {error}") from None


def _train(ctx: typer.Context, options: Options, control: RunControl, *, name: str) -> None:
    """Every training command (popgym, memory, meta): one job of its experiment.

    Exit status 1 when a seed diverged or a cell failed.
    """
    if control.multihost:
        _join_multihost()  # first of all
    from benchmark.experiments import jobs

    experiment = jobs.experiment(name)

    def start():
        job = jobs.prepare(experiment, options, control, typed=_typed(ctx, options))
        folder, resume = jobs.open_folder(job)
        for note in resume.notes if resume else ():
            _say(f"resume: {note}")
        console.print(f"[bold]s5bench {name}[/]: {len(job.plan.cells)} cell(s)"
                      f"{job.plan.describe}, writing to {folder.path}")
        return folder, lambda stop: jobs.train(job, folder, resume, console, stop)

    folder, outcome = _run_job(ctx, name, start, after="the current chunk and saving a "
                               "checkpoint")
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


for _name, _options_class in TRAINING_OPTIONS.items():  # popgym, memory, meta
    _command(_name, _options_class, RunControl)(functools.partial(_train, name=_name))


@_command("speed", SpeedOptions, FolderOptions)
def speed(ctx: typer.Context, options: SpeedOptions, folder_options: FolderOptions) -> None:
    from benchmark.measure.speed import close_sweep, open_sweep, prepare, run_sweep, summary_table
    from benchmark.schema import SPEED_CSV

    def start():
        job = prepare(options, folder_options, typed=_typed(ctx, options))
        folder = open_sweep(job)
        config = job.config
        console.print(f"[bold]s5bench speed[/]: {', '.join(config.models)} x "
                      f"{', '.join(config.modes)} at T in {list(config.seq_lens)}, "
                      f"B={config.batch}; writing to {folder.path}")
        return folder, lambda stop: run_sweep(config, folder.path / SPEED_CSV, console,
                                              should_stop=stop)

    folder, rows = _run_job(ctx, "speed", start)
    close_sweep(folder)
    console.print(summary_table(rows, f"median seconds per call on {folder.meta['backend']} "
                                f"({rows[0]['device'] if rows else '?'})"))
    console.print(f"results: {folder.path}")
    if any(row["status"] == "error" for row in rows):
        _say("some cells failed with an error; see the message column")
        raise typer.Exit(code=1)


@_command("reference", ReferenceOptions)
def reference(ctx: typer.Context, options: ReferenceOptions) -> None:
    from benchmark.experiments import jobs
    from benchmark.figures import draw_figures
    from benchmark.measure.reference import throughput_table

    def start():
        job = jobs.prepare_reference(options)
        return job.folder, lambda stop: jobs.run_reference(job, console, stop)

    folder, outcome = _run_job(ctx, None, start, exists_hint="--force overwrites it")
    console.print(throughput_table(outcome.throughput))
    draw_figures(folder, folder / "figures")
    console.print(f"results: {folder}")
    if outcome.failed:
        raise typer.Exit(code=1)


# ----------------------------------------------------------------------------- results


@_command("figures", FiguresOptions)
def figures(ctx: typer.Context, options: FiguresOptions) -> None:
    from benchmark.figures import FigureDataError, draw_figures

    if not options.results.is_dir():
        raise _fail(f"results folder {options.results} does not exist")
    try:
        report = draw_figures(options.results, options.out)
    except FigureDataError as error:
        raise _fail(str(error)) from None
    for figure in report.figures:
        files = ", ".join(str(path) for path in figure.files)
        typer.echo(f"drew {figure.title}: {files} (from {', '.join(map(str, figure.runs))})")
    for line in report.skipped:
        typer.echo(f"skipped {line}")
    if report.nothing_to_draw:
        typer.echo(f"nothing to draw: no figure's data (speed.csv, or curves.csv/summary.csv "
                   f"of a memory or POPGym run) under {options.results}")
    else:
        typer.echo(f"index: {report.index}")


@_command("merge", MergeOptions)
def merge(ctx: typer.Context, options: MergeOptions) -> None:
    from benchmark.experiments import jobs

    try:
        outcome, experiment = jobs.merge(options.sweep, mixed_devices=options.mixed_devices)
    except ValueError as error:
        raise _fail(str(error)) from None
    _report(experiment, outcome, options.sweep)


@_command("compare", CompareOptions)
def compare(ctx: typer.Context, options: CompareOptions) -> None:
    from benchmark.experiments.compare import CompareError, report_lines
    from benchmark.experiments.compare import compare as compare_runs

    try:
        result = compare_runs(options.runs, score=options.score,
                              allow_mixed=options.allow_mixed)
    except CompareError as error:
        raise _fail(str(error)) from None
    for line in report_lines(result):
        console.print(line, highlight=False)


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
        _say(f"error: {problem}")
    if problems:
        raise typer.Exit(code=2)


@_command("check", CheckOptions)
def check(ctx: typer.Context, options: CheckOptions) -> None:
    from benchmark.describe import check_table
    from benchmark.measure.conformance import check_backbone, check_config, check_env, failed
    from benchmark.selection import validated_envs, validated_models

    if not options.model and not options.env:
        raise _fail("give a MODEL to check (a name from `s5bench models` or an import path "
                    "package.module:ConfigClass), or --env ID")
    try:
        names = validated_models(options.model) if options.model else []
        configs = {name: check_config(name) for name in names}
        env_ids = validated_envs(options.env) if options.env else []
    except ValueError as error:  # a ConfigError on the field model (MODEL) or env (--env)
        where = "MODEL" if getattr(error, "field", None) == "model" else "--env"
        raise _fail(f"{where}: {getattr(error, 'problem', error)}") from None
    results = {}
    for subject, run in [*((name, lambda c=config: check_backbone(c))
                           for name, config in configs.items()),
                         *((env_id, lambda e=env_id: check_env(e)) for env_id in env_ids)]:
        console.print(f"checking {subject} …")
        results[subject] = run()
    console.print(check_table(results))
    failures = "; ".join(f"{subject}: {', '.join(failed(rows))}"
                         for subject, rows in results.items() if failed(rows))
    if failures:
        _say(f"failed: {failures}")
        raise typer.Exit(code=1)
    console.print("every property holds")


@_command("envs", EnvsOptions, EnvBenchOptions, FolderOptions)
def envs(ctx: typer.Context, listing: EnvsOptions, options: EnvBenchOptions,
         folder_options: FolderOptions) -> None:
    from benchmark.describe import env_lines
    from benchmark.measure import env_bench

    if not listing.bench:
        try:
            lines, problems = env_lines(listing.suite)
        except ValueError as error:
            raise _fail(str(error)) from None
        for line in lines:
            typer.echo(line)
        _plugin_problems(problems)
        return

    def start():
        job = env_bench.prepare(options, folder_options, typed=_typed(ctx, options))
        folder = env_bench.open_bench(job)
        return folder, lambda stop: list(env_bench.bench_envs(
            folder, job, on_start=lambda env_id: console.print(f"timing {env_id} …"),
            should_stop=stop))

    folder, rows = _run_job(ctx, "envs --bench", start)
    console.print(env_bench.bench_table(rows, folder.meta["device_kind"], options.batch))
    console.print(f"results: {folder.path}")


if __name__ == "__main__":
    app()
