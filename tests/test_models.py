"""Tests of offline_zoo.models: trajectory transformer, embeddings, CNN, LoRA structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2Model
from transformers.pytorch_utils import Conv1D

from offline_zoo.models import (
    NatureCNN,
    NullPositionEmbedding,
    SplitQKV,
    TrajectoryTransformer,
    TransformerSpec,
    apply_lora,
    attention_keep,
    count_parameters,
    extended_position_table,
    freeze_for_mode,
    merge_lora,
    set_body_dropout,
    spec_preset,
    token_positions,
)
from offline_zoo.models.embeddings import TiedActionHead

D, VOCAB = 32, 64


def make_body(n_embd=D, n_layer=2, n_head=2, vocab=VOCAB, n_positions=128, seed=0, **kw) -> GPT2Model:
    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        vocab_size=vocab,
        n_positions=n_positions,
        bos_token_id=0,
        eos_token_id=0,
        **kw,
    )
    return GPT2Model(cfg)


def make_model(preset="dt", obs_shape=(5,), act_dim=3, seed=0, body_kw=None, **overrides):
    body = make_body(seed=seed, **(body_kw or {}))
    spec = spec_preset(preset, obs_shape, act_dim, **{"max_ep_len": 100, **overrides})
    torch.manual_seed(seed + 1)
    return TrajectoryTransformer(body, spec).eval()


def batch(B=2, K=4, obs_dim=5, act_dim=3, discrete=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, K, obs_dim, generator=g)
    if discrete:
        a = torch.randint(0, act_dim, (B, K), generator=g)
    else:
        a = torch.randn(B, K, act_dim, generator=g)
    r = torch.randn(B, K, 1, generator=g)
    t = torch.arange(K).repeat(B, 1) + 3
    mask = torch.ones(B, K, dtype=torch.long)
    return s, a, r, t, mask


def preds(model, *inputs):
    with torch.no_grad():
        return model(*inputs).action_preds


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("preset", ["dt", "wikirl", "lamo", "lamo_linear"])
def test_continuous_shapes(preset):
    m = make_model(preset)
    s, a, r, t, mask = batch()
    out = m(s, a, r, t, mask)
    assert out.action_preds.shape == (2, 4, 3)
    assert out.inputs_embeds.shape == out.token_embeddings.shape == out.hidden_states.shape == (2, 12, D)
    if m.spec.action_head == "linear_tanh":
        assert out.action_preds.abs().max() <= 1


def test_atari_discrete_shapes_and_input_untouched():
    m = make_model("lamo_atari", obs_shape=(4, 84, 84), act_dim=6, max_ep_len=50)
    assert isinstance(m.embed_state, NatureCNN) and m.embed_state.flat_dim == 3136
    frames = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    frames_f = frames.float()
    a = torch.randint(0, 6, (2, 3))
    r = torch.rand(2, 3, 1)
    t = torch.arange(3).repeat(2, 1)
    out = m(frames_f, a, r, t)
    assert out.action_preds.shape == (2, 3, 6)
    assert out.action_preds.abs().max() <= 1  # Tanh on logits (LaMo Atari)
    assert torch.equal(frames_f, frames.float())  # no in-place /255
    torch.testing.assert_close(preds(m, frames, a, r, t), out.action_preds.detach())  # uint8 == float


def test_discrete_plain_head_unbounded_and_mlp_head():
    m = make_model("dt", act_dim=4, discrete=True, action_head="linear")
    s, a, r, t, mask = batch(act_dim=4, discrete=True)
    m.predict_action.weight.data.mul_(100)
    assert preds(m, s, a, r, t, mask).abs().max() > 1
    m2 = make_model("lamo", act_dim=4, discrete=True)
    assert preds(m2, s, a, r, t, mask).shape == (2, 4, 4)


# --------------------------------------------------------------------------- token structure
@pytest.mark.parametrize("preset", ["dt", "lamo"])
def test_action_predicted_from_state_token(preset):
    # a random-init body passes little from other tokens (weights N(0, 0.02)); float32 noise is ~1e-8
    INFLUENCE = 1e-6
    m = make_model(preset)
    s, a, r, t, mask = batch()
    base = preds(m, s, a, r, t, mask)
    step = 1
    a2 = a.clone()
    a2[:, step] += 1.0
    p = preds(m, s, a2, r, t, mask)
    torch.testing.assert_close(p[:, : step + 1], base[:, : step + 1])  # a_t does not feed pred_t
    assert (p[:, step + 1] - base[:, step + 1]).abs().max() > INFLUENCE  # but feeds pred_{t+1}
    s2 = s.clone()
    s2[:, step] += 1.0
    p = preds(m, s2, a, r, t, mask)
    torch.testing.assert_close(p[:, :step], base[:, :step])
    assert (p[:, step] - base[:, step]).abs().max() > INFLUENCE
    r2 = r.clone()
    r2[:, step] += 1.0
    assert (preds(m, s, a, r2, t, mask)[:, step] - base[:, step]).abs().max() > INFLUENCE


def test_causal():
    m = make_model("lamo")
    s, a, r, t, mask = batch(K=6)
    base = preds(m, s, a, r, t, mask)
    c = 3  # perturb every input of steps >= c
    s2, a2, r2, t2 = s.clone(), a.clone(), r.clone(), t.clone()
    s2[:, c:] = torch.randn_like(s2[:, c:])
    a2[:, c:] = torch.randn_like(a2[:, c:])
    r2[:, c:] = torch.randn_like(r2[:, c:])
    t2[:, c:] = 50
    p = preds(m, s2, a2, r2, t2, mask)
    torch.testing.assert_close(p[:, :c], base[:, :c])
    assert (p[:, c:] - base[:, c:]).abs().max() > 1e-4


@pytest.mark.parametrize("discrete", [False, True])
def test_padding_is_masked(discrete):
    m = make_model("dt", act_dim=3, discrete=discrete)
    s, a, r, t, mask = batch(discrete=discrete)
    mask[0, :2] = 0  # left padding of sample 0
    mask[1, :1] = 0
    base = preds(m, s, a, r, t, mask)
    s2, a2, r2, t2 = s.clone(), a.clone(), r.clone(), t.clone()
    pad = mask == 0
    s2[pad] = 7.0
    a2[pad] = -10 if discrete else torch.full_like(a2[pad], -10.0)  # filler, even invalid indices
    r2[pad] = 3.0
    t2[pad] = 0
    p = preds(m, s2, a2, r2, t2, mask)
    real = mask.bool()
    torch.testing.assert_close(p[real], base[real])
    assert torch.isfinite(p).all()


def _nan_on_empty_rows_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention as the SDPA kernels that return NaN for a query with no visible key (plain softmax
    over an all -inf row): what some GPU backends compute."""
    scores = query @ key.transpose(-1, -2) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    if attention_mask is not None:
        allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask > torch.finfo(attention_mask.dtype).min / 2
        scores = scores.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ value).transpose(1, 2).contiguous(), None


