"""Wrappers that turn any registered environment into what the PPO loop consumes.

``make_training_env`` returns a ``TrainingEnv``: the wrapped environment, its params, the
action spec the policy head needs and whether episodes can end by a time limit. The
stack, innermost first:

1. ``ClipAction`` (continuous actions only): clip to the action box, as gymnasium does;
   or ``JointAction`` (MultiDiscrete actions, when asked): one index over every
   combination of the components, as the paper's agent acts in Battleship and MineSweeper.
2. ``EncodeObservation``: one-hot Discrete and MultiDiscrete observations, flatten Boxes,
   always float32 ``[D]``.
3. ``PreviousActionObservation`` (optional, on by default as in the paper): append the
   encoded previous action and an episode-start flag.
4. ``EpisodeLog``: accumulate the episode return and length and report them in ``info``
   on the step an episode ends.

Every wrapper keeps gymnax 1.x semantics: ``step`` auto-resets, and
``info["final_observation"]`` is the observation that ended the episode, transformed by
the same wrappers, so a truncated episode can bootstrap from its value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from envs.registry import ENVS, make, resolve
from envs.spaces import MultiDiscrete
from models.heads import ActionSpec


def action_spec(space) -> ActionSpec:
    """The ``ActionSpec`` the policy head needs for a gymnax action space."""
    if isinstance(space, spaces.Discrete):
        return ActionSpec("discrete", (int(space.n),))
    if isinstance(space, MultiDiscrete):
        return ActionSpec("multi_discrete", space.nvec)
    if isinstance(space, spaces.Box):
        return ActionSpec("continuous", (int(np.prod(space.shape)),))
    raise TypeError(f"unsupported action space {type(space).__name__}")


def encoded_size(space) -> int:
    """Length of the float vector ``encode(space, obs)`` returns."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, MultiDiscrete):
        return int(sum(space.nvec))
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    raise TypeError(f"unsupported observation space {type(space).__name__}")


def encode(space, obs: jax.Array) -> jax.Array:
    """Encode one observation (or action) of ``space`` as float32 ``[encoded_size]``.

    Out-of-range integers encode as all-zero one-hots rather than wrapping around.
    """
    if isinstance(space, spaces.Discrete):
        return jax.nn.one_hot(obs, space.n, dtype=jnp.float32)
    if isinstance(space, MultiDiscrete):
        parts = [jax.nn.one_hot(obs[i], n, dtype=jnp.float32) for i, n in enumerate(space.nvec)]
        return jnp.concatenate(parts)
    if isinstance(space, spaces.Box):
        return jnp.reshape(obs, (-1,)).astype(jnp.float32)
    raise TypeError(f"unsupported observation space {type(space).__name__}")


class Wrapper(environment.Environment):
    """Delegates everything it does not override to the wrapped environment."""

    def __init__(self, env):
        super().__init__()
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @property
    def default_params(self):
        return self._env.default_params

    @property
    def name(self) -> str:
        return self._env.name

    def action_space(self, params=None):
        return self._env.action_space(params)

    def observation_space(self, params):
        return self._env.observation_space(params)

    def reset(self, key, params=None):
        return self._env.reset(key, params)

    def step(self, key, state, action, params=None):
        return self._env.step(key, state, action, params)


class ClipAction(Wrapper):
    """Clip continuous actions to the action box (the Gaussian head is unbounded)."""

    def step(self, key, state, action, params=None):
        space = self._env.action_space(params)
        action = jnp.clip(action, space.low, space.high)
        return self._env.step(key, state, action, params)


class JointAction(Wrapper):
    """A ``MultiDiscrete(nvec)`` action as one ``Discrete(prod(nvec))`` index.

    Index ``a`` is the components' row-major flat index (``numpy.unravel_index``): for
    Battleship's ``(row, column)`` on an ``S x S`` board, ``a = row * S + column``, as
    popjaxrl's Battleship (``action // S, action % S``) and MineSweeper (its flat grid
    index) read their ``Discrete(S**2)`` action. A categorical over the ``prod(nvec)``
    combinations can put mass on any set of tiles, which independent per-component
    categoricals cannot (mass on (0, 0) and (1, 1) puts mass on (0, 1) too); the
    previous-action input then is a one-hot of ``prod(nvec)``.
    """

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(int(np.prod(self._env.action_space(params).nvec)))

    def step(self, key, state, action, params=None):
        nvec = tuple(int(n) for n in self._env.action_space(params).nvec)
        components = jnp.stack(jnp.unravel_index(jnp.asarray(action, jnp.int32), nvec))
        return self._env.step(key, state, components, params)


