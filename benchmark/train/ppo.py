"""The one PPO loop: every backbone and every environment trains through ``make_train``.

``make_train(config, network, env, env_params)`` returns a ``Trainer`` of pure functions of
one seed: ``init(key) -> RunnerState`` and ``run_chunk(state) -> (state, metrics)``, which
performs ``config.chunk_size`` updates inside one ``lax.scan``. Callers ``vmap`` them over
seeds and ``jit`` them; between chunks the host updates the progress display and writes
CSV rows (``benchmark/train/loop.py`` is that host loop).

The network is used only through ``network.apply(params, carry, obs, resets)`` and
``network.initialize_carry(batch)``: the loop never knows which backbone it trains.

Minibatches split environments, never time: each training sequence is one environment's
whole rollout, re-run from the carry it started with, so the backbone sees exactly the
history it saw while acting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from benchmark.train.losses import bootstrap_values, compute_gae, normalize, ppo_loss

if TYPE_CHECKING:  # annotations only: the loop is a leaf beside the configs
    from benchmark.config import PPOConfig


class RunnerState(NamedTuple):
    """Everything that carries over between updates (per seed)."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # [B, D] the observation to act on next
    resets: jax.Array  # [B] bool, True where ``obs`` is the first of an episode
    carry: Any  # backbone carry before ``obs``
    key: jax.Array
    update: jax.Array  # int32, updates done so far
    # int32: the update (1-based) whose loss or new parameters were not finite, 0 while
    # healthy. From then on the seed is frozen: updates change nothing (``_mask_divergence``).
    diverged_at: jax.Array


class Transition(NamedTuple):
    """One rollout step for a batch of environments (leading ``[B]``, stacked to ``[T, B]``)."""

    obs: jax.Array
    resets: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_value: jax.Array  # V(final_observation): the bootstrap of a truncated episode
    episode_done: jax.Array
    episode_return: jax.Array


