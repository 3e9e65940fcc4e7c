"""Checkpoints of one training cell: orbax writes them, a manifest proves them whole.

Between compiled chunks the host saves the seed-stacked ``RunnerState`` (parameters,
optimizer state, environment states, carries, keys, update counter, divergence record)
and the per-update mean returns so far, under ``<run>/checkpoints/<cell>/<update>/``.

Why orbax: it is the JAX ecosystem's checkpointer, saves sharded ``jax.Array``s from
every process of a multi-host run, and commits a step by writing it to a temporary folder
and renaming it, so a crash mid-save never damages the previous step. It does not
checksum what it wrote, though: with orbax 0.12.8 a data file truncated on disk restores
without complaint (seen here). So after each save the primary process writes
``s5bench-manifest.json`` (size and SHA-256 of every file of the step), atomically, and a
step counts only if its manifest exists and matches: no manifest means the save never
finished; a mismatch means the files changed since. ``latest_valid`` then falls back to
the newest step that checks out.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from benchmark.errors import ConfigError
from benchmark.results import write_json

MANIFEST = "s5bench-manifest.json"


@dataclass(frozen=True)
class CheckpointSettings:
    """How often a cell is saved and how many saves are kept (both command-line options)."""

    every_minutes: float = 10.0  # training time between saves; 0 = after every chunk
    keep: int = 2  # newest saves kept per cell (the final one always among them)

    def __post_init__(self):
        if not (self.every_minutes >= 0 and math.isfinite(self.every_minutes)):
            raise ConfigError("checkpoint.every_minutes",
                              f"must be >= 0 minutes, got {self.every_minutes}")
        if self.keep < 1:
            raise ConfigError("checkpoint.keep", f"must be at least 1, got {self.keep}")


@dataclass
class Restored:
    runner: Any  # RunnerState, seeds stacked, on the run's shardings
    update: int  # updates done
    train_s: float  # training seconds spent before this checkpoint (compile excluded)
    mean_return: np.ndarray  # [S, update]: per-update mean return, NaN where none ended


class CellCheckpoints:
    """The checkpoints of one cell: save, list, check and restore them."""

    def __init__(self, directory: Path, settings: CheckpointSettings = CheckpointSettings()):
        self.directory = Path(directory).absolute()
        self.settings = settings
        self._manager = None
        self._last_save = time.monotonic()

    # ------------------------------------------------------------------ orbax

    def _orbax(self):
        if self._manager is None:
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self.settings.keep,
                    create=True,
                    # Synchronous: when save() returns the step is on disk, so a kill
                    # right after loses nothing the progress display called saved.
                    enable_async_checkpointing=False,
                ),
            )
        return self._manager

    def steps(self) -> list[int]:
        """Every step (updates done) with a folder on disk, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir()
                      if p.is_dir() and p.name.isdigit())

    # ------------------------------------------------------------------ saving

    def due(self) -> bool:
        return time.monotonic() - self._last_save >= 60.0 * self.settings.every_minutes

    def save(self, runner, update: int, train_s: float, mean_return: np.ndarray) -> None:
        """Save ``runner`` (after ``update`` updates) as step ``update``; every process calls it.

        ``mean_return`` is the ``[S, update]`` history the summary needs after a resume.
        """
        extra = {
            "update": update,
            "train_s": train_s,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # JSON has no NaN: updates in which no episode ended are null.
            "mean_return": [[None if math.isnan(v) else float(v) for v in row]
                            for row in np.asarray(mean_return, dtype=float)],
        }
        manager = self._orbax()
        manager.save(update, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_savable(runner)), extra=ocp.args.JsonSave(extra)),
            force=True)
        manager.wait_until_finished()
        if jax.process_index() == 0:
            step_dir = self.directory / str(update)
            write_json(step_dir / MANIFEST, {"files": _file_digests(step_dir)})
        self._last_save = time.monotonic()

    # ------------------------------------------------------------------ checking

    def check(self, step: int) -> str | None:
        """``None`` if step ``step`` is whole, else one line saying what is wrong."""
        step_dir = self.directory / str(step)
        manifest_path = step_dir / MANIFEST
        if not manifest_path.is_file():
            return "no manifest: the save did not finish"
        try:
            expected = json.loads(manifest_path.read_text())["files"]
        except (ValueError, KeyError) as error:
            return f"unreadable manifest ({error})"
        actual = _file_digests(step_dir)
        for name, (size, digest) in sorted(expected.items()):
            if name not in actual:
                return f"{name} is missing"
            if actual[name][0] != size:
                return f"{name} is {actual[name][0]} bytes, the manifest says {size} (truncated)"
            if actual[name][1] != digest:
                return f"{name} differs from its checksum (corrupt)"
        return None

    def latest_valid(self) -> tuple[int | None, list[str]]:
        """The newest whole step (or None) and one line per newer step that was not."""
        problems = []
        for step in reversed(self.steps()):
            problem = self.check(step)
            if problem is None:
                return step, problems
            problems.append(f"checkpoint at update {step} in {self.directory}: {problem}")
        return None, problems

    def discard_after(self, step: int) -> None:
        """Delete steps newer than ``step`` (damaged ones, when resuming from ``step``)."""
        if jax.process_index() != 0:
            return
        for newer in self.steps():
            if newer > step:
                shutil.rmtree(self.directory / str(newer))
        self._manager = None  # its cached list of steps is stale now

    # ------------------------------------------------------------------ restoring

    def restore(self, step: int, like) -> Restored:
        """Step ``step`` onto the shapes, dtypes and shardings of the runner ``like``."""
        savable = _savable(like)
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), savable)
        restored = self._orbax().restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), extra=ocp.args.JsonRestore()))
        extra = restored["extra"]
        mean_return = np.array([[math.nan if v is None else v for v in row]
                                for row in extra["mean_return"]], dtype=float)
        return Restored(
            runner=_from_savable(restored["state"], like),
            update=int(extra["update"]),
            train_s=float(extra["train_s"]),
            mean_return=mean_return.reshape(len(extra["mean_return"]), int(extra["update"])),
        )


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _savable(runner) -> dict[str, Any]:
    """The runner as a flat ``{path: array}`` dict that orbax can hold.

    PRNG keys become their raw uint32 data; zero-size leaves (the mlp's empty carry) are
    left out, since orbax refuses them and they hold nothing.
    """
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(runner)[0]:
        if leaf.size:
            flat[jax.tree_util.keystr(path)] = jax.random.key_data(leaf) if _is_key(leaf) \
                else leaf
    return flat


def _from_savable(flat: dict[str, Any], like):
    """Inverse of ``_savable``, with ``like`` supplying the structure and the empty leaves."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    restored = []
    for path, ref in leaves:
        if not ref.size:
            restored.append(ref)
            continue
        value = flat[jax.tree_util.keystr(path)]
        restored.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(ref))
                        if _is_key(ref) else value)
    return jax.tree_util.tree_unflatten(treedef, restored)


def _file_digests(step_dir: Path) -> dict[str, list]:
    digests = {}
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = Path(root) / name
            relative = str(path.relative_to(step_dir))
            if relative == MANIFEST or relative.endswith(".tmp"):
                continue
            digests[relative] = [path.stat().st_size,
                                 hashlib.sha256(path.read_bytes()).hexdigest()]
    return digests
