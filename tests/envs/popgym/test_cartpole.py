"""PositionOnlyCartPole, VelocityOnlyCartPole and NoisyPositionOnlyCartPole against popgym 1.0.7.

Tolerances. The port integrates in float32, the reference (gymnasium's CartPole) in float64
and casts the observation to float32. Lockstep starts the port from the float32-rounded
reference state and, after every step, resyncs it to the reference's state rounded to
float32 (a falling pole amplifies rounding, by an amount that differs between CPUs), so
each comparison is one float32 step from the same state: its error is a few float32
rounding errors of values of order 1 (about 1e-7), and observations are compared with
``atol=1e-5`` (100x margin, still 100x below what one wrong step moves them); rewards,
which are the constant ``1/L``, with the harness default ``atol=1e-6``.

Noise. The noisy family draws its Gaussian noise from the JAX key, the reference from its
numpy generator, so the two noise sequences cannot be equal. Lockstep therefore runs both
with the noise switched off (``noise_sigma`` = 0 in both: popgym then adds exactly 0 and
still clips) and compares the noise-free dynamics exactly; the noise itself is tested
separately, by comparing the distribution of ``observation - noise-free observation`` of
port and reference at each difficulty (KS), its standard deviation, its independence from
step to step, and the clipping to the observation box.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from popgym.envs import noisy_position_only_cartpole as ref_noisy
from popgym.envs import position_only_cartpole as ref_pos
from popgym.envs import velocity_only_cartpole as ref_vel
from scipy import stats

import envs
from envs.popgym import cartpole_common
from envs.popgym.noisy_position_only_cartpole import NoisyPositionOnlyCartPole
from envs.popgym.position_only_cartpole import PositionOnlyCartPole
from envs.popgym.velocity_only_cartpole import VelocityOnlyCartPole
from tests.envs.popgym.conformance import (
    assert_same_distribution,
    port_random_episodes,
    reference_random_episodes,
    run_lockstep,
    wrapped_noisy_rollouts,
)

DIFFICULTIES = ("Easy", "Medium", "Hard")
REFERENCE = {
    "PositionOnlyCartPole": ref_pos,
    "VelocityOnlyCartPole": ref_vel,
    "NoisyPositionOnlyCartPole": ref_noisy,
}
CASES = {
    f"{family}{d}": getattr(module, f"{family}{d}")
    for family, module in REFERENCE.items()
    for d in DIFFICULTIES
}
NOISY = [f"NoisyPositionOnlyCartPole{d}" for d in DIFFICULTIES]
OBS_ATOL = 1e-5  # see the module docstring
PHYSICS = ("gravity", "masscart", "masspole", "length", "force_mag", "tau", "x_threshold",
           "theta_threshold_radians")  # fmt: skip


def _port(env_id: str, noise_free: bool = False):
    """The port for ``env_id``; with ``noise_free`` the noisy family gets ``noise_sigma=0``."""
    if noise_free and env_id in NOISY:
        return _pinned(NoisyPositionOnlyCartPole, 0.0)  # all three: L = 200, sigma 0
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


def _translate(ref_env) -> cartpole_common.EnvState:
    x, x_dot, theta, theta_dot = np.asarray(ref_env.state, np.float32)
    return cartpole_common.EnvState(
        x=x,
        x_dot=x_dot,
        theta=theta,
        theta_dot=theta_dot,
        time=np.int32(0),
        noise=np.zeros(2, np.float32),
        was_terminated=np.bool_(False),
    )


def _resync(ref_env, state: cartpole_common.EnvState) -> cartpole_common.EnvState:
    """The port's state with the reference's cart and pole (its own clock kept)."""
    x, x_dot, theta, theta_dot = (jnp.float32(v) for v in np.asarray(ref_env.state, np.float32))
    return state.replace(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot)


def _compare_obs(ref_obs, port_obs):
    assert port_obs.dtype == jnp.float32 and port_obs.shape == (2,)
    np.testing.assert_allclose(np.asarray(port_obs), ref_obs, rtol=0, atol=OBS_ATOL)


def _controller(x, x_dot, theta, theta_dot):
    """Linear state feedback that balances the pole for 600+ steps (push right if > 0)."""
    return 0.1 * x + 0.2 * x_dot + theta + 0.5 * theta_dot > 0


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_configuration_matches_reference(env_id):
    """Episode length, noise sigma, observation box and action space equal the reference's."""
    ref = CASES[env_id]()
    env, params = envs.make(env_id)
    assert env.name == env_id.removesuffix("Easy").removesuffix("Medium").removesuffix("Hard")
    assert params.max_steps_in_episode == ref.max_episode_length
    ref_sigma = ref.noise_sigma if hasattr(ref, "noise_sigma") else np.zeros(2)
    np.testing.assert_array_equal(np.full(2, params.noise_sigma), ref_sigma)
    box = env.observation_space(params)
    assert box.shape == ref.observation_space.shape and box.dtype == jnp.float32
    np.testing.assert_array_equal(np.broadcast_to(box.low, (2,)), ref.observation_space.low)
    np.testing.assert_array_equal(np.broadcast_to(box.high, (2,)), ref.observation_space.high)
    assert env.action_space(params).n == ref.action_space.n == env.num_actions
    assert envs.ENVS[env_id].truncates
    for name in PHYSICS:  # gymnasium's constants, the termination thresholds included
        assert getattr(params, name) == getattr(ref, name), name


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_lockstep(env_id):
    """Port and reference agree at every step of whole random-action episodes (2 seeds, resynced): obs to 1e-5, flags."""
    port = _port(env_id, noise_free=True)
    for seed in range(2):
        length = run_lockstep(
            _reference(env_id, noise_free=True),
            port,
            _translate,
            lambda rng: int(rng.integers(0, 2)),
            seed,
            compare_obs=_compare_obs,
            resync=_resync,
        )
        assert 5 < length < port.max_episode_length  # a random policy drops the pole early


