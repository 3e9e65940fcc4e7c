"""PositionOnlyPendulum and NoisyPositionOnlyPendulum ports against popgym 1.0.7.

Tolerances. The port integrates in float32, the reference (gymnasium's Pendulum) in float64.
One step from the same float32 state agrees to 1e-5 (``test_one_step_matches_reference``,
the tight check of the dynamics, reward and clipping). Over a whole episode the driven
pendulum is chaotic and amplifies the float32 rounding (20 seeds once drifted by up to
1.4e-3 over 200 steps, and by other amounts on other CPUs: XLA emits other code for
each), so a free-running comparison would rest on one machine's luck. Whole-episode
lockstep therefore resyncs: after every step the port goes on from the reference's state
rounded to float32, and every comparison is one step from the same state, held to the
one-step tolerance (1e-5 on observations, 1e-7 on rewards of order 1/L = 5e-3); any error
in the equations shows up as O(0.1) differences at the step where it acts, and the flags
(never terminated, truncated at L) are compared exactly.

Noise. The noisy family draws its Gaussian noise from the JAX key, the reference from its
numpy generator, so the two noise sequences cannot be equal. Lockstep therefore runs both
with the noise switched off (``noise_sigma`` = 0 in both: popgym then adds exactly 0 and
still clips) and compares the noise-free dynamics; the noise itself is tested separately,
by comparing the distribution of ``observation - noise-free observation`` of port and
reference at each difficulty (KS), its independence from step to step and the clipping to
``[-1, 1]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import noisy_position_only_pendulum as ref_noisy
from popgym.envs import position_only_pendulum as ref_pos
from scipy import stats

import envs
from envs.popgym import pendulum_common
from envs.popgym.noisy_position_only_pendulum import NoisyPositionOnlyPendulum
from envs.popgym.position_only_pendulum import PositionOnlyPendulum
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    port_random_episodes,
    reference_random_episodes,
    run_lockstep,
    wrapped_noisy_rollouts,
)

DIFFICULTIES = ("Easy", "Medium", "Hard")
REFERENCE = {"PositionOnlyPendulum": ref_pos, "NoisyPositionOnlyPendulum": ref_noisy}
CASES = {
    f"{family}{d}": getattr(module, f"{family}{d}")
    for family, module in REFERENCE.items()
    for d in DIFFICULTIES
}
NOISY = [f"NoisyPositionOnlyPendulum{d}" for d in DIFFICULTIES]
STEP_ATOL = 1e-5  # one step from the same state; see the module docstring
OBS_ATOL, REWARD_ATOL = STEP_ATOL, 1e-7  # lockstep compares one step at a time
HALF_RANGE = 16.2736044 / 2  # popgym's reward_transform: cost interval [0, 16.27] -> [1, -1]


def _port(env_id: str, noise_free: bool = False):
    """The port for ``env_id``; with ``noise_free`` the noisy family gets ``noise_sigma=0``."""
    if noise_free and env_id in NOISY:
        return _pinned(NoisyPositionOnlyPendulum, 0.0)  # all three: L = 200, sigma 0
    return _pinned(env_id)


@functools.cache
def _pinned(factory, *args):
    """One instance per test session, with its ``step`` bound method pinned.

    ``run_lockstep`` jits ``port_env.step``, a fresh bound method on every attribute access,
    so JAX would recompile it (~1 s) for every seed; one pinned method is compiled once.
    """
    env = envs.make(factory)[0] if isinstance(factory, str) else factory(*args)
    env.step = env.step
    return env


def _reference(env_id: str, noise_free: bool = False):
    ref = CASES[env_id]()
    if noise_free and hasattr(ref, "noise_sigma"):
        ref.noise_sigma = np.zeros_like(ref.noise_sigma)  # popgym draws N(0, 0) = 0, then clips
    return ref


def _translate(ref_env) -> pendulum_common.EnvState:
    theta, theta_dot = np.asarray(ref_env.state, np.float32)
    return pendulum_common.EnvState(
        theta=theta, theta_dot=theta_dot, time=np.int32(0), noise=np.zeros(2, np.float32)
    )


def _resync(ref_env, state: pendulum_common.EnvState) -> pendulum_common.EnvState:
    """The port's state with the reference's angle and speed (its own clock kept)."""
    theta, theta_dot = np.asarray(ref_env.state, np.float32)
    return state.replace(theta=jnp.float32(theta), theta_dot=jnp.float32(theta_dot))


def _compare_obs(ref_obs, port_obs):
    assert port_obs.dtype == jnp.float32 and port_obs.shape == (2,)
    np.testing.assert_allclose(np.asarray(port_obs), ref_obs, rtol=0, atol=OBS_ATOL)


def _torque(low: float, high: float):
    return lambda rng: rng.uniform(low, high, size=(1,)).astype(np.float32)


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_configuration_matches_reference(env_id):
    """Episode length, noise sigma, observation box and action box equal the reference's."""
    ref = CASES[env_id]()
    env, params = envs.make(env_id)
    assert env.name == env_id.removesuffix("Easy").removesuffix("Medium").removesuffix("Hard")
    assert params.max_steps_in_episode == ref.max_episode_length
    ref_sigma = ref.noise_sigma if hasattr(ref, "noise_sigma") else np.zeros(2)
    np.testing.assert_array_equal(np.full(2, params.noise_sigma), ref_sigma)
    for port_box, ref_box in [
        (env.observation_space(params), ref.observation_space),
        (env.action_space(params), ref.action_space),
    ]:
        assert port_box.shape == ref_box.shape and port_box.dtype == jnp.float32
        np.testing.assert_array_equal(np.broadcast_to(port_box.low, ref_box.shape), ref_box.low)
        np.testing.assert_array_equal(np.broadcast_to(port_box.high, ref_box.shape), ref_box.high)
    assert envs.ENVS[env_id].truncates
    for name in ("max_speed", "max_torque", "dt", "g", "m", "l"):  # gymnasium's constants
        assert getattr(params, name) == getattr(ref, name), name


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree at every step of whole random-torque episodes (2 seeds, resynced); truncated at L."""
    port = _port(env_id, noise_free=True)
    for seed in range(2):
        length = run_lockstep(
            _reference(env_id, noise_free=True), port, _translate, _torque(-2, 2), seed,
            compare_obs=_compare_obs, reward_atol=REWARD_ATOL, resync=_resync,
        )  # fmt: skip
        assert length == port.default_params.max_steps_in_episode


def test_one_step_matches_reference():
    """One step from 500 float32 states matches the reference to 1e-5 (obs, state, L*reward)."""
    # States cover unwrapped angles and the +-8 speed clip; torques go far outside [-2, 2].
    rng = np.random.default_rng(0)
    n = 500
    theta = rng.uniform(-3 * np.pi, 3 * np.pi, n).astype(np.float32)
    theta_dot = rng.uniform(-8, 8, n).astype(np.float32)
    theta_dot[:50] = np.sign(theta_dot[:50]) * 8
    torque = rng.uniform(-6, 6, (n, 1)).astype(np.float32)
    ref = CASES["PositionOnlyPendulumHard"]()
    ref.reset(seed=0)
    ref_obs, ref_state, ref_reward = [], [], []
    for i in range(n):
        ref.state, ref.num_steps = np.array([theta[i], theta_dot[i]], np.float64), 0
        obs, reward, *_ = ref.step(torque[i])
        ref_obs.append(obs)
        ref_state.append(ref.state)
        ref_reward.append(reward)

    env, params = envs.make("PositionOnlyPendulumHard")
    states = pendulum_common.EnvState(
        theta=theta,
        theta_dot=theta_dot,
        time=np.zeros(n, np.int32),
        noise=np.zeros((n, 2), np.float32),
    )
    step = jax.jit(jax.vmap(env.step_env, in_axes=(None, 0, 0, None)))
    obs, new, reward, term, _ = jax.device_get(step(jax.random.key(0), states, torque, params))
    np.testing.assert_allclose(obs, ref_obs, atol=STEP_ATOL, rtol=0)
    np.testing.assert_allclose(new.theta, np.asarray(ref_state)[:, 0], atol=STEP_ATOL, rtol=0)
    np.testing.assert_allclose(new.theta_dot, np.asarray(ref_state)[:, 1], atol=STEP_ATOL, rtol=0)
    np.testing.assert_allclose(reward * 100, np.asarray(ref_reward) * 100, atol=STEP_ATOL, rtol=0)
    assert not term.any()


@pytest.mark.parametrize("env_id", [f"{family}Easy" for family in REFERENCE])
def test_random_policy_statistics(env_id):
    """Random-torque returns agree with the reference (KS, alpha=1e-3, 200 episodes); length 200."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), 200, seed=0)
    port_len, port_ret = port_random_episodes(env_id, 200, seed=0)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")
    assert np.all(port_len == 200)
    # Mean of the reference over 1000 episodes: 0.244 (std 0.176): the undamped pendulum keeps
    # swinging back up to its (uniform) starting height, so it spends much time near the top.
    assert port_ret.mean() == pytest.approx(0.244, abs=0.05)
    assert np.all(np.abs(port_ret) <= 1)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [i for i in sorted(CASES) if not i.endswith("Easy")])
