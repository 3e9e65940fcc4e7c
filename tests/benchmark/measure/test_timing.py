"""The timing harness: one compile, no recompiles, compile time kept out of run time."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import pytest

from benchmark.measure import timing
from benchmark.measure.timing import CellTimeout, RecompileError, Timing, time_function
from benchmark.train import devices
from models import BACKBONES


def _tiny(x):
    return jnp.tanh(x @ x.T).sum()


ARGS = (jnp.ones((8, 8)),)


def test_no_recompilation_between_repeats():
    """The timed function is traced once and XLA compiles nothing during warm-up or repeats."""
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event)  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        at_warmup = []

        def on_phase(phase):
            if phase == "warm-up":
                at_warmup.append(len(compiles))

        result = time_function(_tiny, ARGS, repeats=5, warmup=2, on_phase=on_phase)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    backend_compiles = [e for e in compiles if e == "/jax/core/compile/backend_compile_duration"]
    assert len(result.times_s) == 5
    assert at_warmup and len(compiles) == at_warmup[0], "compiled after the warm-up began"
    assert len(backend_compiles) >= 1  # the listener does see compiles (the one before timing)


def test_recompiling_function_is_caught(monkeypatch):
    """A function that is traced again on a repeat raises RecompileError instead of timing it."""
    def retracing_compile(fn, args):
        fn(*args)  # "compile": one trace
        return fn  # every call runs the Python function again: a trace per call

    monkeypatch.setattr(timing, "compile_function", retracing_compile)
    with pytest.raises(RecompileError, match="traced"):
        time_function(_tiny, ARGS, repeats=2)


def test_run_time_excludes_compile_time(monkeypatch):
    """A slow compile shows up in compile_s and in none of the timed repeats."""
    real_compile = timing.compile_function

    def slow_compile(fn, args):
        time.sleep(0.4)
        return real_compile(fn, args)

    monkeypatch.setattr(timing, "compile_function", slow_compile)
    result = time_function(_tiny, ARGS, repeats=3)
    assert result.compile_s >= 0.4
    assert result.max_s < 0.2


def test_over_budget_first_call_stops_the_cell(monkeypatch):
    """A first call whose extrapolation exceeds max_seconds raises CellTimeout with compile_s."""
    monkeypatch.setattr(timing, "run_once", lambda compiled, args: 1.0)
    with pytest.raises(CellTimeout, match="max-seconds 2") as info:
        time_function(_tiny, ARGS, repeats=3, warmup=1, max_seconds=2.0)
    assert info.value.compile_s is not None and info.value.times_s == ()


def test_timing_statistics():
    """median, min, max and IQR are those of the timed repeats."""
    t = Timing(compile_s=9.0, times_s=(1.0, 2.0, 3.0, 4.0, 100.0), peak_memory_bytes=None)
    assert (t.median_s, t.min_s, t.max_s, t.iqr_s) == (3.0, 1.0, 100.0, 2.0)


def test_out_of_memory_is_recognised():
    """XLA's RESOURCE_EXHAUSTED and MemoryError count as out of memory; other errors do not."""
    assert devices.is_out_of_memory(jax.errors.JaxRuntimeError(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00GiB."))
    assert devices.is_out_of_memory(MemoryError())
    assert not devices.is_out_of_memory(ValueError("shapes do not match"))


@pytest.mark.parametrize("mode", timing.MODES)
def test_workload_runs_for_every_mode(mode):
    """Each mode's workload runs for a registered backbone and gives finite outputs."""
    config = BACKBONES["gru"]().sized(8, 1)
    fn, args = timing.make_workload(config, mode, 4, 2, obs_size=3, network_width=8)
    out = jax.jit(fn)(*args)
    leaves = [x for x in jax.tree.leaves(out) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert leaves and all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
