"""Structure and behaviour of the sequence agents (DT, Wiki-RL, LaMo) at the algorithm level."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import offline_zoo as oz
from offline_zoo import DT, LaMo, WikiRL
from offline_zoo.data import Dataset
from offline_zoo.models import NullPositionEmbedding
from offline_zoo.testing import tiny_dataset

TINY_LM = dict(lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2, corpus="random", lm_block_size=8, lm_batch_size=1, context_len=4, batch_size=4)


def _is_lora(name):
    return "lora_" in name


def _is_attn_bias(name):
    return "c_attn" in name and name.endswith("bias")


@pytest.fixture(scope="module")
def gpt2_small_lamo():
    """LaMo with a randomly initialised GPT-2-small body (no download) on HalfCheetah-shaped data."""
    rng = np.random.default_rng(0)
    n = 40
    ds = Dataset.from_arrays(rng.normal(size=(n, 17)), rng.uniform(-1, 1, (n, 6)), np.ones(n), np.r_[np.zeros(n - 1), 1], task="halfcheetah-medium")
    return LaMo(ds, pretrained=False, corpus="random", device="cpu")


def test_lamo_lora_structure_matches_the_released_code(gpt2_small_lamo):
    counts = gpt2_small_lamo.parameter_counts()
    assert counts["lora"] == 884_736 and counts["bias"] == 27_648
    outside_body = sum(p.numel() for n, p in gpt2_small_lamo.model.named_parameters() if not n.startswith("body."))
    assert counts["trainable"] == 884_736 + 27_648 + outside_body
    # Table 14 of the paper reports 3.5M trainable of 128M; with MLP embeddings, MLP head and the
    # 1000 x 768 timestep table this structure has 4.07M (docs/algorithms/lamo.md discusses it)
    assert counts["trainable"] == pytest.approx(3.5e6, rel=0.2)
    assert counts["total"] == pytest.approx(128e6, rel=0.03)
    body = gpt2_small_lamo.model.body
    for name, p in body.named_parameters():
        assert p.requires_grad == (_is_lora(name) or _is_attn_bias(name)), name
    for name, p in gpt2_small_lamo.model.named_parameters():
        if not name.startswith("body."):
            assert p.requires_grad, f"DT-side module {name} must train"


def test_lamo_has_no_position_embeddings_on_the_continuous_path(gpt2_small_lamo):
    assert isinstance(gpt2_small_lamo.model.body.wpe, NullPositionEmbedding)
    atari = LaMo(tiny_dataset("discrete"), **TINY_LM, target_returns=(1.0,))
    assert isinstance(atari.model.body.wpe, torch.nn.Embedding)
    names = [n for n, _ in atari.model.body.named_parameters()]
    assert any("c_attn.lora_A" in n for n in names) and not any("q_proj" in n for n in names)  # one fused adapter
    assert not any(p.requires_grad for n, p in atari.model.body.named_parameters() if _is_attn_bias(n))


def test_per_task_defaults_follow_tables_6_and_7():
    ds = tiny_dataset()
    hopper = LaMo(ds, **TINY_LM)
    assert (hopper.config.embedding, hopper.config.action_head, hopper.config.weight_decay) == ("linear", "linear_tanh", 1e-5)
    from offline_zoo.algos.config import resolve_config
    from offline_zoo.algos.lamo import LaMoConfig

    walker = resolve_config(LaMoConfig, "lamo", oz.get_task("walker2d-medium"), {})
    assert (walker.embedding, walker.weight_decay, walker.context_len) == ("mlp", 1e-4, 20)
    reacher = resolve_config(LaMoConfig, "lamo", oz.get_task("reacher2d-medium"), {})
    assert (reacher.context_len, reacher.weight_decay) == (5, 1e-4)
    breakout = resolve_config(LaMoConfig, "lamo", oz.get_task("breakout-medium"), {})
    assert (breakout.learning_rate, breakout.weight_decay, breakout.context_len, breakout.lora_rank, breakout.batch_size) == (1e-3, 1e-2, 30, 32, 128)
    pong = resolve_config(LaMoConfig, "lamo", oz.get_task("pong-medium"), {})
    assert (pong.learning_rate, pong.weight_decay) == (3e-4, 1e-1)
    assert DT(ds).config.target_returns == (3600.0, 1800.0)


def _atari_dataset(task="breakout-medium"):
    d = tiny_dataset("discrete", n_episodes=2, episode_len=8)
    return Dataset.from_arrays(d.observations, d.actions, d.rewards, d.terminals, d.timeouts, task=task)


def test_atari_lamo_has_the_released_linear_tanh_head_whatever_the_embedding():
    # released experiment-atari/model.py: predict_action = Sequential(Linear(hidden, n_act), Tanh())
    for embedding in ("mlp", "linear"):
        algo = LaMo(_atari_dataset(), device="cpu", **TINY_LM, embedding=embedding)
        head = algo.model.predict_action
        assert algo.config.action_head == "linear"
        assert isinstance(head, torch.nn.Sequential) and len(head) == 2, head
        assert isinstance(head[0], torch.nn.Linear) and isinstance(head[1], torch.nn.Tanh)
        assert (head[0].in_features, head[0].out_features) == (16, 4)


def test_atari_lamo_defaults_are_the_released_atari_script():
    # experiment-atari: nlp_train.co_training=0, torch.optim.AdamW (eps 1e-8), train.eval_episodes=5
    algo = LaMo(_atari_dataset("pong-medium"), device="cpu", **TINY_LM)
    assert (algo.config.language_loss_coef, algo.config.adam_eps, algo.config.eval_episodes) == (0.0, 1e-8, 5)
    assert {g["eps"] for opt in algo.optimizers.values() for g in opt.param_groups} == {1e-8}
    assert sorted(algo.learn(1, progress_bar=False).last_metrics) == ["action_loss", "grad_norm", "loss"]  # no language loss
    assert LaMo(tiny_dataset(), **TINY_LM).config.adam_eps == 1e-6      # MuJoCo keeps its released 1e-6


def test_each_algorithm_is_evaluated_at_its_released_targets():
    # Wiki-RL's released experiment.py evaluates 2 targets per env, LaMo's evaluates 4: each agent
    # is scored at its own, so the best-target report does not favour Wiki-RL with LaMo's extra ones
    from offline_zoo.algos.config import resolve_config
    from offline_zoo.algos.lamo import LaMoConfig
    from offline_zoo.algos.wikirl import WikiRLConfig

    released = {"hopper": (3600.0, 1800.0), "halfcheetah": (12000.0, 6000.0), "walker2d": (5000.0, 2500.0), "reacher2d": (76.0, 40.0)}
    for domain, targets in released.items():
        for task in [t for t in oz.list_tasks() if oz.get_task(t).domain == domain]:
            assert resolve_config(WikiRLConfig, "wikirl", oz.get_task(task), {}).target_returns == targets, task
            assert resolve_config(LaMoConfig, "lamo", oz.get_task(task), {}).target_returns in (None, oz.get_task(task).target_returns)
    algo = WikiRL(tiny_dataset(), **TINY_LM, n_clusters=4)
    assert algo.default_targets() == (3600.0, 1800.0)
    assert len(LaMo(tiny_dataset(), **TINY_LM).default_targets()) == 4


@pytest.mark.parametrize("mode", ["lora", "full", "frozen"])
def test_finetune_modes(mode):
    algo = LaMo(tiny_dataset(), **TINY_LM, finetune=mode)
    body = {n: p.requires_grad for n, p in algo.model.body.named_parameters()}
    if mode == "full":
        assert all(body.values())
    elif mode == "frozen":
        assert not any(body.values())
    else:
        assert any(body.values()) and all(v == (_is_lora(n) or _is_attn_bias(n)) for n, v in body.items())
    assert all(p.requires_grad for n, p in algo.model.named_parameters() if not n.startswith("body."))


def test_embedding_orders():
    ds = tiny_dataset()
    assert DT(ds).model.spec.embed_order == "dt"
    assert LaMo(ds, **TINY_LM).model.spec.embed_order == "lamo"
    assert WikiRL(ds, **TINY_LM, n_clusters=4).model.spec.embed_order == "wikirl"
    assert isinstance(DT(ds).model.body.wpe, NullPositionEmbedding)


def test_language_loss_reaches_only_lora_and_bias():
    algo = LaMo(tiny_dataset(), **TINY_LM)
    algo._before_learn()
    algo.model.zero_grad(set_to_none=True)
    algo.model.language_loss(algo._language_batch()).backward()
    touched = {n for n, p in algo.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched and all(n.startswith("body.") and (_is_lora(n) or _is_attn_bias(n)) for n in touched)


def test_language_loss_joins_the_objective_with_lambda():
    algo = LaMo(tiny_dataset(), **TINY_LM, language_loss_coef=0.5).learn(1, progress_bar=False)
    m = algo.last_metrics
    assert m["loss"] == pytest.approx(m["action_loss"] + 0.5 * m["language_loss"], rel=1e-5)
    off = LaMo(tiny_dataset(), **TINY_LM, language_loss_coef=0.0).learn(1, progress_bar=False)
    assert "language_loss" not in off.last_metrics


def test_padding_is_masked_out_of_the_loss():
    algo = DT(tiny_dataset(), context_len=6)
    algo._before_learn()
    batch = algo._sampler.window([5, 11, 20])  # window 0 and 1 end near an episode end: left padding
    assert (batch["mask"] == 0).any()
    b = algo._batch_tensors(batch)
    algo.model.eval()
    with torch.no_grad():
        out = algo.model(b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
        base = algo.action_loss(out.action_preds, b)
        pad = b["mask"] == 0
        b2 = {k: v.clone() for k, v in b.items()}
        b2["actions"][pad] = 123.0
        b2["states"][pad] = -50.0
        out2 = algo.model(b2["states"], b2["actions"], b2["returns_to_go"], b2["timesteps"], b2["mask"])
        assert algo.action_loss(out2.action_preds, b2) == pytest.approx(float(base), rel=1e-5)


@pytest.mark.parametrize("agent", ["dt", "lamo", "wikirl"])
def test_action_loss_reduction_defaults_to_sum_dims_for_every_sequence_agent(agent):
    # measured choice (docs/deviations.md row 1c), the same for the three agents the paper compares
    cls = {"dt": DT, "lamo": LaMo, "wikirl": WikiRL}[agent]
    kwargs = {} if agent == "dt" else dict(TINY_LM)
    assert cls(tiny_dataset(), **kwargs).config.action_loss_reduction == "sum_dims"
    assert cls(tiny_dataset(), action_loss_reduction="mean", **kwargs).config.action_loss_reduction == "mean"


def test_action_loss_reduction_mean_is_the_released_one_and_sum_dims_scales_by_act_dim():
    mean_algo = DT(tiny_dataset(), context_len=6, seed=3, action_loss_reduction="mean")
    sum_algo = DT(tiny_dataset(), context_len=6, seed=3)
    mean_algo._before_learn()
    batch = mean_algo._sampler.window([5, 11, 20])
    b = mean_algo._batch_tensors(batch)
    real = b["mask"] > 0
    preds = torch.linspace(-0.9, 0.9, b["actions"].numel()).reshape(b["actions"].shape)
    per_element = (preds - b["actions"]) ** 2
    released = float(per_element[real].mean())  # kzl: mean over real positions and action dims
    assert float(mean_algo.action_loss(preds, b)) == pytest.approx(released, rel=1e-6)
    act_dim = b["actions"].shape[-1]
    assert float(sum_algo.action_loss(preds, b)) == pytest.approx(act_dim * released, rel=1e-6)
    with pytest.raises(ValueError, match="action_loss_reduction='max'; allowed: mean, sum_dims"):
        DT(tiny_dataset(), action_loss_reduction="max")


def test_wikirl_alignment_weight_decays_to_zero_by_5000_steps():
    algo = WikiRL(tiny_dataset(), **TINY_LM, n_clusters=4)
    algo._before_learn()
    b = algo._batch_tensors(algo._sampler.sample(2))
    out = algo.model(b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
    weights = {}
    for step in (0, 2499, 4999, 20000):
        algo.num_steps = step
        weights[step] = algo.extra_losses(out, b)["alignment_loss"][0]
    assert weights[0] == pytest.approx(0.1 / (1 + np.exp(-5 + 1 / 500)), rel=1e-6)
    assert weights[2499] == pytest.approx(0.05)
    assert weights[4999] < 1e-3 and weights[20000] < 1e-10
    assert algo.model.token_centres.shape == (4, 16)


def test_lm_size_overrides_need_random_init():
    with pytest.raises(ValueError, match="need pretrained=False"):
        LaMo(tiny_dataset(), lm="gpt2", pretrained=True, n_layer=2, corpus="random")


def test_batched_rollouts_equal_one_episode_at_a_time():
    algo = DT(tiny_dataset(), hidden_size=16, n_layer=1, context_len=5)
    together = algo.evaluate(n_episodes=3, target_returns=[3600.0, 1800.0], seed=10)
    for i in range(3):
        alone = algo.evaluate(n_episodes=1, target_returns=[3600.0, 1800.0], seed=10 + i)
        for t in (3600.0, 1800.0):
            # rows are computed independently, but a BLAS may pick other kernels for another batch
            # size (seen: 4e-9 relative on AVX-512), so returns agree to rounding, not bitwise
            assert alone.returns[t][0] == pytest.approx(together.returns[t][i], rel=1e-5)
            assert alone.lengths[t][0] == together.lengths[t][i]


def _hopper_dataset(n_episodes=12, seed=0):
    """Rollouts of a fixed noisy linear controller on the real Hopper-v5."""
    rng = np.random.default_rng(seed)
    W = rng.normal(scale=0.5, size=(3, 11))
    env = gym.make("Hopper-v5")
    eps = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        o_l, a_l, r_l = [], [], []
        for _ in range(200):
            a = np.clip(np.tanh(W @ obs) + rng.normal(scale=0.1, size=3), -1, 1)
            o_l.append(obs)
            a_l.append(a)
            obs, r, term, trunc, _ = env.step(a)
            r_l.append(r)
            if term or trunc:
                break
        eps.append({"observations": np.array(o_l), "actions": np.array(a_l), "rewards": np.array(r_l), "terminated": bool(term)})
    return Dataset.from_episodes(eps, task="hopper-medium")


def test_dt_learns_on_real_hopper_rollouts_and_evaluates():
    ds = _hopper_dataset()
    algo = DT(ds, hidden_size=32, n_layer=1, context_len=5, batch_size=32, warmup_steps=10, learning_rate=1e-3, seed=0)
    algo.learn(300, progress_bar=False, log_every=10)
    losses = [h["action_loss"] for h in algo.history["train"]]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])
    result = algo.evaluate(n_episodes=2, target_returns=[1000.0])
    assert np.isfinite(result.score) and result.lengths[1000.0].min() >= 1


@pytest.mark.parametrize("algo_class", [LaMo, WikiRL])
def test_a_saved_lm_agent_loads_without_its_language_model(algo_class, tmp_path, monkeypatch):
    # the zip holds every weight and the LM's architecture: neither the LM directory nor the hub
    # is needed to load it (e.g. on another machine), and predictions and training continue exactly
    import shutil

    from offline_zoo.lm import EMBEDDED_LM

    lm_dir = tmp_path / "my-lm"
    shutil.copytree(EMBEDDED_LM, lm_dir)
    extra = {"n_clusters": 8} if algo_class is WikiRL else {}
    algo = algo_class(tiny_dataset(), device="cpu", lm=str(lm_dir), corpus="random", lm_block_size=8, lm_batch_size=1,
                      context_len=4, batch_size=4, **extra).learn(2, progress_bar=False)
    path = algo.save(tmp_path / "agent")
    shutil.rmtree(lm_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = algo_class.load(path, dataset=tiny_dataset(), device="cpu")
    obs = tiny_dataset().observations[:3]
    np.testing.assert_array_equal(loaded.predict(obs)[0], algo.predict(obs)[0])
    for (name, a), b in zip(algo.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
    algo.learn(2, progress_bar=False)
    loaded.learn(2, progress_bar=False)
    np.testing.assert_allclose(loaded.predict(obs)[0], algo.predict(obs)[0], rtol=1e-5, atol=1e-6)


def test_released_atari_lr_schedule_is_an_option_and_atari_lamo_default():
    """The released Atari schedule (token warmup + cosine, fed with the cumulative token count) is
    ``lr_schedule="released_atari"``; LaMo's Atari default, the step-count warmup elsewhere."""
    from offline_zoo.algos.config import resolve_config
    from offline_zoo.algos.lamo import LaMoConfig
    from offline_zoo.algos.sequence import ReleasedAtariLR

    atari = resolve_config(LaMoConfig, "lamo", oz.get_task("breakout-medium"), {})
    assert (atari.lr_schedule, atari.warmup_tokens, atari.final_tokens) == ("released_atari", 375e6, 260e9)
    assert resolve_config(LaMoConfig, "lamo", oz.get_task("hopper-medium"), {}).lr_schedule == "constant_after_warmup"
    # Table 2's DT column comes from the same release: DT on Atari shares the schedule and its 5 episodes
    from offline_zoo.algos.dt import DTConfig

    dt_atari = resolve_config(DTConfig, "dt", oz.get_task("breakout-medium"), {})
    assert (dt_atari.lr_schedule, dt_atari.eval_episodes) == ("released_atari", 5)
    assert resolve_config(DTConfig, "dt", oz.get_task("hopper-medium"), {}).lr_schedule == "constant_after_warmup"
    # the released multiplier after n steps of c tokens each: tokens = c * n (n + 1) / 2
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = ReleasedAtariLR(opt, 375e6, 260e9)
    lrs = []
    for _ in range(20_000):
        opt.step()
        sched.step_tokens(3000)
        lrs.append(opt.param_groups[0]["lr"])
    n = np.arange(1, 20_001)
    tokens = 3000 * n * (n + 1) / 2
    progress = (tokens - 375e6) / (260e9 - 375e6)
    expected = np.where(tokens < 375e6, tokens / 375e6, np.maximum(0.1, 0.5 * (1 + np.cos(np.pi * progress))))
    np.testing.assert_allclose(lrs, expected, rtol=1e-9, atol=1e-12)
    assert lrs[498] < 1.0 <= max(lrs[:600]) + 1e-9 and min(lrs[13_000:]) == pytest.approx(0.1)  # warm by ~500, oscillating after ~13k
    # an agent steps it with its batch's non-zero real actions, and saves the counters
    algo = LaMo(tiny_dataset("discrete"), **TINY_LM, target_returns=(1.0,), lr_schedule="released_atari",
                warmup_tokens=50, final_tokens=500)
    assert isinstance(algo.schedulers["model"], ReleasedAtariLR)
    algo.learn(3, progress_bar=False)
    s = algo.schedulers["model"]
    assert 0 < s.seen <= 3 * algo.config.batch_size * algo.config.context_len and s.tokens > s.seen
    assert algo.schedulers["model"].state_dict()["tokens"] == s.tokens
    with pytest.raises(ValueError, match="lr_schedule='cosine'.*constant_after_warmup, released_atari"):
        LaMo(tiny_dataset(), **TINY_LM, lr_schedule="cosine")