def test_random_policy_statistics_medium_hard(env_id):
    """Medium/Hard: random-torque returns agree with the reference (KS, 300 episodes)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), 300, seed=0)
    port_len, port_ret = port_random_episodes(env_id, 300, seed=0)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")


@pytest.mark.parametrize("env_id", [f"PositionOnlyPendulum{d}" for d in DIFFICULTIES])
def test_reward_scale_hand_checked(env_id):
    """Upright at rest returns exactly 1 over L steps (the best possible); extremes pay +-1/L."""
    # Hand-checked per-step rewards, times L: upright at rest 1; hanging at rest
    # (8.1368022 - pi^2) / 8.1368022 = -0.21296; theta = pi, |theta_dot| = 8, |u| = 2:
    # cost pi^2 + 6.4 + 0.004 = 16.2736044 -> -1.
    env, params = envs.make(env_id)
    length = params.max_steps_in_episode
    ref = CASES[env_id]()
    ref.reset(seed=0)
    cases = [((0.0, 0.0), 0.0, 1.0), ((np.pi, 0.0), 0.0, -0.2129586), ((np.pi, 8.0), 2.0, -1.0)]
    for (theta, theta_dot), u, expected in cases:
        ref.state, ref.num_steps = np.array([theta, theta_dot]), 0
        ref_reward = ref.step(np.array([u], np.float32))[1]
        state = pendulum_common.EnvState(
            theta=jnp.float32(theta), theta_dot=jnp.float32(theta_dot), time=jnp.int32(0),
            noise=jnp.zeros(2),
        )  # fmt: skip
        port_reward = env.step_env(jax.random.key(0), state, jnp.array([u]), params)[2]
        assert ref_reward * length == pytest.approx(expected, abs=1e-6)
        assert float(port_reward) * length == pytest.approx(expected, abs=1e-5)

    # A whole episode balanced upright: truncated (never terminated) after exactly L steps.
    env = _port(env_id)
    step = jax.jit(env.step)  # the pinned method: shares lockstep's compiled step
    state = pendulum_common.EnvState(
        theta=jnp.float32(0), theta_dot=jnp.float32(0), time=jnp.int32(0), noise=jnp.zeros(2)
    )
    total, key = 0.0, jax.random.key(0)
    for t in range(length):
        key, subkey = jax.random.split(key)
        _, state, reward, term, trunc, _ = step(subkey, state, jnp.zeros(1), params)
        total += float(reward)
        assert not bool(term) and bool(trunc) == (t == length - 1)
    assert total == pytest.approx(1.0, abs=1e-5)


def test_out_of_range_torque_is_clipped():
    """Torques outside [-2, 2] are clipped as in gymnasium: lockstep under U(-6, 6) torques."""
    port = _port("PositionOnlyPendulumEasy")
    run_lockstep(
        _reference("PositionOnlyPendulumEasy"), port, _translate, _torque(-6, 6), seed=5,
        compare_obs=_compare_obs, reward_atol=REWARD_ATOL, resync=_resync,
    )  # fmt: skip
    env, params = envs.make("PositionOnlyPendulumEasy")
    _, state = env.reset_env(jax.random.key(0), params)
    key = jax.random.key(1)

    def after(u):
        obs, new, reward, *_ = env.step_env(key, state, u, params)
        return np.asarray([*obs, new.theta, new.theta_dot, reward])

    np.testing.assert_array_equal(after(jnp.array([5.0])), after(jnp.array([2.0])))
    np.testing.assert_array_equal(after(jnp.array([-100.0])), after(jnp.array([-2.0])))
    np.testing.assert_array_equal(after(jnp.float32(1.5)), after(jnp.array([1.5])))  # scalar ok
    assert not np.array_equal(after(jnp.array([1.0])), after(jnp.array([2.0])))


def _start_state(ref_env, seed: int) -> np.ndarray:
    ref_env.reset(seed=seed)
    return np.array(ref_env.state)


def test_reset_distribution_matches_reference():
    """Start angle is uniform in [-pi, pi], velocity in [-1, 1], as the reference's (KS)."""
    port = _port_noise()[-1][0]  # the Easy rollouts' start states (shared reset code)
    ref_env = CASES["PositionOnlyPendulumEasy"]()
    ref = np.stack([_start_state(ref_env, seed) for seed in range(1000)])
    assert np.all(np.abs(port) <= [np.float32(np.pi), 1]) and port.dtype == np.float32
    for c, what in enumerate(("start angle", "start velocity")):
        assert_same_distribution(ref[:, c], port[:, c], what)


