"""Shared pytest setup: fp32 everywhere, a compilation cache, and --all for the slow tests."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Many tests compile the same program more than once (a run and its resume, in-process or
# in a subprocess, which inherits this variable). JAX's persistent cache then loads the
# executable instead of compiling it again: the same compiled code, so same-program
# comparisons stay bit-exact. The cache is new for every session and removed after it, so
# nothing carries over between machines or XLA flags.
# With pytest-xdist each worker gets a folder of its own inside the session's (JAX writes
# cache entries in place, so two processes must not share one).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="s5bench-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
if os.environ.get("PYTEST_XDIST_WORKER") and "S5BENCH_WORKER_CACHE" not in os.environ:
    _worker = os.path.join(os.environ["JAX_COMPILATION_CACHE_DIR"],
                           os.environ["PYTEST_XDIST_WORKER"])
    os.makedirs(_worker, exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["S5BENCH_WORKER_CACHE"] = _worker

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--all"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --all (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if a command reaches training (validation must come first).

    Every training command trains through ``benchmark.experiments.jobs.train``, which calls
    ``run_cells`` by the name it imported.
    """
    import benchmark.experiments.jobs

    def boom(*args, **kwargs):
        raise AssertionError("training started despite bad input")

    monkeypatch.setattr(benchmark.experiments.jobs, "run_cells", boom)


@pytest.fixture
def clock_family(monkeypatch):
    """A registered family of Clock stubs (tests/envs/stubs.py), ClockEasy, ClockMedium and
    ClockHard, alike: episodes of 3 steps that return 1 + 2 + 3 = 6 whatever the policy (one
    program for all three, so the compilation cache compiles it once)."""
    import functools

    from envs.registry import ENVS, EnvEntry
    from tests.envs.stubs import Clock

    for difficulty in ("Easy", "Medium", "Hard"):
        monkeypatch.setitem(ENVS, f"Clock{difficulty}", EnvEntry(
            functools.partial(Clock, limit=3), "stub", "Clock", difficulty))
