"""Conformance checks behind ``s5bench check``: does a backbone keep the Memory contract,
does an environment keep the gymnax interface the PPO loop relies on?

One library function per kind, used both by the command line and by the test suite
(``tests/models/test_memory_contract.py`` calls ``check_backbone`` for every built-in), so
the check a researcher runs on their plugin is the one that guards the built-ins.

``check_backbone`` builds a small instance (the config as given; ``s5bench check`` passes
``quick().sized(16, 2)``), initialises it on random data and measures, each as one
``PropertyResult`` with its maximum error and tolerance (models/base.py states the
contract):

- ``initial_carry``: ``initialize_carry(B)`` is deterministic zeros, every leaf ``[B, ...]``;
- ``shapes``: outputs ``[T, B, H]``, finite; the returned carry keeps the carry's structure;
- ``sequence_equals_steps``: one call over T steps equals T calls of T = 1 threading the
  carry (outputs and final carry);
- ``chunks_compose``: ``0..T`` equals ``0..k`` then ``k..T`` from the returned carry;
- ``reset_isolates``: perturbing the inputs and the incoming carry before a reset changes
  no output from the reset on (the bug that leaks memory across episodes);
- ``reset_at_start``: with ``resets[0]`` set, any incoming carry acts as the initial one;
- ``rows_independent``: one batch row's inputs never change another row's outputs;
- ``packed_equals_separate``: episodes packed with resets equal the episodes run apart;
- ``parallel_equals_sequential``: where the config has an ``evaluation`` field, both
  evaluations agree from the same parameters and incoming carry;
- ``finite_gradients``: the PPO loss through an actor-critic around the backbone has
  finite gradients for every parameter;
- ``config_rebuilds``: the config rebuilds equal from the JSON config.json keeps.

Errors are mixed absolute/relative, ``max |a - b| / (1 + |b|)``, against 1e-5: the same
as ``numpy.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)`` (fp32 with T <= 64,
STYLE.md section 6). Structural properties count violations against a tolerance of 0.

``check_env`` runs an environment's reset and step under ``jit`` and ``vmap`` and plays
random-policy episodes: see its docstring.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmark.train.losses import ppo_loss
from envs.registry import ENVS, make, resolve
from models import backbone_config_class
from models.actor_critic import ActorCritic, NetworkConfig
from models.heads import ActionSpec

SEQ_LEN, BATCH, INPUT_SIZE = 12, 3, 5  # T, B, D of the backbone checks
CHUNK_SPLITS = (1, 4, 8)  # k of chunks_compose: lengths 1, 4, 8, 11 (few compiles)
EPISODE_LEN = 4  # packed_equals_separate: 3 episodes of 4 steps in T = 12
RESET_AT = 6  # reset_isolates: the reset step
TOLERANCE = 1e-5  # fp32, T <= 64 (STYLE.md section 6)


@dataclass(frozen=True)
class PropertyResult:
    """One checked property: its measured error against its tolerance.

    Attributes:
      name: e.g. ``reset_isolates``.
      description: what holds when it passes, in one line.
      error: the measured maximum error (``nan`` if the check raised).
      tolerance: the largest error that passes.
      note: why it failed where the error alone does not say (an exception, a shape).
    """

    name: str
    description: str
    error: float
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.note and self.error <= self.tolerance


def failed(results: list[PropertyResult]) -> list[str]:
    """The names of the properties that do not hold."""
    return [result.name for result in results if not result.passed]


# ----------------------------------------------------------------------------- backbones


CHECK_WIDTH, CHECK_LAYERS = 16, 2  # the size ``s5bench check`` builds: cheap, and deep
# enough that a carry passed wrongly between layers shows


def check_config(name: str) -> Any:
    """The config ``s5bench check NAME`` checks: ``quick().sized(16, 2)`` of the backbone
    ``name`` resolves to (built-in, entry point or import path; ``PluginError`` if none)."""
    return backbone_config_class(name).quick().sized(CHECK_WIDTH, CHECK_LAYERS)


def check_backbone(config: Any) -> list[PropertyResult]:
    """Check the Memory contract of ``config.build()`` (see the module docstring).

    NOT a pure jittable function: it compiles and runs the module on the host. A property
    that raises fails with the exception as its note; the others still run.
    """
    key_init, key_data = jax.random.split(jax.random.key(0))
    try:
        module = config.build()
        params = module.init(key_init, module.initialize_carry(BATCH),
                             jnp.zeros((SEQ_LEN, BATCH, INPUT_SIZE)),
                             jnp.zeros((SEQ_LEN, BATCH), bool))
    except Exception as error:  # noqa: BLE001 (a plugin may fail in any way)
        return [PropertyResult("builds", "build() gives a Memory that initialises",
                               math.nan, 0.0, _one_line(error))]
    subject = _Subject(module, params, jax.jit(module.apply), key_data)
    checks: list[tuple[str, str, Callable[[_Subject], tuple[float, float, str]]]] = [
        ("initial_carry", "initialize_carry(B) is deterministic zeros, each leaf [B, ...]",
         _initial_carry),
        ("shapes", "outputs [T, B, H], finite; the carry keeps its structure and shapes",
         _shapes),
        ("sequence_equals_steps", "one call over T steps equals T single steps",
         _sequence_equals_steps),
        ("chunks_compose", "0..T equals 0..k then k..T from the returned carry",
         _chunks_compose),
        ("reset_isolates", "nothing before a reset changes any output from it on",
         _reset_isolates),
        ("reset_at_start", "with resets[0] set, any incoming carry acts as the initial one",
         _reset_at_start),
        ("rows_independent", "one batch row's inputs never change another row's outputs",
         _rows_independent),
        ("packed_equals_separate", "episodes packed with resets equal episodes run apart",
         _packed_equals_separate),
    ]
    if "evaluation" in {f.name for f in dataclasses.fields(config)}:
        checks.append(("parallel_equals_sequential",
                       "the parallel and sequential evaluations agree",
                       lambda s: _parallel_equals_sequential(s, config)))
    checks += [
        ("finite_gradients", "the PPO loss has finite gradients for every parameter",
         _finite_gradients),
        ("config_rebuilds", "the config rebuilds equal from config.json's JSON",
         lambda s: _config_rebuilds(config)),
    ]
    return [_run(name, description, check, subject) for name, description, check in checks]


@dataclass
class _Subject:
    module: Any
    params: Any
    apply: Callable  # jit(module.apply): one compile per sequence length
    key: jax.Array

    def inputs(self, seed: int, length: int = SEQ_LEN):
        """Random inputs ``[T, B, D]`` and resets ``[T, B]`` (p = 0.25), from ``seed``."""
        k_x, k_r = jax.random.split(jax.random.fold_in(self.key, seed))
        return (jax.random.normal(k_x, (length, BATCH, INPUT_SIZE)),
                jax.random.bernoulli(k_r, 0.25, (length, BATCH)))

    def run(self, carry, x, resets):
        return self.apply(self.params, carry, x, resets)

    def initial(self):
        return self.module.initialize_carry(BATCH)


def _run(name: str, description: str, check, subject: _Subject) -> PropertyResult:
    try:
        error, tolerance, note = check(subject)
    except Exception as exc:  # noqa: BLE001 (a failing property is a result, not a crash)
        return PropertyResult(name, description, math.nan, 0.0, _one_line(exc))
    return PropertyResult(name, description, float(error), tolerance, note)


def tree_error(a: Any, b: Any) -> float:
    """``max |a - b| / (1 + |b|)`` over every leaf (``inf`` if the trees' shapes differ)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    if jax.tree.structure(a) != jax.tree.structure(b):
        return math.inf
    worst = 0.0
    for leaf_a, leaf_b in zip(leaves_a, leaves_b, strict=True):
        leaf_a, leaf_b = np.asarray(leaf_a), np.asarray(leaf_b)
        if leaf_a.shape != leaf_b.shape:
            return math.inf
        if leaf_a.size:
            diff = np.abs(leaf_a.astype(np.complex128) - leaf_b.astype(np.complex128))
            worst = max(worst, float(np.max(diff / (1.0 + np.abs(leaf_b)))))
    return worst


def _perturbed(carry: Any, key: jax.Array) -> Any:
    """``carry`` with every entry changed, dtypes kept (floats and complex get unit noise
    plus one, integers one more, booleans flipped)."""
    leaves, treedef = jax.tree.flatten(carry)
    keys = jax.random.split(key, max(1, len(leaves)))
    out = []
    for leaf, k in zip(leaves, keys, strict=False):
        if jnp.issubdtype(leaf.dtype, jnp.bool_):
            out.append(~leaf)
        elif jnp.issubdtype(leaf.dtype, jnp.integer):
            out.append(leaf + 1)
        else:
            noise = jax.random.normal(k, leaf.shape)
            out.append((leaf + 1.0 + noise).astype(leaf.dtype))
    return jax.tree.unflatten(treedef, out)


def _initial_carry(s: _Subject):
    first, second = s.initial(), s.initial()
    problems = [f"leaf of shape {leaf.shape} lacks the leading batch dimension {BATCH}"
                for leaf in jax.tree.leaves(first) if leaf.ndim == 0 or leaf.shape[0] != BATCH]
    if not jax.tree.leaves(first):
        problems.append("the carry has no array (give it at least an empty [B, 0] one)")
    size = max((float(np.max(np.abs(np.asarray(leaf)))) for leaf in jax.tree.leaves(first)
                if leaf.size), default=0.0)
    return max(size, tree_error(first, second)), 0.0, "; ".join(problems[:1])


def _shapes(s: _Subject):
    x, resets = s.inputs(1)
    carry0 = s.initial()
    carry, y = s.run(carry0, x, resets)
    if y.ndim != 3 or y.shape[:2] != (SEQ_LEN, BATCH):
        return 1, 0.0, f"outputs have shape {y.shape}, not [T={SEQ_LEN}, B={BATCH}, H]"
    if jax.tree.structure(carry) != jax.tree.structure(carry0) or any(
            a.shape != b.shape or a.dtype != b.dtype
            for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry0), strict=True)):
        return 1, 0.0, "the returned carry's structure, shapes or dtypes differ from the initial"
    non_finite = int(np.sum(~np.isfinite(np.asarray(y))))
    return non_finite, 0.0, ""


