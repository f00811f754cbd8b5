"""Saved files cannot run code, writes are atomic, damaged files give errors that name them."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

import offline_zoo as oz
from offline_zoo.files import atomic_write_bytes, atomic_writer
from offline_zoo.testing import tiny_dataset


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _rewrite_zip(src, dst, replace=None, drop=()):
    replace = replace or {}
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist() if n not in drop}
    entries.update(replace)
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return dst


def _tiny_cql(**kw):
    return oz.CQL(tiny_dataset(), device="cpu", batch_size=4, hidden_units=(8,), n_action_samples=2, **kw)


def test_a_crafted_baseline_zip_raises_and_runs_nothing(tmp_path):
    saved = _tiny_cql().learn(2, progress_bar=False).save(tmp_path / "cql")
    marker = tmp_path / "pwned"
    evil_tensors = io.BytesIO()
    torch.save({"actor": _Payload(marker)}, evil_tensors)
    crafted = _rewrite_zip(saved, tmp_path / "weights.zip", {"d3rlpy/modules.pt": evil_tensors.getvalue()})
    with pytest.raises(ValueError, match=r"modules.pt of the saved CQL holds objects other than tensors.*refusing to unpickle"):
        oz.OfflineAlgo.load(crafted)
    assert not marker.exists()

    # format 1 stored d3rlpy's pickle: refused unless trusted explicitly, also behind a DT's meta
    legacy = _rewrite_zip(saved, tmp_path / "legacy.zip", {"d3rlpy/model.d3": pickle.dumps(_Payload(marker))},
                          drop=("d3rlpy/config.json", "d3rlpy/modules.pt"))
    with pytest.raises(ValueError, match=r"older offline-zoo.*pickle \(d3rlpy/model.d3\).*trust_pickle=True"):
        oz.OfflineAlgo.load(legacy)
    with pytest.raises(ValueError, match="trust_pickle=True"):
        oz.CQL.load(legacy)
    assert not marker.exists()
    with pytest.raises(Exception):  # trusted: the payload runs, as documented (and is no d3rlpy model)
        oz.OfflineAlgo.load(legacy, trust_pickle=True)
    assert marker.exists()


def test_a_crafted_state_file_raises_and_runs_nothing(tmp_path):
    saved = oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=4, batch_size=4, device="cpu").save(tmp_path / "dt")
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"state": _Payload(marker)}, evil)
    with pytest.raises(ValueError, match=r"state.pt holds objects other than tensors"):
        oz.OfflineAlgo.load(_rewrite_zip(saved, tmp_path / "evil.zip", {"state.pt": evil.getvalue()}))
    assert not marker.exists()


def test_baseline_round_trip_stores_json_and_tensors_only(tmp_path):
    algo = _tiny_cql().learn(3, progress_bar=False)
    path = algo.save(tmp_path / "cql")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        config = json.loads(z.read("d3rlpy/config.json"))
    assert {"meta.json", "state.pt", "d3rlpy/config.json", "d3rlpy/modules.pt"} == names
    assert config["config"]["type"] == "cql"
    loaded = oz.OfflineAlgo.load(path)
    obs = tiny_dataset().observations[:5]
    np.testing.assert_allclose(loaded.predict(obs)[0], algo.predict(obs)[0], rtol=1e-6, atol=1e-7)
    assert loaded.d3rlpy_algo.grad_step == 3


@pytest.mark.parametrize("name", ["CQL", "BC", "IQL", "TD3PlusBC", "BCQ"])
def test_save_before_learn_with_state_normalisation(tmp_path, name):
    cls = getattr(oz, name)
    kw = {"n_action_samples": 2} if name == "CQL" else {}
    algo = cls(tiny_dataset(), device="cpu", batch_size=4, hidden_units=(8,), normalize_states=True, **kw)
    loaded = oz.OfflineAlgo.load(algo.save(tmp_path / name))
    obs = tiny_dataset().observations[:4]
    np.testing.assert_allclose(loaded.predict(obs)[0], algo.predict(obs)[0], rtol=1e-6, atol=1e-7)
    fitted = algo.d3rlpy_config.observation_scaler
    assert fitted.built and np.abs(fitted.mean).max() > 0
    np.testing.assert_array_equal(loaded.d3rlpy_config.observation_scaler.mean, fitted.mean)


def test_atomic_writes_leave_no_temporaries_and_normal_permissions(tmp_path):
    target = tmp_path / "ckpt" / "model.zip"
    atomic_write_bytes(target, b"old")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    # a writer that fails leaves the old content and no temporary file
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(target) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["model.zip"]
    # what a killed writer left behind (a pid that no longer runs) goes at the next write; a live one stays
    dead = target.parent / ".model.zip.999999999.abc123.tmp"
    live = target.parent / f".model.zip.{os.getpid()}.def456.tmp"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and not dead.exists() and live.exists()


def test_algo_save_is_atomic_and_names_an_unwritable_target(tmp_path):
    algo = oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=4, batch_size=4, device="cpu")
    algo.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match=r"cannot write '.*file/m.zip'"):
        algo.save(blocker / "m")


def test_damaged_files_give_errors_that_name_them(tmp_path):
    good = oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=4, batch_size=4, device="cpu").save(tmp_path / "dt")
    data = good.read_bytes()
    cases = {
        "truncated.zip": data[: len(data) // 2],
        "random.zip": np.random.default_rng(0).bytes(4096),
        "empty.zip": b"",
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError, match=rf"{name} is not a readable saved algorithm"):
            oz.OfflineAlgo.load(tmp_path / name)
    with pytest.raises(ValueError, match=r"no-meta.zip is a zip but not a saved offline-zoo algorithm: it has no meta.json"):
        oz.OfflineAlgo.load(_rewrite_zip(good, tmp_path / "no-meta.zip", drop=("meta.json",)))
    with pytest.raises(ValueError, match=r"torn.zip: meta.json is damaged"):
        oz.OfflineAlgo.load(_rewrite_zip(good, tmp_path / "torn.zip", {"meta.json": b'{"algo": "dt"'}))
    meta = json.loads(zipfile.ZipFile(good).read("meta.json"))
    meta["config"]["bach_size"] = 8
    with pytest.raises(ValueError, match=r"config field\(s\) 'bach_size' that this offline-zoo's DT does not know"):
        oz.OfflineAlgo.load(_rewrite_zip(good, tmp_path / "key.zip", {"meta.json": json.dumps(meta).encode()}))
    del meta["config"]["bach_size"], meta["rng"]
    with pytest.raises(ValueError, match=r"meta.json lacks rng"):
        oz.OfflineAlgo.load(_rewrite_zip(good, tmp_path / "norng.zip", {"meta.json": json.dumps(meta).encode()}))


# -- bad input is refused with the value and what is allowed ---------------------------------------
def test_weights_that_do_not_fit_the_network_give_a_clear_error(tmp_path):
    # e.g. a Wiki-RL agent saved before its timestep table held all of wpe's rows
    good = oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=4, batch_size=4, device="cpu").save(tmp_path / "dt")
    saved = torch.load(io.BytesIO(zipfile.ZipFile(good).read("state.pt")), weights_only=True)
    table = saved["state"]["model"]["embed_timestep.weight"]
    saved["state"]["model"]["embed_timestep.weight"] = torch.zeros(table.shape[0] - 24, table.shape[1])
    buf = io.BytesIO()
    torch.save(saved, buf)
    with pytest.raises(ValueError, match=r"old.zip: its weights do not fit the DT network .*size mismatch for embed_timestep.weight.*retrain"):
        oz.OfflineAlgo.load(_rewrite_zip(good, tmp_path / "old.zip", {"state.pt": buf.getvalue()}))


def test_a_file_saved_before_a_config_field_existed_keeps_the_behaviour_it_was_saved_with(tmp_path):
    # window_anchor, action_loss_reduction, timestep_init and DT's body fields came after DT files were
    # first saved, and their defaults are not what those files were trained with (the released "start",
    # "mean", N(0, 1) table, GPT-2's residual draw and LayerNorm eps 1e-5)
    fields = ("window_anchor", "action_loss_reduction", "timestep_init", "residual_init", "layer_norm_eps")
    path = oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=4, batch_size=4, device="cpu").save(tmp_path / "dt")
    meta = json.loads(zipfile.ZipFile(path).read("meta.json"))
    for field in fields:
        del meta["config"][field]
    loaded = oz.OfflineAlgo.load(_rewrite_zip(path, tmp_path / "old.zip", {"meta.json": json.dumps(meta).encode()}))
    assert tuple(getattr(loaded.config, f) for f in fields) == ("start", "mean", "released", "gpt2", 1e-5)
    fresh = oz.DT(tiny_dataset(), device="cpu").config  # while a new DT gets today's defaults
    assert tuple(getattr(fresh, f) for f in fields) == ("end", "sum_dims", "gpt2", "unscaled", 3e-3)


def test_ratio_must_be_a_number_and_a_tiny_ratio_warns():
    for bad in ("0.1", True, None):
        with pytest.raises(oz.DatasetError, match=rf"ratio={bad!r} is not a number"):
            oz.DT(tiny_dataset(), ratio=bad)
    with pytest.warns(UserWarning, match=r"ratio=1e-09 of 10 trajectories is less than one trajectory; keeping 1"):
        sub = tiny_dataset(n_episodes=10).subsample(1e-9)
    assert sub.n_episodes == 1


@pytest.mark.parametrize(
    "cls, field, value, message",
    [
        ("DT", "batch_size", 0, r"DTConfig.batch_size=0 is out of range: it must be an integer >= 1"),
        ("DT", "learning_rate", -1, r"DTConfig.learning_rate=-1 is out of range: it must be a number > 0"),
        ("DT", "n_layer", "two", r"DTConfig.n_layer='two' has the wrong type \(str\): it must be an integer"),
        ("DT", "dropout", 1.0, r"DTConfig.dropout=1.0 is out of range: it must be a number in \[0, 1\)"),
        ("DT", "n_steps", 10.5, r"DTConfig.n_steps=10.5 has the wrong type \(float\)"),
        ("DT", "fast_kernels", 1, r"DTConfig.fast_kernels=1 has the wrong type \(int\): it must be True or False"),
        ("DT", "learning_rate", float("nan"), r"DTConfig.learning_rate=nan is not finite"),
        ("CQL", "hidden_units", "64", r"CQLConfig.hidden_units='64' has the wrong type \(str\): it must be a list of ints or None"),
        ("CQL", "batch_size", -4, r"CQLConfig.batch_size=-4 is out of range"),
        ("CQL", "gamma", 1.5, r"CQLConfig.gamma=1.5 is out of range: it must be a number in \(0, 1\]"),
        ("IQL", "expectile", 1.0, r"IQLConfig.expectile=1.0 is out of range"),
    ],
)
def test_config_fields_are_checked_for_type_and_range(cls, field, value, message):
    with pytest.raises(oz.ConfigError, match=message):
        getattr(oz, cls)(tiny_dataset(), **{field: value})


def test_lossless_config_conversions_are_kept():
    algo = oz.CQL(tiny_dataset(), n_steps=1e3, hidden_units=[8, 8], alpha_learning_rate=0)  # 0: a fixed alpha
    assert algo.config.n_steps == 1000 and isinstance(algo.config.n_steps, int)
    assert algo.config.hidden_units == (8, 8)


def test_evaluate_and_learn_arguments_are_checked():
    algo = oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=4, batch_size=4, device="cpu")
    for bad in (0, 1.5, -2, True):
        with pytest.raises(ValueError, match=rf"n_episodes={bad!r} must be a whole number >= 1"):
            algo.evaluate(n_episodes=bad)
    for bad, shown in (([], r"\[\]"), ([float("nan")], r"\[nan\]"), ("abc", "'abc'"), ([1.0, "x"], r"\[1.0, 'x'\]")):
        with pytest.raises(ValueError, match=rf"target_returns={shown} must be a finite number or a non-empty list"):
            algo.evaluate(n_episodes=1, target_returns=bad)
    with pytest.raises(ValueError, match=r"eval_every=0 must be a whole number >= 1"):
        algo.learn(2, eval_every=0, progress_bar=False)
    assert algo.num_steps == 0


def test_actions_outside_the_action_space_are_refused():
    ds = tiny_dataset()
    with pytest.raises(oz.DatasetError, match=r"actions of dimension 0 span \[-5, 4.9\d*\] but task 'hopper-medium' allows \[-1, 1\].*np.clip"):
        oz.Dataset.from_arrays(ds.observations, np.linspace(-5, 5, ds.n_steps * 3).reshape(-1, 3), ds.rewards, ds.terminals, ds.timeouts, task="hopper-medium")
    inside = oz.Dataset.from_arrays(ds.observations, np.clip(ds.actions, -1, 1), ds.rewards, ds.terminals, ds.timeouts, task="hopper-medium")
    assert inside.n_steps == ds.n_steps


def test_normalized_score_wants_finite_numbers():
    assert oz.normalized_score("hopper-medium", np.array([3234.3]))[0] == pytest.approx(100.0, abs=0.01)
    for bad in ("100", float("nan"), [1.0, float("inf")], None):
        with pytest.raises(ValueError, match=r"returns=.* must be a number|non-finite"):
            oz.normalized_score("hopper-medium", bad)


def test_generation_refuses_negative_noise(tmp_path):
    from offline_zoo.data.generation import generate_dataset

    with pytest.raises(ValueError, match=r"noise=-1 must be a finite number >= 0"):
        generate_dataset("reacher2d-medium", n_episodes=1, root=tmp_path, noise=-1)
    with pytest.raises(ValueError, match=r"n_episodes=0 must be a whole number >= 1"):
        generate_dataset("reacher2d-medium", n_episodes=0, root=tmp_path)
    assert not any(tmp_path.iterdir())
