"""Shared pytest setup: fp32 everywhere, and an --all switch for the slow tests."""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

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

    ``benchmark.meta`` imported ``run_cells`` by name, so it is patched there too.
    """
    import benchmark.experiment
    import benchmark.meta

    def boom(*args, **kwargs):
        raise AssertionError("training started despite bad input")

    monkeypatch.setattr(benchmark.experiment, "run_cells", boom)
    monkeypatch.setattr(benchmark.meta, "run_cells", boom)
