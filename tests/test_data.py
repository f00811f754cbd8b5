"""Tasks, normalized scores, Dataset, subsampling, samplers, loaders (on files the tests write), evaluation."""

import gzip
import io
import time

import gymnasium as gym
import h5py
import numpy as np
import pytest

import offline_zoo as oz
from offline_zoo.data import Dataset, DatasetError, DataUnavailableError, TransitionSampler, WindowSampler, load_dataset
from offline_zoo.evaluation import run_episodes
from offline_zoo.testing import tiny_dataset


# -- tasks and scores ----------------------------------------------------------------------------
PAPER_TASKS = [
    "kitchen-partial", "kitchen-complete", "reacher2d-medium", "breakout-medium", "qbert-medium", "pong-medium",
    "hopper-medium", "halfcheetah-medium", "walker2d-medium",
    "hopper-medium-replay", "hopper-medium-expert", "walker2d-medium-expert", "halfcheetah-medium-replay",
]


def test_every_paper_task_is_registered():
    assert set(PAPER_TASKS) <= set(oz.list_tasks())
    assert oz.list_tasks("atari") == ["breakout-expert", "breakout-medium", "pong-expert", "pong-medium", "qbert-expert", "qbert-medium"]


@pytest.mark.parametrize(
    "task, random, expert",
    [  # D4RL's exact values for MuJoCo, Table 5 of the LaMo paper for the rest
        ("hopper-medium", -20.272305, 3234.3), ("halfcheetah-medium", -280.178953, 12135.0),
        ("walker2d-medium", 1.629008, 4592.3), ("kitchen-partial", 0.0, 4.0), ("reacher2d-medium", 0.0, 100.0),
        ("breakout-medium", 1.7, 31.8), ("qbert-medium", 163.9, 13455.0), ("pong-medium", -20.7, 9.3),
    ],
)
def test_reference_scores(task, random, expert):
    t = oz.get_task(task)
    assert (t.ref_min_score, t.ref_max_score) == (random, expert)
    assert oz.normalized_score(task, random) == pytest.approx(0.0)
    assert oz.normalized_score(task, expert) == pytest.approx(100.0)


def test_task_fields_follow_the_paper():
    h = oz.get_task("hopper-medium")
    assert (h.env_id, h.max_ep_len, h.rtg_scale, h.target_returns) == ("Hopper-v5", 1000, 1000.0, (3600.0, 2600.0, 2200.0, 1800.0))
    r = oz.get_task("reacher2d-medium")
    assert (r.max_ep_len, r.rtg_scale, r.target_returns, r.sources) == (100, 10.0, (76.0, 40.0), {"generated": "reacher2d-medium"})
    k = oz.get_task("kitchen-complete")
    assert (k.max_ep_len, k.rtg_scale, k.default_source) == (1000, 1.0, "minari")
    b = oz.get_task("breakout-medium")
    assert b.discrete and b.default_source == "d4rl-atari" and set(b.target_returns) == {90.0, 120.0}
    # the released Atari evaluation stops at model.max_timestep = 4096 agent steps (core.py)
    assert all(oz.get_task(t).max_episode_steps == oz.get_task(t).max_ep_len == 4096 for t in oz.list_tasks("atari"))


def test_kitchen_timestep_table_is_the_released_size():
    # released experiment.py: max_ep_len = 1000 for kitchen, while its episodes last 280 steps
    for name in oz.list_tasks("kitchen"):
        k = oz.get_task(name)
        assert (k.max_ep_len, k.max_episode_steps) == (1000, 280)


def test_normalized_score_values():
    np.testing.assert_allclose(oz.normalized_score("kitchen-partial", [0, 1, 2, 4]), [0, 25, 50, 100])
    assert oz.normalized_score("hopper-medium", 1000.0) == pytest.approx(100 * (1000 + 20.272305) / (3234.3 + 20.272305))


def test_unknown_task_suggests_close_names():
    with pytest.raises(KeyError, match="unknown task 'hoper-medium'.*Did you mean 'hopper-medium'"):
        oz.get_task("hoper-medium")


# -- Dataset and subsampling ---------------------------------------------------------------------
def _episodes_dataset(lengths, task=None, obs_dim=3, act_dim=2):
    n = sum(lengths)
    obs = np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim)
    ends = np.cumsum(lengths) - 1
    term = np.zeros(n, bool)
    term[ends] = True
    return Dataset.from_arrays(obs, np.zeros((n, act_dim)), np.ones(n), term, np.zeros(n, bool), task=task)


