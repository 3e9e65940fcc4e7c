"""The experiment surface: what a training command is, and the one path that runs it.

An experiment (``popgym``, ``memory``, ``meta``) is an ``Experiment``: its name, the label
columns of its CSV rows, a ``plan`` that turns the command's options into cells (one
compiled training program each, built by ``config.build_run_config``) and the settings
config.json keeps, and optionally extra summary columns, an ``after_cell`` hook (meta
evaluates each trained cell there), extra CSVs and a ``finish`` step. Everything else is
shared, here:

- ``prepare``: options (or, with ``resume``, the run's own), the plan, the checkpoint and
  device settings, all validated before anything is compiled or written;
- ``open_folder``: create the run folder, or reopen it and plan the resume;
- ``train``: every cell through ``cells.run_cells`` (the one PPO loop), then ``finish``;
- sharding: ``options.shard = "I/N"`` trains every N-th cell into ``<run>/shard-I-of-N``
  so that many jobs (a SLURM array) split one sweep, and ``merge`` joins the shards into
  the tables one job would have written.

Adding an experiment: an options class in ``benchmark/options.py`` (its fields are the
command's flags), a module whose ``plan(options)`` returns the cells and settings, one
``Experiment`` entry in ``EXPERIMENTS``, and a one-line command in ``cli.py``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.compat import upgraded_options
from benchmark.config import ConfigError, from_dict, rebuilt_runs, to_dict
from benchmark.experiments import memory, meta_rl, popgym
from benchmark.experiments.cells import Session, run_cells
from benchmark.experiments.resume import ResumeState, cell_key, prepare_resume
from benchmark.experiments.types import Cell, Experiment, Plan
from benchmark.measure import reference, speed
from benchmark.options import (
    TRAINING_OPTIONS,
    FolderOptions,
    ReferenceOptions,
    RunControl,
    TrainOptions,
)
from benchmark.plugins import run_plugins
from benchmark.results import (
    CsvLog,
    collect_meta,
    device_info,
    device_label,
    is_primary_process,
    read_raw_rows,
    read_rows,
    write_json,
)
from benchmark.run_folder import (
    RunExistsError,
    RunFolder,
    RunFolderError,
    check_plugins,
    check_resumable,
    config_difference,
    create,
    reopen,
    resolve_options,
)
from benchmark.schema import CURVES_CSV, SPEED_CSV, SUMMARY_CSV
from benchmark.train.checkpoint import CheckpointSettings
from benchmark.train.sharding import (
    MultihostError,
    available_devices,
    exchange,
    is_multiprocess,
    process_layout,
)
from models import registered_backbones

EXPERIMENTS = {"popgym": popgym.EXPERIMENT, "memory": memory.EXPERIMENT,
               "meta": meta_rl.EXPERIMENT}


def experiment(name: str) -> Experiment:
    """The experiment called ``name``; a ValueError lists the valid ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# ----------------------------------------------------------------------------- one job


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/3"`` -> ``(2, 3)``: the second of three shards; ``ConfigError`` if malformed."""
    if text is None:
        return None
    index, sep, count = str(text).partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        shard = None
    if not sep or shard is None or not 1 <= shard[0] <= shard[1]:
        raise ConfigError("shard", f"expected I/N with 1 <= I <= N (e.g. 2/8), got {text!r}")
    return shard


def plan_job(exp: Experiment, options: TrainOptions) -> Plan:
    """The experiment's plan, narrowed to the shard ``options.shard`` names, if any.

    Shard I of N takes cells I-1, I-1+N, I-1+2N, ... of the whole sweep's order, so the
    shards of a sweep split its cells without overlap whatever the cell count.
    """
    shard = parse_shard(options.shard)
    plan = exp.plan(options)
    if shard is None:
        return plan
    index, count = shard
    cells = plan.cells[index - 1::count]
    if not cells:
        raise ConfigError("shard", f"{index}/{count}: the sweep has only "
                          f"{len(plan.cells)} cell(s), so this shard would train none")
    return dataclasses.replace(plan, cells=cells, shard=shard)


