"""What runs write: tidy CSVs (``CsvLog``, read back by ``read_rows``) and where a number
came from (``collect_meta``: versions, device, commit, for every meta.json).

Every CSV row is written and flushed as soon as it is measured, so a crash or an interrupt
loses at most the row in flight. The folder a run writes into is ``benchmark.run_folder``.
Nothing here runs under ``jit``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

# Distributions whose versions decide what a number means; recorded in every meta.json.
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "gymnax", "popgym", "numpy", "s5bench")


def git_commit() -> str:
    """The checked-out commit of this source tree (with ``+dirty`` if it has changes)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
            check=True, timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_info() -> dict[str, Any]:
    """Backend, device kind and count as JAX sees them (imports jax)."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "devices": [str(d) for d in devices],
        "cpu_count": os.cpu_count(),
    }


def device_name() -> str:
    """A short name for the device timings are taken on, e.g. ``cpu (2 cores)``."""
    return device_label(device_info())


def device_label(info: Mapping[str, Any]) -> str:
    """``cpu (2 cores)`` or ``<device kind> x<count>`` from ``device_info()`` (or a
    ``meta.json``, which holds the same keys; a merge of shards from different devices is
    ``mixed: ...``)."""
    if not info.get("backend"):
        return "unknown device"
    if info["backend"] == "mixed":  # a merge of shards run on different devices
        return f"mixed: {info.get('device_kind', '?')}"
    if info["backend"] == "cpu":
        return f"cpu ({info.get('cpu_count', '?')} cores)"
    return f"{info.get('device_kind', info['backend'])} x{info.get('device_count', 1)}"


def collect_meta(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to say where a result came from."""
    return {
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command_line": " ".join(["s5bench", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        **device_info(),
        **(extra or {}),
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (write a temporary file, then rename)."""
    path = Path(path)
    if not is_primary_process():
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def is_primary_process() -> bool:
    """False on processes 1.. of a multi-host run: only process 0 writes results.

    Looks at JAX only when something already imported it (figures never need it).
    """
    if "jax" not in sys.modules:
        return True
    import jax

    return jax.process_index() == 0


class CsvLog:
    """Append rows to a CSV with a fixed header, flushing after every row.

    Opening an existing file appends to it (the header must match); a new file gets the
    header first. Values of ``None`` (or float NaN) are written as empty cells, so that
    "no episode ended" reads as missing, never as a number.
    """

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self._file = None
        if not is_primary_process():
            return  # rows are checked, never written (processes 1.. of a multi-host run)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if header != self.columns:
                raise ValueError(
                    f"{self.path} has columns {header}, expected {self.columns}"
                )
        self._file = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        if not exists:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        unknown = set(row) - set(self.columns)
        missing = set(self.columns) - set(row)
        if unknown or missing:
            raise ValueError(f"row for {self.path.name}: unknown {sorted(unknown)}, "
                             f"missing {sorted(missing)}")
        if self._file is None:
            return
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._file.flush()

    def write_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> CsvLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return repr(value)
    return value


# ----------------------------------------------------------------------------- reading back


def _complete_lines(path: Path) -> tuple[list[str], bool]:
    """The newline-terminated lines of ``path``, and whether a cut-off write followed them."""
    # newline="": lines keep the "\r" of CsvLog's "\r\n", so a rewrite keeps its endings.
    if not path.is_file():
        return [], False
    with path.open(newline="") as f:
        text = f.read()
    *lines, tail = text.split("\n")
    return lines, tail != ""


def read_raw_rows(path: Path) -> list[dict[str, str]]:
    """The complete rows of a CSV this package wrote, as text (a cut-off last line left out)."""
    lines, _ = _complete_lines(path)
    return list(csv.DictReader(lines)) if lines else []


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a CSV this package wrote, numbers as numbers, empty as None."""
    return [typed_row(row) for row in read_raw_rows(path)]


def filter_rows(path: Path, keep: Callable[[dict[str, str]], bool]) -> int:
    """Rewrite ``path`` (atomically) with the complete rows ``keep`` accepts; count the rest."""
    if not path.is_file():
        return 0
    lines, cut_off = _complete_lines(path)
    if not lines:
        return int(cut_off)
    kept, dropped = [lines[0]], int(cut_off)
    # One CSV row per line: CsvLog writes no quoted newlines (labels and messages are
    # single-line).
    for line, row in zip(lines[1:], csv.DictReader(lines), strict=True):
        if keep(row):
            kept.append(line)
        else:
            dropped += 1
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
    return dropped


def typed_row(row: Mapping[str, str]) -> dict[str, Any]:
    """A CSV row with numbers as numbers and empty cells as None (as they were written)."""
    out: dict[str, Any] = {}
    for name, text in row.items():
        if text == "":
            out[name] = None
            continue
        for kind in (int, float):
            try:
                out[name] = kind(text)
                break
            except ValueError:
                continue
        else:
            out[name] = {"True": True, "False": False}.get(text, text)
    return out