def _padded_rows_batch(discrete):
    s, a, r, t, mask = batch(B=3, K=4, discrete=discrete)
    mask[0] = 0  # a fully padded window: every one of its queries has no real key
    mask[1, :3] = 0  # left padding
    return s, a, r, t, mask


def _grads_after_masked_loss(m, inputs):
    m.zero_grad(set_to_none=True)
    out = m(*inputs)
    real = inputs[-1] > 0
    loss = torch.where(real[..., None], out.action_preds.float() ** 2, 0.0).sum()
    loss.backward()
    return loss, [(n, p.grad) for n, p in m.named_parameters() if p.grad is not None]


@pytest.mark.parametrize("preset", ["dt", "lamo_atari"])
@pytest.mark.parametrize("attention", ["sdpa_math", "sdpa_flash", "eager", "nan_on_empty_rows"])
def test_padding_rows_give_finite_gradients(preset, attention):
    """No attention row is fully masked (every query sees itself), so the backward of a masked loss
    is NaN-free on every backend, even one that returns NaN for empty rows."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("nan_on_empty_rows", _nan_on_empty_rows_attention)
    AttentionMaskInterface.register("nan_on_empty_rows", sdpa_mask)
    discrete = preset == "lamo_atari"
    m = make_model(preset, act_dim=3, **({"max_ep_len": 100} if discrete else {})).train()
    impl = {"eager": "eager", "nan_on_empty_rows": "nan_on_empty_rows"}.get(attention, "sdpa")
    m.body.config._attn_implementation = impl
    inputs = _padded_rows_batch(discrete)
    backend = {"sdpa_math": SDPBackend.MATH, "sdpa_flash": SDPBackend.FLASH_ATTENTION}.get(attention)
    if backend is SDPBackend.FLASH_ATTENTION:
        set_body_dropout(m.body, 0.0, 0.0, 0.0)  # the fused CPU kernels have no dropout
    with sdpa_kernel([backend] if backend is not None else [SDPBackend.MATH]):
        loss, grads = _grads_after_masked_loss(m, inputs)
    assert torch.isfinite(loss)
    assert grads and all(torch.isfinite(g).all() for _, g in grads), [n for n, g in grads if not torch.isfinite(g).all()]
    # the test can fail: that attention does return NaN for a fully masked row
    q = torch.randn(1, 1, 2, 4)
    out, _ = _nan_on_empty_rows_attention(None, q, q, q, torch.tensor([[[[False, False], [True, True]]]]))
    assert torch.isnan(out[0, 0]).all() and torch.isfinite(out[0, 1]).all()


def test_attention_keep_has_no_empty_row_and_changes_no_real_row():
    tokens = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]])
    keep = attention_keep(tokens)
    assert keep.shape == (3, 1, 4, 4) and keep.any(-1).all()
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    real_rows = tokens > 0
    expected = causal & (tokens > 0)[:, None, :]  # causal and padding, for real queries
    assert torch.equal(keep[:, 0][real_rows], expected[real_rows])
    assert torch.equal(keep[0, 0], torch.eye(4, dtype=torch.bool))  # padding queries: themselves only


# --------------------------------------------------------------------------- wpe / embedding order
def test_no_wpe_path_independent_of_wpe_weights():
    m = make_model("lamo")
    assert isinstance(m.body.wpe, NullPositionEmbedding)
    assert not any("wpe" in n for n, _ in m.named_parameters())  # nothing trainable there
    assert "body.wpe.weight" in m.state_dict()  # state-dict compatible with GPT2Model
    s, a, r, t, mask = batch()
    ids = torch.randint(0, VOCAB, (2, 10))
    base, base_lm = preds(m, s, a, r, t, mask), m.language_logits(ids).detach()
    m.body.wpe.weight.normal_(0, 10.0)
    torch.testing.assert_close(preds(m, s, a, r, t, mask), base, rtol=0, atol=0)
    torch.testing.assert_close(m.language_logits(ids).detach(), base_lm, rtol=0, atol=0)
    # a GPT-2 checkpoint still loads strictly into the body
    fresh = make_body(seed=5)
    m.body.load_state_dict(fresh.state_dict(), strict=True)
    torch.testing.assert_close(m.body.wpe.weight, fresh.wpe.weight)


def test_wpe_used_when_enabled():
    m = make_model("lamo_atari", obs_shape=(5,), act_dim=3, max_ep_len=100)
    assert isinstance(m.body.wpe, nn.Embedding)
    s, a, r, t, mask = batch(discrete=True)
    base = preds(m, s, a, r, t, mask)
    with torch.no_grad():
        m.body.wpe.weight.normal_(0, 1.0)
    assert (preds(m, s, a, r, t, mask) - base).abs().max() > 1e-4


@pytest.mark.parametrize("preset", ["lamo_atari", "dt", "lamo"])
def test_wpe_positions_independent_of_left_padding(preset):
    """With wpe added, a 3-step sequence gives the same actions unpadded and left-padded to K=6:
    positions count from the first real token (the released code trains and evaluates unpadded)."""
    discrete = preset == "lamo_atari"
    m = make_model(preset, act_dim=3, **({} if discrete else {"use_position_embeddings": True}))
    assert isinstance(m.body.wpe, nn.Embedding)
    with torch.no_grad():
        m.body.wpe.weight.normal_(0, 1.0)  # positions matter a lot
    s, a, r, t, _ = batch(B=1, K=3, discrete=discrete, seed=3)
    short = preds(m, s, a, r, t, torch.ones(1, 3))
    pad = lambda x, v=0: torch.cat([torch.full((1, 3, *x.shape[2:]), v, dtype=x.dtype), x], dim=1)  # noqa: E731
    long = preds(m, pad(s, 5.0), pad(a), pad(r, 2.0), pad(t), torch.tensor([[0, 0, 0, 1, 1, 1]]))
    torch.testing.assert_close(long[:, 3:], short, rtol=0, atol=1e-5)
    assert torch.equal(token_positions(torch.tensor([[0, 0, 1, 1]]).repeat_interleave(3, 1)), torch.tensor([[0] * 6 + list(range(6))]))


def test_embed_order():
    s, a, r, t, mask = batch()
    m_dt = make_model("dt", seed=3)
    m_lamo = make_model("lamo_linear", seed=3)  # identical weights, LN-first order
    m_lamo.load_state_dict(m_dt.state_dict())
    out_dt, out_lamo = m_dt(s, a, r, t, mask), m_lamo(s, a, r, t, mask)
    with torch.no_grad():
        stacked = torch.stack((m_dt.embed_return(r), m_dt.embed_state(s), m_dt.embed_action(a)), dim=2)
        te = m_dt.embed_timestep(t).unsqueeze(2)
        exp_dt = m_dt.embed_ln(stacked + te).reshape(2, 12, D)
        exp_lamo = (m_dt.embed_ln(stacked) + te).reshape(2, 12, D)
    torch.testing.assert_close(out_dt.inputs_embeds, exp_dt)
    torch.testing.assert_close(out_lamo.inputs_embeds, exp_lamo)
    torch.testing.assert_close(out_lamo.token_embeddings, m_dt.embed_ln(stacked).reshape(2, 12, D))
    assert (out_dt.action_preds - out_lamo.action_preds).abs().max() > 1e-4
    # token order R_1, s_1, a_1, R_2, ...
    torch.testing.assert_close(out_lamo.token_embeddings[:, 4], m_dt.embed_ln(m_dt.embed_state(s[:, 1])))


def test_extend_positions():
    w = torch.randn(10, D)
    tab = extended_position_table(w, 25)
    assert tab.shape == (25, D)
    torch.testing.assert_close(tab[:10], w)
    torch.testing.assert_close(tab[10:18], w[2:10])
    torch.testing.assert_close(tab[18:25], w[2:9])
    torch.testing.assert_close(extended_position_table(w, 4), w[:4])
    m = make_model("wikirl", extend_positions=True, max_ep_len=300, body_kw=dict(n_positions=64))
    torch.testing.assert_close(m.embed_timestep.weight[:64], m.body.wpe.weight)
    assert m.embed_timestep.weight.requires_grad
    assert m.body.h[0].attn.resid_dropout.p == 0.2 and m.body.h[0].mlp.dropout.p == 0.2
    assert m.body.h[0].attn.attn_dropout.p == 0.1


def test_spec_validation():
    with pytest.raises(ValueError, match="embed_order"):
        TransformerSpec((3,), 2, embed_order="gpt")
    with pytest.raises(ValueError, match="embedding"):
        TransformerSpec((3,), 2, embedding="conv")
    with pytest.raises(ValueError, match="action_head"):
        TransformerSpec((3,), 2, action_head="tanh")
    with pytest.raises(ValueError, match="logits_tanh"):
        TransformerSpec((3,), 2, logits_tanh=True)
    with pytest.raises(ValueError, match="obs_shape"):
        TransformerSpec((3, 4), 2)
    with pytest.raises(ValueError, match="preset"):
        spec_preset("cql", (3,), 2)
    with pytest.raises(ValueError, match="GPT-2"):
        TrajectoryTransformer(nn.Linear(2, 2), TransformerSpec((3,), 2))


# --------------------------------------------------------------------------- LoRA
def test_split_qkv_is_exact():
    body = make_body().eval()
    ref = make_body().eval()
    x = torch.randn(2, 7, D)
    for blk in body.h:
        blk.attn.c_attn = SplitQKV.from_conv1d(blk.attn.c_attn)
    with torch.no_grad():
        torch.testing.assert_close(body(inputs_embeds=x).last_hidden_state, ref(inputs_embeds=x).last_hidden_state)
        conv = body.h[0].attn.c_attn.to_conv1d()
        torch.testing.assert_close(conv.weight, ref.h[0].attn.c_attn.weight)
        torch.testing.assert_close(conv.bias, ref.h[0].attn.c_attn.bias)


def test_lora_counts_gpt2_small():
    # GPT-2 small architecture (12 layers, 768 wide); small vocab keeps the test fast
    body = make_body(n_embd=768, n_layer=12, n_head=12, vocab=8, n_positions=1024)
    apply_lora(body, rank=16, alpha=32, dropout=0.1, mode="qkv")
    c = count_parameters(body)
    assert c["lora"] == 884_736
    assert c["bias"] == 27_648
    assert c["trainable"] == 884_736 + 27_648
    layer = body.h[0].attn.c_attn.q_proj
    assert layer.scaling["default"] == 2.0
    assert torch.count_nonzero(layer.lora_B["default"].weight) == 0
    assert layer.lora_A["default"].weight.shape == (16, 768)
    assert layer.lora_dropout["default"].p == 0.1
    fused = make_body(n_embd=768, n_layer=12, n_head=12, vocab=8, n_positions=1024)
    apply_lora(fused, rank=16, alpha=32, dropout=0.0, mode="fused")
    assert count_parameters(fused)["lora"] == 589_824


def _trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_trainable_sets_per_mode():
    m = make_model("lamo")
    dt_side = {n for n, _ in m.named_parameters() if not n.startswith("body.")}
    body_names = {n for n, _ in m.named_parameters() if n.startswith("body.")}
    freeze_for_mode(m, "full")
    assert _trainable_names(m) == dt_side | body_names
    freeze_for_mode(m, "frozen")
    assert _trainable_names(m) == dt_side
    with pytest.raises(ValueError, match="apply_lora"):
        freeze_for_mode(m, "lora")
    with pytest.raises(ValueError, match="allowed values"):
        freeze_for_mode(m, "partial")
    apply_lora(m, rank=4)
    freeze_for_mode(m, "lora")
    trainable = _trainable_names(m)
    body_trainable = {n for n in trainable if n.startswith("body.")}
    assert dt_side <= trainable
    assert body_trainable and all(("lora_" in n) or (".c_attn." in n and n.endswith("bias")) for n in body_trainable)
    assert len([n for n in body_trainable if n.endswith("bias")]) == 3 * 2  # q, k, v x 2 layers
    frozen = {n for n, _ in m.named_parameters()} - trainable
    for key in ("wte", "ln_1", "ln_2", "ln_f", "c_proj", "mlp", "base_layer.weight"):
        assert any(key in n for n in frozen), key
    c = count_parameters(m)
    assert c["lora"] == 2 * 3 * 2 * 4 * D and c["bias"] == 2 * 3 * D
    assert c["body_trainable"] == c["lora"] + c["bias"]
    freeze_for_mode(m, "lora", train_attn_bias=False)
    assert count_parameters(m)["bias"] == 0
    with pytest.raises(ValueError, match="already"):
        apply_lora(m)
    with pytest.raises(ValueError, match="allowed values"):
        apply_lora(make_body(), mode="both")


@pytest.mark.parametrize("mode", ["qkv", "fused"])
def test_merged_equals_unmerged(mode):
    m = make_model("lamo")
    apply_lora(m, rank=4, mode=mode)
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in m.body.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    m.eval()
    s, a, r, t, mask = batch()
    mask[0, 0] = 0
    ids = torch.randint(0, VOCAB, (2, 9))
    before, before_lm = preds(m, s, a, r, t, mask), m.language_logits(ids).detach()
    base = make_model("lamo")  # same seeds: the same weights without LoRA
    assert (preds(base, s, a, r, t, mask) - before).abs().max() > 1e-3  # LoRA is active
    merge_lora(m)
    assert all(isinstance(b.attn.c_attn, Conv1D) for b in m.body.h)
    assert count_parameters(m)["lora"] == 0
    torch.testing.assert_close(preds(m, s, a, r, t, mask), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.language_logits(ids).detach(), before_lm, atol=1e-5, rtol=1e-5)


def test_language_loss_gradients_only_reach_lora_and_bias():
    m = make_model("lamo")
    apply_lora(m, rank=4)
    freeze_for_mode(m, "lora")
    m.train()
    ids = torch.randint(0, VOCAB, (2, 12))
    amask = torch.ones(2, 12, dtype=torch.long)
    amask[1, -3:] = 0
    loss = m.language_loss(ids, amask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # B is zero-initialised, so A gets zero gradient on the first step: check B and bias
    loss.backward()
    got = {n for n, p in m.named_parameters() if p.grad is not None}
    assert got and all(n.startswith("body.") for n in got)  # DT-side modules not in the graph
    assert all("lora_" in n or (".c_attn." in n and n.endswith("bias")) for n in got)
    assert any("lora_B" in n for n in got) and any(n.endswith("bias") for n in got)
    assert all(p.grad is None for n, p in m.body.named_parameters() if "wte" in n or "ln_" in n or "mlp" in n)
    # the RL loss reaches the DT side too
    m.zero_grad(set_to_none=True)
    s, a, r, t, mask = batch()
    ((m(s, a, r, t, mask).action_preds - a) ** 2).mean().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("body."))


def test_language_loss_matches_manual_ce():
    m = make_model("dt")
    ids = torch.randint(0, VOCAB, (2, 8))
    logits = m.language_logits(ids)
    manual = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(m.language_loss(ids), manual)
    with pytest.raises(ValueError, match="input_ids"):
        m.language_loss(ids[:, :1])


# --------------------------------------------------------------------------- Wiki-RL's released settings
def test_tied_action_head_is_tanh_of_the_action_embedding_weight():
    m = make_model("wikirl", act_dim=3)
    assert m.spec.action_head == "tied_tanh" and m.spec.extend_positions  # released run.sh
    assert not any(k.startswith("predict_action") for k in m.state_dict())  # no weight of its own
    s, a, r, t, mask = batch()
    out = m(s, a, r, t, mask)
    state_hidden = out.hidden_states.view(2, 4, 3, D)[:, :, 1]
    torch.testing.assert_close(out.action_preds, torch.tanh(state_hidden @ m.embed_action.weight))
    out.action_preds.sum().backward()
    assert m.embed_action.weight.grad.abs().sum() > 0  # the action loss trains the shared weight
    with pytest.raises(ValueError, match="tied_tanh.*embedding='mlp'"):
        TransformerSpec((3,), 2, embedding="mlp", action_head="tied_tanh")


def test_extend_positions_table_is_the_whole_wpe():
    """Released: the timestep table is wpe itself (n_positions rows when max_ep_len is shorter)."""
    m = make_model("wikirl", max_ep_len=100, body_kw=dict(n_positions=128))
    assert m.embed_timestep.weight.shape == (128, D)
    torch.testing.assert_close(m.embed_timestep.weight, m.body.wpe.weight)
    t = torch.full((1, 2), 500)  # clamped to max_ep_len - 1, as before
    torch.testing.assert_close(m.embed(*batch(B=1, K=2)[:3], t)[1], m.embed(*batch(B=1, K=2)[:3], torch.full((1, 2), 99))[1])


@pytest.mark.parametrize("extend", [False, True])
def test_language_positions_only_in_the_language_forward(extend):
    """Wiki-RL co-training: the language forward adds positions (the timestep table with
    extend_positions, else the LM's wpe), the RL forward does not."""
    m = make_model("wikirl", extend_positions=extend, language_positions=True)
    table = m.embed_timestep.weight if extend else m.body.wpe.weight
    assert table.requires_grad and isinstance(m.body.wpe, NullPositionEmbedding)
    ids = torch.randint(0, VOCAB, (2, 10))
    ref_body = make_body()
    ref_body.load_state_dict({**m.body.state_dict(), "wpe.weight": table.detach()[: ref_body.wpe.weight.shape[0]]})
    ref = F.linear(ref_body.eval()(input_ids=ids).last_hidden_state, ref_body.wte.weight)
    torch.testing.assert_close(m.language_logits(ids), ref, rtol=1e-5, atol=1e-5)
    m.zero_grad()
    m.language_loss(ids).backward()
    assert table.grad[:9].abs().sum() > 0 and table.grad[10:].abs().sum() == 0
    s, a, r, t, mask = batch()
    base = preds(m, s, a, r, t, mask)
    with torch.no_grad():
        m.body.wpe.weight.normal_(0, 10.0)  # the RL forward reads no wpe
    torch.testing.assert_close(preds(m, s, a, r, t, mask), base, rtol=0, atol=0)
    plain = make_model("wikirl", extend_positions=extend)  # language_positions off: no positions
    assert not plain.spec.language_positions


def test_wikirl_cotraining_sets_language_positions():
    from offline_zoo import WikiRL
    from offline_zoo.testing import tiny_dataset

    kw = dict(device="cpu", lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2, n_clusters=4,
              corpus="random", lm_block_size=8, lm_batch_size=1, context_len=4, batch_size=4)
    co = WikiRL(tiny_dataset(), lm_loss_coef=0.2, **kw)
    assert co.model.spec.language_positions and co.model.spec.extend_positions
    assert co.config.action_head == "tied_tanh" and isinstance(co.model.predict_action, TiedActionHead)
    assert not WikiRL(tiny_dataset(), **kw).model.spec.language_positions  # lm_loss_coef 0: no language forward