def _reference_noise(env_id: str, episodes: int, steps: int) -> np.ndarray:
    """Reference's ``obs - noise-free obs`` at reset and the next ``steps`` steps."""
    ref = CASES[env_id]()
    rng = np.random.default_rng(0)
    noise = []
    for seed in range(episodes):
        obs, _ = ref.reset(seed=seed)
        noise.append(obs - ref._get_obs()[:2])
        for _ in range(steps):
            obs, *_ = ref.step(rng.uniform(-2, 2, size=(1,)).astype(np.float32))
            noise.append(obs - ref._get_obs()[:2])
    return np.asarray(noise)


NOISE_EPISODES, NOISE_STEPS = 400, 5


@functools.cache
def _port_noise() -> tuple[np.ndarray, ...]:
    """Port's observations, ``obs - noise-free obs``, raw (unclipped) noise, noise-free obs,
    each [difficulty, episode, NOISE_STEPS + 1, 2], and start states [difficulty, episode, k].

    The difficulties differ only in ``EnvParams.noise_sigma``: one compiled program, vmapped
    over the three parameter sets, shared by the noise and reset-distribution tests.
    """
    episodes, steps = NOISE_EPISODES, NOISE_STEPS
    env = envs.make(NOISY[0])[0]
    all_params = [envs.make(i)[1] for i in NOISY]
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(v) for v in leaves]), *all_params)

    def episode(key, params):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset_env(reset_key, params)

        def body(state, key):
            k_act, k_step = jax.random.split(key)
            action = jax.random.uniform(k_act, (1,), minval=-2, maxval=2)
            obs, state, *_ = env.step_env(k_step, state, action, params)
            return state, (obs, obs - env.clean_obs(state), state.noise, env.clean_obs(state))

        first = (obs, obs - env.clean_obs(state), state.noise, env.clean_obs(state))
        s = state
        start = jnp.stack([s.theta, s.theta_dot])
        _, seq = jax.lax.scan(body, state, jax.random.split(key, steps))
        return (*jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, seq), start)

    keys = jax.random.split(jax.random.key(0), episodes)
    run = jax.jit(jax.vmap(jax.vmap(episode, in_axes=(0, None)), in_axes=(None, 0)))
    return jax.device_get(run(keys, stacked))


