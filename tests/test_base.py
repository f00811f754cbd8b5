"""OfflineAlgo base behaviour, exercised through a minimal user-defined algorithm."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

import offline_zoo as oz
from offline_zoo.algos import AlgoConfig, ConfigError, OfflineAlgo, register_algo
from offline_zoo.callbacks import CheckpointCallback, EvalCallback, StopTrainingOnNoImprovement
from offline_zoo.data import TransitionSampler, default_subset_seed
from offline_zoo.testing import check_algo, tiny_dataset


@dataclass
class LinearBCConfig(AlgoConfig):
    learning_rate: float = 1e-2
    batch_size: int = 16


@register_algo
class LinearBC(OfflineAlgo):
    """A linear behaviour-cloning policy: the smallest complete OfflineAlgo."""

    name = "linear-bc-test"
    config_class = LinearBCConfig
    action_spaces = frozenset({"continuous"})

    def _build(self):
        self.model = torch.nn.Linear(self.spec.observation_shape[0], self.spec.action_dim)
        self.optimizers = {"policy": torch.optim.Adam(self.model.parameters(), lr=self.config.learning_rate)}

    def _train_step(self):
        if not hasattr(self, "_sampler") or self._sampler.dataset is not self.dataset:
            self._sampler = TransitionSampler(self.dataset, normalize=True)
            self._sampler.rng = self.rng
        b = self._sampler.sample(self.config.batch_size)
        loss = ((self.model(torch.as_tensor(b["observations"])) - torch.as_tensor(b["actions"])) ** 2).mean()
        self.optimizers["policy"].zero_grad()
        loss.backward()
        self.optimizers["policy"].step()
        return {"loss": loss.detach()}

    def _predict(self, obs, state):
        x = (obs - self.stats["state_mean"]) / self.stats["state_std"]
        return self.model(torch.as_tensor(x)).numpy()


def test_user_algorithm_passes_conformance():
    check_algo(LinearBC, tiny_dataset("continuous"))


def test_registry_lookup_and_errors():
    assert oz.get_algo("Linear_BC_Test") is LinearBC
    assert "linear-bc-test" in oz.list_algos()
    with pytest.raises(KeyError, match="unknown algorithm 'linear-bc-tset'.*Did you mean"):
        oz.get_algo("linear-bc-tset")
    # a name that finds another class is refused ('%BC' spells the built-in 'bc'); nothing changes
    with pytest.raises(ValueError, match="cannot register Clash as '%BC'.*already finds offline_zoo.algos.d3rlpy_baselines.BC"):
        register_algo(type("Clash", (LinearBC,), {"name": "clash-test"}), aliases=("%BC",))
    assert oz.get_algo("bc") is oz.BC and "clash-test" not in oz.list_algos()
    # registering the same class again, or a new definition of it, is fine
    assert register_algo(LinearBC) is LinearBC
    redefined = register_algo(type("LinearBC", (LinearBC,), {"__module__": LinearBC.__module__, "__qualname__": "LinearBC"}))
    assert oz.get_algo("linear-bc-test") is redefined
    register_algo(LinearBC)


def test_unknown_config_field_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"'learning_rat'.*did you mean 'learning_rate'.*Valid fields: .*batch_size"):
        LinearBC(tiny_dataset(), learning_rat=1.0)


def test_config_file_layers(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_text("default: {batch_size: 8}\nmujoco: {learning_rate: 0.5}\nwalker2d: {learning_rate: 9.0}\n")
    algo = LinearBC(tiny_dataset(), config_file=f, batch_size=4)
    assert algo.config.learning_rate == 0.5 and algo.config.batch_size == 4


def test_bad_ratio_and_input_errors():
    ds = tiny_dataset()
    with pytest.raises(ValueError, match=r"ratio=1.5 is outside \(0, 1\]"):
        LinearBC(ds, ratio=1.5)
    algo = LinearBC(ds)
    with pytest.raises(ValueError, match=r"observation has shape \(5, 7\); expected \(11,\)"):
        algo.predict(np.zeros((5, 7)))
    with pytest.raises(ValueError, match="n_steps=-1"):
        algo.learn(-1)
    with pytest.raises(ValueError, match="does not support discrete actions"):
        LinearBC(tiny_dataset("discrete"))


def test_ratio_subsamples_whole_trajectories():
    algo = LinearBC(tiny_dataset(n_episodes=10), ratio=0.3, seed=1)
    assert algo.dataset.n_episodes == 3
    assert algo.data_info["selection_hash"] == LinearBC(tiny_dataset(n_episodes=10), ratio=0.3, seed=1).data_info["selection_hash"]


def test_one_trajectory_subset_for_every_training_seed():
    # the released MuJoCo/Kitchen code trains every seed on one subsampled file per (task, ratio)
    ds = tiny_dataset(n_episodes=20)
    runs = [LinearBC(ds, ratio=0.3, seed=seed) for seed in (0, 1, 2)]
    assert len({r.data_info["selection_hash"] for r in runs}) == 1
    assert [r.data_info["subsample_seed"] for r in runs] == [0, 0, 0]
    assert not torch.equal(runs[0].model.weight, runs[1].model.weight)  # the training seed still differs
    other = LinearBC(ds, ratio=0.3, seed=0, subset_seed=5)                # an explicit other subset
    assert other.data_info["subsample_seed"] == 5 and other.data_info["selection_hash"] != runs[0].data_info["selection_hash"]
    with pytest.raises(ValueError, match=r"subset_seed=-1 must be a whole number >= 0"):
        LinearBC(ds, ratio=0.3, subset_seed=-1)
    # the released Atari code draws its trajectories per run: the training seed
    assert [default_subset_seed("pong-medium", s) for s in (0, 1, 2)] == [0, 1, 2]
    assert [default_subset_seed("walker2d-medium", s) for s in (0, 1, 2)] == [0, 0, 0]


def test_callbacks_eval_checkpoint_and_early_stop(tmp_path):
    algo = LinearBC(tiny_dataset(), eval_episodes=1)
    ev = EvalCallback(2, n_episodes=1)
    ck = CheckpointCallback(3, tmp_path, keep_last=1)
    stop = StopTrainingOnNoImprovement(ev, patience=10**6)
    algo.learn(6, callback=[ev, ck, stop], progress_bar=False)
    assert [h["step"] for h in ev.history] == [2, 4, 6]
    assert all(np.isfinite(h["score"]) for h in ev.history)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_6.zip"]
    assert OfflineAlgo.load(tmp_path / "checkpoint_6.zip").num_steps == 6

    halted = LinearBC(tiny_dataset())
    halted.learn(50, callback=lambda a: a.num_steps < 5, progress_bar=False)
    assert halted.num_steps == 5


def test_save_is_atomic_and_load_checks_class(tmp_path):
    algo = LinearBC(tiny_dataset()).learn(2, progress_bar=False)
    p = algo.save(tmp_path / "m")
    assert p.name == "m.zip" and [x.name for x in tmp_path.iterdir()] == ["m.zip"]
    meta_algo = OfflineAlgo.load(p)
    assert isinstance(meta_algo, LinearBC) and meta_algo.dataset is None
    with pytest.raises(RuntimeError, match="no dataset to train on"):
        meta_algo.learn(1)
    with pytest.raises(FileNotFoundError):
        OfflineAlgo.load(tmp_path / "missing.zip")


class UnregisteredBC(LinearBC):
    """Never registered: a suite's ``module:Class``, or a class in a notebook."""

    name = "unregistered-bc-test"