def test_episode_split_on_terminals_or_timeouts():
    term = np.array([0, 0, 1, 0, 0, 0, 0, 0], bool)
    tout = np.array([0, 0, 0, 0, 1, 0, 0, 0], bool)
    ds = Dataset.from_arrays(np.zeros((8, 2)), np.zeros((8, 1)), np.arange(8), term, tout)
    assert ds.episode_lengths.tolist() == [3, 2, 3]
    eps = ds.episodes
    assert [e.terminated for e in eps] == [True, False, False]
    assert eps[1].rewards.tolist() == [3, 4]
    assert np.shares_memory(eps[0].observations, ds.observations)  # views, not copies


def test_subsample_keeps_whole_trajectories_deterministically():
    ds = _episodes_dataset([5, 3, 7, 2, 4, 6, 1, 8, 3, 5])
    a, b, c = ds.subsample(0.3, seed=4), ds.subsample(0.3, seed=4), ds.subsample(0.3, seed=5)
    assert a.n_episodes == 3 and a.selection.tolist() == b.selection.tolist()
    assert a.selection_hash == b.selection_hash != c.selection_hash
    for i, src in enumerate(a.selection):  # each kept episode is an intact original episode
        np.testing.assert_array_equal(a.episode(i).observations, ds.episode(src).observations)
    with pytest.warns(UserWarning, match="less than one trajectory"):
        assert ds.subsample(0.01, seed=0).n_episodes == 1  # at least one
    assert ds.subsample(1.0).n_episodes == 10


def test_atari_subsample_is_length_weighted():
    lengths = [1] * 50 + [200] * 2
    ds = _episodes_dataset(lengths, obs_dim=1, act_dim=1)
    ds.task = oz.get_task("breakout-medium")
    picks = [set(ds.subsample(0.02, seed=s).selection.tolist()) for s in range(20)]
    long_hits = sum(bool(p & {50, 51}) for p in picks)
    assert long_hits >= 18  # 2 of 52 episodes hold 89% of the steps


@pytest.mark.parametrize("ratio", [0, -0.1, 1.01, float("nan"), "a"])
def test_bad_ratio(ratio):
    with pytest.raises(DatasetError, match="ratio="):
        _episodes_dataset([3, 3]).subsample(ratio)


def test_bad_inputs_are_named():
    obs = np.zeros((4, 11), np.float32)
    obs[2, 1] = np.nan
    with pytest.raises(DatasetError, match="observations contains NaN or inf \\(first at step 2\\)"):
        Dataset.from_arrays(obs, np.zeros((4, 3)), np.zeros(4), np.zeros(4))
    with pytest.raises(DatasetError, match="rewards has 3 steps but observations has 4"):
        Dataset.from_arrays(np.zeros((4, 11)), np.zeros((4, 3)), np.zeros(3), np.zeros(4))
    with pytest.raises(DatasetError, match=r"per-step shape \(7,\) but task 'hopper-medium' expects \(11,\)"):
        Dataset.from_arrays(np.zeros((4, 7)), np.zeros((4, 3)), np.zeros(4), np.zeros(4), task="hopper-medium")
    with pytest.raises(DatasetError, match="actions have dimension 2 but task 'hopper-medium' expects 3"):
        Dataset.from_arrays(np.zeros((4, 11)), np.zeros((4, 2)), np.zeros(4), np.zeros(4), task="hopper-medium")


def test_state_statistics_use_the_subsampled_data():
    ds = _episodes_dataset([2, 2], obs_dim=1, act_dim=1)
    np.testing.assert_allclose(ds.state_mean, [1.5])
    np.testing.assert_allclose(ds.state_std, [np.std([0, 1, 2, 3]) + 1e-6], rtol=1e-6)