def config_document(exp: Experiment, options: TrainOptions, plan: Plan) -> dict:
    """config.json: the command, its options, the experiment's settings and every run.

    A run that uses plugins also records them (``plugins``: import path, distribution and
    version of each), so that it resumes and merges only with the same ones.
    """
    return {"command": exp.name, "options": dataclasses.asdict(options), **plan.settings,
            **_plugins_entry(plan.cells), "runs": [to_dict(cell.config) for cell in plan.cells]}


def _plugins_entry(cells: Sequence[Cell]) -> dict[str, Any]:
    """``{"plugins": [...]}`` when a cell uses a plugin; nothing otherwise (older folders
    have no such entry, and a resume compares config.json entries)."""
    records = run_plugins([cell.config for cell in cells])
    return {"plugins": records} if records else {}


def shard_name(shard: tuple[int, int]) -> str:
    """The folder shard I of N writes into, inside its sweep's folder."""
    return f"shard-{shard[0]}-of-{shard[1]}"


@dataclass
class Job:
    """One validated training job: what it trains and where, nothing written yet."""

    experiment: Experiment
    options: TrainOptions
    plan: Plan
    doc: dict[str, Any]
    control: RunControl
    checkpoint: CheckpointSettings


def prepare(exp: Experiment, options: TrainOptions, control: RunControl,
            typed: Collection[str] = ()) -> Job:
    """Plan a job, check its devices and, to resume, that the run's settings are these.

    With ``control.resume`` the options are the run's own (``run_folder.resolve_options``):
    a field in ``typed`` (given on the command line) must agree with the saved one. Models
    left unset (None) are every registered backbone.

    In a multi-process run every process prepares its own job; they then compare them, so
    that a process given other options (another ``--model``, ``--seeds``) stops every
    process with one line before anything compiles, instead of hanging in a collective.

    Raises ValueError (``ConfigError``, ``RunFolderError``, ``MultihostError``) on bad
    input, before anything is compiled or written.
    """
    try:
        options = resolve_options(exp.name, control.resume, options, typed)
        if options.model is None:
            options = dataclasses.replace(options, model=tuple(registered_backbones()))
        if options.shard is not None and control.run_id is None and control.resume is None:
            raise ConfigError("shard", "needs --run-id: every shard of a sweep writes into "
                              "the same sweep folder")
        plan = plan_job(exp, options)
        checkpoint = CheckpointSettings(every_minutes=control.checkpoint_every,
                                        keep=control.keep_checkpoints)
        job = Job(exp, options, plan, config_document(exp, options, plan), control,
                  checkpoint)
        available_devices(control.devices)
        if control.resume is not None:
            check_resumable(control.resume, exp.name, job.doc, rebuilt_runs)
    except ValueError as error:
        _agree_on_settings(None, error)
        raise
    _agree_on_settings(job.doc, None)
    return job


def _agree_on_settings(doc: Mapping[str, Any] | None, error: Exception | None) -> None:
    """Every process of a multi-process run holds process 0's settings (no-op for one).

    A process whose own options were refused tells the others before it stops with its
    error; the others then stop too, naming it.
    """
    if not is_multiprocess():
        return
    mine = {"error": str(error)} if error is not None else {"doc": doc}
    everyone = [json.loads(v) for v in exchange("settings", json.dumps(mine, default=str))]
    if error is not None:
        return
    for index, theirs in enumerate(everyone):
        if "error" in theirs:
            raise MultihostError(f"process {index} refused its options: {theirs['error']}")
        difference = config_difference(everyone[0]["doc"], theirs["doc"])
        if difference is not None:
            raise MultihostError(f"process {index}'s settings differ from process 0's: "
                                 f"{difference}; start every process with the same options")


