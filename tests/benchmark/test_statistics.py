"""Interval estimates (benchmark/statistics.py): hand-worked estimators, rliable's estimators
as the reference, a bootstrap that resamples within environments, reproducible CSVs, and one
definition of a cell's MMER for the heat map and aggregate.csv."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from rliable import metrics as rly

from benchmark import statistics as st
from benchmark.experiments.aggregate import aggregate_by_model, comparison_rows
from benchmark.schema import INTERVAL_METRICS


def _table(runs: dict[tuple[str, str], list[float]], score: str = "mmer") -> pd.DataFrame:
    """A run_scores-shaped table from {(model, env): [score per seed]}."""
    rows = [{"model": m, "env": e, "seed": s, "mmer": v, "final_return": v}
            for (m, e), values in runs.items() for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_iqm_mean_median_and_gap_of_a_small_table_by_hand():
    """IQM trims a quarter of all runs at each end; mean and median are of per-env means."""
    samples = [np.array([1.0, 100.0, 3.0]), np.array([2.0, 5.0, 4.0])]
    # pooled and sorted: 1 2 3 4 5 100; 25% of 6 runs is 1.5, trim_mean cuts 1 at each end:
    # (2 + 3 + 4 + 5) / 4 = 3.5 (the outlier 100 does not count)
    assert st.iqm(samples) == pytest.approx(3.5)
    # env means 104/3 and 11/3: mean (115/3)/2 = 19.1667; median of two = their mean
    assert st.mean_of_means(samples) == pytest.approx(115 / 6)
    assert st.median_of_means(samples) == pytest.approx(115 / 6)
    assert st.median_of_means([np.array([0.0]), np.array([1.0]), np.array([5.0])]) == 1.0
    # min(score, 1): 0.2, 1, 0.6, 0.9 -> mean 0.675 -> gap 1 - 0.675 = 0.325
    assert st.optimality_gap([np.array([0.2, 1.5]), np.array([0.6, 0.9])]) == pytest.approx(
        0.325)


def test_probability_of_improvement_of_two_known_samples():
    """P(X > Y) counts wins over all nx * ny pairs, a tie one half, per env, then averages."""
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 0.0])
    # x=1 beats only 0 (1); x=2 ties 2, 2 (0.5 + 0.5) and beats 0 (1); x=3 beats all (3):
    # 6 of 9 pairs
    assert st.probability_of_improvement([x], [y]) == pytest.approx(6 / 9)
    assert st.probability_of_improvement([y], [x]) == pytest.approx(3 / 9)
    # a second env where X always wins: (6/9 + 1) / 2
    assert st.probability_of_improvement([x, np.array([5.0])], [y, np.array([4.0, 3.0])]) == (
        pytest.approx((6 / 9 + 1) / 2))
    u = scipy.stats.mannwhitneyu(x, y, alternative="greater").statistic
    assert u / 9 == pytest.approx(6 / 9)  # Mann-Whitney's U counts ties as one half too


@pytest.mark.parametrize("seed", range(5))
def test_estimators_equal_rliables_on_rectangular_tables(seed):
    """On a (runs x envs) table the estimators equal rliable.metrics', ties included."""
    rng = np.random.default_rng(seed)
    runs, envs = 3 + seed, 2 + seed % 3
    x = rng.normal(size=(runs, envs)).round(1)  # rounding makes ties between runs
    y = rng.normal(size=(runs + 1, envs)).round(1)
    samples = [x[:, e] for e in range(envs)]
    assert st.iqm(samples) == pytest.approx(rly.aggregate_iqm(x))
    assert st.mean_of_means(samples) == pytest.approx(rly.aggregate_mean(x))
    assert st.median_of_means(samples) == pytest.approx(rly.aggregate_median(x))
    assert st.optimality_gap(samples) == pytest.approx(rly.aggregate_optimality_gap(x))
    assert st.probability_of_improvement(samples, [y[:, e] for e in range(envs)]) == (
        pytest.approx(rly.probability_of_improvement(x, y)))


def test_estimators_vectorised_over_resamples_equal_one_call_per_resample():
    """The fast path (a leading resample axis) equals calling each estimator per resample."""
    rng = np.random.default_rng(0)
    batch = [rng.normal(size=(7, 3)), rng.normal(size=(7, 2))]  # 7 resamples, 2 envs
    other = [rng.normal(size=(7, 4)), rng.normal(size=(7, 4))]
    for estimator in st.ESTIMATORS.values():
        expected = [estimator([s[i] for s in batch]) for i in range(7)]
        np.testing.assert_allclose(estimator(batch), expected, rtol=1e-12)
    expected = [st.probability_of_improvement([s[i] for s in batch], [s[i] for s in other])
                for i in range(7)]
    np.testing.assert_allclose(st.probability_of_improvement(batch, other), expected)
    assert list(st.ESTIMATORS) == list(INTERVAL_METRICS)