# -- samplers ------------------------------------------------------------------------------------
def test_window_sampler_matches_hand_computed_example():
    # one episode of 4 steps, rewards 1..4; window K=3 starting at the last step
    ds = Dataset.from_arrays(np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([[0.1], [0.2], [0.3], [0.4]]), [1, 2, 3, 4], [0, 0, 0, 1])
    w = WindowSampler(ds, context_len=3, rtg_scale=2.0, max_ep_len=3, state_mean=np.array([1.0]), state_std=np.array([2.0]))
    b = w.window([3, 0])
    # start 3: two left pads, then step 3
    assert b["mask"][0].tolist() == [0, 0, 1]
    np.testing.assert_allclose(b["states"][0, :, 0], [-0.5, -0.5, 2.5])  # pads are 0 before normalization
    np.testing.assert_allclose(b["actions"][0, :, 0], [-10, -10, 0.4])
    np.testing.assert_allclose(b["returns_to_go"][0, :, 0], [0, 0, 2.0])  # 4 / scale 2
    assert b["timesteps"][0].tolist() == [0, 0, 2]  # step 3 clipped to max_ep_len - 1
    # start 0: full window, RTG 10, 9, 7 over scale 2
    np.testing.assert_allclose(b["returns_to_go"][1, :, 0], [5.0, 4.5, 3.5])
    assert b["timesteps"][1].tolist() == [0, 1, 2] and b["mask"][1].tolist() == [1, 1, 1]


def test_window_sampler_never_crosses_episodes_and_is_seeded():
    ds = _episodes_dataset([3, 5, 2], obs_dim=1, act_dim=1)
    s1 = WindowSampler(ds, 4, 1.0, 100, seed=3).sample(256)
    s2 = WindowSampler(ds, 4, 1.0, 100, seed=3).sample(256)
    np.testing.assert_array_equal(s1["states"], s2["states"])
    raw = s1["states"][..., 0] * ds.state_std[0] + ds.state_mean[0]
    episode_of = np.repeat(np.arange(3), [3, 5, 2])
    for row, m in zip(raw, s1["mask"].astype(bool)):
        steps = np.rint(row[m] / 1.0).astype(int)  # observation value = step index (obs_dim 1)
        assert len(set(episode_of[steps])) == 1 and (np.diff(steps) == 1).all()


