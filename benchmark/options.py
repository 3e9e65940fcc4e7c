"""Every command's options: one frozen, typed dataclass each, whose field docs are the ``--help``.

A field is declared once, with ``option(default, help, *flags)``; ``cli.py`` turns the
fields into typer options (flags, help text, defaults) and hands the library an instance,
never a dict. The options that build a run are what config.json keeps under ``"options"``
(``dataclasses.asdict``), so a run folder rebuilds and resumes from them; where and how a
job runs (``FolderOptions``, ``RunControl``) is not an option of the run and is not kept.

The training commands share ``TrainOptions``; each redeclares only a field whose default or
help differs. No JAX here: ``s5bench --help`` builds every command from these classes.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError


def option(default: Any, help: str, *flags: str, parse: Callable[[str], Any] | None = None,
           argument: bool = False) -> Any:
    """A dataclass field that is also a command-line option.

    Args:
      default: the field's default (a tuple for list options; None for "all" or "unset").
      help: the ``--help`` text.
      *flags: the option's spellings (default: ``--field-name``).
      parse: for options typed as text but kept parsed (``--seq-len 8..64`` -> ``(8, 16,
        32, 64)``): text -> value, raising ValueError with the problem. ``default`` is
        then the text, as the user would type it, and the field's default its value.
      argument: a positional argument (``s5bench merge SWEEP``), not an option.
    """
    shown = default if parse is not None else None
    return field(default=default if parse is None else parse(default),
                 metadata={"help": help, "flags": flags, "parse": parse, "shown": shown,
                           "argument": argument})


@dataclass(frozen=True, kw_only=True)
class Options:
    """Base of every options class: rebuilt from the JSON config.json keeps."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """The options in ``data`` (lists become tuples); a field ``data`` lacks (added to
        the command since it was saved) keeps its default, a key no field has is ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: tuple(value) if isinstance(value, list) else value
                      for name, value in data.items() if name in names})

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """Each field's resolved type (the annotations here are strings)."""
        return typing.get_type_hints(cls)


def _models_help(default: str) -> str:
    return (f"Backbones from `s5bench models`, comma-separated or repeated (default: "
            f"{default}).")


_MODELS = ("--models", "--model", "-m")
_TOTAL_STEPS_HELP = ("Environment steps per seed (overrides the preset's "
                     "ppo.total_timesteps).")


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True, kw_only=True)
class TrainOptions(Options):
    """What every training command (popgym, memory, meta) trains: kept in config.json."""

    model: tuple[str, ...] | None = option(None, _models_help("all, the mlp control "
                                                              "included"), *_MODELS)
    seeds: int = option(1, "Seeds trained at once (a vmap axis).")
    preset: str = option("quick", "quick (CPU-sized, minutes) or paper (Lu et al.'s PPO "
                         "settings).")
    total_steps: int | None = option(None, _TOTAL_STEPS_HELP)
    overrides: tuple[str, ...] = option(
        (), "Override any config field, e.g. --set ppo.lr=3e-4 --set "
        "backbone.num_layers=2; repeatable. An unknown key lists the valid ones.", "--set")
    seed: int = option(0, "Base seed; seed i uses key(seed + i).")
    shard: str | None = option(
        None, "I/N: train only every N-th cell of the sweep, starting at the I-th, into "
        "RUN_ID/shard-I-of-N (needs --run-id). N jobs (a SLURM array) split one sweep; "
        "`s5bench merge OUT/RUN_ID` joins them. See the README.")


@dataclass(frozen=True, kw_only=True)
class PopgymOptions(TrainOptions):
    """Train backbones with PPO on POPGym (or any registered) environments.

    Writes OUT/RUN_ID/ with config.json, meta.json, curves.csv (one row per model, env,
    seed and update), summary.csv (one row per model, env and seed) and checkpoints/.
    Exit status: 0 when every seed finished, 1 when a seed diverged or a cell failed,
    2 for bad input, 130 when stopped (Ctrl-C; the printed command resumes).
    """

    model: tuple[str, ...] | None = option(
        ("s5",), "Backbone(s): a name from `s5bench models`, repeatable or comma-separated.",
        "--model", "-m")
    preset: str = option("quick", "quick (CPU-sized, minutes) or paper (Lu et al.: 64 envs x "
                         "1024 steps, 15M steps).")
    env: tuple[str, ...] = option(
        ("RepeatPreviousEasy",), "Environment id, alias, family name (all three "
        "difficulties) or `all` (every POPGym environment); repeatable or comma-separated.",
        "--env", "-e")