@pytest.mark.parametrize(
    "family",
    [
        "PositionOnlyCartPole",
        # Same base class and truncation code: behind --all to keep the default run short.
        pytest.param("VelocityOnlyCartPole", marks=pytest.mark.slow),
        pytest.param("NoisyPositionOnlyCartPole", marks=pytest.mark.slow),
    ],
)
def test_balancing_controller_truncates_at_episode_length_with_return_one(family):
    """Balancing the pole: truncated, not terminated, after exactly L steps; return 1 (the best)."""
    ids = [f"{family}{d}" for d in DIFFICULTIES]
    env = envs.make(ids[0])[0]  # difficulties differ only in EnvParams: vmap over them
    all_params = [envs.make(i)[1] for i in ids]
    lengths = [p.max_steps_in_episode for p in all_params]
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(v) for v in leaves]), *all_params)

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(None, 0))
    def episode(key, params):
        _, state = env.reset(key, params)

        def body(state, key):
            s = state
            action = _controller(s.x, s.x_dot, s.theta, s.theta_dot).astype(jnp.int32)
            _, state, r, term, trunc, _ = env.step(key, state, action, params)
            return state, (r, term, trunc)

        _, out = jax.lax.scan(body, state, jax.random.split(key, max(lengths)))
        return out

    rewards, term, trunc = jax.device_get(episode(jax.random.key(0), stacked))
    for i, length in enumerate(lengths):
        assert not term[i, :length].any()
        assert not trunc[i, : length - 1].any() and trunc[i, length - 1]
        assert np.sum(rewards[i, :length], dtype=np.float64) == pytest.approx(1.0, abs=1e-6)

        ref = CASES[ids[i]]()
        ref.reset(seed=i)
        total, t = 0.0, 0
        while True:
            _, r, ref_term, ref_trunc, _ = ref.step(int(_controller(*ref.state)))
            total, t = total + r, t + 1
            if ref_term or ref_trunc:
                break
        assert (t, ref_term, ref_trunc) == (length, False, True)
        assert total == pytest.approx(1.0, abs=1e-9)


