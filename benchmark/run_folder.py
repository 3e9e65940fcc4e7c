"""A run folder's life: create or reopen it, its config.json and meta.json, stop requests.

Every command that writes results (``popgym``, ``memory``, ``meta``, ``speed``, ``envs
--bench``) writes one folder ``<out>/<run-id>/`` holding ``config.json`` (the options that
built the run and every setting derived from them, enough to rebuild it), ``meta.json``
(where the numbers came from: versions, device, commit, command lines, resumes) and tidy
CSVs. ``--resume DIR`` means the same for every command: continue the run in DIR with the
options kept in its config.json; an option given beside it must agree (or, for the list
options a command calls extendable, adds to the saved list).

Errors name options by their fields (``seeds``, ``overrides``), the names ``config.json``
keeps them under; ``cli.py`` turns those into the flags the user typed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shlex
import shutil
import signal
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmark.compat import folder_command, upgraded_options
from benchmark.options import Options
from benchmark.plugins import check_recorded
from benchmark.results import collect_meta, write_json

OptionsT = TypeVar("OptionsT", bound=Options)


class RunFolderError(ValueError):
    """A folder cannot be (re)opened as asked; the message says why."""


class RunExistsError(RunFolderError, FileExistsError):
    """The run folder already holds results (and ``force`` was not given)."""


class OptionConflict(RunFolderError):
    """An option given beside ``--resume`` differs from the one the run started with."""

    def __init__(self, run_dir: Path, option: str, saved: Any, given: Any):
        self.problem = (f"the run in {run_dir} was started with {shown(saved)}, this "
                        f"command line says {shown(given)}")
        super().__init__(f"{option}: {self.problem}")
        self.run_dir, self.option, self.saved, self.given = run_dir, option, saved, given


def shown(value: Any) -> str:
    """An option's value as a user would type it (lists comma-joined)."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if value else "nothing"
    return "nothing" if value is None else str(value)


def new_run_id() -> str:
    """A sortable, human-readable id: the local time to the second, e.g. 20261125-141503."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def make_run_dir(root: Path, run_id: str | None = None, force: bool = False) -> Path:
    """Create ``root/<run_id>`` (a fresh time-stamped id if none is given).

    Raises:
      RunExistsError: the folder exists and is not empty, and ``force`` is False.
    """
    root = Path(root)
    if run_id is None:
        run_id = new_run_id()
        # Two runs started within the same second get distinct folders.
        suffix = 1
        while (root / run_id).exists():
            suffix += 1
            run_id = f"{new_run_id()}-{suffix}"
    run_dir = root / run_id
    if run_dir.exists() and any(run_dir.iterdir()) and not force:
        raise RunExistsError(f"run folder {run_dir} already holds results")
    run_dir.mkdir(parents=True, exist_ok=True)
    if force:
        for old in run_dir.glob("*.csv"):
            old.unlink()
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return run_dir


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of a run folder; ValueError says why ``run_dir`` is not one."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise ValueError("no such folder")
    if not path.is_file():
        raise ValueError("not a run folder (it has no config.json)")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"its config.json is not JSON ({error})") from None


def config_difference(saved: Any, given: Any, path: str = "") -> str | None:
    """The first setting where ``given`` differs from ``saved`` (both JSON-like), or None."""
    given = json.loads(json.dumps(given, default=str))  # tuples -> lists, as saved
    if isinstance(saved, dict) and isinstance(given, dict):
        for key in sorted(set(saved) | set(given), key=str):
            name = f"{path}.{key}" if path else str(key)
            if key not in given or key not in saved:
                where = "its config.json" if key in saved else "this command line"
                return f"{name} is set only in {where}"
            found = config_difference(saved[key], given[key], name)
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(given, list):
        if len(saved) != len(given):
            return (f"{path or 'the run'} has {len(saved)} entries in its config.json but "
                    f"{len(given)} on this command line")
        for i, (a, b) in enumerate(zip(saved, given, strict=True)):
            found = config_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    if saved != given:
        return f"{path} is {saved!r} in its config.json but {given!r} on this command line"
    return None




def saved_config(run_dir: Path, command: str) -> dict:
    """``run_dir``'s config.json, checked to be a ``command`` run folder."""
    try:
        saved = read_run_config(run_dir)
    except ValueError as error:
        raise RunFolderError(f"{run_dir}: {error}") from None
    if folder_command(saved) != command:
        raise RunFolderError(f"{run_dir}: a {saved.get('command')!r} run folder, not a "
                             f"{command!r} one")
    return saved


