"""Locally generated D4RL-style datasets: determinism, Minari round trip, Reacher2d statistics,
shipped behaviour policies. Offline and small (a few seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from offline_zoo import get_task
from offline_zoo.cli import data_main
from offline_zoo.data.generation import (
    MEDIUM_TARGETS,
    POLICY_DIR,
    GenerationError,
    MLPActor,
    generate_dataset,
    generated_dataset_path,
    generation_metadata,
    load_policy,
    rollout,
    save_policy,
)
from offline_zoo.data.loaders import load_dataset


@pytest.fixture
def toy_hopper_policy(tmp_path):
    """A random (untrained) hopper actor: it falls quickly, so episodes end with terminals."""
    d = tmp_path / "policies"
    save_policy(MLPActor(11, 3, hidden=(16, 16)), "hopper", {"normalized": 0.0, "mean_return": 0.0}, directory=d)
    return d


ARRAYS = ("observations", "actions", "rewards", "terminals", "timeouts", "episode_starts", "episode_lengths")


def test_generation_is_deterministic_by_seed(tmp_path, toy_hopper_policy):
    a = generate_dataset("hopper-medium", n_transitions=600, seed=3, root=tmp_path / "a", policy=toy_hopper_policy)
    b = generate_dataset("hopper-medium", n_transitions=600, seed=3, root=tmp_path / "b", policy=toy_hopper_policy)
    c = generate_dataset("hopper-medium", n_transitions=600, seed=4, root=tmp_path / "c", policy=toy_hopper_policy)
    for key in ARRAYS:
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), key
    assert not np.array_equal(a.observations[: len(c.observations)], c.observations[: len(a.observations)])
    r1 = generate_dataset("reacher2d-medium", n_episodes=2, seed=0, root=tmp_path / "r1")
    r2 = generate_dataset("reacher2d-medium", n_episodes=2, seed=0, root=tmp_path / "r2")
    r3 = generate_dataset("reacher2d-medium", n_episodes=2, seed=1, root=tmp_path / "r3")
    assert r1.observations.tobytes() == r2.observations.tobytes() and r1.actions.tobytes() == r2.actions.tobytes()
    assert not np.array_equal(r1.observations, r3.observations)


def test_written_minari_dataset_loads_back_aligned(tmp_path, monkeypatch, toy_hopper_policy):
    monkeypatch.setenv("OFFLINE_ZOO_HOME", str(tmp_path / "home"))
    task = get_task("hopper-medium")
    policy = load_policy("hopper", directory=toy_hopper_policy, noise=0.0)
    generate_dataset(task, n_transitions=500, seed=0, policy=policy, noise=0.0)
    assert (generated_dataset_path(task) / "data").is_dir()
    assert str(generated_dataset_path(task)).startswith(str(tmp_path / "home" / "datasets"))

    ds = load_dataset("hopper-medium", source="generated")
    assert ds.source == "generated" and ds.n_steps == 500
    # reference scores travel with the data
    assert ds.metadata["ref_min_score"] == pytest.approx(task.ref_min_score)
    assert ds.metadata["ref_max_score"] == pytest.approx(task.ref_max_score)
    # the observation at step t is the one the (deterministic) policy acted on
    np.testing.assert_allclose(ds.actions, policy.act_fn.act(ds.observations).astype(np.float32), rtol=0, atol=1e-6)
    # episode boundaries and end flags are those of the rollout
    ref = rollout(task, load_policy("hopper", directory=toy_hopper_policy, noise=0.0), n_transitions=500, seed=0)
    assert ds.episode_lengths.tolist() == [len(a) for a in ref["actions"]]
    ends = ds.episode_starts + ds.episode_lengths - 1
    assert (ds.terminals | ds.timeouts).sum() == ds.n_episodes and (ds.terminals | ds.timeouts)[ends].all()
    assert ds.terminals[ends[:-1]].all(), "a falling hopper ends its episodes with terminals"
    assert ds.timeouts[ends[-1]] and not ds.terminals[ends[-1]], "the episode cut by the dataset size is a timeout"
    assert not (ds.terminals & ds.timeouts).any()
    for i, ep in enumerate(ds.episodes):
        np.testing.assert_array_equal(ep.observations, ref["observations"][i][:-1].astype(np.float32))
        assert ep.episode_return == pytest.approx(ref["returns"][i], rel=1e-5)
    # the offline-zoo record: behaviour policy, seed and statistics
    meta = generation_metadata(task)
    assert meta["source"] == "generated" and meta["seed"] == 0
    assert meta["statistics"]["transitions"] == 500 and meta["statistics"]["episodes"] == ds.n_episodes
    # regenerating needs overwrite
    with pytest.raises(GenerationError, match="overwrite"):
        generate_dataset(task, n_transitions=500, seed=0, policy=policy)


def test_reacher2d_medium_statistics():
    task = get_task("reacher2d-medium")
    pol = load_policy(task)
    out = rollout(task, pol, n_episodes=16, seed=123, min_return=20.0)
    rets = np.asarray(out["returns"])
    assert len(rets) == 16 and (rets > 20).all()
    assert all(len(a) == 100 for a in out["actions"])
    assert not any(t.any() for t in out["terminations"]) and all(t[-1] for t in out["truncations"])
    lo, hi = MEDIUM_TARGETS["reacher2d"][1]
    assert lo - 5 <= task.normalized_score(rets.mean()) <= hi + 5, rets.mean()


def test_shipped_policies_load_with_weights_only():
    torch = pytest.importorskip("torch")
    records = sorted(POLICY_DIR.glob("*.json"))
    assert any(p.stem == "reacher2d" for p in records)
    for js in records:
        info = json.loads(js.read_text())
        task = get_task(f"{info['domain']}-medium")
        pol = load_policy(task)
        if info["kind"] == "mlp":
            state = torch.load(js.with_suffix(".pt"), map_location="cpu", weights_only=True)
            assert all(isinstance(v, torch.Tensor) for v in state.values())
            assert js.with_suffix(".pt").stat().st_size < 500_000
            obs = np.zeros((2, info["obs_dim"]))
            a = pol.act_fn.act(obs)
            assert a.shape == (2, info["act_dim"]) and np.all(np.abs(a) <= 1)
        assert np.isfinite(info["normalized"])


@pytest.mark.parametrize("domain", ["hopper", "halfcheetah", "walker2d"])
def test_shipped_mujoco_policies_are_medium(domain):
    """Every MuJoCo domain ships a trained actor (not random weights) whose recorded 20-episode
    score, the one the docs quote, lies in the domain's medium band; 3 seeded episodes agree."""
    from offline_zoo.data.generation import evaluate_policy

    info = json.loads((POLICY_DIR / f"{domain}.json").read_text())
    lo, hi = MEDIUM_TARGETS[domain][1]
    assert lo <= info["normalized"] <= hi and info["score"]["n_episodes"] == 20, info["normalized"]
    res = evaluate_policy(f"{domain}-medium", load_policy(f"{domain}-medium"), n_episodes=3, seed=0)
    assert lo - 15 <= res["normalized"] <= hi + 15, res


def test_cli_generate_and_errors(tmp_path, capsys):
    assert data_main(["generate", "reacher2d-medium", "--episodes", "2", "--root", str(tmp_path), "--no-progress"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    ds = load_dataset("reacher2d-medium", source="generated", root=tmp_path)
    assert ds.n_episodes == 2
    assert data_main(["generate", "hopper-medium-replay", "--root", str(tmp_path)]) == 2
    assert "medium level" in capsys.readouterr().err
    assert data_main(["generate", "kitchen-mixed", "--root", str(tmp_path)]) == 2
    assert data_main(["list"]) == 0