REF_EPISODES, PORT_EPISODES = 4000, 16000  # about 2 s of reference stepping per family


@pytest.mark.parametrize("env_id", [f"{family}Easy" for family in REFERENCE])
def test_random_policy_statistics(env_id):
    """Random-policy lengths and returns agree with the reference (KS at alpha 1e-3, 4,000
    reference against 16,000 port episodes); mean return 0.111.

    Power: the test rejects any gap between the two length CDFs above
    1.95 sqrt(1/4000 + 1/16000) = 0.034 (300 against 300 episodes needed 0.16). Episodes one
    step longer move the CDF by the most likely length's probability, 0.063 (13 steps;
    measured on 20,000 reference episodes), and the gap's noise has sd <= 0.5 sqrt(1/4000 +
    1/16000) = 0.009: such an off-by-one fails with probability above 0.99. (The same
    comparison at 20,000 against 80,000 episodes found the old port sampler's bias against
    long episodes, a 0.5-step shift: see ``conformance.port_random_episodes``.)
    """
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), REF_EPISODES, seed=0)
    port_len, port_ret = port_random_episodes(env_id, PORT_EPISODES, seed=0, num_envs=1000)
    assert len(port_len) == PORT_EPISODES
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")
    # Hand-checked: every step pays 1/200, so the return is length/200; a random policy
    # keeps the pole up for 22.2 steps on average (reference, 1000 episodes) -> 0.111.
    np.testing.assert_allclose(port_ret, port_len / 200, atol=1e-5)
    assert port_ret.mean() == pytest.approx(0.111, abs=0.005)


def test_noise_the_agent_sees_through_the_training_wrappers():
    """The noisy family through make_training_env, the stack the agent sees: observations
    are [clip(clean + noise), the previous action one-hot (zeros at an episode start), the
    start flag], and the x part minus the noise-free x is exactly N(0, sigma^2).

    Power: one-sample KS at alpha 1e-3 on n = 4,000 x 19 = 76,000 draws per difficulty
    rejects a CDF gap above 1.95 / sqrt(n) = 0.0071; a sigma off by 5% moves the CDF by
    0.0116 at x = sigma (the empirical CDF's sd there is 0.0014): it fails with probability
    above 0.999. The x part is never clipped (|x| < 0.1 + 8 sigma < 2.4 here).
    """
    out = wrapped_noisy_rollouts(NOISY, 4000, 18, lambda k: jax.random.randint(k, (), 0, 2))
    for i, env_id in enumerate(NOISY):
        sigma = envs.make(env_id)[1].noise_sigma
        high = np.asarray(envs.make(env_id)[0].observation_space().high)
        obs, clean, noise = out["obs"][i], out["clean"][i], out["noise"][i]
        action, done = out["action"][i], out["done"][i]
        assert obs.shape == (19, 4000, 5) and done.any()  # episodes do end and reset
        np.testing.assert_allclose(obs[..., :2], np.clip(clean + noise, -high, high),
                                   rtol=0, atol=1e-6)
        pushed = np.stack([action == 0, action == 1], axis=-1).astype(np.float32)
        np.testing.assert_array_equal(obs[1:, :, 2:4], np.where(done[..., None], 0.0, pushed))
        np.testing.assert_array_equal(obs[0, :, 2:], np.tile([0.0, 0.0, 1.0], (4000, 1)))
        np.testing.assert_array_equal(obs[1:, :, 4], done.astype(np.float32))
        x_noise = (obs[..., 0] - clean[..., 0]).ravel()
        assert np.all(np.abs(obs[..., 0]) < high[0])
        result = stats.kstest(x_noise, "norm", args=(0.0, sigma))
        assert result.pvalue > 1e-3, (env_id, result)
        assert x_noise.std() == pytest.approx(sigma, rel=0.015)  # 6 standard errors


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [i for i in sorted(CASES) if not i.endswith("Easy")])
def test_random_policy_statistics_medium_hard(env_id):
    """Medium/Hard: random-policy lengths and returns match the reference (KS, 300 episodes)."""
    ref_len, ref_ret = reference_random_episodes(CASES[env_id](), 300, seed=0)
    port_len, port_ret = port_random_episodes(env_id, 300, seed=0)
    assert_same_distribution(ref_len, port_len, "episode lengths")
    assert_same_distribution(ref_ret, port_ret, "episode returns")
    length = envs.make(env_id)[1].max_steps_in_episode
    np.testing.assert_allclose(port_ret, port_len / length, atol=1e-5)