def _sequence_equals_steps(s: _Subject):
    x, resets = s.inputs(2)
    carry_seq, y_seq = s.run(s.initial(), x, resets)
    carry, ys = s.initial(), []
    for t in range(SEQ_LEN):
        carry, y = s.run(carry, x[t : t + 1], resets[t : t + 1])
        ys.append(y[0])
    return max(tree_error(jnp.stack(ys), y_seq), tree_error(carry, carry_seq)), TOLERANCE, ""


def _chunks_compose(s: _Subject):
    x, resets = s.inputs(3)
    carry_full, y_full = s.run(s.initial(), x, resets)
    worst = 0.0
    for k in CHUNK_SPLITS:
        carry_k, y_a = s.run(s.initial(), x[:k], resets[:k])
        carry_end, y_b = s.run(carry_k, x[k:], resets[k:])
        worst = max(worst, tree_error(jnp.concatenate([y_a, y_b]), y_full),
                    tree_error(carry_end, carry_full))
    return worst, TOLERANCE, ""


def _reset_isolates(s: _Subject):
    x, _ = s.inputs(4)
    resets = jnp.zeros((SEQ_LEN, BATCH), bool).at[RESET_AT].set(True)
    _, y = s.run(s.initial(), x, resets)
    noise = jax.random.normal(jax.random.fold_in(s.key, 40), x[:RESET_AT].shape)
    x_perturbed = x.at[:RESET_AT].add(1.0 + noise)
    _, y_perturbed = s.run(_perturbed(s.initial(), jax.random.fold_in(s.key, 41)),
                           x_perturbed, resets)
    return tree_error(y_perturbed[RESET_AT:], y[RESET_AT:]), TOLERANCE, ""


