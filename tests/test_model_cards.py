"""Model folders: save_pretrained / from_pretrained / push_to_hub, and the model card.

Tiny models on the tiny random dataset; the hub is never reached: ``snapshot_download`` and
``HfApi``'s methods are replaced by fakes that record their calls.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import huggingface_hub
import numpy as np
import pytest
import yaml
from huggingface_hub import errors as hub_errors
from safetensors.torch import load_file

import offline_zoo as oz
from offline_zoo.algos.pretrained import HubNotReachableError, is_model_folder, unpack_tensors
from offline_zoo.evaluation import EvaluationResult
from offline_zoo.testing import tiny_dataset

TINY_LM = dict(lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2, corpus="random", lm_block_size=8, lm_batch_size=1)
TINY_SEQ = dict(device="cpu", context_len=4, batch_size=4)
MAKERS = {
    "dt": lambda: oz.DT(tiny_dataset(), hidden_size=16, n_layer=1, **TINY_SEQ),
    "lamo": lambda: oz.LaMo(tiny_dataset(), **TINY_LM, **TINY_SEQ),
    "bc": lambda: oz.BC(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,)),
    "td3+bc": lambda: oz.TD3PlusBC(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,)),
}
FILES = ["README.md", "config.json", "model.safetensors", "stats.json"]


def _observations(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 11)).astype(np.float32)


def _rollout(algo, steps=3):
    """Actions of a few steps of 3 parallel episodes (sequence models carry their context)."""
    state = algo.new_rollout_state(3) if algo.conditions_on_return else None
    out = []
    for t in range(steps):
        actions, state = algo.predict(_observations(seed=t), state=state)
        if state is not None:
            state.record_reward(np.ones(3))
        out.append(actions)
    return np.stack(out)


@pytest.fixture(scope="module")
def trained_dt():
    algo = MAKERS["dt"]().learn(3, progress_bar=False)
    # an evaluation as EvalCallback records it (no environment needed for the card)
    result = EvaluationResult({1800.0: np.array([500.0, 700.0]), 3600.0: np.array([900.0, 1100.0])},
                              {1800.0: np.array([100, 120]), 3600.0: np.array([150, 160])},
                              {1800.0: np.array([15.0, 21.0]), 3600.0: np.array([27.0, 33.0])},
                              task="hopper-medium", env_id="Hopper-v5")
    algo.log_evaluation({"step": algo.num_steps, **result.to_dict()})
    return algo


def test_folder_layout_config_and_stats(trained_dt, tmp_path):
    folder = trained_dt.save_pretrained(tmp_path / "dt")
    assert folder == tmp_path / "dt" and sorted(p.name for p in folder.iterdir()) == FILES
    assert is_model_folder(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["library_name"] == "offline-zoo" and config["algorithm"] == "dt" and config["class"] == "DT"
    assert config["config"] == json.loads(json.dumps(asdict(trained_dt.config)))
    assert config["offline_zoo_version"] == oz.algos.base.versions()["offline-zoo"]
    assert config["observation_space"] == {"shape": [11], "dtype": "float32"}
    assert config["action_space"] == {"type": "continuous", "dim": 3}
    assert config["task"] == "hopper-medium" and config["num_steps"] == 3 and config["seed"] == 0
    stats = json.loads((folder / "stats.json").read_text())
    assert sorted(stats) == ["state_mean", "state_std"]
    np.testing.assert_array_equal(np.asarray(stats["state_mean"], np.float32), trained_dt.stats["state_mean"])
    tensors = load_file(str(folder / "model.safetensors"))
    assert "state.model.body.wpe.weight" in tensors and "torch_rng" in tensors
    # config.json's layout names every tensor (tied weights are stored once)
    saved = unpack_tensors(config["tensors"], tensors)["state"]["model"]
    for name, value in trained_dt.model.state_dict().items():
        np.testing.assert_array_equal(saved[name].numpy(), value.numpy())


def test_model_card(trained_dt, tmp_path):
    extra = EvaluationResult({3600.0: np.array([1000.0])}, {3600.0: np.array([200])}, {3600.0: np.array([31.5])},
                             task="hopper-medium", env_id="Hopper-v5")
    card = (trained_dt.save_pretrained(tmp_path / "dt", evaluation=extra, repo_id="me/dt-hopper") / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "offline-zoo"
    assert {"offline-rl", "dt", "hopper-medium"} <= set(meta["tags"])
    assert body.lstrip().startswith("# DT on hopper-medium")
    for row in ("| Task | `hopper-medium` |", "| Data source | synthetic |", "| Ratio (fraction of trajectories kept) | 1 |",
                "| Training seed | 0 |", "| Training steps | 3 |", "| Actions | continuous, 3 dimensions |"):
        assert row in body, row
    # the evaluation of history (best target 3600: score 30) and the one passed in
    assert "| 3 | 30.0 | 3600 | 1000.0 | 2 | Hopper-v5 |" in body
    assert "| 3 | 31.5 | 3600 | 1000.0 | 1 | Hopper-v5 |" in body
    assert 'OfflineAlgo.from_pretrained("me/dt-hopper")' in body
    for pkg in ("torch", "transformers", "d3rlpy", "gymnasium", "mujoco"):
        assert f"| {pkg} | `" in body, pkg


def test_an_unevaluated_model_says_so(tmp_path):
    card = (MAKERS["bc"]().save_pretrained(tmp_path / "bc") / "README.md").read_text()
    assert "Not evaluated yet" in card and "- bc" in card


@pytest.mark.parametrize("name", list(MAKERS))
def test_round_trip_gives_equal_predictions(name, tmp_path):
    algo = MAKERS[name]().learn(3, progress_bar=False)
    expected = _rollout(algo)
    folder = algo.save_pretrained(tmp_path / "model")
    loaded = oz.OfflineAlgo.from_pretrained(folder, device="cpu")
    assert type(loaded) is type(algo) and loaded.num_steps == 3 and loaded.config == algo.config
    np.testing.assert_array_equal(_rollout(loaded), expected)
    # called on the class itself, and with the dataset: training continues as after load()
    again = type(algo).from_pretrained(str(folder), device="cpu", dataset=algo.dataset).learn(2, progress_bar=False)
    reference = oz.OfflineAlgo.load(algo.save(tmp_path / "model.zip"), device="cpu", dataset=algo.dataset).learn(2, progress_bar=False)
    np.testing.assert_array_equal(_rollout(again), _rollout(reference))


def test_wrong_algorithm_is_refused(tmp_path):
    folder = MAKERS["bc"]().save_pretrained(tmp_path / "bc")
    with pytest.raises(TypeError, match=r"holds a BC, not a DT; load it with BC.from_pretrained or OfflineAlgo.from_pretrained"):
        oz.DT.from_pretrained(folder, device="cpu")


def test_folders_that_are_not_model_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"is not an offline-zoo model folder: it has no config.json \(it holds: nothing\)"):
        oz.OfflineAlgo.from_pretrained(empty)
    other = tmp_path / "transformers-model"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"library_name": "transformers", "model_type": "gpt2"}))
    with pytest.raises(ValueError, match=r"its config.json was not written by offline-zoo's save_pretrained \(library_name: 'transformers'\)"):
        oz.OfflineAlgo.from_pretrained(other)
    zipped = MAKERS["dt"]().save(tmp_path / "dt")
    with pytest.raises(ValueError, match=r"is a file, not a model folder: a .zip written by algo.save loads with OfflineAlgo.load"):
        oz.OfflineAlgo.from_pretrained(zipped)
    with pytest.raises(FileNotFoundError, match=r"no model folder at './nowhere'"):
        oz.OfflineAlgo.from_pretrained("./nowhere")
    folder = MAKERS["dt"]().save_pretrained(tmp_path / "incomplete")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"without model.safetensors: the folder is incomplete"):
        oz.OfflineAlgo.from_pretrained(folder)


def test_overwriting_a_folder_of_something_else_needs_overwrite(tmp_path):
    algo = MAKERS["dt"]()
    target = tmp_path / "notes"
    target.mkdir()
    (target / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"is not empty \(todo.txt\) and is not an offline-zoo model folder.*overwrite=True"):
        algo.save_pretrained(target)
    assert sorted(p.name for p in target.iterdir()) == ["todo.txt"]
    algo.save_pretrained(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES + ["todo.txt"])
    algo.learn(1, progress_bar=False).save_pretrained(target)  # a model folder is overwritten freely
    assert oz.OfflineAlgo.from_pretrained(target, device="cpu").num_steps == 1
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        algo.save_pretrained(target / "todo.txt")


@pytest.fixture(autouse=True)
def hub_probe(monkeypatch):
    """The TCP probe of the hub that precedes a download: never the real one here (no network)."""
    from offline_zoo.lm import loading

    probe = {"answer": (True, ""), "calls": 0}

    def fake(timeout=3.0):
        probe["calls"] += 1
        return probe["answer"]

    monkeypatch.setattr(loading, "_hub_reachable", fake)
    return probe


class _FakeSnapshotDownload:
    def __init__(self, folder=None, error=None):
        self.folder, self.error, self.calls = folder, error, []

    def __call__(self, repo_id, **kwargs):
        self.calls.append((repo_id, kwargs))
        if self.error is not None:
            raise self.error
        return str(self.folder)


def test_hub_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "me/dt-tiny" is no local folder
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    algo = MAKERS["dt"]().learn(2, progress_bar=False)
    fake = _FakeSnapshotDownload(algo.save_pretrained(tmp_path / "cache" / "snapshot"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    loaded = oz.OfflineAlgo.from_pretrained("me/dt-tiny", device="cpu", revision="main")
    np.testing.assert_array_equal(_rollout(loaded), _rollout(algo))
    (repo_id, kwargs), = fake.calls
    assert repo_id == "me/dt-tiny" and kwargs["revision"] == "main" and not kwargs.get("local_files_only")
    assert sorted(kwargs["allow_patterns"]) == FILES and kwargs["etag_timeout"] <= 10
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the cache only
    oz.DT.from_pretrained("me/dt-tiny", device="cpu")
    assert fake.calls[-1][1]["local_files_only"] is True


@pytest.mark.parametrize("offline, error", [
    (False, hub_errors.LocalEntryNotFoundError(
        "An error happened while trying to locate the files on the Hub and we cannot find the appropriate snapshot "
        "folder for the specified revision on the local disk. Please check your internet connection and try again.")),
    (False, ConnectionError("[Errno -3] Temporary failure in name resolution")),
    (True, hub_errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled.")),
])
def test_an_unreachable_hub_fails_fast_and_clearly(offline, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _FakeSnapshotDownload(error=error))
    start = time.monotonic()
    with pytest.raises(HubNotReachableError) as info:
        oz.OfflineAlgo.from_pretrained("me/not-cached")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "'me/not-cached'" in message and "no local folder of that name" in message
    assert ("HF_HUB_OFFLINE" in message) if offline else ("the Hugging Face Hub could not be reached" in message)
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize("cached", [False, True])
def test_without_a_hub_the_cache_is_used_or_the_error_says_so(cached, hub_probe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    hub_probe["answer"] = (False, "the hub (https://huggingface.co) is not reachable: [Errno 101] Network is unreachable")
    folder = MAKERS["bc"]().save_pretrained(tmp_path / "cached") if cached else None
    error = None if cached else hub_errors.LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder for the specified revision on the local disk.")
    fake = _FakeSnapshotDownload(folder, error)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    if cached:
        assert type(oz.OfflineAlgo.from_pretrained("me/bc", device="cpu")).__name__ == "BC"
    else:
        with pytest.raises(HubNotReachableError, match=r"cannot load 'me/bc': there is no local folder of that name, and the Hugging Face "
                                                       r"Hub could not be reached \(\[Errno 101\] Network is unreachable\)"):
            oz.OfflineAlgo.from_pretrained("me/bc")
    assert hub_probe["calls"] == 1 and fake.calls[-1][1]["local_files_only"] is True


def test_offline_mode_with_the_real_hub_client_touches_no_network(tmp_path, monkeypatch):
    # the real snapshot_download, restricted to the local cache: fails at once for an id not cached
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubNotReachableError, match=r"cannot load 'offline-zoo-tests/never-uploaded'.*HF_HUB_OFFLINE"):
        oz.OfflineAlgo.from_pretrained("offline-zoo-tests/never-uploaded")
    assert time.monotonic() - start < 5


def test_push_to_hub_records_the_right_calls(monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        files = sorted(p.name for p in folder.iterdir())
        card = (folder / "README.md").read_text()
        calls.append(("upload_folder", kwargs, files, card))
        return "commit-info"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    algo = MAKERS["bc"]().learn(1, progress_bar=False)
    assert algo.push_to_hub("me/bc-hopper", private=True, token="hf_fake", commit_message="first upload") == "commit-info"
    (kind, repo_id, kwargs), (kind2, upload, files, card) = calls
    assert (kind, repo_id, kind2) == ("create_repo", "me/bc-hopper", "upload_folder")
    assert kwargs["private"] is True and kwargs["exist_ok"] is True and kwargs.get("repo_type", "model") == "model"
    assert upload["repo_id"] == "me/bc-hopper" and upload["commit_message"] == "first upload" and upload["token"] == "hf_fake"
    assert files == FILES and 'from_pretrained("me/bc-hopper")' in card
    from pathlib import Path

    assert not Path(upload["folder_path"]).exists()  # the temporary folder is gone
    algo.push_to_hub("me/bc-hopper")
    assert calls[-2][2]["private"] is False and "Upload BC (1 steps) with offline-zoo" == calls[-1][1]["commit_message"]
