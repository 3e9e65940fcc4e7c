"""Seeds (and environments) sharded over devices with jax.sharding give the unsharded numbers.

Run in a subprocess with ``--xla_force_host_platform_device_count=4``: the CPU then shows
four devices, as a 4-GPU node would, and the flag must be set before JAX starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.train.sharding import MeshShape, choose_mesh

SCRIPT = textwrap.dedent('''
    import json
    import numpy as np
    import jax
    from benchmark.config import override, quick
    from benchmark.train.loop import build_trainer, compile_trainer, run_training

    def leaves(tree):
        return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]

    def largest(a, b):
        return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))

    out = {"devices": jax.device_count()}
    for seeds in (4, 1):
        # One PPO update (16 x 32 steps): 4 epochs x 4 minibatches of Adam steps.
        config = override(quick("gru", "MemoryProbe", num_seeds=seeds), [
            "ppo.num_envs=16", "ppo.num_steps=32", "ppo.total_timesteps=512"])
        init, _, keys, _ = compile_trainer(config, build_trainer(config)[0], devices=1)
        start = leaves(init(keys).params)
        one = run_training(config, devices=1)
        four = run_training(config, devices=4)
        leaf = jax.tree.leaves(four.runner.params)[0]
        obs = four.runner.obs
        one_params, four_params = leaves(one.runner.params), leaves(four.runner.params)
        out[seeds] = {
            "mesh": [four.mesh.seed_shards, four.mesh.env_shards],
            "param_spec": list(leaf.sharding.spec),
            "param_devices": len(leaf.sharding.device_set),
            "obs_spec": list(obs.sharding.spec),
            "same_episodes": bool(np.array_equal(np.isnan(one.mean_return),
                                                 np.isnan(four.mean_return))),
            "max_return_diff": float(np.nanmax(np.abs(one.mean_return - four.mean_return))),
            "update_size": largest(one_params, start),
            "max_param_diff": largest(one_params, four_params),
            "diverged": four.diverged_at.tolist(),
        }
    print("RESULT " + json.dumps(out))
''')


def test_choose_mesh_prefers_seeds_then_environments():
    assert choose_mesh(8, 64, 8) == MeshShape(8, 1)
    assert choose_mesh(1, 64, 8) == MeshShape(1, 8)
    assert choose_mesh(2, 64, 8) == MeshShape(2, 4)
    assert choose_mesh(5, 64, 8) == MeshShape(5, 1)  # 5 x 1: an uneven split idles devices anyway
    assert choose_mesh(6, 64, 4) == MeshShape(3, 1)
    assert choose_mesh(4, 6, 16) == MeshShape(4, 3)
    assert choose_mesh(3, 16, 1) == MeshShape(1, 1)
    with pytest.raises(ValueError):
        choose_mesh(1, 1, 0)


def test_four_devices_shard_seeds_and_environments_with_unsharded_numbers():
    """4 seeds on 4 devices: parameters split over the seed axis; 1 seed: environments split.
    After one update both agree with the one-device run up to a small fraction of the update.

    They agree to float32 rounding, not to the bit: each device runs a partitioned program
    (for one seed per device XLA drops the batch axis and picks other kernels), so the last
    bits of some sums differ, and differently on each CPU's instruction set. So the test
    compares one update, from the same parameters and the same first rollout, which involves
    no sampling from a policy that has already moved. Rounding changes a gradient element
    by about float32's epsilon (6e-8) times the terms summed into it, and Adam (eps 1e-5)
    turns a gradient change d into a parameter change of at most lr x d / eps per step; over
    the update's 16 Adam steps (4 epochs x 4 minibatches) the two programs' parameters then
    differ by a small fraction of what the update moved them. The bound is 1e-3 of the
    largest parameter change (seen: 3.6e-6 of it, with code for AVX-512 and for AVX2 alike),
    while a layout bug (seeds mixed, environments lost or counted twice) changes the
    update by its own size.
    The mean return of the first rollout is one float32 mean of the same episodes, summed
    perhaps in another order: 1e-5. Over many updates such differences grow, as any
    last-bit change does in RL training, so bit-for-bit equality is promised only for the
    same device layout, which is what a resume uses.
    """
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=4").strip()
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["devices"] == 4
    seeds4, seeds1 = result["4"], result["1"]
    assert seeds4["mesh"] == [4, 1] and seeds4["param_devices"] == 4
    assert seeds4["param_spec"] == ["seed"]
    assert seeds1["mesh"] == [1, 4] and seeds1["obs_spec"] == ["seed", "env"]
    for run in (seeds4, seeds1):
        assert run["same_episodes"] and run["max_return_diff"] <= 1e-5, json.dumps(run)
        assert run["update_size"] > 1e-4, json.dumps(run)  # the update did move them
        assert run["max_param_diff"] <= 1e-3 * run["update_size"], json.dumps(run)
        assert not any(run["diverged"])