def open_folder(job: Job) -> tuple[RunFolder, ResumeState | None]:
    """Create the job's run folder (a shard's inside its sweep's), or reopen it to resume.

    Returns the folder and, on a resume, where each cell continues (``prepare_resume``
    has trimmed the CSVs to match). In a multi-process run process 0 does this and the
    others follow into the folder it names, writing nothing (their run id may differ: a
    default one is the start time); if it fails, every process stops with its reason.
    """
    if not is_multiprocess():
        return _open_folder(job)
    if is_primary_process():
        try:
            folder, resume = _open_folder(job)
        except Exception as error:
            exchange("open_folder", json.dumps({"error": f"{type(error).__name__}: {error}"}))
            raise
        exchange("open_folder", json.dumps({"path": str(folder.path)}))
        return folder, resume
    primary = json.loads(exchange("open_folder", "{}")[0])
    if "error" in primary:
        raise MultihostError(f"process 0 could not open the run folder: {primary['error']}")
    path = Path(primary["path"])
    if job.control.resume is None:
        return RunFolder(path, collect_meta()), None
    # Process 0 has trimmed the CSVs by now: the same plan, read without writing.
    return RunFolder(path, {}, resumed=True), prepare_resume(
        path, job.plan.cells, job.experiment.labels, job.checkpoint,
        job.experiment.extra_csvs, trim=False)


def _open_folder(job: Job) -> tuple[RunFolder, ResumeState | None]:
    exp, checkpoint, control = job.experiment, job.checkpoint, job.control
    checkpoint_meta = {"every_minutes": checkpoint.every_minutes, "keep": checkpoint.keep}
    if control.resume is None:
        out, run_id = control.out_for(exp.name), control.run_id
        if job.plan.shard is not None:
            out, run_id = out / run_id, shard_name(job.plan.shard)
        folder = create(out, run_id, control.force, job.doc,
                        {**_resolved_settings(job.plan.cells), "checkpoint": checkpoint_meta,
                         "devices_limit": control.devices, **_plugins_entry(job.plan.cells),
                         **process_layout()})
        return folder, None
    resume = prepare_resume(control.resume, job.plan.cells, exp.labels, checkpoint,
                            exp.extra_csvs)
    folder = reopen(control.resume, resume_info={
        "from_update": resume.from_update(job.plan.cells, exp.labels),
        "finished_cells": len(resume.done), "checkpoint": checkpoint_meta,
        "devices_limit": control.devices, **process_layout()})
    return folder, resume


def _resolved_settings(cells: Sequence[Cell]) -> dict:
    """Settings resolved at run time (e.g. which S5 evaluation runs on this backend)."""
    meta = {}
    for cell in cells:
        resolved = getattr(cell.config.backbone, "resolved_evaluation", None)
        if resolved is not None:
            meta[f"{cell.config.model}_evaluation"] = resolved
    return meta


@dataclass
class Outcome:
    rows: list[dict[str, Any]]  # summary rows, one per cell and seed
    tables: list[Any]  # the experiment's own result tables, to print


def train(job: Job, folder: RunFolder, resume: ResumeState | None, console,
          should_stop: Callable[[], bool] = lambda: False) -> Outcome:
    """Train every cell of the job into ``folder``, then the experiment's finish step.

    Raises ``train.loop.TrainingInterrupted`` (an ``errors.Stopped``) when
    ``should_stop()`` turned true (the cell in flight is checkpointed; ``--resume``
    continues it).
    """
    exp = job.experiment
    session = Session(folder.path, checkpoint=job.checkpoint, devices=job.control.devices,
                      should_stop=should_stop, resume=resume, meta=folder.meta)
    after = exp.after_cell(job.plan.context, folder.path) if exp.after_cell else None
    rows = run_cells(job.plan.cells, folder.path, exp.labels, console,
                     extra_summary=exp.extra_summary, session=session, after_cell=after)
    return Outcome(rows, _finish(exp, job.plan.context, folder.path, rows))


def _finish(exp: Experiment, context: Any, run_dir: Path, rows: list[dict]) -> list[Any]:
    return exp.finish(context, run_dir, rows) if exp.finish is not None else []


# ----------------------------------------------------------------------------- reference


@dataclass
class ReferenceOutcome:
    folder: Path  # OUT/<device>/
    speed_rows: list[dict[str, Any]]  # speed/speed.csv
    outcome: Outcome  # the end-to-end popgym run's
    throughput: list[dict[str, Any]]  # throughput.csv

    @property
    def failed(self) -> bool:
        """A speed cell raised an error, or an end-to-end seed diverged or failed."""
        return (any(row["status"] == "error" for row in self.speed_rows)
                or any(row["status"] != "ok" for row in self.outcome.rows))