def resolve_options(command: str, resume: Path | None, options: OptionsT,
                    typed: Collection[str], *, extendable: Collection[str] = (),
                    legacy: Callable[[dict], dict | None] = lambda saved: None) -> OptionsT:
    """The options a run is built from: ``options``, or with ``resume`` the run's own.

    Every run folder keeps the options that built it in config.json, so resuming needs no
    option at all. A field in ``typed`` (given explicitly, not left at its default) must
    agree with the saved one, else ``OptionConflict``; fields in ``extendable`` (lists) are
    joined with the saved ones instead. A field the saved run does not know (added to the
    command since) keeps its given value. For a folder written before options were kept,
    ``legacy(saved config)`` may rebuild them; if it cannot, ``options`` are used and the
    settings are compared field by field by ``check_resumable``.
    """
    if resume is None:
        return options
    saved_doc = saved_config(resume, command)
    check_plugins(resume, saved_doc)
    saved = saved_doc.get("options") or legacy(saved_doc)
    if saved is None:
        return options
    saved = upgraded_options(saved)
    given = json.loads(json.dumps(dataclasses.asdict(options), default=str))  # as saved
    merged = dict(given)
    for name, value in given.items():
        if name not in saved:
            continue
        if name not in typed:
            merged[name] = saved[name]
        elif name in extendable:
            merged[name] = list(dict.fromkeys([*saved[name], *value]))
        elif value != saved[name]:
            raise OptionConflict(resume, name, saved[name], value)
    return type(options).from_dict(merged)


def check_plugins(run_dir: Path, saved_doc: Mapping[str, Any]) -> None:
    """The plugins the run in ``run_dir`` used resolve here as they did, else ``RunFolderError``.

    Checked before any option or setting is rebuilt, so a missing plugin is named as such
    rather than as an unknown model.
    """
    try:
        check_recorded(saved_doc.get("plugins", []))
    except ValueError as error:
        raise RunFolderError(f"{run_dir}: {error}") from None


# ----------------------------------------------------------------------------- the folder


@dataclass
class RunFolder:
    """An open run folder: its path and its meta.json (rewritten by ``save_meta``)."""

    path: Path
    meta: dict[str, Any]
    resumed: bool = False

    def save_meta(self) -> None:
        write_json(self.path / "meta.json", self.meta)


def create(out: Path, run_id: str | None, force: bool, config_doc: Mapping[str, Any],
           meta: Mapping[str, Any] | None = None) -> RunFolder:
    """A new run folder under ``out`` with its config.json and meta.json written."""
    try:
        run_dir = make_run_dir(out, run_id, force)
    except OSError as error:
        if isinstance(error, RunExistsError):
            raise
        raise RunFolderError(str(error)) from None
    write_json(run_dir / "config.json", config_doc)
    folder = RunFolder(run_dir, collect_meta(meta))
    folder.save_meta()
    return folder


def check_resumable(run_dir: Path, command: str, config_doc: Mapping[str, Any],
                    normalise: Callable[[dict], dict] = lambda doc: doc) -> None:
    """``run_dir`` continues with ``config_doc``'s settings, else ``RunFolderError``.

    The options already agree (``resolve_options``); what is left to differ is the code that
    turns them into settings (say a preset changed since the run started): the first
    difference is named. ``normalise`` brings a saved config.json written by an earlier
    version to today's form (e.g. settings that moved into the run configs) first.
    """
    saved = {k: v for k, v in normalise(saved_config(run_dir, command)).items()
             if k != "options"}
    difference = config_difference(saved, {k: v for k, v in config_doc.items()
                                           if k != "options"})
    if difference is not None:
        raise RunFolderError(f"{run_dir}: {difference}")


def reopen(run_dir: Path, resume_info: Mapping[str, Any] | None = None) -> RunFolder:
    """Reopen ``run_dir`` to continue it (``check_resumable`` first).

    meta.json gains a ``resumes`` entry: when, the command line, the commit, the device,
    and ``resume_info``.
    """
    meta_path = Path(run_dir) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else collect_meta()
    now = collect_meta()
    meta.setdefault("resumes", []).append({
        "when": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command_line": now["command_line"],
        "git_commit": now["git_commit"],
        **{k: v for k, v in now.items() if k in ("backend", "device_kind", "device_count")},
        **(resume_info or {}),
    })
    folder = RunFolder(Path(run_dir), meta, resumed=True)
    folder.save_meta()
    return folder


# ----------------------------------------------------------------------------- stopping


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks a run, of any command, to stop after the measurement
    in flight.

    The first signal only sets a flag, which the command reads between measurements (the
    training loop between chunks: it saves a checkpoint; a speed sweep between cells) before
    raising ``errors.Stopped``. A second Ctrl-C stops at once (``KeyboardInterrupt``),
    losing at most the measurement in flight. Handlers are installed only in the main
    thread (signals cannot be caught elsewhere) and restored on exit.
    """

    def __init__(self, announce: Callable[[str], Any] = print,
                 after: str = "the current chunk and saving a checkpoint"):
        self._announce, self._after = announce, after
        self._requested = False
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self._requested

    def _handle(self, signum, frame) -> None:
        if self._requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._requested = True
        self._announce(f"{signal.Signals(signum).name}: stopping after {self._after} "
                       f"(Ctrl-C again to stop at once)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def resume_command(command: str, run_dir: Path) -> str:
    """The short command that continues a stopped run: the folder knows its own options."""
    return shlex.join(["s5bench", *command.split(), "--resume", str(run_dir)])
