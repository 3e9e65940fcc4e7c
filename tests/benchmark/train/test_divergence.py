"""Divergence is data: a seed whose loss or parameters go non-finite is frozen and recorded,
and the other vmapped seeds train on exactly as if it had never been there.

The divergence is injected, never provoked: a learning rate that "makes seed 0 blow up at
update 5" is chaotic floating-point arithmetic and picks another seed or update on another
CPU. Instead the host sets one seed's next observation to NaN between two chunks (as an
environment emitting a NaN would), so the chosen seed's very next update goes non-finite
on every machine, and the compiled program is the one an ordinary run uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import benchmark.train.loop
import cli

runner = CliRunner()

# 16 updates of 3 seeds on the memory probe, 4 updates per chunk, the quick preset's
# (healthy) learning rate; only the injection below makes a seed diverge.
RUN = ["popgym", "--model", "s5", "--env", "MemoryProbe", "--total-steps", "8192",
       "--seeds", "3", "--set", "ppo.num_envs=16", "--set", "ppo.num_steps=32",
       "--set", "ppo.updates_per_chunk=4", "--checkpoint-every", "60"]
POISONED_SEED, POISON_AFTER = 0, 4  # seed 0's update 5 sees a NaN observation


@pytest.fixture
def poison_observation(monkeypatch):
    """Before the chunk that starts after ``POISON_AFTER`` updates, seed ``POISONED_SEED``'s
    next observations become NaN; the compiled chunk itself is untouched."""
    compile_trainer = benchmark.train.loop.compile_trainer

    def compile_poisoned(*args, **kwargs):
        init, run_chunk, keys, plan = compile_trainer(*args, **kwargs)

        def poisoned_chunk(state):
            if int(np.asarray(state.update)[0]) == POISON_AFTER:
                obs = state.obs.at[POISONED_SEED].set(jnp.nan)
                state = state._replace(obs=jax.device_put(obs, state.obs.sharding))
            return run_chunk(state)

        return init, poisoned_chunk, keys, plan

    monkeypatch.setattr(benchmark.train.loop, "compile_trainer", compile_poisoned)


def _train(tmp_path, run_id: str):
    result = runner.invoke(cli.app, [*RUN, "--out", str(tmp_path), "--run-id", run_id])
    return result, tmp_path / run_id


def test_diverged_seed_is_recorded_and_leaves_the_others_untouched(tmp_path, request):
    """The poisoned seed is frozen at update 5 and recorded (exit 1, summary, curves, saved
    parameters finite); seeds 1 and 2 equal, to the bit, the same 3-seed program run clean."""
    clean, clean_dir = _train(tmp_path, "clean")
    assert clean.exit_code == 0, clean.output  # without the injection no seed diverges
    request.getfixturevalue("poison_observation")
    poisoned, run_dir = _train(tmp_path, "poisoned")
    assert poisoned.exit_code == 1, poisoned.output  # not every seed finished
    assert "diverged: seed 0 @5" in poisoned.output  # the progress display says so

    summary = pd.read_csv(run_dir / "summary.csv")
    assert summary.status.tolist() == ["diverged", "ok", "ok"]
    assert summary.diverged_update.tolist()[0] == 5 and summary.diverged_update[1:].isna().all()
    assert "update 5" in summary.message[0]

    curves = pd.read_csv(run_dir / "curves.csv")
    bad = curves[curves.seed == POISONED_SEED].set_index("update")
    assert np.isfinite(bad.loc[:4, "loss"]).all() and not np.isfinite(bad.loc[5, "loss"])
    after = bad.loc[6:]  # frozen: nothing happens, nothing is reported
    assert len(after) == 11 and (after.episodes == 0).all() and after.loss.isna().all()
    assert after.mean_return.isna().all()
    # The update that went non-finite was discarded: the saved parameters are finite.
    import orbax.checkpoint as ocp

    (cell,) = (run_dir / "checkpoints").iterdir()
    state = ocp.StandardCheckpointer().restore((cell / "16" / "state").absolute())
    params = [v for k, v in state.items() if k.startswith(".params")]
    assert params and all(np.isfinite(np.asarray(p)).all() for p in params)

    # Same compiled program (3 seeds vmapped) on the same machine: bit-equality is fair.
    healthy = curves[curves.seed != POISONED_SEED].drop(columns="wall_s")
    reference = pd.read_csv(clean_dir / "curves.csv")
    reference = reference[reference.seed != POISONED_SEED].drop(columns="wall_s")
    assert len(healthy) == 2 * 16
    pd.testing.assert_frame_equal(healthy.reset_index(drop=True),
                                  reference.reset_index(drop=True))
