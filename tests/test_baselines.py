"""The d3rlpy baselines (CQL, IQL, TD3+BC, BCQ, NFQ, BC) behind OfflineAlgo: conformance, parity with a
direct d3rlpy run, dataset conversion, exact step counts, quietness and clear errors. Offline."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import offline_zoo as oz
from offline_zoo.algos import ConfigError, Spec
from offline_zoo.algos.d3rlpy_baselines import RepeatFirstFrameStackPicker, _d3rlpy, set_d3rlpy_log_level, to_d3rlpy_buffer
from offline_zoo.data import Dataset, DatasetError
from offline_zoo.testing import TinyImageEnv, check_algo, tiny_dataset

d3rlpy = _d3rlpy()  # the quiet import


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks on a shared 2-core machine: one thread is 10-100x faster than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _taskless(ds: Dataset) -> Dataset:
    """The same arrays without a task, so that only explicit overrides (and d3rlpy defaults) apply."""
    return Dataset.from_arrays(ds.observations, ds.actions, ds.rewards, ds.terminals, ds.timeouts, frame_stack=ds.frame_stack,
                               metadata=dict(ds.metadata))


# --- conformance -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [oz.CQL, oz.IQL, oz.TD3PlusBC, oz.BCQ, oz.BC], ids=lambda c: c.__name__)
def test_conformance_continuous(cls):
    check_algo(cls, tiny_dataset("continuous"))


@pytest.mark.parametrize("cls", [oz.CQL, oz.BCQ, oz.NFQ, oz.BC], ids=lambda c: c.__name__)
def test_conformance_discrete(cls):
    check_algo(cls, tiny_dataset("discrete", n_episodes=3), env_fn=TinyImageEnv)


# --- parity with d3rlpy run directly -----------------------------------------------------------
def _direct_run(d3_config, data, shape, n_actions, seed, n_steps):
    """d3rlpy on its own: seeded like d3rlpy.seed (CPU), networks built, then its fitter (one step per
    epoch, so each yielded metric dict is one step's losses); nothing logged to disk."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    algo = d3_config.create(device="cpu:0")
    algo.create_impl(shape, n_actions)
    set_d3rlpy_log_level("ERROR")  # fit warns that the networks are already built
    try:
        losses = [
            {k: v for k, v in metrics.items() if not k.startswith("time_")}
            for _, metrics in algo.fitter(data, n_steps=n_steps, n_steps_per_epoch=1, show_progress=False, save_interval=n_steps + 1,
                                          logger_adapter=d3rlpy.logging.NoopAdapterFactory())
        ]
    finally:
        set_d3rlpy_log_level("WARNING")
    return algo, losses


def _wrapper_run(cls, dataset, seed, steps, **overrides):
    algo = cls(dataset, seed=seed, device="cpu", **overrides)
    losses = []
    algo.learn(steps, progress_bar=False, callback=lambda a: losses.append(dict(a._last_metrics)) or True)
    return algo, losses


def _assert_same_losses(ours, direct):
    """Identical floats at every step for every d3rlpy loss term (ours adds a ``loss`` alias if d3rlpy has none)."""
    assert len(ours) == len(direct)
    for mine, theirs in zip(ours, direct):
        assert set(mine) - {"loss"} == set(theirs) - {"loss"}
        assert {k: mine[k] for k in theirs} == theirs


def _continuous_parity_cases():
    enc = lambda: d3rlpy.models.VectorEncoderFactory([32, 32])  # noqa: E731
    std, ret = d3rlpy.preprocessing.StandardObservationScaler, d3rlpy.preprocessing.ReturnBasedRewardScaler
    shared = dict(batch_size=16, hidden_units=(32, 32), normalize_states=True)
    return [
        (oz.CQL, {**shared, "reward_scaler": "return", "reward_multiplier": 1000.0, "n_action_samples": 4, "alpha_learning_rate": 0.0,
                  "conservative_weight": 10.0},
         lambda: d3rlpy.algos.CQLConfig(batch_size=16, actor_encoder_factory=enc(), critic_encoder_factory=enc(), observation_scaler=std(),
                                        reward_scaler=ret(multiplier=1000.0), n_action_samples=4, alpha_learning_rate=0.0,
                                        conservative_weight=10.0)),
        (oz.IQL, {**shared, "actor_cosine_lr": True, "n_steps": 50},
         lambda: d3rlpy.algos.IQLConfig(batch_size=16, actor_encoder_factory=enc(), critic_encoder_factory=enc(), value_encoder_factory=enc(),
                                        observation_scaler=std(), actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                                            lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=50)))),
        (oz.TD3PlusBC, shared,
         lambda: d3rlpy.algos.TD3PlusBCConfig(batch_size=16, actor_encoder_factory=enc(), critic_encoder_factory=enc(), observation_scaler=std())),
    ]