class EncodeObservation(Wrapper):
    """Observations (and ``final_observation``) as float32 ``[D]`` vectors."""

    def observation_space(self, params):
        size = encoded_size(self._env.observation_space(params))
        return spaces.Box(0.0, 1.0, (size,), jnp.float32)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return encode(self._env.observation_space(params), obs), state

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        space = self._env.observation_space(params)
        info = {**info, "final_observation": encode(space, info["final_observation"])}
        return encode(space, obs), state, reward, terminated, truncated, info


@struct.dataclass
class PreviousActionState:
    env_state: Any
    previous_action: jax.Array  # encoded, [A]


class PreviousActionObservation(Wrapper):
    """Append the encoded previous action and an episode-start flag (the paper's inputs).

    At the first step of an episode the previous action is all zeros and the flag is 1.
    Must wrap an ``EncodeObservation`` (flat float observations).
    """

    def _action_space(self, params):
        return self._env.action_space(params)

    def observation_space(self, params):
        base = self._env.observation_space(params).shape[0]
        size = base + encoded_size(self._action_space(params)) + 1
        return spaces.Box(-jnp.inf, jnp.inf, (size,), jnp.float32)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        none = jnp.zeros(encoded_size(self._action_space(params)), jnp.float32)
        return jnp.concatenate([obs, none, jnp.ones(1)]), PreviousActionState(state, none)

    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        taken = encode(self._action_space(params), action)
        previous = jnp.where(done, jnp.zeros_like(taken), taken)
        obs = jnp.concatenate([obs, previous, done.astype(jnp.float32)[None]])
        final = jnp.concatenate([info["final_observation"], taken, jnp.zeros(1)])
        info = {**info, "final_observation": final}
        return obs, PreviousActionState(env_state, previous), reward, terminated, truncated, info


@struct.dataclass
class LogState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeLog(Wrapper):
    """Report ``episode_return``/``episode_length`` in ``info`` when an episode ends.

    ``info["episode_done"]`` is True on the step an episode ends; the two statistics are
    meaningful only there.
    """

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, LogState(state, jnp.float32(0.0), jnp.int32(0))

    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        info = {
            **info,
            "episode_done": done,
            "episode_return": episode_return,
            "episode_length": episode_length,
        }
        state = LogState(
            env_state,
            jnp.where(done, 0.0, episode_return),
            jnp.where(done, 0, episode_length),
        )
        return obs, state, reward, terminated, truncated, info


class TrainingEnv(NamedTuple):
    """An environment as the PPO loop consumes it (``make_training_env``)."""

    env: environment.Environment  # the full wrapper stack
    params: Any  # its EnvParams
    action_spec: ActionSpec  # what the policy head emits, from the wrapped action space
    truncates: bool  # episodes can end by a time limit (the registry entry's flag)


def make_training_env(env_id: str, previous_action: bool = True,
                      env_params: dict | None = None, joint_action: bool = False,
                      **kwargs) -> TrainingEnv:
    """Build ``env_id`` with the full wrapper stack, and what the loop needs to know of it.

    Args:
      env_id: any registered id or alias.
      previous_action: append the previous action and an episode-start flag.
      joint_action: act in a MultiDiscrete action space through one index over every
        combination (``JointAction``); no effect on other action spaces.
      env_params: fields of the environment's default ``EnvParams`` to replace, e.g.
        ``{"memory_length": 64}`` for gymnax's MemoryChain (an unknown field is an error).
      **kwargs: passed to the environment's constructor.

    Returns:
      ``TrainingEnv``: the wrapped environment, its params, the action spec of the wrapped
      action space (``JointAction`` makes it discrete) and the registry's ``truncates``.
    """
    env, params = make(env_id, **kwargs)
    if env_params:
        params = params.replace(**env_params)
    if isinstance(env.action_space(params), spaces.Box):
        env = ClipAction(env)
    elif joint_action and isinstance(env.action_space(params), MultiDiscrete):
        env = JointAction(env)
    env = EncodeObservation(env)
    if previous_action:
        env = PreviousActionObservation(env)
    return TrainingEnv(EpisodeLog(env), params, action_spec(env.action_space(params)),
                       ENVS[resolve(env_id)].truncates)