# The two parts of a reference run: the speed sweep and the end-to-end run.
REFERENCE_PARTS = ("speed", "paper-throughput")


@dataclass
class ReferenceJob:
    """A validated reference run: its folder and its two parts, nothing written yet."""

    folder: Path  # OUT/<device>/
    spec: reference.ReferenceSpec
    sweep: speed.SpeedJob
    training: Job


def prepare_reference(options: ReferenceOptions) -> ReferenceJob:
    """Both parts of ``s5bench reference``, validated before anything is measured.

    Raises ``RunExistsError`` when the folder already holds a reference run (unless
    ``options.force``).
    """
    spec = reference.reference_spec("tiny" if options.tiny else "full")
    folder = options.out / reference.folder_name(device_info(), spec.size)
    if not options.force and any((folder / part).exists() for part in REFERENCE_PARTS):
        raise RunExistsError(f"{folder} already holds a reference run")
    sweep = speed.prepare(spec.speed, FolderOptions(out=folder, run_id=REFERENCE_PARTS[0],
                                                    force=options.force))
    training = prepare(EXPERIMENTS["popgym"], spec.popgym_options(),
                       RunControl(out=folder, run_id=REFERENCE_PARTS[1], force=options.force,
                                  keep_checkpoints=1))
    return ReferenceJob(folder, spec, sweep, training)


def run_reference(job: ReferenceJob, console,
                  should_stop: Callable[[], bool] = lambda: False) -> ReferenceOutcome:
    """The speed sweep, then the end-to-end POPGym run, each through its own job path into
    ``job.folder``, then ``throughput.csv``. Raises ``errors.Stopped`` when
    ``should_stop()`` turned true (every finished row is written)."""
    sweep_folder = speed.open_sweep(job.sweep)
    speed_rows = speed.run_sweep(job.sweep.config, sweep_folder.path / SPEED_CSV, console,
                                 should_stop=should_stop)
    speed.close_sweep(sweep_folder)
    run_folder, _ = open_folder(job.training)
    outcome = train(job.training, run_folder, None, console, should_stop)
    return ReferenceOutcome(job.folder, speed_rows, outcome,
                            reference.write_results(job.folder, job.spec))


# ----------------------------------------------------------------------------- shards


# The meta.json keys that say where a run ran.
_DEVICE_KEYS = ("backend", "device_kind", "device_count", "cpu_count", "devices")