def test_observation_noise_matches_reference():
    """obs - noise-free obs: clipped N(0, sigma^2), fresh each step, as the reference's (KS)."""
    episodes, steps = NOISE_EPISODES, NOISE_STEPS
    all_obs, all_noise, all_raw, all_clean, _ = _port_noise()
    for i, env_id in enumerate(NOISY):
        sigma = envs.make(env_id)[1].noise_sigma
        ref_noise = _reference_noise(env_id, episodes, steps)
        port_noise, port_obs = all_noise[i], all_obs[i]
        flat = port_noise.reshape(-1, 2)
        for c, what in enumerate(("cos noise", "sin noise")):
            assert_same_distribution(ref_noise[:, c], flat[:, c], f"{env_id} {what}")
        # The drawn noise is N(0, sigma^2) per component, and obs = clip(clean + noise).
        raw = all_raw[i].reshape(-1, 2)
        np.testing.assert_allclose(raw.std(axis=0), sigma, rtol=0.05)
        assert np.all(np.abs(raw.mean(axis=0)) < 4 * sigma / np.sqrt(len(raw)))
        expected = np.clip(all_clean[i] + all_raw[i], -1, 1)
        np.testing.assert_allclose(port_obs, expected, rtol=0, atol=1e-6)  # XLA may fuse: 1 ulp
        corr = np.corrcoef(port_noise[:, :-1, 0].ravel(), port_noise[:, 1:, 0].ravel())[0, 1]
        assert abs(corr) < 0.1  # fresh noise every step
        assert np.all(np.abs(port_obs) <= 1) and np.any(np.abs(port_obs) == 1)