def test_out_of_range_action_pushes_left():
    """Any action but 1 pushes left (gymnasium's ``action == 1``); the reference raises instead."""
    ref = CASES["PositionOnlyCartPoleEasy"]()
    ref.reset(seed=0)
    with pytest.raises(AssertionError):
        ref.step(2)
    ref_left, *_ = ref.step(0)

    ref.reset(seed=0)
    env, params = envs.make("PositionOnlyCartPoleEasy")
    state = _translate(ref)
    key = jax.random.key(0)
    after = {a: env.step_env(key, state, jnp.asarray(a), params)[1] for a in (0, 1, 2, -1, 7)}
    for a in (2, -1, 7):
        assert after[a].x_dot == after[0].x_dot and after[a].theta_dot == after[0].theta_dot
    assert after[1].x_dot > after[0].x_dot
    np.testing.assert_allclose([after[7].x, after[7].theta], ref_left, atol=OBS_ATOL)


def test_step_after_termination_pays_minus_one():
    """A step after termination (no reset) pays -1 as in popgym; the terminating step pays 1/L."""
    ref = CASES["PositionOnlyCartPoleEasy"]()
    ref.reset(seed=0)
    env, params = envs.make("PositionOnlyCartPoleEasy")
    state = _translate(ref)
    key = jax.random.key(0)
    ref_rewards, port_rewards, port_term = [], [], []
    for _ in range(50):  # always pushing right drops the pole within ~10 steps
        _, r, term, _, _ = ref.step(1)
        ref_rewards.append(r)
        if term:
            break
    with pytest.warns(UserWarning, match="already returned terminated"):
        ref_rewards.append(ref.step(1)[1])
    for _ in ref_rewards:
        _, state, r, term, _ = env.step_env(key, state, jnp.asarray(1), params)
        port_rewards.append(float(r))
        port_term.append(bool(term))
    assert ref_rewards[-2:] == [1 / 200, -1.0]
    np.testing.assert_allclose(port_rewards, ref_rewards, atol=1e-7)
    assert port_term[-2:] == [True, True] and not any(port_term[:-2])


def test_velocity_only_first_observation_shows_positions():
    """As popgym, VelocityOnlyCartPole shows [x, theta] at reset, [x_dot, theta_dot] afterwards."""
    ref = CASES["VelocityOnlyCartPoleEasy"]()
    obs, _ = ref.reset(seed=3)
    np.testing.assert_array_equal(obs, np.asarray(ref.state, np.float32)[[0, 2]])
    obs, *_ = ref.step(1)
    np.testing.assert_array_equal(obs, np.asarray(ref.state, np.float32)[[1, 3]])

    env, params = envs.make("VelocityOnlyCartPoleEasy")
    obs, state = env.reset(jax.random.key(3), params)
    np.testing.assert_array_equal(obs, [state.x, state.theta])
    obs, state, *_ = env.step_env(jax.random.key(4), state, jnp.asarray(1), params)
    np.testing.assert_array_equal(obs, [state.x_dot, state.theta_dot])


def _start_state(ref_env, seed: int) -> np.ndarray:
    ref_env.reset(seed=seed)
    return np.array(ref_env.state)


def test_reset_distribution_matches_reference():
    """Start states are uniform in (-0.05, 0.05)^4, as the reference's (KS per component)."""
    port = _port_noise()[-1][0]  # the Easy rollouts' start states (shared reset code)
    ref_env = CASES["PositionOnlyCartPoleEasy"]()
    ref = np.stack([_start_state(ref_env, seed) for seed in range(1000)])
    assert np.all(np.abs(port) <= 0.05) and port.dtype == np.float32
    for c in range(4):
        assert_same_distribution(ref[:, c], port[:, c], f"start state component {c}")