@dataclass(frozen=True, kw_only=True)
class MemoryOptions(TrainOptions):
    """Train backbones with PPO on bsuite's MemoryChain over a sweep of memory lengths.

    The cue shows at the first step; L steps later the agent must take the action it
    named (+1 right, -1 wrong; no memory scores 0). One compiled program per (model,
    length), seeds vmapped. Writes OUT/RUN_ID/ with config.json, meta.json, curves.csv
    (one row per model, memory_length, seed and update) and summary.csv (one row per
    model, memory_length and seed, with success = best return >= 0.8, i.e. at least 90%
    of cues recalled).
    """

    seeds: int = option(3, "Seeds trained at once (a vmap axis).")
    preset: str = option(
        "quick", "quick (CPU-sized) or paper (Lu et al.'s PPO settings). Per memory length "
        "L, ppo.num_steps becomes the larger of the preset's and the smallest power of two "
        ">= L + 1 (one whole episode), and ppo.num_envs shrinks by the same factor so "
        "updates keep the preset's size (with fewer environments than "
        "ppo.num_minibatches, each minibatch is one environment); the previous-action "
        "input is off (it could carry the cue).")
    total_steps: int | None = option(
        None, "Environment steps per seed and memory length (overrides the preset's "
        "ppo.total_timesteps).")
    overrides: tuple[str, ...] = option(
        (), "Override any config field after the per-length choice above, e.g. --set "
        "ppo.lr=3e-4; repeatable. The rollout must still cover an episode.", "--set")
    lengths: str = option(
        "4..1024", "Memory lengths (steps between the cue and the decision): A..B (every "
        "power of two from A to B, both powers of two) or a comma list such as 5,10,30.")


@dataclass(frozen=True, kw_only=True)
class MetaOptions(TrainOptions):
    """In-context meta-RL: train on randomly projected tasks, evaluate trial by trial.

    Each meta-episode samples a base environment of the suite and random observation and
    action projections (the paper's MetaCartPole: a random observation map of its
    position-only CartPole, every trial from one start state), and runs K trials of it; the
    agent's carry resets only between meta-episodes (envs/meta_rl.py,
    envs/meta_cartpole.py). After training, the policy is evaluated with no gradient step
    on fresh projections of every training and held-out environment. Writes OUT/RUN_ID/
    with config.json, meta.json, curves.csv, summary.csv and trials.csv (one row per model,
    seed, split, base env and trial index: the in-context learning curve).
    """

    suite: str | None = option(
        None, "Training suite (`s5bench envs --suite meta`): MetaControl (gymnax Pendulum, "
        "MountainCarContinuous, Reacher, Swimmer and POPGym's PositionOnlyPendulumEasy), "
        "MetaCartPole (the paper's: position-only CartPole through a random 2 -> 4 map, "
        "every trial from one start state), ProjectedCartPole (s5bench's variant) or "
        "ProjectedBandit (default: quick MetaControl, paper MetaCartPole).")
    held_out: str = option(
        "default", "Evaluation-only suite, sharing no environment with the training suite "
        "(default: the suite's own, MetaControlHeldOut for MetaControl), or none.")
    trials: int | None = option(None, "K: trials per meta-episode (default: quick 4, paper "
                                "16).")
    trial_length: int | None = option(
        None, "Cap on one trial's steps, 0 for each environment's own limit (default: quick "
        "32, paper 200).")
    eval_episodes: int = option(64, "Evaluation meta-episodes per seed and base "
                                "environment.")
    eval_trials: int | None = option(
        None, "Trials per evaluation meta-episode, past the training horizon if larger "
        "(default: quick as --trials, paper 32 as in the paper's code).")


# ----------------------------------------------------------------------------- where a job runs


@dataclass(frozen=True, kw_only=True)
class FolderOptions(Options):
    """Where a command writes its run folder, or which one it continues."""

    out: Path | None = option(None, "Parent folder of the run folder (default: "
                              "results/<command>).")
    run_id: str | None = option(None, "Name of the run folder (default: the start time).")
    force: bool = option(False, "Overwrite the CSVs of an existing run folder.")
    resume: Path | None = option(
        None, "Continue the run in this folder, appending to its CSVs, with the options it "
        "was started with (kept in its config.json). An option given beside it must agree "
        "with the saved one (a difference is named, exit 2); a list option the command "
        "calls extendable adds to the saved list.", "--resume")

    def __post_init__(self):
        if self.resume is not None and (self.run_id is not None or self.force):
            raise ConfigError("resume", f"continues {self.resume}; it takes no --run-id or "
                              "--force")

    def out_for(self, command: str) -> Path:
        """``out``, or ``results/<command>`` when none was given."""
        return self.out if self.out is not None else Path("results") / command


