"""What the device can say about memory: planned, high-water mark, limit, out of memory.

Probes shared by the training loop (each cell's planned memory in summary.csv) and the
speed sweep (each timing cell's memory, and out-of-memory failures as ``oom`` rows).
"""

from __future__ import annotations

import os

import jax


def planned_memory_bytes(compiled) -> int | None:
    """Device memory XLA planned for one call: arguments + outputs + temporaries - aliased.

    This is per compiled program and available on every backend. The runtime's
    ``device.memory_stats()["peak_bytes_in_use"]`` is a process-wide high-water mark that
    JAX cannot reset between cells (and is None on CPU), so it cannot say what one cell used.
    """
    try:
        stats = compiled.memory_analysis()
    except Exception:  # backends without the analysis
        return None
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def _memory_stats(device) -> dict:
    return (device.memory_stats() if hasattr(device, "memory_stats") else None) or {}


def device_memory_bytes() -> int | None:
    """Memory of the default device: an accelerator's limit, or the host's RAM on CPU."""
    device = jax.devices()[0]
    stats = _memory_stats(device)
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if device.platform == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def runtime_peak_bytes() -> int | None:
    """The runtime's high-water mark of device memory, where the backend reports one.

    Process-wide and never reset (JAX offers no reset), so after several cells it is the
    largest so far, not one cell's; None on CPU.
    """
    peaks = [int(_memory_stats(d)["peak_bytes_in_use"]) for d in jax.local_devices()
             if "peak_bytes_in_use" in _memory_stats(d)]
    return max(peaks) if peaks else None


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is XLA (or Python) running out of memory."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()