def _reference_noise(env_id: str, episodes: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference's ``obs - noise-free obs`` at reset and the next ``steps`` steps, and its obs."""
    ref = CASES[env_id]()
    rng = np.random.default_rng(0)
    noise, observations = [], []
    for seed in range(episodes):
        obs, _ = ref.reset(seed=seed)
        while True:
            noise.append(obs - np.asarray(ref.state, np.float32)[[0, 2]])
            observations.append(obs)
            if len(noise) % (steps + 1) == 0:
                break
            obs, _, term, trunc, _ = ref.step(int(rng.integers(0, 2)))
            assert not (term or trunc)
    return np.asarray(noise), np.asarray(observations)


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
            action = jax.random.randint(k_act, (), 0, 2)
            obs, state, *_ = env.step_env(k_step, state, action, params)
            return state, (obs, obs - env.clean_obs(state), state.noise, env.clean_obs(state))

        first = (obs, obs - env.clean_obs(state), state.noise, env.clean_obs(state))
        s = state
        start = jnp.stack([s.x, s.x_dot, s.theta, s.theta_dot])
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
        ref_noise, ref_obs = _reference_noise(env_id, episodes, steps)
        port_noise, port_obs = all_noise[i], all_obs[i]
        flat = port_noise.reshape(-1, 2)
        for c, what in enumerate(("x noise", "theta noise")):
            assert_same_distribution(ref_noise[:, c], flat[:, c], f"{env_id} {what}")
        # The drawn noise is N(0, sigma^2) per component, and obs = clip(clean + noise).
        raw = all_raw[i].reshape(-1, 2)
        np.testing.assert_allclose(raw.std(axis=0), sigma, rtol=0.05)
        assert np.all(np.abs(raw.mean(axis=0)) < 4 * sigma / np.sqrt(len(raw)))
        high = np.asarray(envs.make(env_id)[0].observation_space().high)
        expected = np.clip(all_clean[i] + all_raw[i], -high, high)
        np.testing.assert_allclose(port_obs, expected, rtol=0, atol=1e-6)  # XLA may fuse: 1 ulp
        # Fresh noise every step: consecutive x noises are uncorrelated.
        corr = np.corrcoef(port_noise[:, :-1, 0].ravel(), port_noise[:, 1:, 0].ravel())[0, 1]
        assert abs(corr) < 0.1
        # Clipped to the box, as often as the reference clips (theta ~ 0 plus noise passes
        # 0.419 about 0.0% / 3.6% / 16% of the time for sigma = 0.1 / 0.2 / 0.3).
        assert np.all(np.abs(port_obs) <= high)
        port_clip = np.mean(np.abs(port_obs[..., 1]) == high[1])
        ref_clip = np.mean(np.abs(ref_obs[:, 1]) == high[1])
        pooled = (port_clip + ref_clip) / 2
        assert (
            abs(port_clip - ref_clip) <= 4 * np.sqrt(pooled * (1 - pooled) * 2 / len(flat)) + 1e-3
        )
        if sigma >= 0.2:
            assert port_clip > 0.01


def test_aliases_resolve_to_popgym_names():
    """The paper's StatelessCartPole / NoisyStatelessCartPole names build the popgym-named ports."""
    env, params = envs.make("StatelessCartPoleMedium")
    assert isinstance(env, PositionOnlyCartPole) and not isinstance(env, NoisyPositionOnlyCartPole)
    assert params.max_steps_in_episode == 400
    env, params = envs.make("NoisyStatelessCartPoleHard")
    assert isinstance(env, NoisyPositionOnlyCartPole) and params.noise_sigma == 0.3
    assert isinstance(envs.make("VelocityOnlyCartPoleEasy")[0], VelocityOnlyCartPole)
