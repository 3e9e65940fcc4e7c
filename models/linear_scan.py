"""The reset-aware diagonal linear recurrence shared by S5, LRU, Mamba and minGRU.

Every one of these backbones runs ``h_t = (0 if resets[t] else a_t * h_{t-1}) + b_t``
elementwise, with ``a_t`` fixed (S5, LRU: the diagonal state matrix) or input-dependent
(Mamba: ``exp(delta_t A)``; minGRU: ``1 - z_t``). Lu et al. (2023) fold the reset into the
associative-scan operator (``reset_operator``, first written for S5 in ``models/s5.py``) so
that nothing flows across an episode start; the incoming carry is folded into element 0.

- ``scan_parallel``: ``jax.lax.associative_scan``, O(log T) depth: the fast path on
  accelerators.
- ``scan_sequential``: a plain ``jax.lax.scan``, O(T) depth: the reference, and often the
  faster one on a CPU.

The state may have any trailing shape (``[P]`` for S5 and LRU, ``[H, N]`` for Mamba);
``a`` only has to broadcast against ``b``. ``tests/models/test_linear_scan.py`` checks the
two against a plain Python loop.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

Evaluation = Literal["parallel", "sequential"]


def reset_operator(left, right):
    """Compose two affine maps ``x -> a x + b`` of which either may start an episode.

    Each element is ``(a, b, r)``: with ``r`` False it maps the previous state ``x`` to
    ``a * x + b``; with ``r`` True it ignores ``x`` (the episode restarts from the zero
    carry, so the state is just ``b``). Applying ``left`` then ``right`` gives
    ``a_r * a_l * x + a_r * b_l + b_r``, unless ``right`` resets, in which case everything
    from ``left`` is discarded. The operator is associative, so it can be scanned in
    parallel.
    """
    a_l, b_l, r_l = left
    a_r, b_r, r_r = right
    a = jnp.where(r_r, a_r, a_r * a_l)
    b = jnp.where(r_r, b_r, a_r * b_l + b_r)
    return a, b, jnp.logical_or(r_l, r_r)


def _as_state_mask(resets: jax.Array, ndim: int) -> jax.Array:
    """``[T, B]`` -> ``[T, B, 1, ...]`` broadcastable against a ``ndim``-dim state sequence."""
    return resets.reshape(resets.shape + (1,) * (ndim - 2))


def scan_parallel(a: jax.Array, b: jax.Array, resets: jax.Array, h0: jax.Array) -> jax.Array:
    """Reset-aware linear recurrence by associative scan.

    Args:
      a: the decay: ``[T, B, ...]`` like ``b`` (per step), or fewer dimensions that
        broadcast against it (fixed, e.g. ``[P]``).
      b: ``[T, B, ...]``, the input term of each step.
      resets: ``[T, B]`` bool, True where step t starts a new episode.
      h0: ``[B, ...]``, the state before step 0.

    Returns:
      ``[T, B, ...]``, the state after each step:
      ``h_t = (0 if resets[t] else a_t * h_{t-1}) + b_t`` with ``h_{-1} = h0``.
    """
    a = jnp.broadcast_to(a, b.shape)
    r = _as_state_mask(resets, b.ndim)
    # Fold the incoming carry into element 0 (unless step 0 resets): the same as
    # prepending h0 as an extra element of the scan, without making its length T + 1.
    b = b.at[0].set(jnp.where(r[0], b[0], a[0] * h0 + b[0]))
    _, hs, _ = jax.lax.associative_scan(reset_operator, (a, b, r), axis=0)
    return hs


def scan_sequential(a: jax.Array, b: jax.Array, resets: jax.Array, h0: jax.Array) -> jax.Array:
    """The same recurrence as ``scan_parallel``, one step at a time (``lax.scan``).

    A fixed ``a`` (fewer dimensions than ``b``) is closed over rather than broadcast to
    ``[T, B, ...]``, so the loop reads no per-step copy of it.
    """
    r = _as_state_mask(resets, b.ndim)
    per_step = a.ndim == b.ndim

    def step(h, inputs):
        a_t, b_t, r_t = inputs if per_step else (a, *inputs)
        h = jnp.where(r_t, jnp.zeros_like(h), h) * a_t + b_t
        return h, h

    _, hs = jax.lax.scan(step, h0, (a, b, r) if per_step else (b, r))
    return hs


SCANS = {"parallel": scan_parallel, "sequential": scan_sequential}


def default_evaluation(backend: str | None = None) -> Evaluation:
    """The faster evaluation on ``backend`` (measured for S5: see README, "S5 evaluation").

    On the 2-core CPU the sequential scan wins at every length we train with; on GPUs
    the associative scan's O(log T) depth wins.
    """
    backend = backend or jax.default_backend()
    return "sequential" if backend == "cpu" else "parallel"


def resolve_evaluation(evaluation: str) -> Evaluation:
    """``auto`` -> ``default_evaluation()``; ``parallel`` and ``sequential`` unchanged."""
    return default_evaluation() if evaluation == "auto" else evaluation


def check_evaluation(model: str, evaluation: str) -> None:
    """A ValueError naming ``model`` unless ``evaluation`` is auto, parallel or sequential."""
    if evaluation not in ("auto", *SCANS):
        raise ValueError(f"{model} evaluation must be one of auto, parallel, sequential; "
                         f"got {evaluation!r}")
