"""The Memory contract (models/base.py), checked for every built-in backbone by the library
function behind `s5bench check` (benchmark/measure/conformance.py): the check a plugin's author runs
is the one that guards the built-ins."""

from __future__ import annotations

import dataclasses

import pytest

from benchmark.measure.conformance import SEQ_LEN, check_backbone, check_config, failed
from models import BACKBONES


def _cases():
    """What `s5bench check NAME` checks for every built-in, plus the variants that exercise
    paths the quick size does not (every evaluation is checked against the other there)."""
    cases = {}
    for name in BACKBONES:
        cfg = check_config(name)
        if "evaluation" in {f.name for f in dataclasses.fields(cfg)}:  # s5, lru, mamba, mingru
            cases[f"{name}-parallel"] = dataclasses.replace(cfg, evaluation="parallel")
            cases[f"{name}-sequential"] = dataclasses.replace(cfg, evaluation="sequential")
        elif name == "trxl":
            # M < T, so the multi-block banded path (with padding) runs, gated and plain.
            cases["trxl"] = dataclasses.replace(cfg, memory_length=5)
            cases["trxl-plain"] = dataclasses.replace(cfg, memory_length=5, gating=False)
        elif name == "attention":
            # C < T, so the window (and the cache's oldest-first order) is exercised.
            cases["attention"] = dataclasses.replace(cfg, max_context=5)
            cases["attention-whole-episode"] = dataclasses.replace(cfg, max_context=2 * SEQ_LEN)
        else:
            cases[name] = cfg
    return cases


CASES = _cases()
# The linear recurrences run the contract on their parallel evaluation (the one
# accelerators use) in the fast suite, which also checks it equal to the sequential one
# (so the sequential evaluation keeps the contract to within both tolerances); the
# sequential cases run with --all only (suite time).
_SLOW_CASES = {"s5-sequential", "lru-sequential", "mamba-sequential", "mingru-sequential"}
CASE_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in _SLOW_CASES else name
               for name in sorted(CASES)]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_backbone_keeps_the_memory_contract(case):
    """Every property of `s5bench check` holds for the built-in backbone (errors within 1e-5 (1 + |b|))."""
    results = check_backbone(CASES[case])
    names = [result.name for result in results]
    assert names[:8] == ["initial_carry", "shapes", "sequence_equals_steps", "chunks_compose",
                         "reset_isolates", "reset_at_start", "rows_independent",
                         "packed_equals_separate"]
    assert names[-2:] == ["finite_gradients", "config_rebuilds"]
    assert ("parallel_equals_sequential" in names) == ("-parallel" in case
                                                       or "-sequential" in case)
    assert not failed(results), [(r.name, r.error, r.note) for r in results if not r.passed]


def test_every_builtin_has_a_case():
    """Each registered built-in backbone is checked by at least one case above."""
    assert {case.split("-")[0] for case in CASES} == set(BACKBONES)