@pytest.mark.parametrize("cls, overrides, make_config", _continuous_parity_cases(), ids=["CQL", "IQL", "TD3PlusBC"])
def test_parity_with_direct_d3rlpy_continuous(cls, overrides, make_config):
    # d3rlpy builds its own dataset from the same flat arrays (MDPDataset): this checks the conversion too
    ds = _taskless(tiny_dataset("continuous", n_episodes=5, episode_len=10))
    mdp = d3rlpy.dataset.MDPDataset(ds.observations, ds.actions, ds.rewards, ds.terminals.astype(np.float32), ds.timeouts.astype(np.float32))
    n = 6
    ours, our_losses = _wrapper_run(cls, ds, 3, n, **overrides)
    direct, direct_losses = _direct_run(make_config(), mdp, (11,), 3, 3, n)
    _assert_same_losses(our_losses, direct_losses)
    obs = ds.observations[:7]
    np.testing.assert_array_equal(ours.predict(obs)[0], direct.predict(obs))
    assert ours.d3rlpy_algo.grad_step == direct.grad_step == n


def test_parity_with_direct_d3rlpy_discrete():
    ds = tiny_dataset("discrete", n_episodes=3, episode_len=8)
    n = 3
    ours, our_losses = _wrapper_run(oz.CQL, ds, 1, n, batch_size=2, cnn_feature_size=32, q_function="qr", n_quantiles=4,
                                    reward_scaler="clip")
    config = d3rlpy.algos.DiscreteCQLConfig(
        batch_size=2, encoder_factory=d3rlpy.models.PixelEncoderFactory(feature_size=32),
        q_func_factory=d3rlpy.models.QRQFunctionFactory(n_quantiles=4), observation_scaler=d3rlpy.preprocessing.PixelObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.ClipRewardScaler(-1.0, 1.0),
    )
    direct, direct_losses = _direct_run(config, to_d3rlpy_buffer(ds), (4, 84, 84), 4, 1, n)
    _assert_same_losses(our_losses, direct_losses)
    obs = np.stack([ds.observations[[0, 0, 0, i]] for i in range(5)])
    np.testing.assert_array_equal(ours.predict(obs)[0], direct.predict(obs))


# --- dataset conversion ------------------------------------------------------------------------
def test_conversion_boundaries_terminals_and_timeouts():
    # episodes: [0..2] terminal, [3..5] timeout AND terminal on the same step (terminal wins),
    # [6..8] timeout, [9] a single truncated step, [10..11] cut by the end of the data
    n = 12
    term = np.zeros(n, bool)
    tout = np.zeros(n, bool)
    term[[2, 5]] = True
    tout[[5, 8, 9]] = True
    rng = np.random.default_rng(0)
    ds = Dataset.from_arrays(rng.normal(size=(n, 3)), rng.normal(size=(n, 2)), np.arange(n), term, tout)
    with pytest.warns(UserWarning, match="1 of 5 episodes are a single truncated step"):
        buf = to_d3rlpy_buffer(ds)
    info = buf.conversion_info
    assert info == {"episodes": 5, "steps": 12, "transitions": 3 + 3 + 2 + 0 + 1, "terminated_episodes": 2,
                    "truncated_last_steps": 3, "episodes_without_transition": 1}
    assert buf.transition_count == info["transitions"]
    eps = buf.episodes
    assert [e.size() for e in eps] == [3, 3, 3, 2] and [e.terminated for e in eps] == [True, True, False, False]
    for e, start in zip(eps, [0, 3, 6, 10]):
        assert np.shares_memory(e.observations, ds.observations)  # views, not copies
        np.testing.assert_array_equal(e.rewards[:, 0], np.arange(start, start + e.size()))
    picker = buf.transition_picker
    last = picker(eps[1], 2)  # terminal: no bootstrap
    assert last.terminal == 1.0 and not last.next_observation.any()
    cut = picker(eps[2], 1)  # the timeout-ended episode bootstraps from its last observation
    assert cut.terminal == 0.0
    np.testing.assert_array_equal(cut.next_observation, ds.observations[8])


