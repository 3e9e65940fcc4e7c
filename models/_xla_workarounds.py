"""Work around an XLA:CPU deadlock before JAX starts its CPU backend.

With jaxlib 0.10.2, XLA:CPU's concurrency-optimised scheduler wedges on the seed-vmapped
PPO update: every worker thread parks in the Eigen pool and ``block_until_ready`` never
returns (seen deterministically on a 2-core machine for s5 and gru with 3+ vmapped seeds;
gdb shows all XLA threads idle). Turning that scheduler off removes the hang and costs
nothing measurable here. The flag only affects the CPU backend, so it is harmless on GPUs.

It must be in ``XLA_FLAGS`` before the first JAX computation, so this module is imported
first by ``models/__init__.py``, which every entry point (CLI, tests, library use) imports.
A user who sets the flag themselves keeps their own value.
"""

from __future__ import annotations

import os

_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def apply() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}=false".strip()


apply()