def _reset_at_start(s: _Subject):
    x, resets = s.inputs(5)
    resets = resets.at[0].set(True)
    carry_a, y_a = s.run(s.initial(), x, resets)
    carry_b, y_b = s.run(_perturbed(s.initial(), jax.random.fold_in(s.key, 50)), x, resets)
    return max(tree_error(y_b, y_a), tree_error(carry_b, carry_a)), TOLERANCE, ""


def _rows_independent(s: _Subject):
    x, resets = s.inputs(6)
    _, y = s.run(s.initial(), x, resets)
    _, y_moved = s.run(s.initial(), x.at[:, 0].add(3.0), resets)
    note = ("" if tree_error(y_moved[:, 0], y[:, 0]) > TOLERANCE
            else "row 0's outputs ignore its own inputs")
    return tree_error(y_moved[:, 1:], y[:, 1:]), TOLERANCE, note


def _packed_equals_separate(s: _Subject):
    x, _ = s.inputs(7)
    resets = jnp.zeros((SEQ_LEN, BATCH), bool).at[::EPISODE_LEN].set(True)
    _, y_packed = s.run(s.initial(), x, resets)
    worst = 0.0
    for start in range(0, SEQ_LEN, EPISODE_LEN):
        episode = slice(start, start + EPISODE_LEN)
        _, y_alone = s.run(s.initial(), x[episode], jnp.zeros((EPISODE_LEN, BATCH), bool))
        worst = max(worst, tree_error(y_packed[episode], y_alone))
    return worst, TOLERANCE, ""


