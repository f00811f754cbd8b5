"""Tests of offline_zoo.envs: Reacher2d dynamics/reward, make_env for every family, env_spaces."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import gymnasium
import mujoco
import numpy as np
import pytest

from offline_zoo.envs import (
    KITCHEN_GOAL_SIZES,
    MissingExtraError,
    Reacher2dEnv,
    env_spaces,
    flatten_kitchen_observation,
    kitchen_observation_dim,
    make_env,
    register_envs,
)
from offline_zoo.tasks import get_task

HAS_ALE = importlib.util.find_spec("ale_py") is not None and importlib.util.find_spec("cv2") is not None


# --- Reacher2d --------------------------------------------------------------------------------
@pytest.fixture
def reacher():
    env = Reacher2dEnv()
    env.reset(seed=0)
    yield env
    env.close()


def _place_tip(env: Reacher2dEnv, tip_xy, target_xy):
    """Put the arm at rest with its fingertip exactly at tip_xy and the target at target_xy."""
    env.set_state(env.inverse_kinematics(tip_xy), np.zeros(2))
    env.set_target(target_xy)
    np.testing.assert_allclose(env.fingertip_xy, tip_xy, atol=1e-12)


def test_reacher_spaces_and_frame_skip(reacher):
    assert reacher.observation_space.shape == (12,)
    assert reacher.action_space.shape == (2,)
    np.testing.assert_array_equal(reacher.action_space.low, [-1, -1])
    np.testing.assert_array_equal(reacher.action_space.high, [1, 1])
    assert reacher.frame_skip == 15
    assert reacher.model.opt.timestep == pytest.approx(0.01)
    assert reacher.dt == pytest.approx(15 * reacher.model.opt.timestep)
    assert (reacher.model.nq, reacher.model.nv, reacher.model.nu) == (2, 2, 2)


def test_reacher_step_is_15_physics_steps(reacher):
    """One env step == 15 raw mj_step calls with the same (clipped) control."""
    qpos, target = np.array([0.3, -0.7]), np.array([0.2, 0.8])
    reacher.set_state(qpos, np.zeros(2))
    reacher.set_target(target)
    model, data = mujoco.MjModel.from_xml_path(reacher.fullpath), None
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    data.mocap_pos[0][:2] = target
    data.ctrl[:] = [1.0, -0.5]  # the env clips 3.0 -> 1.0
    for _ in range(15):
        mujoco.mj_step(model, data)
    obs, *_ = reacher.step(np.array([3.0, -0.5]))
    np.testing.assert_allclose(reacher.data.qpos, data.qpos, atol=1e-12)
    np.testing.assert_allclose(obs[4:6], 0.15 * data.qvel, atol=1e-12)
    assert not np.allclose(data.qpos, qpos)  # the arm did move


def test_reacher_observation_layout(reacher):
    obs, *_ = reacher.step(np.array([0.5, -0.5]))
    q, v = reacher.data.qpos, reacher.data.qvel
    np.testing.assert_allclose(obs[0:2], np.sin(q))
    np.testing.assert_allclose(obs[2:4], np.cos(q))
    np.testing.assert_allclose(obs[4:6], reacher.dt * v)
    np.testing.assert_allclose(obs[6:8], reacher.fingertip_xy)
    np.testing.assert_allclose(obs[8:10], reacher.target_xy)
    np.testing.assert_allclose(obs[10:12], reacher.fingertip_xy - reacher.target_xy)
    np.testing.assert_allclose(obs[6:8], Reacher2dEnv.forward_kinematics(q), atol=1e-12)


def test_reacher_reward_on_target_is_one(reacher):
    reacher.set_state(reacher.inverse_kinematics(reacher.target_xy), np.zeros(2))
    assert reacher.l1_distance() < 1e-9
    _, reward, terminated, truncated, info = reacher.step(np.zeros(2))
    assert reward == 1.0 and info["is_success"] and not terminated and not truncated


def test_reacher_reward_far_away_is_zero(reacher):
    reacher.set_state(np.array([np.pi, 0.0]), np.zeros(2))  # fingertip at (-1.05, 0)
    reacher.set_target([0.75, 0.0])
    np.testing.assert_allclose(reacher.fingertip_xy, [-1.05, 0.0], atol=1e-12)
    _, reward, *_ = reacher.step(np.zeros(2))
    assert reward == 0.0


@pytest.mark.parametrize(
    "offset, expected",
    [
        ((0.06, 0.06), 0.0),  # L2 = 0.085 < 0.1 but L1 = 0.12 > 0.1: the L1 rule says no
        ((0.04, 0.04), 1.0),  # L1 = 0.08
        ((0.099, 0.0), 1.0),
        ((0.0, -0.101), 0.0),
        ((-0.05, 0.049), 1.0),  # L1 = 0.099
    ],
)
def test_reacher_reward_is_l1_threshold(reacher, offset, expected):
    tip = np.array([0.3, 0.6])
    _place_tip(reacher, tip, tip + np.array(offset))
    _, reward, *_ = reacher.step(np.zeros(2))  # at rest, no torque: the arm does not move
    np.testing.assert_allclose(reacher.fingertip_xy, tip, atol=1e-12)
    assert reward == expected


def test_reacher_truncates_at_100_and_never_terminates():
    env = make_env("reacher2d-medium")
    env.action_space.seed(0)
    env.reset(seed=0)
    for t in range(1, 101):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward in (0.0, 1.0)
        assert not terminated
        assert truncated == (t == 100)
    env.close()


def test_reacher_seeded_reset_is_deterministic():
    a, b = Reacher2dEnv(), Reacher2dEnv()
    oa, _ = a.reset(seed=123)
    ob, _ = b.reset(seed=123)
    np.testing.assert_array_equal(oa, ob)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 2))
    for act in actions:
        np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])
    oc, _ = b.reset(seed=124)
    assert not np.allclose(oa, oc)
    # re-seeding the same env replays the same start
    np.testing.assert_array_equal(a.reset(seed=123)[0], oa)


def test_reacher_reset_distribution():
    env = Reacher2dEnv()
    radii, angles = [], []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs[4:6], 0.0)  # starts at rest
        assert np.all(np.abs(env.data.qpos) <= 2.0)
        radii.append(np.linalg.norm(env.target_xy))
        angles.append(np.arctan2(*env.target_xy[::-1]))
    radii = np.array(radii)
    assert radii.min() >= 0.5 and radii.max() <= 1.0
    assert np.mean(radii > 0.79) == pytest.approx(0.5, abs=0.15)  # median radius sqrt(0.625) ~ 0.79
    assert np.min(angles) < -2.5 and np.max(angles) > 2.5


def test_reacher_kinematics():
    for xy in ([0.3, 0.6], [-0.9, 0.1], [0.0, -0.5], [1.0, 0.0]):
        q = Reacher2dEnv.inverse_kinematics(xy)
        np.testing.assert_allclose(Reacher2dEnv.forward_kinematics(q), xy, atol=1e-12)
    with pytest.raises(ValueError, match="outside the arm's reach"):
        Reacher2dEnv.inverse_kinematics([1.2, 0.0])
    with pytest.raises(ValueError, match="target_radius_range"):
        Reacher2dEnv(target_radius_range=(0.5, 2.0))


def test_register_envs_is_idempotent():
    register_envs()
    register_envs()
    spec = gymnasium.spec("offline_zoo/Reacher2d-v0")
    assert spec.max_episode_steps == 100


# --- make_env -----------------------------------------------------------------------------------
def test_make_env_hopper_steps():
    env = make_env(get_task("hopper-medium"))
    assert env.spec.id == "Hopper-v5" and env.spec.max_episode_steps == 1000
    obs, _ = env.reset(seed=0)
    assert obs.shape == (11,)
    obs, reward, terminated, truncated, _ = env.step(np.zeros(3, dtype=np.float32))
    assert obs.shape == (11,) and np.isfinite(reward)
    env.close()


def test_make_env_max_episode_steps_override():
    env = make_env("reacher2d-medium", max_episode_steps=3)
    env.reset(seed=0)
    truncs = [env.step(np.zeros(2))[3] for _ in range(3)]
    assert truncs == [False, False, True]


def test_make_env_unknown_family_and_task():
    bogus = dataclasses.replace(get_task("hopper-medium"), name="bogus", family="pybullet")
    with pytest.raises(ValueError, match="pybullet.*mujoco, reacher2d, kitchen, atari, gymnasium"):
        make_env(bogus)
    with pytest.raises(ValueError, match="pybullet"):
        env_spaces(bogus)
    with pytest.raises(KeyError, match="hoper-medium"):
        make_env("hoper-medium")


def test_gymnasium_family_builds_any_environment_with_default_configs():
    from offline_zoo.algos.config import task_defaults

    pendulum = dataclasses.replace(get_task("hopper-medium"), name="pendulum-test", domain="pendulum", family="gymnasium",
                                   env_id="Pendulum-v1", max_episode_steps=50)
    env = make_env(pendulum)
    assert env.spec.max_episode_steps == 50 and env.observation_space.shape == (3,)
    assert env_spaces(pendulum) == ((3,), 1, False)
    # no per-family section applies: CQL's MuJoCo (CORL) networks are not imposed on it
    assert "hidden_units" in task_defaults("cql", get_task("hopper-medium"))
    assert task_defaults("cql", pendulum) == task_defaults("cql", None)


@pytest.mark.skipif(not HAS_ALE, reason="ale_py / opencv not installed (extra: atari)")
def test_make_env_atari_shape_and_determinism():
    def rollout(seed):
        env = make_env("breakout-medium")
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for t in range(25):
            obs, *_ = env.step(1 if t == 0 else 2 + t % 2)  # FIRE, then RIGHT/LEFT
            frames.append(obs)
        env.close()
        return np.stack(frames)

    a = rollout(5)
    assert a.shape[1:] == (4, 84, 84) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, rollout(5))
    env = make_env("breakout-medium")
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    assert env.spec is None or env.spec.max_episode_steps in (None, 4096)
    # the released evaluation cap (core.py: `timestep < model.max_timestep`, 4096), every algorithm alike
    assert isinstance(env, gymnasium.wrappers.TimeLimit) and env._max_episode_steps == 4096
    env.close()
    long = make_env("breakout-medium", max_episode_steps=27_000)  # the standard 108k-frame cap, on request
    assert long._max_episode_steps == 27_000
    long.close()


def test_atari_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # makes `import ale_py` fail
    with pytest.raises(ImportError, match=r'pip install "offline-zoo\[atari\]"'):
        make_env("pong-medium")


def test_kitchen_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(MissingExtraError, match=r'pip install "offline-zoo\[kitchen\]"') as info:
        make_env("kitchen-complete")
    assert isinstance(info.value, ImportError) and info.value.extra == "kitchen"


# --- kitchen observation flattening, env_spaces -------------------------------------------------
def test_flatten_kitchen_observation_sorted_and_batched():
    goal = {"slide cabinet": np.array([0.37]), "microwave": np.array([-0.75]), "kettle": np.arange(7.0)}
    obs = {"observation": np.zeros(59), "achieved_goal": goal, "desired_goal": goal}
    flat = flatten_kitchen_observation(obs)
    assert flat.shape == (59 + 9,)
    np.testing.assert_array_equal(flat[59:], [*range(7), -0.75, 0.37])  # kettle, microwave, slide cabinet
    batched = {
        "observation": np.zeros((5, 59)),
        "desired_goal": {k: np.tile(v, (5, 1)) for k, v in goal.items()},
    }
    assert flatten_kitchen_observation(batched).shape == (5, 68)
    with pytest.raises(ValueError, match="desired_goal"):
        flatten_kitchen_observation({"observation": np.zeros(59)})
    assert kitchen_observation_dim(["microwave", "kettle", "light switch", "slide cabinet"]) == 70
    assert kitchen_observation_dim(KITCHEN_GOAL_SIZES) == 59 + 17
    with pytest.raises(ValueError, match="toaster"):
        kitchen_observation_dim(["toaster"])


def test_env_spaces():
    assert env_spaces("hopper-medium") == ((11,), 3, False)
    assert env_spaces("walker2d-medium") == ((17,), 6, False)
    assert env_spaces("reacher2d-medium") == ((12,), 2, False)
    assert env_spaces("kitchen-partial") == ((70,), 9, False)
    assert env_spaces(get_task("reacher2d-medium")) is env_spaces("reacher2d-medium")  # cached
    if HAS_ALE:
        assert env_spaces("breakout-medium") == ((4, 84, 84), 4, True)
        assert env_spaces("pong-medium") == ((4, 84, 84), 6, True)


class _FakeKitchen(gymnasium.Env):
    """Stands in for FrankaKitchen-v1: same dict observation structure, no physics."""

    def __init__(self):
        goal_space = gymnasium.spaces.Dict(
            {
                k: gymnasium.spaces.Box(-np.inf, np.inf, (KITCHEN_GOAL_SIZES[k],), np.float64)
                for k in ("kettle", "microwave")
            }
        )
        self.observation_space = gymnasium.spaces.Dict(
            {
                "observation": gymnasium.spaces.Box(-np.inf, np.inf, (59,), np.float64),
                "achieved_goal": goal_space,
                "desired_goal": goal_space,
            }
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (9,), np.float32)

    def _obs(self):
        goal = {"kettle": np.full(7, 2.0), "microwave": np.array([-0.75])}
        return {"observation": np.ones(59), "achieved_goal": goal, "desired_goal": goal}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 1.0, False, False, {}


def test_kitchen_flatten_wrapper_on_dict_env():
    from offline_zoo.envs import KitchenFlattenObservation

    env = KitchenFlattenObservation(_FakeKitchen())
    assert env.observation_space.shape == (59 + 7 + 1,)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (67,) and obs.dtype == np.float64
    np.testing.assert_array_equal(obs[59:], [2.0] * 7 + [-0.75])
    assert env.observation_space.contains(env.step(np.zeros(9))[0])
    with pytest.raises(ValueError, match="desired_goal"):
        KitchenFlattenObservation(make_env("reacher2d-medium"))


def test_each_data_source_is_evaluated_on_the_closest_environment_version():
    # D4RL's -v2 MuJoCo data was collected on the v3 envs: gymnasium 1.0 has v4 (the same
    # dynamics), while v5 (Minari's and our generated data) changed them
    from offline_zoo import BC
    from offline_zoo.testing import tiny_dataset

    for domain, v5 in (("hopper", "Hopper-v5"), ("halfcheetah", "HalfCheetah-v5"), ("walker2d", "Walker2d-v5")):
        task = get_task(f"{domain}-medium")
        assert task.env_id == v5 and task.env_id_for("d4rl") == v5.replace("-v5", "-v4")
        assert {s: make_env(task, source=s).spec.id for s in ("d4rl", "minari", "generated")} == {
            "d4rl": v5.replace("-v5", "-v4"), "minari": v5, "generated": v5}
    assert make_env("reacher2d-medium", source="generated").spec.id == get_task("reacher2d-medium").env_id

    ds = tiny_dataset(episode_len=5)
    for source, env_id in (("d4rl", "Hopper-v4"), ("generated", "Hopper-v5")):
        ds.source = source
        algo = BC(ds, device="cpu", batch_size=4)
        result = algo.evaluate(n_episodes=1)
        assert result.env_id == env_id and result.to_dict()["env_id"] == env_id
