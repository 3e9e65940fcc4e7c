"""In-context meta-RL over randomly projected environments (Lu et al. 2023, section 5.3).

``MetaEnv`` turns a *suite* of registered environments into one gymnax environment. At each
meta-episode reset it samples

- a base environment, uniformly from the suite;
- an observation projection ``W_obs [obs_size, D_pad]`` with entries ``N(0, 1) / sqrt(d)``
  (``d`` the base environment's own observation size, so a projected observation has the
  scale of the base one); columns ``d..D_pad`` are zero;
- an action projection ``W_act [A_pad, action_size]`` with entries
  ``N(0, 1) / sqrt(action_size)``; rows ``a..A_pad`` are zero (``a`` the base action size).

All three come from the reset key alone: the same key gives the same environment and the
same matrices. A meta-episode is ``num_trials`` trials of that base environment under those
matrices. A trial ends when the base episode ends (terminated, or its time limit, capped at
``trial_length``); the base environment is then reset but the meta-episode goes on: from a
fresh random start, or, with ``same_start`` (the paper's CartPole), from the very state the
meta-episode's first trial started in, so only the agent's knowledge changes. The meta
environment's ``terminated`` fires only after the last trial, so the PPO loop resets the
agent's carry only between meta-episodes, never between trials.

The agent acts with a vector ``u`` in ``[-1, 1]^action_size`` (a Box; the training wrappers
clip it). The base environment receives ``v = W_act u``:

- continuous actions: ``clip(mid + half * v, low, high)`` with ``mid``/``half`` the centre and
  half-width of the base action box;
- discrete actions (CartPole, the bandit probe): ``argmax(v[:n])``, i.e. ``v`` is read as
  logits over the ``n`` base actions.

The observation is ``[W_obs o_pad, u_prev, r_prev, trial_start]`` (``obs_size +
action_size + 2`` floats; ``include_action=False`` drops ``u_prev``): the projected base
observation (zero-padded to ``D_pad`` before projecting, so padded slots never contribute),
the previous action (zeros at a meta-episode start), the previous scaled reward and a flag
that is 1 on the first step of every trial.
Because the previous action is already in the observation, meta runs set
``EnvConfig.previous_action=False``.

Reward scaling: each base environment's reward is divided by ``R``, a bound on the absolute
return of one trial read from its reward formula (``RETURN_BOUNDS``), so every trial's return
lies in about ``[-1, 1]`` whatever the base environment, and a meta-episode's in
``[-num_trials, num_trials]``.

Mixed suites run under one ``vmap``: the state holds every base environment's state (a tuple,
one slot per suite member), and ``lax.switch`` on the sampled index steps only that slot
(under ``vmap`` every branch is computed and one selected, so the cost is the sum of the
suite's step costs, which is small beside the network).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.meta_cartpole import MetaCartPole
from envs.registry import make
from envs.wrappers import encoded_size

# A bound on |return of one trial| per base environment, as a function of its (time-limited)
# params: the reward is divided by it.
_PENDULUM_COST = math.pi**2 + 0.1 * 8.0**2 + 0.001 * 2.0**2  # gymnasium Pendulum's worst step
RETURN_BOUNDS: dict[str, Callable[[Any], float]] = {
    # gymnasium Pendulum: -(theta^2 + 0.1 theta_dot^2 + 0.001 u^2) per step.
    "Pendulum-v1": lambda p: _PENDULUM_COST * p.max_steps_in_episode,
    # +100 on reaching the flag, minus 0.1 u^2 per step.
    "MountainCarContinuous-v0": lambda p: 100.0,
    # gymnax misc: exp(-distance^2) in [0, 1] per step.
    "Reacher-misc": lambda p: float(p.max_steps_in_episode),
    "Swimmer-misc": lambda p: float(p.max_steps_in_episode),
    # sparse: 1 per step inside the goal radius.
    "PointRobot-misc": lambda p: float(p.max_steps_in_episode),
    # POPGym's pendulum ports already scale an episode's return into [-1, 1].
    "PositionOnlyPendulumEasy": lambda p: 1.0,
    "PositionOnlyPendulumMedium": lambda p: 1.0,
    "PositionOnlyPendulumHard": lambda p: 1.0,
    "NoisyPositionOnlyPendulumEasy": lambda p: 1.0,
    "NoisyPositionOnlyPendulumMedium": lambda p: 1.0,
    "NoisyPositionOnlyPendulumHard": lambda p: 1.0,
    # +1 per step alive.
    "CartPole-v1": lambda p: float(p.max_steps_in_episode),
    "DelayedBandit": lambda p: 1.0,
}

# Named suites of base environments. The held-out suite shares no environment with the
# training suite (checked by the tests and by `s5bench meta`).
SUITES: dict[str, tuple[str, ...]] = {
    "MetaControl": ("Pendulum-v1", "MountainCarContinuous-v0", "Reacher-misc",
                    "Swimmer-misc", "PositionOnlyPendulumEasy"),
    "MetaControlHeldOut": ("PointRobot-misc", "NoisyPositionOnlyPendulumEasy"),
    "ProjectedCartPole": ("CartPole-v1",),
    "ProjectedBandit": ("DelayedBandit",),
}
DEFAULT_HELD_OUT: dict[str, str] = {"MetaControl": "MetaControlHeldOut"}
# Suites whose trials all restart from the meta-episode's first start state: in the paper's
# code (popjaxrl ``meta_cartpole.py``) every trial of a meta-episode restarts CartPole from
# the same initial state.
SAME_START_SUITES = ("ProjectedCartPole",)
# Suites that are one environment class of their own rather than ``MetaEnv`` over projected
# base environments: the paper's meta-CartPole (``envs/meta_cartpole.py``). Such a suite is
# its own single member, takes only the settings its class lists (``SETTINGS``), and has
# no held-out suite (no other suite shares its observation and action spaces).
STANDALONE_SUITES: dict[str, type] = {"MetaCartPole": MetaCartPole}


def suite_names() -> list[str]:
    """Every meta suite: the ``MetaEnv`` suites, then the standalone ones."""
    return [*SUITES, *STANDALONE_SUITES]


def suite_env_kwargs(suite: str, *, num_trials: int, trial_length: int, obs_size: int,
                     action_size: int, include_action: bool, same_start: bool) -> dict[str, Any]:
    """The suite environment's constructor arguments (``make_meta_env``) for these settings.

    A ``MetaEnv`` suite takes every setting; a standalone suite only the ones its class lists
    (``SETTINGS``: MetaCartPole has no action projection, for one).
    """
    kwargs = {"num_trials": num_trials, "trial_length": trial_length, "obs_size": obs_size,
              "action_size": action_size, "include_action": include_action,
              "same_start": same_start}
    if suite in STANDALONE_SUITES:
        return {name: kwargs[name] for name in STANDALONE_SUITES[suite].SETTINGS}
    return kwargs


def suite_members(suite: str) -> tuple[str, ...]:
    """The environments a suite is evaluated on one by one (a standalone suite: itself)."""
    if suite in STANDALONE_SUITES:
        return (suite,)
    if suite not in SUITES:
        raise ValueError(f"unknown meta suite {suite!r}; valid suites: "
                         f"{', '.join(suite_names())}")
    return SUITES[suite]


# ----------------------------------------------------------------------------- bandit probe


@struct.dataclass
class BanditState(environment.EnvState):
    time: int


@struct.dataclass
class BanditParams(environment.EnvParams):
    max_steps_in_episode: int = 2


class DelayedBandit(environment.Environment[BanditState, BanditParams]):
    """A fixed bandit for the in-context probe: arm 0 pays 1, the others 0.

    Each episode (trial) is a pull and then a blank step (reward 0, action ignored). Seen
    through ``MetaEnv``'s random action projection, the agent-space direction that pulls
    arm 0 is random per meta-episode and fixed across its trials. The blank step overwrites
    the previous-action and previous-reward inputs before the next pull, so a memoryless
    policy cannot carry the pull's outcome to the next trial; a memory backbone can.
    """

    def __init__(self, num_arms: int = 2):
        super().__init__()
        self.num_arms = num_arms

    @property
    def default_params(self) -> BanditParams:
        return BanditParams()

    def step_env(self, key, state: BanditState, action, params: BanditParams):
        pull = state.time == 0
        reward = jnp.where(pull & (action == 0), 1.0, 0.0).astype(jnp.float32)
        state = state.replace(time=state.time + 1)
        return self.get_obs(state), state, reward, self.is_terminated(state, params), {}

    def reset_env(self, key, params: BanditParams):
        state = BanditState(time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.ones((1,), jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return state.time >= 2

    @property
    def name(self) -> str:
        return "DelayedBandit"

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_arms)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


# ----------------------------------------------------------------------------- meta env


@struct.dataclass
class MetaState(environment.EnvState):
    base_states: tuple  # one state per suite member; only ``env_index``'s slot moves
    env_index: jax.Array  # int32, which base environment this meta-episode uses
    obs_matrix: jax.Array  # [obs_size, D_pad] float32
    action_matrix: jax.Array  # [A_pad, action_size] float32
    trial: jax.Array  # int32, trials completed in this meta-episode
    time: jax.Array  # int32, steps taken in this meta-episode
    start_keys: jax.Array  # [n_bases, 2] uint32: key data of each base env's first reset


@struct.dataclass
class MetaParams(environment.EnvParams):
    max_steps_in_episode: int = 2**30  # never reached: meta-episodes end by `terminated`


def _strong(tree):
    """Drop weak types so that every ``lax.switch`` branch returns identical types."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


