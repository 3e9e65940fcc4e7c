"""The ``paper`` preset is the agent of Lu et al. (2023): popjaxrl ``ppo_s5.py``/``ppo_gru.py``.

Pinned here: the parameter tree's layer widths (encoder 128 -> 256, the S5 stack without an
input projection or one GRU cell of 256, heads 128 -> 128), the activations (leaky ReLU
after every hidden layer, by a forward pass on a hand-made input), the initial scale of
every layer (orthogonal gains sqrt 2, 2, 0.01 and 1, zero biases, C's std 1/sqrt(N H)) and
the return targets (every done ends the return).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmark.config import make_preset
from benchmark.train.loop import build_trainer
from models.actor_critic import ActorCritic, NetworkConfig
from models.heads import ActionSpec

# RepeatFirstEasy through the training wrappers: 4 suits one-hot + previous action (4) + the
# episode-start flag = 9 inputs, 4 actions.
OBS, ACTIONS = 9, 4


def _paper_params(model: str):
    config = make_preset("paper", model, "RepeatFirstEasy")
    trainer, _ = build_trainer(config)
    return config, trainer.init(jax.random.key(0)).params["params"]


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    return {jax.tree_util.keystr(path): leaf.shape
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


# Layers outside the backbone, in flax's creation order: encoder, actor, policy, critic, value.
HEAD_KERNELS = {
    "['Dense_0']['kernel']": ((OBS, 128), math.sqrt(2)),
    "['Dense_1']['kernel']": ((128, 256), math.sqrt(2)),
    "['Dense_2']['kernel']": ((256, 128), 2.0),
    "['Dense_3']['kernel']": ((128, 128), 2.0),
    "['PolicyHead_0']['Dense_0']['kernel']": ((128, ACTIONS), 0.01),
    "['Dense_4']['kernel']": ((256, 128), 2.0),
    "['Dense_5']['kernel']": ((128, 128), 2.0),
    "['Dense_6']['kernel']": ((128, 1), 1.0),
}


@pytest.fixture(scope="module")
def paper_s5():
    return _paper_params("s5")


@pytest.fixture(scope="module")
def paper_gru():
    return _paper_params("gru")


@pytest.mark.parametrize("model", ["s5", "gru"])
def test_paper_actor_critic_widths_and_initial_scales(model, request):
    """Encoder 128 -> 256 and heads 128 -> 128 with the paper's orthogonal gains; every
    bias outside the backbone starts at zero."""
    _, params = request.getfixturevalue(f"paper_{model}")
    shapes = _shapes(params)
    outside = {k: v for k, v in shapes.items() if not k.startswith("['backbone']")}
    assert {k for k in outside if k.endswith("['kernel']")} == set(HEAD_KERNELS)
    for key, (shape, gain) in HEAD_KERNELS.items():
        assert shapes[key] == shape, key
        kernel = np.asarray(_get(params, key))
        # An orthogonal init with gain g has every singular value equal to g.
        np.testing.assert_allclose(np.linalg.svd(kernel, compute_uv=False), gain, rtol=1e-4,
                                   err_msg=key)
    for key in outside:
        if key.endswith("['bias']"):
            assert not np.asarray(_get(params, key)).any(), key


def test_paper_s5_stack_has_no_input_projection_and_the_papers_sizes(paper_s5):
    """Four layers of H = 256 with N = 256 states (128 after conjugate halving), GLU
    layers, and no Dense between the encoder and the first S5 layer."""
    _, params = paper_s5
    backbone = _shapes(params["backbone"])
    assert backbone == {
        "['layers']['Dense_0']['bias']": (4, 256), "['layers']['Dense_0']['kernel']": (4, 256, 256),
        "['layers']['Dense_1']['bias']": (4, 256), "['layers']['Dense_1']['kernel']": (4, 256, 256),
        "['layers']['S5SSM_0']['b']": (4, 128, 256, 2), "['layers']['S5SSM_0']['c']": (4, 256, 128, 2),
        "['layers']['S5SSM_0']['d']": (4, 256), "['layers']['S5SSM_0']['lambda_im']": (4, 128),
        "['layers']['S5SSM_0']['lambda_re']": (4, 128), "['layers']['S5SSM_0']['log_step']": (4, 128),
    }


def test_paper_s5_c_has_the_papers_scale(paper_s5):
    """C is lecun_normal over [H, N, 2] (fan-in N H) times V: its real and imaginary parts
    have std 1/sqrt(N H) = 1/256 (within 10%), not the per-row 1/sqrt(N) = 1/16."""
    _, params = paper_s5
    c = np.asarray(params["backbone"]["layers"]["S5SSM_0"]["c"])
    expected = 1.0 / math.sqrt(256 * 256)
    assert abs(c.std() / expected - 1.0) < 0.1, c.std()


def test_paper_gru_is_one_cell_of_256(paper_gru):
    """The paper's GRU agent: one GRU cell of 256 between the same encoder and heads."""
    _, params = paper_gru
    cells = params["backbone"]["rnn"]
    assert list(cells) == ["cell_0"]
    assert {k: v for k, v in _shapes(cells["cell_0"]).items() if k.endswith("['kernel']")} == {
        f"['{gate}']['kernel']": (256, 256) for gate in ("hn", "hr", "hz", "in", "ir", "iz")}


