"""The timing harness: what one speed cell runs, and how it is timed honestly.

A *workload* is one compiled program of the actor-critic (any backbone) over a ``[T, B]``
batch of synthetic observations, in one of three modes:

- ``train``: one training step: forward over the whole sequence, a PPO loss, backward,
  and an optax update (the unit of work the PPO update repeats per minibatch);
- ``infer``: one forward over the whole ``[T, B]`` sequence, no gradients;
- ``rollout``: T single-step calls (``T = 1`` applies threading the carry, sampling an
  action each step) inside one ``lax.scan``: the cost of acting, without the environment.

``time_function`` compiles apart from running (``jax.jit(f).lower(*args).compile()``),
warms up, then times N repeats that each end in ``jax.block_until_ready``. It counts how
often the function is traced and raises ``RecompileError`` if that is ever more than once,
so a reported time can never include a silent recompilation. A cell whose calls would run
past its budget raises ``CellTimeout`` instead of finishing. Nothing here writes files.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from benchmark.config import PPOConfig
from benchmark.schema import MODES
from benchmark.train.devices import device_memory_bytes, planned_memory_bytes
from benchmark.train.ppo import make_minibatch_update, make_optimizer
from models.actor_critic import ActorCritic, NetworkConfig
from models.heads import ActionSpec


class RecompileError(AssertionError):
    """The timed function was traced more than once: a repeat would have recompiled."""


class CellTimeout(Exception):
    """A cell's calls would run (or ran) past its time budget.

    Attributes:
      compile_s: seconds spent compiling (None if it never compiled).
      times_s: the timed repeats that did finish (possibly none).
    """

    def __init__(self, message: str, compile_s: float | None = None,
                 times_s: Sequence[float] = ()):
        super().__init__(message)
        self.compile_s = compile_s
        self.times_s = tuple(times_s)


@dataclass(frozen=True)
class Timing:
    """Compile time, the timed repeats (seconds each) and the compiled program's memory."""

    compile_s: float
    times_s: tuple[float, ...]
    peak_memory_bytes: int | None  # see ``planned_memory_bytes``

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def max_s(self) -> float:
        return max(self.times_s)

    @property
    def iqr_s(self) -> float:
        """Interquartile range (75th minus 25th percentile, linear interpolation)."""
        q75, q25 = np.percentile(self.times_s, [75, 25])
        return float(q75 - q25)


# ----------------------------------------------------------------------------- timing


def compile_function(fn: Callable, args: Sequence[Any]):
    """Trace, lower and compile ``fn`` for ``args``; returns the compiled executable.

    A module-level function so that tests can inject a slow compile or an out-of-memory.
    """
    return jax.jit(fn).lower(*args).compile()


def run_once(compiled, args: Sequence[Any]) -> float:
    """Seconds for one call of ``compiled``, until every output is ready on the device."""
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    return time.perf_counter() - start


def time_function(
    fn: Callable,
    args: Sequence[Any],
    *,
    repeats: int,
    warmup: int = 1,
    max_seconds: float = math.inf,
    on_phase: Callable[[str], None] | None = None,
) -> Timing:
    """Compile ``fn`` once, warm up, and time ``repeats`` calls.

    Args:
      fn: a pure function of ``args`` (closing only over static values).
      args: its arguments (arrays or pytrees of arrays).
      repeats: timed calls, N >= 1.
      warmup: untimed calls before them, >= 1 (the first call after compiling can pay
        one-off allocation costs).
      max_seconds: budget for all calls (warm-up and repeats, compile excluded). The first
        warm-up call estimates the rest: if ``first * (warmup + repeats)`` exceeds the budget
        the cell stops there; a cell that crosses the budget during its repeats stops too.
      on_phase: called with ``"compiling"``, ``"warm-up"``, ``"repeat k/N"``.

    Returns:
      A ``Timing`` whose times exclude compilation.

    Raises:
      CellTimeout: over ``max_seconds`` (carries the compile time and repeats done).
      RecompileError: ``fn`` was traced more than once.
      Whatever compiling or running raises (e.g. an out-of-memory ``JaxRuntimeError``).
    """
    if repeats < 1 or warmup < 1:
        raise ValueError(f"repeats and warmup must be >= 1, got {repeats} and {warmup}")
    phase = on_phase or (lambda _: None)
    traces = 0

    def traced(*a):
        nonlocal traces
        traces += 1  # Python side effect: runs once per trace, never per call
        return fn(*a)

    phase("compiling")
    start = time.perf_counter()
    compiled = compile_function(traced, args)
    compile_s = time.perf_counter() - start
    peak = planned_memory_bytes(compiled)
    _check_traces(traces)
    limit = device_memory_bytes()
    if peak is not None and limit is not None and peak > limit:
        # Running it would fail at best, and on a CPU could swap or kill the machine.
        raise MemoryError(f"out of memory, not run: XLA planned {peak / 2**30:.3g} GiB for "
                          f"one call, more than the device's {limit / 2**30:.3g} GiB")

    calls = warmup + repeats
    spent = 0.0
    for i in range(warmup):
        phase("warm-up")
        seconds = run_once(compiled, args)
        spent += seconds
        if i == 0 and seconds * calls > max_seconds:
            raise CellTimeout(
                f"first call took {seconds:.3g} s, so {calls} calls would take about "
                f"{seconds * calls:.3g} s > --max-seconds {max_seconds:g}", compile_s)
    times = []
    for k in range(repeats):
        phase(f"repeat {k + 1}/{repeats}")
        seconds = run_once(compiled, args)
        times.append(seconds)
        spent += seconds
        if spent > max_seconds and k + 1 < repeats:
            raise CellTimeout(
                f"stopped after {k + 1} of {repeats} repeats: {spent:.3g} s > --max-seconds "
                f"{max_seconds:g}", compile_s, times)
    _check_traces(traces)
    return Timing(compile_s=compile_s, times_s=tuple(times), peak_memory_bytes=peak)