class MetaEnv(environment.Environment[MetaState, MetaParams]):
    """K trials of a sampled base environment seen through random projections.

    Args:
      base_ids: registered ids of the suite's base environments (Box observations; Box or
        Discrete actions; each needs an entry in ``RETURN_BOUNDS``).
      num_trials: K, trials per meta-episode.
      trial_length: cap on the steps of one trial (the base time limit becomes the smaller
        of its own and this); 0 keeps each base environment's own limit.
      obs_size: size of the projected observation.
      action_size: size of the agent's action vector.
      include_action: include the previous action in the observation. The bandit probe
        turns it off: a memoryless policy could otherwise relay a pull's outcome to the next
        trial through its own blank-step action.
      same_start: every trial restarts the base environment from the meta-episode's
        first start state (the paper's CartPole) instead of a fresh random one.
    """

    def __init__(self, base_ids: tuple[str, ...] | str = SUITES["MetaControl"],
                 num_trials: int = 4, trial_length: int = 0, obs_size: int = 16,
                 action_size: int = 4, include_action: bool = True, same_start: bool = False):
        super().__init__()
        base_ids = SUITES[base_ids] if isinstance(base_ids, str) else tuple(base_ids)
        if not base_ids:
            raise ValueError("a meta suite needs at least one base environment")
        for name, value in (("num_trials", num_trials), ("obs_size", obs_size),
                            ("action_size", action_size)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if trial_length < 0:
            raise ValueError(f"trial_length must be >= 0, got {trial_length}")
        self.base_ids = base_ids
        self.num_trials, self.obs_size, self.action_size = num_trials, obs_size, action_size
        self.include_action, self.same_start = include_action, same_start
        self.bases, self.base_params, self.scales = [], [], []
        self.obs_dims, self.action_dims, self.discrete = [], [], []
        for env_id in base_ids:
            if env_id not in RETURN_BOUNDS:
                raise ValueError(f"no reward scale for {env_id!r}; add it to RETURN_BOUNDS")
            env, params = make(env_id)
            if trial_length:
                params = params.replace(
                    max_steps_in_episode=min(trial_length, params.max_steps_in_episode))
            obs_space, act_space = env.observation_space(params), env.action_space(params)
            if not isinstance(obs_space, spaces.Box):
                raise ValueError(f"{env_id}: meta base environments need Box observations")
            self.bases.append(env)
            self.base_params.append(params)
            self.scales.append(1.0 / RETURN_BOUNDS[env_id](params))
            if not isinstance(act_space, spaces.Discrete | spaces.Box):
                raise ValueError(f"{env_id}: unsupported action space {act_space}")
            # Sizes as the training wrappers count them: n logits, or the flattened box.
            self.obs_dims.append(encoded_size(obs_space))
            self.action_dims.append(encoded_size(act_space))
            self.discrete.append(isinstance(act_space, spaces.Discrete))
        self.obs_pad, self.action_pad = max(self.obs_dims), max(self.action_dims)
        self.trial_length = max(int(p.max_steps_in_episode) for p in self.base_params)

    # ------------------------------------------------------------------ gymnax interface

    @property
    def default_params(self) -> MetaParams:
        return MetaParams()

    @property
    def name(self) -> str:
        return f"Meta[{','.join(self.base_ids)}]"

    @property
    def max_meta_steps(self) -> int:
        """Most steps a meta-episode can take (every trial running to its time limit)."""
        return self.num_trials * self.trial_length

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.action_size,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        size = self.obs_size + (self.action_size if self.include_action else 0) + 2
        return spaces.Box(-jnp.inf, jnp.inf, (size,), jnp.float32)

    def is_terminated(self, state: MetaState, params) -> jax.Array:
        return state.trial >= self.num_trials

    def is_truncated(self, state: MetaState, params) -> jax.Array:
        return jnp.bool_(False)

    def sample_task(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(env_index, obs_matrix, action_matrix)`` of a new meta-episode (see module doc)."""
        index_key, obs_key, act_key = jax.random.split(key, 3)
        index = jax.random.randint(index_key, (), 0, len(self.bases)).astype(jnp.int32)
        obs_dim = jnp.asarray(self.obs_dims, jnp.float32)[index]
        act_dim = jnp.asarray(self.action_dims, jnp.int32)[index]
        obs_mask = jnp.arange(self.obs_pad) < obs_dim
        obs_matrix = jax.random.normal(obs_key, (self.obs_size, self.obs_pad))
        obs_matrix = jnp.where(obs_mask[None, :], obs_matrix / jnp.sqrt(obs_dim), 0.0)
        act_mask = jnp.arange(self.action_pad) < act_dim
        action_matrix = jax.random.normal(act_key, (self.action_pad, self.action_size))
        action_matrix = jnp.where(act_mask[:, None],
                                  action_matrix / math.sqrt(self.action_size), 0.0)
        return index, obs_matrix.astype(jnp.float32), action_matrix.astype(jnp.float32)

    def reset_env(self, key, params: MetaParams):
        task_key, base_key = jax.random.split(key)
        index, obs_matrix, action_matrix = self.sample_task(task_key)
        keys = jax.random.split(base_key, len(self.bases))
        resets = [env.reset(k, p)
                  for env, p, k in zip(self.bases, self.base_params, keys, strict=True)]
        base_states = _strong(tuple(state for _, state in resets))
        # Every base env was reset above (one state slot each): index the sampled one's obs.
        padded = jnp.stack([self._pad(obs, i) for i, (obs, _) in enumerate(resets)])[index]
        state = MetaState(base_states=base_states, env_index=index, obs_matrix=obs_matrix,
                          action_matrix=action_matrix, trial=jnp.int32(0), time=jnp.int32(0),
                          start_keys=jax.random.key_data(keys))
        no_action = jnp.zeros(self.action_size, jnp.float32)
        return self._observe(state, padded, no_action, jnp.float32(0.0), True), state

    def step_env(self, key, state: MetaState, action, params: MetaParams):
        action = jnp.asarray(action, jnp.float32).reshape(self.action_size)
        projected = state.action_matrix @ action  # [A_pad]

        def branch(i):
            def step(base_states):
                base_action = self._base_action(projected, i)
                obs, new, reward, terminated, truncated, _ = self.bases[i].step(
                    key, base_states[i], base_action, self.base_params[i])
                done = jnp.logical_or(terminated, truncated)
                if self.same_start:  # the next trial starts where the first one did
                    first_obs, first = self.bases[i].reset(
                        jax.random.wrap_key_data(state.start_keys[i]), self.base_params[i])
                    new = jax.tree.map(lambda a, b: jnp.where(done, a, b), first, new)
                    obs = jnp.where(done, first_obs, obs)
                base_states = (*base_states[:i], new, *base_states[i + 1:])
                reward = jnp.asarray(reward, jnp.float32).reshape(()) * self.scales[i]
                return _strong(base_states), self._pad(obs, i), reward, done
            return step

        base_states, padded, reward, trial_done = jax.lax.switch(
            state.env_index, [branch(i) for i in range(len(self.bases))], state.base_states)
        info = {"trial_done": trial_done, "trial": state.trial}  # the trial this step was in
        state = state.replace(
            base_states=base_states,
            trial=state.trial + trial_done.astype(jnp.int32),
            time=state.time + 1,
        )
        obs = self._observe(state, padded, action, reward, trial_done)
        return obs, state, reward, self.is_terminated(state, params), info

    # ------------------------------------------------------------------ helpers

    def _pad(self, obs: jax.Array, i: int) -> jax.Array:
        """Base observation ``i`` as float32 ``[D_pad]``, zeros past its own size."""
        flat = jnp.reshape(obs, (-1,)).astype(jnp.float32)
        return jnp.pad(flat, (0, self.obs_pad - flat.shape[0]))

    def _base_action(self, projected: jax.Array, i: int) -> jax.Array:
        """The base environment's action from the projected vector ``W_act u``."""
        if self.discrete[i]:
            return jnp.argmax(projected[: self.action_dims[i]]).astype(jnp.int32)
        space = self.bases[i].action_space(self.base_params[i])
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
        vector = projected[: self.action_dims[i]].reshape(space.shape)
        return jnp.clip((high + low) / 2 + (high - low) / 2 * vector, low, high)

    def _observe(self, state: MetaState, padded, action, reward, trial_start) -> jax.Array:
        return jnp.concatenate([
            state.obs_matrix @ padded,
            *([action] if self.include_action else []),
            jnp.reshape(reward, (1,)).astype(jnp.float32),
            jnp.reshape(trial_start, (1,)).astype(jnp.float32),
        ])


def make_meta_env(suite: str, members: tuple[str, ...] | None = None,
                  **kwargs) -> environment.Environment:
    """The named suite's environment: its standalone class, or ``MetaEnv`` over its members.

    Args:
      suite: a name from ``suite_names()``.
      members: a subset of the suite's members (evaluation runs each alone); all if None.
      **kwargs: the environment's settings; ``same_start`` defaults to the suite's
        (``SAME_START_SUITES``).
    """
    all_members = suite_members(suite)
    members = all_members if members is None else tuple(members)
    if not set(members) <= set(all_members):
        raise ValueError(f"{', '.join(members)} not all in meta suite {suite!r} "
                         f"({', '.join(all_members)})")
    if suite in STANDALONE_SUITES:
        return STANDALONE_SUITES[suite](**kwargs)
    kwargs.setdefault("same_start", suite in SAME_START_SUITES)
    return MetaEnv(members, **kwargs)
