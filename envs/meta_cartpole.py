"""The paper's meta-CartPole: popjaxrl's ``NoisyStatelessMetaCartPole``, ported.

Lu et al. (2023), section 5.3 and Figure 4: an in-context task on one base environment.
Port of ``envs/environments/meta_cartpole.py`` of popjaxrl (github.com/luchris429/popjaxrl,
commit 12e5d42), whose base is the position-only CartPole of its ``popgym_cartpole.py``
with noise 0 and a 200-step limit. s5bench's ``ProjectedCartPole`` (``envs/meta_rl.py``) is
another task: full-state CartPole-v1 with a random action projection.

A meta-episode:

- at reset, the key is split into ``(env_key, obs_key)``; the CartPole start state is
  ``uniform(env_key, (4,), -0.05, 0.05)`` (``x, x_dot, theta, theta_dot``), and the
  observation map is a ``Dense(2 -> obs_size)`` with an orthogonal kernel of scale sqrt 2
  and a zero bias, initialised by flax from ``obs_key`` exactly as the paper's
  ``MetaAugNetwork`` is (same module path, so the same key gives the same kernel);
- the agent's action is CartPole's own ``Discrete(2)`` (no action projection);
- a trial ends when the pole falls or the cart leaves the track (gymnasium's thresholds) or
  after ``trial_length`` steps; the next trial restarts from the meta-episode's *first*
  state and shows its first observation, so only the agent's knowledge changes;
- the meta-episode terminates when ``num_trials`` trials have ended (16 in the paper's
  training; its evaluation runs 32, past the training horizon).

Observation (``obs_size + 3`` floats, 7 in the paper): ``[W [x, theta], previous action,
trial done, start flag]``. At reset ``[W o_0, 0, 0, 1]``; after a step
``[W o, a, d, 0]``, with ``a`` the action just taken (0 or 1), ``d`` 1 when that step
ended a trial (``o`` is then the restart observation ``o_0``). ``[x, theta]`` is clipped to
``+-[4.8, 0.419]`` as the paper's ``get_obs`` does.

Reward: the paper's base pays ``reward_transform(1 - prev_terminal)``, i.e. ``-1`` when a
step starts from a terminal state and ``1 / trial_length`` otherwise. The meta environment
replaces a terminal state by the restart state on the very step it is reached, so no step
starts from one: every step pays ``1 / trial_length``, the step on which the pole falls
included, and a trial's return is its length over ``trial_length``, in ``(0, 1]``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import struct
from gymnax.environments import environment, spaces

from envs.popgym.cartpole_common import EnvParams as CartPoleParams
from envs.popgym.cartpole_common import euler_step, out_of_bounds, position_box


class _ObservationMap(nn.Module):
    """The paper's ``MetaAugNetwork``: one Dense, orthogonal(sqrt 2) kernel, zero bias.

    Kept as a module with a compact Dense so that ``init(key, obs)`` draws the kernel from
    the same key path as the paper's, hence the same matrix for the same key.
    """

    out_size: int = 4

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.out_size, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)),
                        bias_init=nn.initializers.zeros)(x)


@struct.dataclass
class CartPoleState:
    """The paper's CartPole state (no noise, no termination memory)."""

    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array
    time: jax.Array  # int32, steps taken in this trial


@struct.dataclass
class MetaCartPoleState(environment.EnvState):
    cartpole: CartPoleState  # the trial in progress
    start: CartPoleState  # the meta-episode's first state: every trial restarts from it
    start_obs: jax.Array  # [2] float32, its observation
    kernel: jax.Array  # [2, obs_size] float32, the observation map (its bias is zero)
    trial: jax.Array  # int32, trials ended in this meta-episode
    time: jax.Array  # int32, steps taken in this meta-episode


@struct.dataclass
class MetaCartPoleParams(environment.EnvParams):
    max_steps_in_episode: int = 2**30  # never reached: meta-episodes end by `terminated`
    cartpole: CartPoleParams = CartPoleParams()