class Trainer(NamedTuple):
    init: Callable[[jax.Array], RunnerState]
    run_chunk: Callable[[RunnerState], tuple[RunnerState, dict[str, jax.Array]]]
    num_chunks: int
    chunk_size: int


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Adam (eps 1e-5) after global-norm clipping, with optional linear decay to 0."""
    if config.anneal_lr:
        total = config.num_updates * config.update_epochs * config.num_minibatches
        lr = optax.linear_schedule(config.lr, 0.0, total)
    else:
        lr = config.lr
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


def split_minibatches(key, carry, batch, num_minibatches: int):
    """Shuffle environments and split them into minibatches (never splitting time).

    Args:
      key: PRNG key for the shuffle.
      carry: pytree of ``[B, ...]`` carries at the start of the rollout.
      batch: pytree of ``[T, B, ...]`` rollout arrays.
      num_minibatches: M, dividing B.

    Returns:
      ``(carry [M, B/M, ...], batch [M, T, B/M, ...])``: minibatch m, column j is one
      environment's whole rollout with the carry it started from.
    """
    num_envs = jax.tree.leaves(batch)[0].shape[1]
    perm = jax.random.permutation(key, num_envs)
    size = num_envs // num_minibatches
    carry = jax.tree.map(
        lambda x: jnp.take(x, perm, axis=0).reshape(num_minibatches, size, *x.shape[1:]), carry
    )
    batch = jax.tree.map(
        lambda x: jnp.moveaxis(
            jnp.take(x, perm, axis=1).reshape(x.shape[0], num_minibatches, size, *x.shape[2:]),
            1, 0,
        ),
        batch,
    )
    return carry, batch


def make_minibatch_update(config: PPOConfig, network, optimizer: optax.GradientTransformation):
    """The PPO gradient step on one minibatch: loss, backward, clipped Adam update.

    This is the unit of work of a PPO update, shared by ``make_train`` and the speed
    benchmark's ``train`` mode so that the two never drift apart.

    Returns:
      ``update(params, opt_state, carry, batch, advantages, returns) -> (params, opt_state,
      loss, aux)``, pure. ``batch`` is anything with ``obs [T, B, D]`` and ``resets``,
      ``action``, ``log_prob``, ``value`` ``[T, B]`` (a ``Transition``); ``carry`` is the
      backbone carry each sequence started from.
    """

    def _loss(params, carry, batch, advantages, returns):
        _, pi, value = network.apply(params, carry, batch.obs, batch.resets)
        return ppo_loss(
            log_prob=pi.log_prob(batch.action),
            old_log_prob=batch.log_prob,
            value=value,
            old_value=batch.value,
            advantages=normalize(advantages),
            returns=returns,
            entropy=pi.entropy(),
            clip_eps=config.clip_eps,
            vf_coef=config.vf_coef,
            ent_coef=config.ent_coef,
        )

    grad_fn = jax.value_and_grad(_loss, has_aux=True)

    def update(params, opt_state, carry, batch, advantages, returns):
        (loss, aux), grads = grad_fn(params, carry, batch, advantages, returns)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return update


def make_train(config: PPOConfig, network, env, env_params, env_truncates: bool = True
               ) -> Trainer:
    """Build the PPO trainer for one seed.

    Args:
      config: PPO hyperparameters (shape-setting ints are static: a change recompiles).
        ``config.bootstrap_truncated`` alone decides the return targets at time limits.
      network: an ``ActorCritic`` (or anything with the same apply/initialize_carry).
      env: a wrapped environment (``envs.wrappers.make_training_env``).
      env_params: its params.
      env_truncates: whether the environment can return ``truncated`` at all (the
        registry's ``truncates``). It only saves work: V(final_observation) is evaluated
        at every step, a second forward pass, only when truncated episodes bootstrap and
        can occur; it never changes a learning target.

    Returns:
      A ``Trainer``; see the module docstring.
    """
    evaluate_final_value = config.bootstrap_truncated and env_truncates
    optimizer = make_optimizer(config)
    num_envs, num_steps = config.num_envs, config.num_steps
    env_reset = jax.vmap(env.reset, in_axes=(0, None))
    env_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def init(key: jax.Array) -> RunnerState:
        key, init_key, reset_key = jax.random.split(key, 3)
        obs, env_state = env_reset(jax.random.split(reset_key, num_envs), env_params)
        carry = network.initialize_carry(num_envs)
        resets = jnp.ones((num_envs,), bool)
        params = network.init(init_key, carry, obs[None], resets[None])
        return RunnerState(
            params=params,
            opt_state=optimizer.init(params),
            env_state=env_state,
            obs=obs,
            resets=resets,
            carry=carry,
            key=key,
            update=jnp.int32(0),
            diverged_at=jnp.int32(0),
        )

    def _rollout_step(params, state: tuple, _):
        env_state, obs, resets, carry, key = state
        key, act_key, step_key = jax.random.split(key, 3)
        carry, pi, value = network.apply(params, carry, obs[None], resets[None])
        action = pi.sample(act_key)
        log_prob = pi.log_prob(action)[0]
        action, value = action[0], value[0]
        next_obs, env_state, reward, terminated, truncated, info = env_step(
            jax.random.split(step_key, num_envs), env_state, action, env_params
        )
        if evaluate_final_value:
            # V(final_observation) from the carry that saw this step, as if no reset.
            _, _, final_value = network.apply(
                params, carry, info["final_observation"][None], jnp.zeros((1, num_envs), bool)
            )
            final_value = final_value[0]
        else:
            final_value = jnp.zeros_like(value)
        transition = Transition(
            obs=obs,
            resets=resets,
            action=action,
            log_prob=log_prob,
            value=value,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_value=final_value,
            episode_done=info["episode_done"],
            episode_return=info["episode_return"],
        )
        next_resets = jnp.logical_or(terminated, truncated)
        return (env_state, next_obs, next_resets, carry, key), transition

    minibatch_update = make_minibatch_update(config, network, optimizer)

    def _update(runner: RunnerState, _):
        start_carry = runner.carry
        rollout_state = (runner.env_state, runner.obs, runner.resets, runner.carry, runner.key)
        (env_state, obs, resets, carry, key), traj = jax.lax.scan(
            lambda s, x: _rollout_step(runner.params, s, x), rollout_state, None, num_steps
        )
        _, _, last_value = network.apply(runner.params, carry, obs[None], resets[None])
        next_values = bootstrap_values(
            traj.value, last_value[0], traj.terminated, traj.truncated, traj.final_value,
            config.bootstrap_truncated,
        )
        dones = jnp.logical_or(traj.terminated, traj.truncated)
        advantages, returns = compute_gae(
            traj.reward, traj.value, next_values, dones, config.gamma, config.gae_lambda
        )

        def _epoch(carry_in, _):
            params, opt_state, key = carry_in
            key, perm_key = jax.random.split(key)
            mb_carry, (mb_batch, mb_adv, mb_ret) = split_minibatches(
                perm_key, start_carry, (traj, advantages, returns), config.num_minibatches
            )

            def _minibatch(inner, mb):
                params, opt_state = inner
                params, opt_state, loss, aux = minibatch_update(params, opt_state, *mb)
                return (params, opt_state), {"loss": loss, **aux}

            (params, opt_state), losses = jax.lax.scan(
                _minibatch, (params, opt_state), (mb_carry, mb_batch, mb_adv, mb_ret)
            )
            return (params, opt_state, key), losses

        key, epoch_key = jax.random.split(key)
        (params, opt_state, _), losses = jax.lax.scan(
            _epoch, (runner.params, runner.opt_state, epoch_key), None, config.update_epochs
        )
        metrics = {
            "episodes": jnp.sum(traj.episode_done),
            # Sum, not mean: an update in which no episode ended reports 0 episodes and the
            # host writes an empty return, never a NaN from 0/0.
            "return_sum": jnp.sum(jnp.where(traj.episode_done, traj.episode_return, 0.0)),
            **{name: jnp.mean(value) for name, value in losses.items()},
        }
        updated = RunnerState(
            params=params,
            opt_state=opt_state,
            env_state=env_state,
            obs=obs,
            resets=resets,
            carry=carry,
            key=key,
            update=runner.update + 1,
            diverged_at=runner.diverged_at,
        )
        return _mask_divergence(runner, updated, losses["loss"], metrics)

    def run_chunk(runner: RunnerState):
        return jax.lax.scan(_update, runner, None, config.chunk_size)

    return Trainer(
        init=init,
        run_chunk=run_chunk,
        num_chunks=config.num_updates // config.chunk_size,
        chunk_size=config.chunk_size,
    )


def _all_finite(tree) -> jax.Array:
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def _mask_divergence(old: RunnerState, new: RunnerState, losses: jax.Array,
                     metrics: dict[str, jax.Array]) -> tuple[RunnerState, dict[str, jax.Array]]:
    """Keep a seed whose update went non-finite (or already had) exactly where it was.

    Divergence is data, not a crash: the update that produced a NaN or infinite loss or
    parameter is recorded in ``diverged_at`` and discarded, and every later update of that
    seed leaves its whole state unchanged, so the other vmapped seeds train on untouched
    (``where`` selects per seed; nothing mixes seeds). The diverging update still reports
    its rollout and its non-finite losses; the frozen updates after it report no episodes
    and NaN losses.
    """
    already = old.diverged_at > 0
    healthy = jnp.logical_and(jnp.all(jnp.isfinite(losses)), _all_finite(new.params))
    accept = jnp.logical_and(healthy, jnp.logical_not(already))
    state = jax.tree.map(lambda n, o: jnp.where(accept, n, o), new, old)
    update = old.update + 1
    state = state._replace(
        update=update,
        diverged_at=jnp.where(accept | already, old.diverged_at, update),
    )
    frozen = {name: jnp.zeros_like(value) if name in ("episodes", "return_sum")
              else jnp.full_like(value, jnp.nan) for name, value in metrics.items()}
    metrics = jax.tree.map(lambda f, m: jnp.where(already, f, m), frozen, metrics)
    return state, metrics
