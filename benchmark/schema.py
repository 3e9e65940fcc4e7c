"""What every CSV s5bench writes holds: file names, columns in order, closed vocabularies.

One place for the shape of the results, read by the writers (``benchmark.experiments.cells``,
``benchmark.measure.speed``, ...) and by ``benchmark.figures``. Plain tuples only: importing this
module imports nothing else, so ``s5bench --help`` and the figures stay free of JAX.

A training run's CSVs carry its experiment's label columns first (``POPGYM_LABELS``, ...),
then the columns below.
"""

from __future__ import annotations

# ----------------------------------------------------------------------- training runs

CURVES_CSV = "curves.csv"  # one row per cell, seed and update
SUMMARY_CSV = "summary.csv"  # one row per cell and seed
AGGREGATE_CSV = "aggregate.csv"  # popgym over several environments: one row per model
TRIALS_CSV = "trials.csv"  # meta: one row per model, seed, split, base env and trial

POPGYM_LABELS = ("model", "env")
MEMORY_LABELS = ("model", "memory_length")
META_LABELS = ("model", "suite")

LOSS_COLUMNS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl")
CURVE_COLUMNS = ("seed", "update", "env_steps", "wall_s", "episodes", "mean_return",
                 *LOSS_COLUMNS)
SUMMARY_COLUMNS = ("seed", "status", "final_return", "best_return", "mmer", "env_steps",
                   "wall_s", "compile_s", "env_steps_per_s", "memory_bytes",
                   "diverged_update", "message")
# ok: trained to the end; diverged: a non-finite loss or parameters froze the seed;
# error: the cell failed (out of memory, a compile error), its message says why.

TRIAL_COLUMNS = ("model", "seed", "split", "suite", "env", "trial", "mean_return",
                 "meta_episodes")
# aggregate.csv: raw means over environments (seeds averaged within each first), then the
# interval estimates of benchmark.statistics over normalised scores: for each score and
# estimator the point, the lower (_lo) and the upper (_hi) bound of its 95% interval,
# resting on scored_envs environments and runs runs, from bootstrap_reps resamples drawn
# with bootstrap_seed.
INTERVAL_SCORES = ("mmer", "final_return")
INTERVAL_METRICS = ("iqm", "mean", "median", "optimality_gap")
INTERVAL_COLUMNS = tuple(f"{score}_{metric}{bound}" for score in INTERVAL_SCORES
                         for metric in INTERVAL_METRICS for bound in ("", "_lo", "_hi"))
AGGREGATE_COLUMNS = ("model", "envs", "seeds", "mean_mmer", "mean_final_return",
                     "total_wall_s", "mean_env_steps_per_s", "failed", "scored_envs", "runs",
                     *INTERVAL_COLUMNS, "bootstrap_reps", "bootstrap_seed")
COMPARISON_CSV = "comparison.csv"  # popgym with several models: one row per pair and env
# P(model_x > model_y) of a score on env (an id, or "all": the mean over the envs both
# have), its 95% interval [lo, hi], and the runs of each model it rests on.
COMPARISON_COLUMNS = ("score", "model_x", "model_y", "env", "envs", "runs_x", "runs_y",
                      "probability", "lo", "hi", "bootstrap_reps", "bootstrap_seed")

# ----------------------------------------------------------------------- speed sweeps

SPEED_CSV = "speed.csv"  # one row per (model, evaluation, mode, seq_len, batch)
SPEED_COLUMNS = ("model", "evaluation", "mode", "seq_len", "batch", "d_model", "num_layers",
                 "status", "compile_s", "median_s", "min_s", "max_s", "iqr_s", "repeats",
                 "tokens_per_s", "peak_memory_bytes", "device", "backend", "message")
# train: forward + backward + optimizer update over [T, B]; infer: one forward over
# [T, B]; rollout: T single-step calls threading the carry, as when acting.
MODES = ("train", "infer", "rollout")
# Backbone configs with an ``evaluation`` field are timed once with each of these.
EVALUATIONS = ("parallel", "sequential")

# ----------------------------------------------------------------------- other commands

ENV_BENCH_CSV = "env_bench.csv"  # envs --bench: one row per environment
BENCH_COLUMNS = ("env", "batch", "num_steps", "compile_s", "port_steps_per_s",
                 "port_min_steps_per_s", "port_max_steps_per_s", "reference_steps_per_s",
                 "speedup", "device")
THROUGHPUT_CSV = "throughput.csv"  # reference: one row per model of the end-to-end step
THROUGHPUT_COLUMNS = ("model", "env", "preset", "seeds", "env_steps", "compile_s",
                      "train_s", "env_steps_per_s_per_seed", "projected_15m_s",
                      "projected_15m_s_per_seed", "paper_a40_s_per_seed", "device")