class MetaCartPole(environment.Environment[MetaCartPoleState, MetaCartPoleParams]):
    """The paper's meta-CartPole (see the module docstring).

    Args:
      num_trials: trials per meta-episode (the paper trains with 16, evaluates with 32).
      trial_length: CartPole's time limit per trial, and the reward scale 1/trial_length
        (the paper's 200); 0 means 200.
      obs_size: width of the observation map (the paper's 4).
    """

    PAPER_TRIAL_LENGTH = 200
    PAPER_OBS_SIZE = 4
    # The meta settings it takes (``envs.meta_rl.suite_env_kwargs`` passes only these); it
    # has no action projection, and its trials always restart from one state.
    SETTINGS = ("num_trials", "trial_length", "obs_size")

    def __init__(self, num_trials: int = 16, trial_length: int = PAPER_TRIAL_LENGTH,
                 obs_size: int = PAPER_OBS_SIZE):
        super().__init__()
        for name, value in (("num_trials", num_trials), ("obs_size", obs_size)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if trial_length < 0:
            raise ValueError(f"trial_length must be >= 0, got {trial_length}")
        self.num_trials, self.obs_size = num_trials, obs_size
        self.trial_length = trial_length or self.PAPER_TRIAL_LENGTH
        self.observation_map = _ObservationMap(obs_size)

    @property
    def default_params(self) -> MetaCartPoleParams:
        return MetaCartPoleParams(
            cartpole=CartPoleParams(max_steps_in_episode=self.trial_length))

    @property
    def name(self) -> str:
        return "MetaCartPole"

    @property
    def max_meta_steps(self) -> int:
        """Most steps a meta-episode can take (every trial running to its time limit)."""
        return self.num_trials * self.trial_length

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size + 3,), jnp.float32)

    def is_terminated(self, state: MetaCartPoleState, params) -> jax.Array:
        return state.trial >= self.num_trials

    def reset_env(self, key, params: MetaCartPoleParams):
        env_key, obs_key = jax.random.split(key)
        x, x_dot, theta, theta_dot = jax.random.uniform(
            env_key, (4,), jnp.float32, minval=-0.05, maxval=0.05)
        start = CartPoleState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot,
                              time=jnp.int32(0))
        start_obs = self._cartpole_obs(start)
        variables = self.observation_map.init(obs_key, start_obs[None, :])
        kernel = variables["params"]["Dense_0"]["kernel"]
        state = MetaCartPoleState(cartpole=start, start=start, start_obs=start_obs,
                                  kernel=kernel, trial=jnp.int32(0), time=jnp.int32(0))
        flags = jnp.array([0.0, 0.0, 1.0], jnp.float32)
        return jnp.concatenate([start_obs @ kernel, flags]), state

    def step_env(self, key, state: MetaCartPoleState, action, params: MetaCartPoleParams):
        cart = params.cartpole
        x, x_dot, theta, theta_dot = euler_step(state.cartpole, action, cart)
        moved = CartPoleState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot,
                              time=state.cartpole.time + 1)
        trial_done = out_of_bounds(x, theta, cart) | (moved.time >= cart.max_steps_in_episode)
        cartpole = jax.tree.map(lambda a, b: jnp.where(trial_done, a, b), state.start, moved)
        obs = jnp.where(trial_done, state.start_obs, self._cartpole_obs(moved))
        reward = jnp.float32(1.0) / cart.max_steps_in_episode
        info: dict[str, Any] = {"trial_done": trial_done, "trial": state.trial}
        state = state.replace(cartpole=cartpole,
                              trial=state.trial + trial_done.astype(jnp.int32),
                              time=state.time + 1)
        flags = jnp.stack([jnp.asarray(action, jnp.float32), trial_done.astype(jnp.float32),
                           jnp.float32(0.0)])
        observation = jnp.concatenate([obs @ state.kernel, flags])
        return observation, state, reward, self.is_terminated(state, params), info

    @staticmethod
    def _cartpole_obs(state: CartPoleState) -> jax.Array:
        """``[x, theta]`` clipped to the paper's observation box, float32 ``[2]``."""
        box = position_box()
        obs = jnp.stack([state.x, state.theta]).astype(jnp.float32)
        return jnp.clip(obs, np.asarray(box.low), np.asarray(box.high))