def test_conversion_keeps_uint8_frames_and_stacks_like_the_env():
    ds = tiny_dataset("discrete", n_episodes=2, episode_len=6)
    buf = to_d3rlpy_buffer(ds)
    ep = buf.episodes[0]
    assert ep.observations.dtype == np.uint8 and ep.observations.shape == (6, 84, 84)
    assert np.shares_memory(ep.observations, ds.observations)
    assert buf.transition_count == 6 + 5  # the first episode ends in a terminal, the second is cut by a timeout
    t = buf.transition_picker(ep, 1)
    assert t.observation.dtype == np.uint8 and t.observation.shape == (4, 84, 84)
    np.testing.assert_array_equal(t.observation, ds.observations[[0, 0, 0, 1]])  # first frame repeated, as FrameStackObservation
    np.testing.assert_array_equal(t.next_observation, ds.observations[[0, 0, 1, 2]])
    batch = buf.sample_transition_batch(3)
    assert batch.observations.shape == (3, 4, 84, 84)
    with pytest.raises(ValueError, match="n_frames=0"):
        RepeatFirstFrameStackPicker(0)


def test_conversion_rejects_what_it_cannot_represent():
    ds = tiny_dataset("continuous", n_episodes=2, episode_len=4)
    broken = Dataset(ds.observations, ds.actions, ds.rewards, np.eye(1, 8, 1, dtype=bool)[0], ds.timeouts,
                     ds.episode_starts, ds.episode_lengths)
    with pytest.raises(DatasetError, match=r"terminals\[1\] is set inside an episode"):
        to_d3rlpy_buffer(broken)
    single = Dataset.from_arrays(np.zeros((2, 3)), np.zeros((2, 1)), [0, 0], [0, 0], [1, 1])
    with pytest.raises(DatasetError, match="no transition to learn from"):
        to_d3rlpy_buffer(single, warn=False)


# --- training loop -----------------------------------------------------------------------------
def test_learn_trains_exactly_n_steps_and_leaves_global_rngs_alone():
    algo = oz.TD3PlusBC(tiny_dataset(), device="cpu", **oz.TD3PlusBC.tiny_config(_spec("continuous")))
    np_before, torch_before = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    algo.learn(7, progress_bar=False)
    assert algo.num_steps == 7 and algo.d3rlpy_algo.grad_step == 7  # d3rlpy's fit would train 0 steps (< n_steps_per_epoch)
    algo.learn(0, progress_bar=False)
    assert algo.d3rlpy_algo.grad_step == 7
    np.testing.assert_array_equal(np.random.get_state()[1], np_before)
    assert torch.equal(torch.get_rng_state(), torch_before)
    assert set(algo.last_metrics) >= {"loss", "critic_loss"}


def test_metrics_reach_history_and_callbacks():
    algo = oz.BC(tiny_dataset(), device="cpu", batch_size=4, hidden_units=(8,))
    seen = []
    algo.learn(4, progress_bar=False, log_every=2, callback=lambda a: seen.append(a.last_metrics["loss"]) or True)
    assert len(seen) == 4 and all(np.isfinite(seen))
    assert [h["step"] for h in algo.history["train"]] == [2, 4] and algo.history["train"][1]["loss"] == seen[3]


