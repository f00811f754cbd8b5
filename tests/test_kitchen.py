"""Kitchen on the real FrankaKitchen-v1 (gymnasium-robotics, the ``kitchen`` extra): environment,
observation layout shared with the Minari loader, reward and score, evaluation, and zoo-bench on a
Minari dataset written here with the structure of ``D4RL/kitchen/*-v2``."""

import gymnasium
import gymnasium_robotics
import numpy as np
import pytest
from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES

import offline_zoo as oz
from offline_zoo.bench.report import build_report
from offline_zoo.cli import bench_main
from offline_zoo.envs import env_spaces, flatten_kitchen_observation, make_env

gymnasium.register_envs(gymnasium_robotics)
LEVELS = ("partial", "complete", "mixed")
STEPS = 6  # per recorded episode


def _record(level: str, seed: int, n_steps: int = STEPS) -> dict:
    """One episode of the raw FrankaKitchen-v1 (dict observations) under seeded random actions."""
    task = oz.get_task(f"kitchen-{level}")
    env = gymnasium.make(task.env_id, **task.env_kwargs)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, actions, rewards = [obs], [], []
    for _ in range(n_steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, *_ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    env.close()
    return {"observations": observations, "actions": np.array(actions), "rewards": np.array(rewards, dtype=np.float64)}


def _stack(observations: list[dict]) -> dict:
    """A list of nested dict observations -> the nested dict of stacked arrays Minari stores."""
    out = {}
    for key, value in observations[0].items():
        if isinstance(value, dict):
            out[key] = _stack([o[key] for o in observations])
        else:
            out[key] = np.stack([np.asarray(o[key], dtype=np.float64) for o in observations])
    return out


def write_minari_kitchen(root, level: str = "partial", n_episodes: int = 2) -> list[dict]:
    """Write ``D4RL/kitchen/<level>-v2`` under ``root`` (a MINARI_DATASETS_PATH), as Minari ships it:
    dict observations (``observation``, ``achieved_goal``/``desired_goal`` keyed by sub-task),
    T+1 observations per episode, the last episode truncated."""
    import os

    import minari
    from minari.data_collector import EpisodeBuffer

    task = oz.get_task(f"kitchen-{level}")
    episodes = [_record(level, seed=i) for i in range(n_episodes)]
    buffers = [
        EpisodeBuffer(id=i, seed=i, observations=_stack(ep["observations"]), actions=ep["actions"], rewards=list(ep["rewards"]),
                      terminations=[False] * STEPS, truncations=[False] * (STEPS - 1) + [True])
        for i, ep in enumerate(episodes)
    ]
    env = gymnasium.make(task.env_id, **task.env_kwargs)
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        minari.create_dataset_from_buffers(
            dataset_id=task.sources["minari"], buffer=buffers, env=env, eval_env=env, description="kitchen test data",
            observation_space=env.observation_space, action_space=env.action_space,
            algorithm_name="test", author="offline-zoo tests", author_email="tests@localhost", code_permalink="tests/test_kitchen.py",
        )
    finally:
        env.close()
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    return episodes


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    return root, write_minari_kitchen(root, "partial")


@pytest.mark.parametrize("level", LEVELS)
def test_make_env_flattens_the_real_env_like_the_data(level):
    task = oz.get_task(f"kitchen-{level}")
    env = make_env(task)
    assert env.spec.max_episode_steps == 280 and env.action_space.shape == (9,)
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape == env_spaces(task)[0] == ((70,) if level != "mixed" else (71,))
    # the same seed and actions on the raw env, flattened as the Minari loader flattens data
    raw = _record(level, seed=3, n_steps=2)
    np.testing.assert_array_equal(obs, flatten_kitchen_observation(raw["observations"][0]))
    rng = np.random.default_rng(3)
    for t in (1, 2):
        obs, *_ = env.step(rng.uniform(-1, 1, 9).astype(np.float32))
        np.testing.assert_allclose(obs, flatten_kitchen_observation(raw["observations"][t]), rtol=0, atol=1e-12)
    # the goal part is each sub-task's goal, in sorted sub-task order
    goals = np.concatenate([OBS_ELEMENT_GOALS[k] for k in sorted(task.env_kwargs["tasks_to_complete"])])
    np.testing.assert_allclose(obs[59:], goals)
    env.close()


def _complete(env, subtasks) -> None:
    """Put the objects of ``subtasks`` at their goal positions in the simulator (robot at rest)."""
    kitchen = env.unwrapped
    qpos, qvel = kitchen.data.qpos.copy(), np.zeros_like(kitchen.data.qvel)
    for name in subtasks:
        qpos[OBS_ELEMENT_INDICES[name]] = OBS_ELEMENT_GOALS[name]
    kitchen.robot_env.set_state(qpos, qvel)


def test_reward_counts_subtasks_and_score_is_tasks_out_of_four():
    task = oz.get_task("kitchen-partial")
    env = make_env(task)
    env.reset(seed=0)
    rewards = [env.step(np.zeros(9, np.float32))[1]]  # nothing done yet
    _complete(env, ["microwave", "slide cabinet"])
    rewards.append(env.step(np.zeros(9, np.float32))[1])  # two sub-tasks completed in this step
    rewards.append(env.step(np.zeros(9, np.float32))[1])  # completed sub-tasks are not paid twice
    assert rewards == [0.0, 2.0, 0.0]
    assert oz.normalized_score(task, sum(rewards)) == pytest.approx(50.0)
    _complete(env, task.env_kwargs["tasks_to_complete"])
    _, reward, terminated, truncated, info = env.step(np.zeros(9, np.float32))
    assert (reward, terminated, truncated) == (2.0, True, False)  # the other two: all four done, episode over
    assert sorted(info["episode_task_completions"]) == sorted(task.env_kwargs["tasks_to_complete"])
    assert oz.normalized_score(task, 4.0) == pytest.approx(100.0)
    env.close()


def test_minari_loader_aligns_real_layout_episodes(minari_root, monkeypatch):
    root, episodes = minari_root
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    ds = oz.load_dataset("kitchen-partial", source="minari")
    assert (ds.source, ds.n_episodes, ds.n_steps, ds.observation_shape, ds.action_dim) == ("minari", 2, 2 * STEPS, (70,), 9)
    for i, ep in enumerate(episodes):  # T observations kept (the final one has no action), in order
        rows = slice(i * STEPS, (i + 1) * STEPS)
        expected = np.stack([flatten_kitchen_observation(o) for o in ep["observations"][:STEPS]])
        np.testing.assert_allclose(ds.observations[rows], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ds.actions[rows], ep["actions"], rtol=1e-6)
        np.testing.assert_allclose(ds.rewards[rows], ep["rewards"])
    assert ds.episode_lengths.tolist() == [STEPS, STEPS]
    # the loaded data and the evaluation env have the same layout
    assert ds.observation_shape == make_env("kitchen-partial").observation_space.shape


@pytest.mark.parametrize("algo_name", ["dt", "bc"])
def test_tiny_agents_evaluate_on_the_real_env(algo_name):
    rng = np.random.default_rng(0)
    n, length = 40, 20
    terminals = np.zeros(n, bool)
    terminals[length - 1 :: length] = True
    ds = oz.Dataset.from_arrays(rng.normal(size=(n, 70)), rng.uniform(-1, 1, (n, 9)), (rng.random(n) < 0.05).astype(np.float32),
                                terminals, task="kitchen-partial")
    small = {"dt": dict(hidden_size=16, n_layer=1, n_head=1, context_len=4, batch_size=4, target_returns=(4.0,)),
             "bc": dict(batch_size=8, hidden_units=(16, 16))}[algo_name]
    algo = oz.get_algo(algo_name)(ds, seed=0, device="cpu", **small).learn(3, progress_bar=False)
    result = algo.evaluate(n_episodes=2, seed=0)
    assert result.env_id == "FrankaKitchen-v1"
    for target in result.returns:
        lengths, returns = result.lengths[target], result.returns[target]
        assert lengths.shape == (2,) and np.all((lengths >= 1) & (lengths <= 280))
        assert np.all((returns >= 0) & (returns <= 4)) and np.all(returns == np.round(returns))
        np.testing.assert_allclose(result.normalized[target], returns * 25.0)


def test_zoo_bench_sparse_kitchen_missing_then_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("OFFLINE_ZOO_OFFLINE", "1")  # no download attempt, whatever the network
    args = ["--suite", "sparse", "--tasks", "kitchen-partial", "--algos", "DT", "BC", "--seeds", "0", "--ratios", "1",
            "--out", str(tmp_path / "runs")]
    assert bench_main([*args, "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "kitchen-partial (minari): MISSING" in out and "minari download D4RL/kitchen/partial-v2" in out
    assert "1 dataset(s) missing" in out

    write_minari_kitchen(tmp_path / "minari", "partial")
    assert bench_main([*args, "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "MISSING" not in out and "kitchen-partial (minari): Minari dataset D4RL/kitchen/partial-v2 in" in out

    tiny = ["--steps", "2", "--config", "*.eval_episodes=1", "--config", "DT.hidden_size=16", "--config", "DT.n_layer=1",
            "--config", "DT.context_len=4", "--config", "*.batch_size=4", "--workers", "0", "--no-progress", "--no-report"]
    assert bench_main([*args, *tiny]) == 0
    assert "2 of 2 runs finished" in capsys.readouterr().out
    report = build_report(tmp_path / "runs")
    assert set(report.cells) == {("kitchen-partial", 1.0, "DT"), ("kitchen-partial", 1.0, "BC")}
    assert all(0.0 <= cell.mean <= 100.0 for cell in report.cells.values())
