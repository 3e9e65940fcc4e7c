"""Divergence is data: a seed whose loss or parameters go non-finite is frozen and recorded,
and the other vmapped seeds train on exactly as if it had never been there."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

import cli

runner = CliRunner()

# S5 on the memory probe with Adam at lr 0.4 and no decay: of seeds 0-2, seed 0 blows up
# (non-finite loss at update 5, seen here) while seeds 1 and 2 train on; at lr >= 0.7
# every seed blows up at update 1, at <= 0.3 none does.
BLOW_UP = ["popgym", "--model", "s5", "--env", "MemoryProbe", "--total-steps", "8192",
           "--set", "ppo.num_envs=16", "--set", "ppo.num_steps=32",
           "--set", "ppo.updates_per_chunk=8", "--set", "ppo.lr=0.4",
           "--set", "ppo.anneal_lr=false", "--checkpoint-every", "60"]


def test_diverged_seed_is_recorded_and_leaves_the_others_untouched(tmp_path):
    with_bad = runner.invoke(cli.app, [*BLOW_UP, "--seeds", "3", "--out", str(tmp_path),
                                       "--run-id", "with"])
    assert with_bad.exit_code == 1, with_bad.output  # not every seed finished
    assert "diverged: seed 0 @5" in with_bad.output  # the progress display says so
    summary = pd.read_csv(tmp_path / "with" / "summary.csv")
    assert summary.status.tolist() == ["diverged", "ok", "ok"]
    assert summary.diverged_update.tolist()[0] == 5 and summary.diverged_update[1:].isna().all()
    assert "update 5" in summary.message[0]

    curves = pd.read_csv(tmp_path / "with" / "curves.csv")
    bad = curves[curves.seed == 0].set_index("update")
    assert np.isfinite(bad.loc[:4, "loss"]).all() and not np.isfinite(bad.loc[5, "loss"])
    after = bad.loc[6:]  # frozen: nothing happens, nothing is reported
    assert (after.episodes == 0).all() and after.loss.isna().all()
    assert after.mean_return.isna().all()
    # The update that went non-finite was discarded: the saved parameters are finite.
    import orbax.checkpoint as ocp

    (cell,) = (tmp_path / "with" / "checkpoints").iterdir()
    state = ocp.StandardCheckpointer().restore((cell / "16" / "state").absolute())
    params = [v for k, v in state.items() if k.startswith(".params")]
    assert params and all(np.isfinite(np.asarray(p)).all() for p in params)

    without_bad = runner.invoke(cli.app, [*BLOW_UP, "--seed", "1", "--seeds", "2",
                                          "--out", str(tmp_path), "--run-id", "without"])
    assert without_bad.exit_code == 0, without_bad.output
    other = pd.read_csv(tmp_path / "without" / "curves.csv")
    good = curves[curves.seed > 0].assign(seed=lambda d: d.seed - 1).reset_index(drop=True)
    pd.testing.assert_frame_equal(good.drop(columns="wall_s"), other.drop(columns="wall_s"))