@dataclass(frozen=True, kw_only=True)
class RunControl(FolderOptions):
    """How a training job runs: its folder, checkpoints and devices (not kept as options)."""

    checkpoint_every: float = option(
        10.0, "Minutes of training between checkpoints (0: after every chunk). A cell is "
        "also saved when it ends and on Ctrl-C or SIGTERM.", "--checkpoint-every")
    keep_checkpoints: int = option(2, "Newest checkpoints kept per cell (the final one "
                                   "included).", "--keep-checkpoints")
    devices: int | None = option(
        None, "Use at most N of the visible devices (default: all). Seeds are split over "
        "them, then environments.", "--devices")
    multihost: bool = option(
        False, "Join a multi-host run (one process per host) with "
        "jax.distributed.initialize; process 0 writes the results. See the README.",
        "--multihost")


# ----------------------------------------------------------------------------- measuring


def parse_lengths(text: str) -> list[int]:
    """Sequence lengths from ``"A..B"`` or a comma list, sorted and without repeats.

    ``"A..B"`` gives every power of two from A to B inclusive; A and B must be powers of
    two with A <= B. A comma list (``"100,300"``) may hold any positive integers.

    Raises:
      ValueError: with a one-line message naming the problem.
    """
    text = text.strip()
    if ".." in text:
        low_text, _, high_text = text.partition("..")
        try:
            low, high = int(low_text), int(high_text)
        except ValueError:
            raise ValueError(f"range {text!r} needs two integers, as in 1024..65536") from None
        for value in (low, high):
            if value <= 0 or value & (value - 1):
                raise ValueError(f"range {text!r}: {value} is not a positive power of two "
                                 f"(use a comma list for other lengths)")
        if low > high:
            raise ValueError(f"range {text!r} is reversed; write {high}..{low}")
        return [2**k for k in range(low.bit_length() - 1, high.bit_length())]
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError("no lengths given; write A..B (powers of two) or a comma list "
                         "such as 256,1024")
    lengths = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{part!r} in {text!r} is not an integer length") from None
        if value <= 0:
            raise ValueError(f"length {value} in {text!r} is not positive")
        lengths.append(value)
    return sorted(set(lengths))


def _parse_lengths(text: str) -> tuple[int, ...]:
    return tuple(parse_lengths(text))


@dataclass(frozen=True, kw_only=True)
class SpeedOptions(Options):
    """Time training, inference and rollout of each backbone against sequence length.

    Writes OUT/RUN_ID/ with config.json, meta.json and speed.csv: one row per (model,
    evaluation, mode, seq_len, batch) with compile seconds, median/min/max/IQR seconds of
    the timed repeats, tokens per second and a status (ok, oom, timeout, error, skipped).
    The defaults are CPU-sized (B 4, width 64, 2 layers, 5 repeats, 60 s per cell). With
    --resume, the cells already in speed.csv are skipped, and --seq-len, --models and
    --modes add to the sweep.
    """

    seq_len: tuple[int, ...] = option(
        "1024..65536", "Sequence lengths T: A..B (every power of two from A to B, both "
        "powers of two) or a comma list such as 256,1000,4096.", parse=_parse_lengths)
    model: tuple[str, ...] | None = option(
        None, _models_help("all") + " S5 is timed with both its parallel and sequential "
        "evaluation.", *_MODELS)
    mode: tuple[str, ...] | None = option(
        None, "train (forward + backward + optimizer update over [T, B]), infer (one "
        "forward over [T, B]), rollout (T single-step calls threading the carry); "
        "comma-separated (default: all three).", "--modes", "--mode")
    batch: int = option(4, "B: sequences per call.")
    d_model: int = option(64, "Width of every backbone (and of the actor-critic heads).")
    layers: int = option(2, "Layers of every backbone.")
    repeats: int = option(5, "Timed calls per cell (median, IQR).")
    warmup: int = option(1, "Untimed calls before the repeats.")
    max_seconds: float = option(
        60.0, "Budget per cell for warm-up + repeats (compile excluded); a cell over it is "
        "a `timeout` row and longer lengths of its series are `skipped`.")