def _parallel_equals_sequential(s: _Subject, config: Any):
    """Both evaluations from the same parameters, over random resets (a reset at t = 0 and
    back-to-back ones included), from the initial carry and from a carry mid-episode."""
    parallel = jax.jit(dataclasses.replace(config, evaluation="parallel").build().apply)
    sequential = jax.jit(dataclasses.replace(config, evaluation="sequential").build().apply)
    x, resets = s.inputs(8)
    resets = resets.at[0].set(True).at[3:5].set(True)
    carry_mid, _ = sequential(s.params, s.initial(), x[:5], jnp.zeros((5, BATCH), bool))
    worst = 0.0
    for carry in (s.initial(), carry_mid):
        carry_p, y_p = parallel(s.params, carry, x, resets)
        carry_s, y_s = sequential(s.params, carry, x, resets)
        worst = max(worst, tree_error(y_p, y_s), tree_error(carry_p, carry_s))
    return worst, TOLERANCE, ""


def _finite_gradients(s: _Subject):
    """Gradients of the clipped PPO loss through encoder, backbone and heads (random data,
    4 discrete actions, a reset at every episode start); counts non-finite entries."""
    network = ActorCritic(backbone=s.module, action_spec=ActionSpec("discrete", (4,)),
                          network=NetworkConfig.single_layer(16))
    x, resets = s.inputs(9)
    k_init, k_actions, k_adv = jax.random.split(jax.random.fold_in(s.key, 90), 3)
    params = network.init(k_init, s.initial(), x, resets)
    actions = jax.random.randint(k_actions, (SEQ_LEN, BATCH), 0, 4)
    advantages = jax.random.normal(k_adv, (SEQ_LEN, BATCH))

    def loss(p):
        _, pi, value = network.apply(p, s.initial(), x, resets)
        log_prob = pi.log_prob(actions)
        total, _ = ppo_loss(log_prob, jax.lax.stop_gradient(log_prob) - 0.1, value,
                            jnp.zeros_like(value), advantages, advantages,
                            pi.entropy(), clip_eps=0.2, vf_coef=0.5, ent_coef=0.01)
        return total

    grads = jax.jit(jax.grad(loss))(params)
    non_finite = sum(int(np.sum(~np.isfinite(np.asarray(g)))) for g in jax.tree.leaves(grads))
    return non_finite, 0.0, ""


def _config_rebuilds(config: Any):
    fields = json.loads(json.dumps(dataclasses.asdict(config)))
    rebuilt = type(config)(**fields)
    return (0 if rebuilt == config else 1), 0.0, ("" if rebuilt == config else
                                                  f"rebuilt as {rebuilt!r}")


# ----------------------------------------------------------------------------- environments

ENV_BATCH = 8  # environments stepped at once (vmap)
MAX_EPISODE_STEPS = 10_000  # cap of the random-policy rollout when params give none