def test_end_anchored_windows_end_at_the_drawn_step_and_are_cut_at_episode_starts():
    # episodes: steps 0-4 (rewards 0..4) and 5-9 (rewards 5..9)
    ds = Dataset.from_arrays(np.arange(10.0).reshape(10, 1), np.zeros((10, 1)), np.arange(10.0), [0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    start, end = (WindowSampler(ds, context_len=3, rtg_scale=1, max_ep_len=10, anchor=a, seed=1) for a in ("start", "end"))
    a, b = start.sample(400), end.sample(400)
    # the same draws: "start" windows begin at the drawn step, "end" windows finish there
    drawn = np.random.default_rng(1).integers(0, 10, size=400)
    assert np.array_equal(a["states"][np.arange(400), 3 - a["mask"].sum(1).astype(int), 0] * ds.state_std[0] + ds.state_mean[0], drawn)
    last = b["states"][:, -1, 0] * ds.state_std[0] + ds.state_mean[0]
    np.testing.assert_allclose(last, drawn, atol=1e-5)
    # short windows: at episode ends for "start", at episode starts for "end"
    short_a = a["mask"].sum(1) < 3
    short_b = b["mask"].sum(1) < 3
    assert set(np.unique(a["timesteps"][short_a, -1])) <= {3, 4}
    assert set(np.unique(b["timesteps"][short_b, -1])) <= {0, 1}
    # returns-to-go of the end-anchored windows still include each step's own reward
    i = int(np.flatnonzero(drawn == 6)[0])
    assert b["returns_to_go"][i, :, 0].tolist() == [0.0, 35.0, 30.0]
    with pytest.raises(ValueError, match="unknown window anchor 'middle'; allowed values: 'start', 'end'"):
        WindowSampler(ds, context_len=3, rtg_scale=1, max_ep_len=10, anchor="middle")


def test_atari_windows_stack_frames_without_crossing_episodes():
    frames = np.arange(6, dtype=np.uint8)[:, None, None] * np.ones((1, 84, 84), np.uint8)
    ds = Dataset.from_arrays(frames, np.array([0, 1, 2, 3, 0, 1]), np.ones(6), [0, 0, 1, 0, 0, 1], frame_stack=4)
    assert ds.observation_shape == (4, 84, 84)
    b = WindowSampler(ds, 2, 1.0, 100).window([3])
    assert b["states"].dtype == np.uint8 and b["states"].shape == (1, 2, 4, 84, 84)
    assert b["states"][0, 0, :, 0, 0].tolist() == [3, 3, 3, 3]  # first step of episode 2 repeats its frame
    assert b["states"][0, 1, :, 0, 0].tolist() == [3, 3, 3, 4]


def test_transition_sampler_handles_episode_ends():
    term = np.array([0, 1, 0, 0], bool)
    tout = np.array([0, 0, 0, 1], bool)
    ds = Dataset.from_arrays(np.arange(4.0)[:, None], np.zeros((4, 1)), np.ones(4), term, tout)
    t = TransitionSampler(ds).transitions([0, 1, 3])
    assert t["next_observations"][:, 0].tolist() == [1.0, 1.0, 3.0]
    assert t["terminals"].tolist() == [0.0, 1.0, 0.0]  # a timeout is not terminal


# -- loaders -------------------------------------------------------------------------------------
def test_d4rl_hdf5_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    n = 30
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "hopper_medium-v2.hdf5", "w") as f:
        f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        f["rewards"] = np.ones(n, np.float32)
        term = np.zeros(n, bool)
        term[9] = True
        tout = np.zeros(n, bool)
        tout[19] = True  # a timeout-ended episode must not merge with the next one
        f["terminals"], f["timeouts"] = term, tout
    ds = load_dataset("hopper-medium", source="d4rl")
    assert ds.source == "d4rl" and ds.episode_lengths.tolist() == [10, 10, 10]
    assert [e.terminated for e in ds.episodes] == [True, False, False]
    half = load_dataset("hopper-medium", ratio=0.5, seed=1, source="d4rl")
    assert half.n_episodes == 1 and half.describe()["ratio"] == 0.5


def test_d4rl_atari_loader(tmp_path):
    n = 12
    d = tmp_path / "Breakout" / "1" / "10"
    d.mkdir(parents=True)
    arrays = {
        "observation": np.random.default_rng(0).integers(0, 255, (n, 84, 84), dtype=np.uint8),
        "action": np.arange(n) % 4,
        "reward": np.ones(n, np.float32),
        "terminal": np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], np.uint8),
    }
    for k, v in arrays.items():
        buf = io.BytesIO()
        np.save(buf, v)
        with gzip.open(d / f"{k}.gz", "wb") as f:
            f.write(buf.getvalue())
    ds = load_dataset("breakout-medium", source="d4rl-atari", base_dir=tmp_path)
    assert ds.observations.dtype == np.uint8 and ds.observation_shape == (4, 84, 84) and ds.discrete
    assert ds.episode_lengths.tolist() == [5, 7] and not ds.episodes[1].terminated
    np.testing.assert_array_equal(ds.observations, arrays["observation"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_loader_keeps_observations_aligned(tmp_path, monkeypatch):
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("Hopper-v5")
    buffers, recorded = [], []
    for ep, length in enumerate([4, 6]):
        obs = np.arange((length + 1) * 11, dtype=np.float64).reshape(length + 1, 11) + 1000 * ep
        recorded.append(obs[:-1])
        buffers.append(EpisodeBuffer(
            observations=list(obs), actions=list(np.zeros((length, 3))), rewards=list(np.ones(length)),
            terminations=[False] * (length - 1) + [ep == 0], truncations=[False] * (length - 1) + [ep == 1],
        ))
    minari.create_dataset_from_buffers("mujoco/hopper/medium-v0", buffers, env=env, eval_env=env, ref_min_score=-20.0, ref_max_score=3000.0,
        algorithm_name="test", author="offline-zoo", author_email="-", description="test data", code_permalink="-")
    ds = load_dataset("hopper-medium", source="minari")
    assert ds.source == "minari" and ds.episode_lengths.tolist() == [4, 6]
    np.testing.assert_array_equal(ds.observations, np.concatenate(recorded).astype(np.float32))
    assert [e.terminated for e in ds.episodes] == [True, False]
    assert ds.metadata["ref_max_score"] == 3000.0


def test_missing_data_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    monkeypatch.setenv("OFFLINE_ZOO_HOME", str(tmp_path))
    for source, hint in [("minari", "minari download mujoco/hopper/medium-v0"), ("d4rl", "hopper_medium-v2.hdf5"), ("generated", "zoo-data generate hopper-medium")]:
        t0 = time.perf_counter()
        with pytest.raises(DataUnavailableError, match=hint):
            load_dataset("hopper-medium", source=source)
        assert time.perf_counter() - t0 < 1.0
    with pytest.raises(DatasetError, match="has no 'd4rl-atari' source; it can be loaded from: minari, d4rl, generated"):
        load_dataset("hopper-medium", source="d4rl-atari")
    with pytest.raises(DatasetError, match="unknown source 'minary'.*Did you mean 'minari'"):
        load_dataset("hopper-medium", source="minary")


# -- evaluation ----------------------------------------------------------------------------------
class _ZeroPolicy:
    """Stands in for an algorithm: zero actions, counts predict calls."""

    def __init__(self):
        self.calls = 0

    def new_rollout_state(self, n, targets):
        return None

    def predict(self, obs, state=None):
        self.calls += 1
        return np.zeros((len(obs), 3), np.float32), state


def test_batched_evaluation_matches_sequential_rollouts():
    policy = _ZeroPolicy()
    result = run_episodes(policy, lambda: gym.make("Hopper-v5"), n_episodes=3, target_returns=None, seed=5, task=oz.get_task("hopper-medium"))
    expected, lengths = [], []
    for i in range(3):
        env = gym.make("Hopper-v5")
        env.reset(seed=5 + i)
        total, t, done = 0.0, 0, False
        while not done:
            _, r, term, trunc, _ = env.step(np.zeros(3, np.float32))
            total, t, done = total + r, t + 1, term or trunc
        expected.append(total)
        lengths.append(t)
    np.testing.assert_allclose(result.returns[None], expected)
    assert result.lengths[None].tolist() == lengths
    assert policy.calls == max(lengths)  # one batched call per environment step
    np.testing.assert_allclose(result.normalized[None], oz.normalized_score("hopper-medium", expected))
    assert result.score == pytest.approx(np.mean(result.normalized[None]))


@pytest.mark.parametrize("game", ["breakout", "qbert", "pong"])
def test_atari_medium_never_loads_minari_expert_data(game):
    # Minari only has expert data for these games: it is the <game>-expert task, never "medium"
    medium, expert = oz.get_task(f"{game}-medium"), oz.get_task(f"{game}-expert")
    assert medium.sources == {"d4rl-atari": f"{game}-medium-v0"}
    assert expert.sources == {"minari": f"atari/{game}/expert-v0"}
    assert (expert.env_id, expert.ref_min_score, expert.ref_max_score) == (medium.env_id, medium.ref_min_score, medium.ref_max_score)
    with pytest.raises(DatasetError, match=rf"task '{game}-medium' has no 'minari' source; it can be loaded from: d4rl-atari\. .*'{game}-expert' \(atari/{game}/expert-v0\)"):
        load_dataset(f"{game}-medium", source="minari")


def test_tiny_dataset_shapes():
    assert tiny_dataset("continuous").observation_shape == (11,)
    assert tiny_dataset("discrete").observation_shape == (4, 84, 84)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_atari_frames_become_gray_84x84(tmp_path, monkeypatch):
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    rgb = np.zeros((6, 210, 160, 3), np.uint8)
    rgb[:, :, :, 0] = np.arange(6)[:, None, None] * 40  # a different red level per frame
    buf = EpisodeBuffer(observations=list(rgb), actions=[0, 1, 2, 3, 0], rewards=[1.0] * 5,
                        terminations=[False] * 4 + [True], truncations=[False] * 5)
    minari.create_dataset_from_buffers(
        "atari/breakout/expert-v0", [buf], observation_space=gym.spaces.Box(0, 255, (210, 160, 3), np.uint8),
        action_space=gym.spaces.Discrete(4), algorithm_name="test", author="offline-zoo", author_email="-",
        description="test", code_permalink="-")
    ds = load_dataset("breakout-expert", source="minari")
    assert ds.observations.shape == (5, 84, 84) and ds.observations.dtype == np.uint8 and ds.frame_stack == 4
    levels = ds.observations[:, 0, 0].astype(int)
    assert (np.diff(levels) > 0).all()  # frame order kept, the final (action-less) frame dropped
    assert ds.actions.tolist() == [0, 1, 2, 3, 0] and ds.episodes[0].terminated