def test_bootstrap_resamples_within_environments_not_across_them():
    """Every resample of an environment holds only its own runs, as many as it has; so a mean
    over envs A = {0, 0, 0} and B = {1, 1, 1} is 0.5 in every resample (pooling would vary)."""
    seen = []

    def record(samples):
        seen.append([np.asarray(s) for s in samples])
        return st.mean_of_means(samples)

    a, b = np.array([0.0, 0.1, 0.2]), np.array([10.0, 11.0])
    st.stratified_interval([a, b], record, reps=200, seed=3)
    resampled_a, resampled_b = seen[-1]
    assert resampled_a.shape == (200, 3) and resampled_b.shape == (200, 2)
    assert np.isin(resampled_a, a).all() and np.isin(resampled_b, b).all()
    assert len(np.unique(resampled_a)) == 3  # it does resample: every run of A turns up

    point, low, high = st.stratified_interval([np.zeros(3), np.ones(3)], st.mean_of_means,
                                              reps=500, seed=0)
    assert point == low == high == 0.5


def test_a_one_run_environment_is_held_fixed_and_one_seed_everywhere_has_no_interval():
    """A stratum of one run cannot vary; with every stratum of one run the bounds are NaN."""
    point, low, high = st.stratified_interval([np.array([0.0, 1.0]), np.array([4.0])],
                                              st.mean_of_means, reps=500, seed=0)
    # env A's mean ranges over 0, 0.5, 1 and B stays 4: (0 + 4) / 2 = 2 .. (1 + 4) / 2 = 2.5
    assert point == 2.25 and low == 2.0 and high == 2.5
    point, low, high = st.stratified_interval([np.array([0.3]), np.array([0.5])],
                                              st.mean_of_means)
    assert point == pytest.approx(0.4) and math.isnan(low) and math.isnan(high)


def test_score_ranges_normalise_popgym_returns_to_0_1():
    """Every POPGym environment has a score range; [-1, 1] maps -1 -> 0, 0 -> 0.5, 1 -> 1
    and CartPole's [0, 1] is kept; an environment without a range is left out."""
    from envs.popgym import FAMILIES

    for family in FAMILIES:
        for difficulty in ("Easy", "Medium", "Hard"):
            assert st.score_range(family + difficulty) is not None, family
    assert st.score_range("RepeatPreviousMedium") == (-1.0, 1.0)
    assert st.score_range("PositionOnlyCartPoleHard") == (0.0, 1.0)
    assert st.score_range("CartPole-v1") is None
    table = _table({("s5", "RepeatFirstEasy"): [-1.0, 0.0, 1.0],
                    ("s5", "PositionOnlyCartPoleEasy"): [0.5], ("s5", "CartPole-v1"): [200.0]})
    normalised = st.normalise(table)
    assert normalised["mmer"].tolist() == [0.0, 0.5, 1.0, 0.5]
    assert set(normalised["env"]) == {"RepeatFirstEasy", "PositionOnlyCartPoleEasy"}


def test_seeds_for_difference_by_hand():
    """n = 2 ((1.96 + 0.84) sd / d)^2, rounded up: sd 0.1, d 0.1 -> 2 x 7.849 = 15.7 -> 16."""
    assert st.seeds_for_difference(0.1, 0.1) == 16
    # halving the difference quadruples the seeds: 4 x 15.698 = 62.8 -> 63
    assert st.seeds_for_difference(0.1, 0.05) == 63


def _summary_rows(diverged_mmer: float = 0.9) -> list[dict]:
    """Two models on two envs, 3 seeds; gru's seed 2 on env A diverged (with a high MMER)."""
    values = {("s5", "RepeatFirstEasy"): [0.2, 0.4, 0.6], ("s5", "CountRecallEasy"): [0.0] * 3,
              ("gru", "RepeatFirstEasy"): [-0.2, 0.0, diverged_mmer],
              ("gru", "CountRecallEasy"): [-0.5, -0.4, -0.3]}
    rows = []
    for (model, env), per_seed in values.items():
        for seed, value in enumerate(per_seed):
            diverged = model == "gru" and env == "RepeatFirstEasy" and seed == 2
            rows.append({"model": model, "env": env, "seed": seed,
                         "status": "diverged" if diverged else "ok", "mmer": value,
                         "final_return": value - 0.1, "wall_s": 10.0,
                         "env_steps_per_s": 100.0})
    return rows