def test_an_unregistered_class_loads_through_itself_only(tmp_path):
    algo = UnregisteredBC(tiny_dataset()).learn(2, progress_bar=False)
    p = algo.save(tmp_path / "u")
    same = UnregisteredBC.load(p)
    assert type(same) is UnregisteredBC and same.num_steps == 2
    obs = tiny_dataset().observations[:3]
    np.testing.assert_array_equal(same.predict(obs)[0], algo.predict(obs)[0])
    with pytest.raises(KeyError, match="not registered in this process.*UnregisteredBC.load"):
        OfflineAlgo.load(p)
    with pytest.raises(TypeError, match="holds a LinearBC, not a UnregisteredBC"):
        UnregisteredBC.load(LinearBC(tiny_dataset()).save(tmp_path / "l"))


def test_checkpoint_inside_learn_continues_exactly(tmp_path):
    from offline_zoo.algos.dt import DT

    ds = tiny_dataset()
    a = DT(ds, hidden_size=8, n_layer=1, context_len=3, batch_size=4)
    a.learn(4, callback=CheckpointCallback(2, tmp_path), progress_bar=False)
    b = DT.load(tmp_path / "checkpoint_2.zip", dataset=ds)
    b.learn(2, progress_bar=False)
    obs = ds.observations[:3]
    np.testing.assert_allclose(b.predict(obs, state=b.new_rollout_state(3))[0], a.predict(obs, state=a.new_rollout_state(3))[0], atol=1e-6)


def test_a_model_of_a_task_of_ones_own_loads_where_the_task_is_not_registered(tmp_path):
    from dataclasses import asdict, replace

    from offline_zoo import tasks as task_registry

    mine = oz.register_task(replace(oz.get_task("hopper-medium"), name="my-hopper-test", target_returns=(100.0, 50.0)))
    data = tiny_dataset()
    data = type(data).from_arrays(data.observations, data.actions, data.rewards, data.terminals, data.timeouts, task="my-hopper-test")
    path = LinearBC(data).learn(1, progress_bar=False).save(tmp_path / "mine")
    del task_registry._TASKS["my-hopper-test"]  # a fresh process: the task is unknown
    loaded = OfflineAlgo.load(path)
    assert loaded.task == mine and asdict(oz.get_task("my-hopper-test")) == asdict(mine)
    assert loaded.task.normalized_score(mine.ref_max_score) == pytest.approx(100.0)


def test_progress_bar_keeps_the_step_count_on_an_80_column_terminal():
    import io

    from rich.console import Console

    from offline_zoo.algos.base import _progress

    for width in (60, 80, 120):
        buf = io.StringIO()
        console = Console(file=buf, width=width, color_system=None)
        p = _progress("TD3PlusBC", 100_000, console=console)
        task = p.add_task("TD3PlusBC", total=100_000, info="")
        p.update(task, completed=12_345, info="critic_loss 0.1234 actor_loss -2.345 alpha 0.5 | score 12.3")
        console.print(p.get_renderable())
        line = buf.getvalue().rstrip("\n")
        assert "12345/100000" in line and "TD3PlusBC" in line and "0:00:00" in line, line
        assert len(line) <= width, line