def merge(sweep_dir: Path, mixed_devices: bool = False) -> tuple[Outcome, Experiment]:
    """Join the shards of a sweep (``sweep_dir/shard-I-of-N``) into ``sweep_dir`` itself.

    The shards must come from one sweep (the same command and options, shard aside), all N
    present, each finished. ``sweep_dir`` then holds what one job training every cell
    would have written: config.json with every run in the sweep's order, curves.csv,
    summary.csv and the experiment's extra CSVs (rows cell by cell in that order), the
    finish step's tables (``aggregate.csv``, ``comparison.csv`` for POPGym) and a
    meta.json naming the shards' own and each shard's device (``shard_devices``); returns
    the merged outcome and the experiment. Raises ``RunFolderError`` saying what is missing
    or inconsistent, and, unless ``mixed_devices``, when the shards ran on different kinds
    of device (their timings do not compare); a mixed merge's device is ``mixed``, its kind
    listing the shards' devices.
    """
    sweep_dir = Path(sweep_dir)
    shards = sorted(sweep_dir.glob("shard-*-of-*"))
    if not shards:
        raise RunFolderError(f"{sweep_dir}: no shard-I-of-N folders to merge")
    docs = {path: _read_json(path / "config.json") for path in shards}
    for path, doc in docs.items():
        check_plugins(path, doc)
    first = docs[shards[0]]
    exp = experiment(first.get("command", "?"))
    saved = {path: upgraded_options(doc["options"]) for path, doc in docs.items()}
    options = {k: v for k, v in saved[shards[0]].items() if k != "shard"}
    count = parse_shard(saved[shards[0]]["shard"])[1]
    by_index: dict[int, Path] = {}
    for path in docs:
        if {k: v for k, v in saved[path].items() if k != "shard"} != options:
            raise RunFolderError(f"{path}: its options differ from {shards[0]}'s")
        index, n = parse_shard(saved[path]["shard"])
        if n != count:
            raise RunFolderError(f"{path}: shard of {n}, {shards[0]} of {count}")
        by_index[index] = path
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise RunFolderError(f"{sweep_dir}: shard(s) {', '.join(map(str, missing))} of "
                             f"{count} missing")
    whole_options = TRAINING_OPTIONS[exp.name].from_dict({**options, "shard": None})
    whole = exp.plan(whole_options)
    order = [cell_key(cell.labels, exp.labels) for cell in whole.cells]
    owner: dict[tuple[str, ...], Path] = {}
    for index, path in sorted(by_index.items()):
        runs = [exp.make_cell(from_dict(run)) for run in docs[path]["runs"]]
        expected = whole.cells[index - 1::count]
        if [to_dict(c.config) for c in runs] != [to_dict(c.config) for c in expected]:
            raise RunFolderError(f"{path}: its runs are not shard {index}/{count} of the "
                                 f"sweep its options describe")
        seeds = {cell_key(c.labels, exp.labels): c.config.num_seeds for c in runs}
        done = _finished_cells(path / SUMMARY_CSV, exp.labels)
        unfinished = [key for key, n in seeds.items() if done.get(key, 0) < n]
        if unfinished:
            raise RunFolderError(
                f"{path}: {len(unfinished)} cell(s) not finished (first: "
                f"{' · '.join(unfinished[0])}); resume that shard first")
        owner.update(dict.fromkeys(seeds, path))

    doc = config_document(exp, whole_options, whole)
    write_json(sweep_dir / "config.json", doc)
    metas = {path.name: _read_json(path / "meta.json") for path in shards}
    devices = {name: {k: meta[k] for k in _DEVICE_KEYS if k in meta}
               for name, meta in metas.items()}
    kinds = {(d.get("backend"), d.get("device_kind")) for d in devices.values()}
    if len(kinds) == 1:
        device = devices[shards[0].name]
    else:
        listing = "; ".join(f"{name}: {device_label(d)}" for name, d in devices.items())
        if not mixed_devices:
            raise RunFolderError(f"{sweep_dir}: its shards ran on different devices "
                                 f"({listing}), so their timings do not compare; pass "
                                 f"--mixed-devices to merge them anyway")
        device = {"backend": "mixed", "device_kind": listing}
    write_json(sweep_dir / "meta.json",
               {**device, "shard_devices": devices, "merged_from": metas})
    for name, columns in {CURVES_CSV: exp.labels, SUMMARY_CSV: exp.labels,
                          **exp.extra_csvs}.items():
        _merge_csv(name, columns, exp.labels, order, owner, sweep_dir)
    rows = read_rows(sweep_dir / SUMMARY_CSV)
    return Outcome(rows, _finish(exp, whole.context, sweep_dir, rows)), exp


def _merge_csv(name: str, columns: Sequence[str], labels: Sequence[str],
               order: Sequence[tuple[str, ...]], owner: Mapping[tuple[str, ...], Path],
               sweep_dir: Path) -> None:
    """``name`` of every shard, rows grouped by cell in the sweep's order."""
    index = [list(labels).index(c) for c in columns]
    header, by_cell = None, {}
    for path in dict.fromkeys(owner.values()):
        rows = read_raw_rows(path / name)
        if rows:
            header = header or list(rows[0])
        for row in rows:
            by_cell.setdefault(cell_key(row, columns), []).append(row)
    if header is None:
        return
    target = sweep_dir / name
    target.unlink(missing_ok=True)
    seen = set()
    with CsvLog(target, header) as log:
        for key in order:
            part = tuple(key[i] for i in index)
            if part not in seen:
                seen.add(part)
                log.write_many(by_cell.get(part, []))


def _finished_cells(path: Path, labels: Sequence[str]) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for row in read_raw_rows(path):
        if row["status"] != "error":
            key = cell_key(row, labels)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path}: {error}") from None