def check_env(env_id: str) -> list[PropertyResult]:
    """Check that ``env_id`` keeps the interface the PPO loop relies on.

    Properties: ``make`` (returns an environment and its params, with an action and an
    observation space); ``reset_jit_vmap`` and ``step_jit_vmap`` (compile and run under
    ``jit`` of ``vmap``, step returning gymnax 1.x's ``(obs, state, reward, terminated,
    truncated, info)``); ``static_shapes`` (observations and state keep their shapes and
    dtypes, observations those of the space); ``done_flags`` (``terminated`` and
    ``truncated`` are booleans per environment, and an environment registered as never
    truncating never does); ``episode_ends`` (every one of ``ENV_BATCH`` random-policy
    episodes ends within the params' ``max_steps_in_episode`` + 1 steps, at most
    ``MAX_EPISODE_STEPS``); ``obs_in_space`` (every observation, final ones included, lies
    in the observation space). NOT a pure jittable function.
    """
    results: list[PropertyResult] = []
    described = {
        "make": "make() returns (env, params) with action and observation spaces",
        "reset_jit_vmap": "reset compiles and runs under jit(vmap)",
        "step_jit_vmap": "step compiles and runs under jit(vmap), gymnax 1.x's 6 values",
        "static_shapes": "observations and state keep their shapes and dtypes",
        "done_flags": "terminated and truncated are one boolean per environment",
        "episode_ends": "every random-policy episode ends",
        "obs_in_space": "every observation lies in the observation space",
    }
    state: dict[str, Any] = {}

    def record(name: str, check: Callable[[], tuple[float, float, str]]) -> bool:
        try:
            error, tolerance, note = check()
        except Exception as exc:  # noqa: BLE001 (a failing property is a result)
            error, tolerance, note = math.nan, 0.0, _one_line(exc)
        results.append(PropertyResult(name, described[name], float(error), tolerance, note))
        return results[-1].passed

    def made():
        env, params = make(env_id)
        state.update(env=env, params=params, truncates=ENVS[resolve(env_id)].truncates,
                     obs_space=env.observation_space(params),
                     action_space=env.action_space(params))
        return 0, 0.0, ""

    if not record("make", made):
        return results
    env, params = state["env"], state["params"]
    keys = jax.random.split(jax.random.key(0), ENV_BATCH)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    sample = jax.vmap(state["action_space"].sample)

    def reset_runs():
        state["obs"], state["state"] = reset(keys, params)
        return 0, 0.0, ""

    def step_runs():
        out = step(keys, state["state"], sample(keys), params)
        if not (isinstance(out, tuple) and len(out) == 6):
            return 1, 0.0, f"step returned {type(out).__name__} of {len(out)}, not 6 values"
        state["step"] = out
        return 0, 0.0, ""

    if not (record("reset_jit_vmap", reset_runs) and record("step_jit_vmap", step_runs)):
        return results
    obs, env_state, reward, terminated, truncated, _ = state["step"]

    def static_shapes():
        space_shape = (ENV_BATCH, *state["obs_space"].shape)
        for name, first, later in (("observation", state["obs"], obs),
                                   ("state", state["state"], env_state)):
            a, b = jax.tree.leaves(first), jax.tree.leaves(later)
            if jax.tree.structure(first) != jax.tree.structure(later) or any(
                    x.shape != y.shape or x.dtype != y.dtype for x, y in zip(a, b, strict=True)):
                return 1, 0.0, f"the {name} changes shape or dtype from reset to step"
        if np.shape(obs) != space_shape:
            return 1, 0.0, f"observations {np.shape(obs)}, the space says {space_shape}"
        return 0, 0.0, ""

    def done_flags():
        for name, flag in (("terminated", terminated), ("truncated", truncated)):
            if np.shape(flag) != (ENV_BATCH,) or np.asarray(flag).dtype != np.bool_:
                return 1, 0.0, (f"{name} is {np.asarray(flag).dtype}{list(np.shape(flag))}, "
                                f"not bool[{ENV_BATCH}]")
        if np.shape(reward) != (ENV_BATCH,):
            return 1, 0.0, f"reward has shape {np.shape(reward)}, not [{ENV_BATCH}]"
        return 0, 0.0, ""

    record("static_shapes", static_shapes)
    record("done_flags", done_flags)
    limit = getattr(params, "max_steps_in_episode", MAX_EPISODE_STEPS)
    horizon = int(min(MAX_EPISODE_STEPS, limit + 1))

    def episode_ends():
        ended, ever_truncated, state["outside"] = _random_rollout(
            env, params, state["action_space"], state["obs_space"], horizon)
        if not state["truncates"] and np.any(ever_truncated):
            return 1, 0.0, ("an episode ended by truncation, but the environment is "
                            "registered as never truncating (truncates=False)")
        never = int(np.sum(~ended))
        return never, 0.0, (f"{never} of {ENV_BATCH} episodes did not end in {horizon} "
                            f"steps" if never else "")

    record("episode_ends", episode_ends)
    record("obs_in_space", lambda: (state["outside"], 0.0, "") if "outside" in state
           else (math.nan, 0.0, "not measured: the random-policy rollout failed"))
    return results


def _random_rollout(env, params, action_space, obs_space, horizon: int):
    """``horizon`` random steps of ``ENV_BATCH`` environments, compiled as one program.

    Returns, per environment, whether an episode ended and whether one was truncated, and
    the count of observations (final ones included) outside the observation space.
    """

    def one_env(key):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, step_key):
            state, ended, truncated_any, outside = carry
            action_key, step_key = jax.random.split(step_key)
            action = action_space.sample(action_key)
            obs, state, _, terminated, truncated, info = env.step(step_key, state, action,
                                                                  params)
            final = info.get("final_observation", obs)
            outside += (~obs_space.contains(obs)).astype(jnp.int32)
            outside += (~obs_space.contains(final)).astype(jnp.int32)
            return (state, ended | terminated | truncated, truncated_any | truncated,
                    outside), None

        init = (state, jnp.bool_(False), jnp.bool_(False),
                (~obs_space.contains(obs)).astype(jnp.int32))
        (_, ended, truncated_any, outside), _ = jax.lax.scan(
            body, init, jax.random.split(key, horizon))
        return ended, truncated_any, outside

    keys = jax.random.split(jax.random.key(1), ENV_BATCH)
    ended, truncated_any, outside = jax.jit(jax.vmap(one_env))(keys)
    return np.asarray(ended), np.asarray(truncated_any), int(np.sum(np.asarray(outside)))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