def test_heat_map_mean_row_and_aggregate_share_one_definition_when_a_seed_diverged():
    """The heat map's cells and `mean` row equal aggregate.csv's mean_mmer: both leave the
    diverged seed out (its MMER 0.9 would lift gru's cell from -0.1 to 0.233)."""
    from benchmark.figures.popgym import mmer_table

    rows = _summary_rows()
    table = mmer_table(pd.DataFrame(rows))
    aggregate = {row["model"]: row for row in aggregate_by_model(rows, reps=200)}
    # gru: RepeatFirstEasy (-0.2 + 0.0) / 2 = -0.1, CountRecallEasy -0.4: mean -0.25
    assert table.loc["RepeatFirstEasy", "gru"] == pytest.approx(-0.1)
    assert table.loc["mean", "gru"] == pytest.approx(-0.25)
    for model in ("s5", "gru"):
        assert table.loc["mean", model] == pytest.approx(aggregate[model]["mean_mmer"])
    assert aggregate["gru"]["failed"] == 1 and aggregate["gru"]["runs"] == 5


def test_aggregate_intervals_hold_their_points_and_a_fixed_seed_gives_the_same_file(tmp_path):
    """aggregate.csv and comparison.csv are the same bytes twice with the same seed and differ
    with another; every interval holds its point estimate."""
    from benchmark.experiments.popgym import _popgym_finish

    rows = _summary_rows()
    files = {}
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        _popgym_finish(None, folder, rows)
        files[name] = {f: (folder / f).read_bytes() for f in ("aggregate.csv",
                                                               "comparison.csv")}
    assert files["a"] == files["b"]
    # The seed matters where the bounds are not extreme runs: 8 seeds of spread scores.
    spread = [{**row, "seed": seed, "status": "ok", "mmer": value, "final_return": value}
              for row in rows[:1]
              for seed, value in enumerate(np.random.default_rng(0).uniform(-1, 1, 8))]
    first, second = (aggregate_by_model(spread, reps=200, seed=s)[0] for s in (0, 1))
    assert first["mmer_iqm_lo"] != second["mmer_iqm_lo"]
    table = pd.read_csv(tmp_path / "a" / "aggregate.csv")
    for metric in INTERVAL_METRICS:
        for score in st.SCORES:
            name = f"{score}_{metric}"
            assert (table[f"{name}_lo"] <= table[name] + 1e-12).all(), name
            assert (table[name] <= table[f"{name}_hi"] + 1e-12).all(), name
    # s5's normalised MMER on RepeatFirstEasy: (0.2, 0.4, 0.6 + 1) / 2 = 0.6, 0.7, 0.8 and
    # on CountRecallEasy 0.5 x 3: mean of env means (0.7 + 0.5) / 2 = 0.6
    assert table.loc[table.model == "s5", "mmer_mean"].item() == pytest.approx(0.6)
    s5 = table.loc[table.model == "s5", ["scored_envs", "runs", "bootstrap_reps"]]
    assert s5.values.tolist() == [[2, 6, st.BOOTSTRAP_REPS]]


def test_comparison_names_the_pairs_the_seeds_can_tell_apart():
    """P(s5 > gru) per env and over both, on gru's ok seeds: s5 wins every pair on both
    envs, so P = 1 with an interval clear of 1/2; the verdict reads intervals against 1/2."""
    rows = comparison_rows(_summary_rows(), reps=500)
    table = pd.DataFrame(rows)
    mmer = table[table.score == "mmer"].set_index("env")
    # RepeatFirstEasy: s5 {0.2, 0.4, 0.6} against gru's ok seeds {-0.2, 0.0}: 6 of 6 pairs;
    # CountRecallEasy: {0, 0, 0} against {-0.5, -0.4, -0.3}: 9 of 9
    assert mmer.loc["RepeatFirstEasy", "probability"] == 1.0
    assert mmer.loc["CountRecallEasy", "probability"] == 1.0
    assert mmer.loc["all", ["envs", "runs_x", "runs_y"]].tolist() == [2, 6, 5]
    assert st.verdict(mmer.loc["all", "lo"], mmer.loc["all", "hi"]) == 1
    assert st.verdict(0.2, 0.45) == -1 and st.verdict(0.3, 0.7) == 0
    assert st.verdict(math.nan, math.nan) == 0
    assert set(table.score) == {"mmer", "final_return"}