def test_nothing_is_written_or_printed(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    algo = oz.CQL(tiny_dataset(), device="cpu", **oz.CQL.tiny_config(_spec("continuous")))
    algo.learn(3, progress_bar=False)
    algo.predict(tiny_dataset().observations[:2])
    out = tmp_path.parent / f"{tmp_path.name}-saved"
    oz.CQL.load(algo.save(out / "cql"), dataset=tiny_dataset()).learn(1, progress_bar=False)
    assert list(tmp_path.iterdir()) == []  # no d3rlpy_logs/, no model files
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_importing_d3rlpy_hides_only_the_gym_banner():
    code = "import offline_zoo.algos.d3rlpy_baselines as m; m._d3rlpy(); print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n" and "Gym has been unmaintained" not in r.stderr and r.stderr.strip() == ""


# --- configuration -----------------------------------------------------------------------------
def test_per_task_defaults_and_registry_names():
    assert oz.get_algo("td3+bc") is oz.get_algo("TD3_BC") is oz.get_algo("td3bc") is oz.TD3PlusBC
    cql = oz.CQL(tiny_dataset(), device="cpu")  # bound to hopper-medium: CORL's hopper settings
    c = cql.d3rlpy_config
    assert c.actor_encoder_factory.hidden_units == [256, 256, 256] and c.conservative_weight == 10.0
    assert c.actor_learning_rate == 3e-5 and c.alpha_learning_rate == 0.0
    assert type(c.observation_scaler).__name__ == "StandardObservationScaler"
    assert type(c.reward_scaler).__name__ == "ReturnBasedRewardScaler" and c.reward_scaler.multiplier == 1000.0
    assert 0.40e6 < cql.parameter_counts()["total"] < 0.42e6  # Table 14 of the LaMo paper: 0.41M
    iql = oz.IQL(tiny_dataset(), device="cpu", n_steps=1000)
    sched = iql.d3rlpy_config.actor_optim_factory.lr_scheduler_factory
    assert sched.T_max == 1000 and iql.d3rlpy_config.tau == 0.001  # CORL's hopper IQL
    # a task-less discrete dataset: d3rlpy's own defaults, Nature CNN, pixels / 255
    bcq = oz.BCQ(tiny_dataset("discrete"), device="cpu")
    assert type(bcq.d3rlpy_algo).__name__ == "DiscreteBCQ"
    assert bcq.d3rlpy_config.encoder_factory.filters == [[32, 8, 4], [64, 4, 2], [64, 3, 1]]
    assert type(bcq.d3rlpy_config.observation_scaler).__name__ == "PixelObservationScaler"


def test_atari_defaults_follow_d3rlpy_reproductions():
    from offline_zoo.algos.config import task_defaults

    cql = task_defaults("cql", oz.get_task("breakout-medium"))
    assert cql["q_function"] == "qr" and cql["n_quantiles"] == 200 and cql["conservative_weight"] == 4.0
    assert cql["adam_eps"] == pytest.approx(1e-2 / 32) and cql["n_steps"] == 50_000
    assert task_defaults("nfq", oz.get_task("pong-medium"))["learning_rate"] == 5e-5


def test_unsupported_action_spaces_say_which_algorithms_support_which():
    for cls, kind in ((oz.IQL, "discrete"), (oz.TD3PlusBC, "discrete"), (oz.NFQ, "continuous")):
        with pytest.raises(ValueError, match=rf"{cls.__name__} does not support {kind} actions.*Continuous: .*TD3PlusBC.*Discrete \(Atari\): .*NFQ"):
            cls(tiny_dataset(kind))


def test_config_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match=r"n_action_samples=3 does not apply to d3rlpy's DiscreteCQL \(discrete actions\); fields that apply: .*conservative_weight"):
        oz.CQL(tiny_dataset("discrete"), n_action_samples=3)
    with pytest.raises(ConfigError, match=r"reward_scaler='minmax' is not supported; use one of 'none', 'return', 'clip'"):
        oz.BC(tiny_dataset(), reward_scaler="minmax")
    with pytest.raises(ConfigError, match="hidden_units applies to vector observations"):
        oz.NFQ(tiny_dataset("discrete"), hidden_units=(8,))
    with pytest.raises(ConfigError, match=r"q_function='dqn' is not supported"):
        oz.NFQ(tiny_dataset("discrete"), q_function="dqn")


def test_save_load_keeps_scalers_optimizer_and_schedule(tmp_path):
    ds = tiny_dataset()
    algo = oz.IQL(ds, device="cpu", batch_size=4, hidden_units=(8,), n_steps=20).learn(3, progress_bar=False)
    loaded = oz.OfflineAlgo.load(algo.save(tmp_path / "iql"))
    assert loaded.dataset is None
    a, b = algo.d3rlpy_config, loaded.d3rlpy_config
    np.testing.assert_array_equal(a.observation_scaler.mean, b.observation_scaler.mean)
    np.testing.assert_array_equal(algo.predict(ds.observations[:3])[0], loaded.predict(ds.observations[:3])[0])  # no dataset needed
    lr = lambda x: x.d3rlpy_algo.impl.modules.actor_optim.optim.param_groups[0]["lr"]  # noqa: E731
    assert lr(loaded) == lr(algo) < 3e-4  # the cosine schedule continued, not restarted
    assert loaded.d3rlpy_algo.grad_step == 3


def _spec(kind):
    ds = tiny_dataset(kind)
    task = ds.task.name if ds.task else None
    return Spec(tuple(ds.observation_shape), ds.action_dim, ds.discrete, task, ds.observations.dtype == np.uint8)
