"""The speed paths of the sequence agents compute what the plain paths compute (docs/performance.md)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from offline_zoo import DT, LaMo
from offline_zoo.algos import fast
from offline_zoo.models import SplitQKV
from offline_zoo.testing import tiny_dataset

TINY_LM = dict(lm="gpt2", pretrained=False, n_layer=2, n_embd=16, n_head=2, corpus="random", lm_block_size=8,
               lm_batch_size=1, context_len=4, batch_size=8, lora_rank=2, device="cpu")


def _nonzero_adapters(algo, seed=0):
    """LoRA's B starts at zero (adapters are a no-op); give them values so merging matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in algo.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return algo


class RecordingEnv(gym.Env):
    """Hopper-shaped deterministic dynamics that depend on the actions; records every action."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    log: list = []

    def __init__(self, episode_len=9):
        self.episode_len = episode_len
        self.W = np.random.default_rng(123).normal(size=(11, 14)) * 0.4
        RecordingEnv.log.append(self)
        self.actions = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_, self.t = seed, 0
        self.obs = self.np_random.normal(size=11).astype(np.float32)
        return self.obs, {}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        self.actions.append(a.copy())
        self.t += 1
        self.obs = np.tanh(self.W @ np.concatenate([self.obs, a])).astype(np.float32)
        return self.obs, float(self.obs[0] + a.sum()), False, self.t >= self.episode_len, {}


def _recorded(algo, n_episodes, targets, seed):
    RecordingEnv.log = []
    algo.evaluate(n_episodes=n_episodes, target_returns=targets, seed=seed, env_fn=RecordingEnv)
    return [np.array(env.actions) for env in RecordingEnv.log]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_lamo_batched_actions_equal_one_episode_at_a_time(precision):
    algo = _nonzero_adapters(LaMo(tiny_dataset(), **TINY_LM, precision=precision))
    targets = [3600.0, 1800.0]
    together = _recorded(algo, 3, targets, seed=10)  # env order: target-major, then episode
    for g, target in enumerate(targets):
        for i in range(3):
            (alone,) = _recorded(algo, 1, [target], seed=10 + i)
            assert alone.shape == (9, 3)  # windows of K=4 slide for 5 steps
            # equal up to rounding: a BLAS may use other kernels for another batch size
            # (in bf16 one rounding step of a bf16 value near 1 is 8e-3)
            tol = dict(rtol=1e-4, atol=1e-5) if precision == "fp32" else dict(rtol=2e-2, atol=2e-2)
            np.testing.assert_allclose(together[g * 3 + i], alone, **tol)


def test_merged_lora_inference_matches_unmerged_and_leaves_training_alone():
    fast_algo = _nonzero_adapters(LaMo(tiny_dataset(), **TINY_LM))
    plain = _nonzero_adapters(LaMo(tiny_dataset(), **TINY_LM, fast_inference=False))
    obs = np.random.default_rng(0).normal(size=(5, 11)).astype(np.float32)
    s1, s2 = fast_algo.new_rollout_state(5, 3600.0), plain.new_rollout_state(5, 3600.0)
    for _ in range(6):
        a1, _ = fast_algo.predict(obs, s1)
        a2, _ = plain.predict(obs, s2)
        np.testing.assert_allclose(a1, a2, rtol=0, atol=1e-5)
        s1.record_reward(np.ones(5))
        s2.record_reward(np.ones(5))
    merged = fast_algo.inference_model()
    assert type(merged.body.h[0].attn.c_attn).__name__ == "Conv1D"
    assert isinstance(fast_algo.model.body.h[0].attn.c_attn, SplitQKV)  # the trained model keeps its adapters
    assert plain.inference_model() is plain.model
    # training is not affected by having evaluated: both continue identically
    fast_algo.learn(2, progress_bar=False)
    plain.learn(2, progress_bar=False)
    for (n, p), (_, q) in zip(fast_algo.model.named_parameters(), plain.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)


def test_inference_copy_follows_the_weights():
    algo = _nonzero_adapters(LaMo(tiny_dataset(), **TINY_LM))
    obs = np.random.default_rng(1).normal(size=(3, 11)).astype(np.float32)
    first = algo.inference_model()
    assert algo.inference_model() is first  # cached while the weights do not change
    algo.learn(1, progress_bar=False)
    second = algo.inference_model()
    assert second is not first
    with torch.no_grad():  # a manual edit is noticed too
        algo.model.predict_action[0].weight.mul_(2.0)
    assert algo.inference_model() is not second
    algo.config.fast_inference = False
    ref, _ = algo.predict(obs, algo.new_rollout_state(3, 3600.0))
    algo.config.fast_inference = True
    got, _ = algo.predict(obs, algo.new_rollout_state(3, 3600.0))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_bf16_weights_copy_equals_autocast_and_is_close_to_fp32():
    ds = tiny_dataset()
    kw = dict(hidden_size=32, n_layer=2, n_head=2, context_len=5, device="cpu", seed=3)
    bf = DT(ds, precision="bf16", **kw)
    obs = np.random.default_rng(2).normal(size=(4, 11)).astype(np.float32)

    def run(algo, steps=7):
        state, out = algo.new_rollout_state(4, 3600.0), []
        for _ in range(steps):
            a, _ = algo.predict(obs, state)
            state.record_reward(np.ones(4))
            out.append(a)
        return np.stack(out)

    with_copy = run(bf)
    assert bf.inference_model() is not bf.model
    assert bf.inference_model().body.h[0].mlp.c_fc.weight.dtype == torch.bfloat16
    bf.config.fast_inference = False  # plain autocast on the fp32 training weights
    np.testing.assert_array_equal(run(bf), with_copy)
    fp = DT(ds, precision="fp32", **kw)
    fp.model.load_state_dict(bf.model.state_dict())
    np.testing.assert_allclose(run(fp), with_copy, rtol=0, atol=0.05)


def test_bf16_lamo_training_and_inference_run():
    algo = LaMo(tiny_dataset(), **TINY_LM, precision="bf16").learn(3, progress_bar=False)
    assert all(np.isfinite(v) for v in algo.last_metrics.values())
    fp = LaMo(tiny_dataset(), **TINY_LM, precision="fp32")
    fp.model.load_state_dict(algo.model.state_dict())
    obs = np.random.default_rng(0).normal(size=(4, 11)).astype(np.float32)
    a16, _ = algo.predict(obs, algo.new_rollout_state(4, 3600.0))
    a32, _ = fp.predict(obs, fp.new_rollout_state(4, 3600.0))
    np.testing.assert_allclose(a16, a32, rtol=0, atol=0.05)


def test_fused_adamw_is_used_when_available():
    opt = DT(tiny_dataset(), device="cpu").optimizers["model"]
    try:
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], fused=True)
        available = True
    except (RuntimeError, TypeError, ValueError):
        available = False
    assert opt.defaults["fused"] is available or (not available and opt.defaults["foreach"])


def test_fast_kernels_switch():
    on = LaMo(tiny_dataset(), **TINY_LM)
    off = LaMo(tiny_dataset(), **TINY_LM, fast_kernels=False)
    assert on.model.body.config._attn_implementation == fast.FAST_ATTENTION
    assert off.model.body.config._attn_implementation != fast.FAST_ATTENTION
    drops_on = [type(m) for m in on.model.modules() if isinstance(m, torch.nn.Dropout)]
    drops_off = [type(m) for m in off.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops_on and set(drops_on) == {fast.FastDropout} and set(drops_off) == {torch.nn.Dropout}
    acts = {type(b.mlp.act).__name__ for b in on.model.body.h}
    assert acts == {"GELUTanh"} and {type(b.mlp.act).__name__ for b in off.model.body.h} == {"NewGELUActivation"}
    # both train (the dropout masks differ, the distribution does not)
    on.learn(2, progress_bar=False)
    off.learn(2, progress_bar=False)
    assert np.isfinite(on.last_metrics["loss"]) and np.isfinite(off.last_metrics["loss"])


def test_fast_dropout_is_dropout():
    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    y = fast.fast_dropout(x, 0.25)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.005
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient is the same mask, same scale
    torch.manual_seed(0)
    torch.testing.assert_close(fast.fast_dropout(torch.ones(400_000), 0.25), y.detach())  # seeded by torch
    assert fast.fast_dropout(x, 0.25, training=False) is x and fast.fast_dropout(x, 0.0) is x


def test_fast_attention_equals_sdpa_up_to_the_dropout_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 4, generator=g) for _ in range(3))
    module = torch.nn.Module()
    module.is_causal = True
    keep = torch.ones(7, 7, dtype=torch.bool).tril()[None, None] & (torch.arange(7) >= torch.tensor([[0], [2], [4]]))[:, None, None, :]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, :, :, :]).transpose(1, 2)
    # dropout so small that every element is kept (threshold rounds to 0): the fast math path
    out, _ = fast.fast_attention(module, q, k, v, keep, scaling=0.5, dropout=1e-9)
    rows = keep[:, 0].any(-1)  # queries with at least one visible key
    torch.testing.assert_close(out.transpose(1, 2)[rows.unsqueeze(1).expand(3, 2, 7)], ref.transpose(1, 2)[rows.unsqueeze(1).expand(3, 2, 7)], atol=1e-5, rtol=1e-5)
    causal_out, _ = fast.fast_attention(module, q, k, v, None, scaling=0.5, dropout=1e-9)
    torch.testing.assert_close(causal_out, F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["dt", "lamo", "lamo_discrete"])
def test_state_token_forward_equals_the_full_forward(kind):
    if kind == "dt":
        algo = DT(tiny_dataset(), context_len=6, n_layer=2, hidden_size=16, n_head=2, device="cpu")
    elif kind == "lamo":
        algo = _nonzero_adapters(LaMo(tiny_dataset(), **{**TINY_LM, "context_len": 6}))
    else:
        algo = LaMo(tiny_dataset("discrete"), **{**TINY_LM, "context_len": 6}, target_returns=(1.0,))
    algo._before_learn()
    assert algo._state_token_forward_applies()
    b = algo._batch_tensors(algo._sampler.window([0, 5, 11, 20, 30, 40]))
    algo.model.eval()
    with torch.no_grad():
        args = (b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
        full = algo.model(*args).action_preds
        part = algo._state_token_forward(*args).action_preds
    torch.testing.assert_close(part, full, rtol=1e-6, atol=1e-6)


def test_action_loss_ignores_padding_without_indexing():
    algo = DT(tiny_dataset(), context_len=6, device="cpu")
    algo._before_learn()
    b = algo._batch_tensors(algo._sampler.window([5, 11, 20]))
    preds = torch.randn(3, 6, 3)
    real = b["mask"].reshape(-1) > 0
    # the default sums the squared error over the 3 action dimensions, then averages over real positions
    expected = ((preds.reshape(-1, 3)[real] - b["actions"].reshape(-1, 3)[real]) ** 2).sum(-1).mean()
    torch.testing.assert_close(algo.action_loss(preds, b), expected)
    preds[b["mask"] == 0] = float("nan")  # whatever sits at padded positions never leaks in
    assert torch.isfinite(algo.action_loss(preds, b))


@pytest.mark.slow
def test_compile_paths_run():
    """``compile=True`` trains and evaluates (minutes on CPU: compilation; meant for GPUs)."""
    algo = LaMo(tiny_dataset(), **TINY_LM, compile=True, precision="bf16").learn(2, progress_bar=False)
    assert all(np.isfinite(v) for v in algo.last_metrics.values())
    result = algo.evaluate(n_episodes=1)
    assert np.isfinite(result.score)


@pytest.mark.parametrize("kind", ["dt", "lamo_discrete"])
def test_state_token_forward_with_padded_rows(kind):
    """The training forward uses the model's mask and positions: equal to the full forward on left-
    padded and fully padded windows (wpe on for Atari LaMo), and its gradients stay finite."""
    if kind == "dt":
        algo = DT(tiny_dataset(), context_len=6, n_layer=2, hidden_size=16, n_head=2, device="cpu")
    else:
        algo = LaMo(tiny_dataset("discrete"), **{**TINY_LM, "context_len": 6}, target_returns=(1.0,))
        assert algo.model.spec.use_position_embeddings
    algo._before_learn()
    b = algo._batch_tensors(algo._sampler.window([0, 5, 11]))
    b["mask"][0] = 0  # fully padded
    b["mask"][1, :4] = 0  # left padded
    args = (b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
    algo.model.eval()
    with torch.no_grad():
        full, part = algo.model(*args).action_preds, algo._state_token_forward(*args).action_preds
    real = b["mask"] > 0
    torch.testing.assert_close(part[real], full[real], rtol=1e-6, atol=1e-6)
    algo.model.train()
    loss = algo.action_loss(algo._state_token_forward(*args).action_preds, b)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in algo.model.parameters() if p.grad is not None)