def test_noise_the_agent_sees_through_the_training_wrappers():
    """The noisy family through make_training_env, the stack the agent sees: observations
    are [clip(clean + noise, -1, 1), the previous torque as the agent chose it, the start
    flag]; where a component's noise-free value is inside +-(1 - 6 sigma), obs - clean is
    exactly N(0, sigma^2) (Easy, sigma 0.1: one-sample KS at alpha 1e-3).

    Power: about 40,000 such draws (|cos| or |sin| < 0.4 about a quarter of the time, over
    4,000 x 19 observations and both components) reject a CDF gap above 1.95 / sqrt(n) =
    0.0098; a sigma off by 10% moves the CDF by 0.022 at x = sigma: it fails with
    probability above 0.999.
    """
    out = wrapped_noisy_rollouts(
        NOISY, 4000, 18, lambda k: jax.random.uniform(k, (1,), minval=-3.0, maxval=3.0))
    for i in range(len(NOISY)):
        obs, clean, noise = out["obs"][i], out["clean"][i], out["noise"][i]
        action, done = out["action"][i], out["done"][i]
        assert obs.shape == (19, 4000, 4) and not done.any()  # episodes last 200 steps
        np.testing.assert_allclose(obs[..., :2], np.clip(clean + noise, -1.0, 1.0),
                                   rtol=0, atol=1e-6)
        np.testing.assert_array_equal(obs[1:, :, 2], action[..., 0])  # unclipped, as chosen
        np.testing.assert_array_equal(obs[0, :, 2:], np.tile([0.0, 1.0], (4000, 1)))
        assert not obs[1:, :, 3].any()
    sigma = envs.make(NOISY[0])[1].noise_sigma
    obs, clean = out["obs"][0][..., :2], out["clean"][0]
    inside = np.abs(clean) < 1 - 6 * sigma
    draws = (obs - clean)[inside]
    assert len(draws) > 35_000
    result = stats.kstest(draws, "norm", args=(0.0, sigma))
    assert result.pvalue > 1e-3, result
    assert draws.std() == pytest.approx(sigma, rel=0.02)  # 6 standard errors


def test_aliases_resolve_to_popgym_names():
    """The paper's StatelessPendulum / NoisyStatelessPendulum names build the popgym-named ports."""
    env, params = envs.make("StatelessPendulumHard")
    assert isinstance(env, PositionOnlyPendulum) and not isinstance(env, NoisyPositionOnlyPendulum)
    assert params.max_steps_in_episode == 100
    env, params = envs.make("NoisyStatelessPendulumMedium")
    assert isinstance(env, NoisyPositionOnlyPendulum) and params.noise_sigma == 0.2
    assert params.max_steps_in_episode == 200