def test_paper_preset_ends_the_return_at_every_done():
    """The paper's PPO sees one done flag: truncated episodes do not bootstrap."""
    assert not make_preset("paper", "s5").ppo.bootstrap_truncated
    assert make_preset("quick", "s5").ppo.bootstrap_truncated


class _Identity(nn.Module):
    """A stand-in backbone that passes features through (carry: nothing)."""

    @nn.nowrap
    def initialize_carry(self, batch_size: int):
        return jnp.zeros((batch_size, 0))

    def __call__(self, carry, inputs, resets):
        return carry, inputs


def test_activations_are_leaky_relu_after_every_hidden_layer():
    """A forward pass through a tiny paper-shaped network with hand-set weights equals the
    hand computation with leaky_relu(x) = max(x, 0.01 x) after every hidden layer."""
    net = ActorCritic(backbone=_Identity(), action_spec=ActionSpec("discrete", (2,)),
                      network=NetworkConfig(encoder=(2, 2), head=(2, 2)))
    obs = jnp.array([[[1.0, -2.0]]])
    carry = net.initialize_carry(1)
    params = net.init(jax.random.key(0), carry, obs, jnp.ones((1, 1), bool))
    # Hand-set weights: each layer maps [a, b] -> [a - b, b - a] + bias.
    w = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.asarray(
            w[:, : x.shape[1]] if "kernel" in jax.tree_util.keystr(path) and x.shape[0] == 2
            else np.full(x.shape, 0.5, np.float32)), params)
    _, pi, value = net.apply(params, carry, obs, jnp.ones((1, 1), bool))

    def leaky(x):
        return np.where(x > 0, x, 0.01 * x)

    def layer(x):  # kernel w, bias 0.5
        return x @ w + 0.5

    x = np.array([1.0, -2.0])
    # encoder: layer([1, -2]) = [3.5, -2.5], leaky -> [3.5, -0.025]; and once more
    features = leaky(layer(leaky(layer(x))))
    hidden = leaky(layer(leaky(layer(features))))
    np.testing.assert_allclose(np.asarray(pi.logits)[0, 0], layer(hidden), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(value)[0, 0], hidden @ w[:, 0] + 0.5, rtol=1e-6)


def _get(tree, key: str):
    for part in key.strip("[]'").split("']['"):
        tree = tree[part]
    return tree


@pytest.mark.parametrize(("env_id", "side"), [("BattleshipEasy", 8), ("MineSweeperHard", 8)])
def test_paper_agent_acts_jointly_on_battleship_and_minesweeper(env_id, side):
    """Under paper the agent has one categorical over the side^2 cells (popjaxrl's
    Discrete(S^2)); quick keeps one categorical per coordinate (side, side)."""
    paper = make_preset("paper", "gru", env_id)
    quick = make_preset("quick", "gru", env_id)
    assert paper.env.joint_action and not quick.env.joint_action
    assert build_trainer(paper)[1].action_spec == ActionSpec("discrete", (side * side,))
    assert build_trainer(quick)[1].action_spec == ActionSpec("multi_discrete", (side, side))