def _check_traces(traces: int) -> None:
    if traces != 1:
        raise RecompileError(
            f"the timed function was traced {traces} times; it must compile exactly once")


# ----------------------------------------------------------------------------- workloads


class Batch(NamedTuple):
    """A synthetic PPO minibatch, all ``[T, B]`` except ``obs`` ``[T, B, D]``."""

    obs: jax.Array
    resets: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantages: jax.Array
    returns: jax.Array


def make_workload(
    backbone_config,
    mode: str,
    seq_len: int,
    batch: int,
    *,
    obs_size: int = 16,
    num_actions: int = 4,
    network_width: int = 64,
    seed: int = 0,
) -> tuple[Callable, tuple]:
    """The function one speed cell times and its arguments.

    Args:
      backbone_config: any registered backbone config (``build()`` gives a Memory).
      mode: ``train``, ``infer`` or ``rollout`` (see the module docstring).
      seq_len: T.
      batch: B.
      obs_size: D of the synthetic observations (float32).
      num_actions: size of the discrete action space.
      network_width: width of the actor-critic's encoder layer and head layers
        (``NetworkConfig.single_layer``); the backbone's own width is in its config.
      seed: for the parameters and the synthetic data.

    Returns:
      ``(fn, args)``: ``fn(*args)`` is pure; shapes are fixed by ``args``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    network = _network(backbone_config, num_actions, network_width)
    rng = np.random.default_rng(seed)
    carry = network.initialize_carry(batch)
    data = _synthetic_batch(rng, seq_len, batch, obs_size, num_actions)
    params = _init_params(backbone_config, obs_size, num_actions, network_width, seed)
    act_key = jax.random.key(seed + 1)

    if mode == "infer":
        def infer(params, carry, obs, resets):
            return network.apply(params, carry, obs, resets)

        return infer, (params, carry, data.obs, data.resets)

    if mode == "rollout":
        def rollout(params, carry, obs, resets, key):
            def act(state, step):
                carry, key = state
                key, subkey = jax.random.split(key)
                obs_t, resets_t = step
                carry, pi, value = network.apply(params, carry, obs_t[None], resets_t[None])
                return (carry, key), (pi.sample(subkey)[0], value[0])

            (carry, _), (actions, values) = jax.lax.scan(act, (carry, key), (obs, resets))
            return carry, actions, values

        return rollout, (params, carry, data.obs, data.resets, act_key)

    ppo = PPOConfig()
    optimizer = make_optimizer(ppo)
    # The PPO loop's own minibatch step, so the benchmark times exactly what training runs.
    minibatch_update = make_minibatch_update(ppo, network, optimizer)

    def train(params, opt_state, carry, data: Batch):
        params, opt_state, loss, _ = minibatch_update(
            params, opt_state, carry, data, data.advantages, data.returns)
        return params, opt_state, loss

    return train, (params, optimizer.init(params), carry, data)


def _network(backbone_config, num_actions: int, network_width: int) -> ActorCritic:
    return ActorCritic(backbone=backbone_config.build(),
                       action_spec=ActionSpec("discrete", (num_actions,)),
                       network=NetworkConfig.single_layer(network_width))


@functools.lru_cache(maxsize=32)
def _init_params(backbone_config, obs_size: int, num_actions: int, network_width: int, seed: int):
    """Parameters depend on neither T nor B: initialise once per backbone (T = B = 1)."""
    network = _network(backbone_config, num_actions, network_width)
    carry = network.initialize_carry(1)
    obs, resets = jnp.zeros((1, 1, obs_size)), jnp.ones((1, 1), bool)
    return jax.jit(network.init)(jax.random.key(seed), carry, obs, resets)


def _synthetic_batch(rng: np.random.Generator, seq_len: int, batch: int, obs_size: int,
                     num_actions: int) -> Batch:
    """Random data of the right shapes; episodes start at t = 0 and then about every 64 steps.

    The values do not change the cost of any backbone (no data-dependent control flow).
    Drawn with numpy: eager JAX random ops would compile a kernel per new shape.
    """
    resets = rng.random((seq_len, batch)) < 1 / 64
    resets[0] = True
    normal = lambda *shape: rng.standard_normal(shape, dtype=np.float32)
    return jax.device_put(Batch(
        obs=normal(seq_len, batch, obs_size),
        resets=resets,
        action=rng.integers(0, num_actions, (seq_len, batch), dtype=np.int32),
        log_prob=np.full((seq_len, batch), -math.log(num_actions), np.float32),
        value=normal(seq_len, batch),
        advantages=normal(seq_len, batch),
        returns=normal(seq_len, batch),
    ))