# The training commands' options, by command.
TRAINING_OPTIONS = {"popgym": PopgymOptions, "memory": MemoryOptions, "meta": MetaOptions}

# Which options a resumed run may extend (joined with the saved lists), per command.
EXTENDABLE = {"speed": ("seq_len", "model", "mode")}


@dataclass(frozen=True, kw_only=True)
class EnvsOptions(Options):
    """List the registered environments, one line each, with their aliases (or --bench them)."""

    suite: str | None = option(None, "Only this suite (popgym, probe, meta, gymnax, plugin).")
    bench: bool = option(
        False, "Measure env-only steps/s of each JAX port (vmapped, compiled) beside the "
        "reference popgym package, and write env_bench.csv.", "--bench")


@dataclass(frozen=True, kw_only=True)
class EnvBenchOptions(Options):
    """What ``s5bench envs --bench`` times."""

    env: tuple[str, ...] = option(
        ("all",), "With --bench: environments, families or `all` (every POPGym port).",
        "--env", "-e")
    batch: int = option(1024, "With --bench: environments stepped at once.")
    steps: int = option(256, "With --bench: steps per timed call.")
    repeats: int = option(5, "With --bench: timed calls (median).")


@dataclass(frozen=True, kw_only=True)
class ReferenceOptions(Options):
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

    tiny: bool = option(False, "The CPU-sized plan (a minute on 2 cores): the same steps, "
                        "tiny sizes.")
    out: Path = option(Path("results/reference"), "Parent folder; the run goes to "
                       "OUT/<device>/ (e.g. gpu-nvidia-h200).")
    force: bool = option(False, "Overwrite an existing reference run of this device.")


# ----------------------------------------------------------------------------- reading runs


@dataclass(frozen=True, kw_only=True)
class FiguresOptions(Options):
    """Draw every figure whose data is present, from CSVs only; list them in OUT/index.md.

    Figures: scaling and speed ratio to S5 (speed runs); return and wall time against
    memory length (memory runs); learning curves, MMER and wall time, return against cost
    (POPGym runs). A figure without data is skipped with one line saying why; a CSV that
    cannot be read or lacks a column is an error (exit 2) naming the file.
    """

    results: Path = option(Path("results"), "Folder searched (at any depth) for run folders: "
                           "speed.csv, curves.csv, summary.csv.")
    out: Path = option(Path("figures"), "Where the PNG/SVG files and index.md go.")


@dataclass(frozen=True, kw_only=True)
class MergeOptions(Options):
    """Join the shards of a sweep (--shard I/N) into the tables one job would have written.

    Every shard must have finished. SWEEP then holds config.json (every run, in the sweep's
    order), meta.json (naming each shard's), curves.csv, summary.csv and the experiment's
    other tables (aggregate.csv, trials.csv), so `s5bench figures` draws it as one run.
    meta.json records each shard's device.
    """

    sweep: Path = option(..., "The sweep folder whose shard-I-of-N folders are joined "
                         "(OUT/RUN_ID).", argument=True)
    mixed_devices: bool = option(
        False, "Merge shards that ran on different kinds of device (their timings do not "
        "compare; refused without this).", "--mixed-devices")


@dataclass(frozen=True, kw_only=True)
class CompareOptions(Options):
    """Compare backbones with 95% intervals: per environment, aggregate, and which differ.

    Per environment: each backbone's mean over seeds with its stratified-bootstrap
    interval. Aggregate: IQM, median, mean and optimality gap of the normalised score.
    Then P(X > Y) for every pair, naming the pairs whose interval is clear of 1/2 and those
    the seeds at hand cannot tell apart. Nothing is retrained.
    """

    runs: tuple[Path, ...] = option(
        ..., "POPGym run folders (or sweep folders of shards) whose backbones are compared "
        "on the environments every backbone has.", argument=True)
    score: str = option("mmer", "Score of a run: mmer (its best update's mean return) or "
                        "final_return (the mean over the last 10% of updates).")
    allow_mixed: bool = option(False, "Compare runs from different devices or presets.",
                               "--allow-mixed")


@dataclass(frozen=True, kw_only=True)
class CheckOptions(Options):
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

    model: tuple[str, ...] = option(
        (), "Backbones: names from `s5bench models` (plugins included) or import paths "
        "package.module:ConfigClass.", argument=True)
    env: tuple[str, ...] = option(
        (), "Environments to check instead (or as well): ids from `s5bench envs` or import "
        "paths package.module:factory; repeatable or comma-separated.", "--env", "-e")
