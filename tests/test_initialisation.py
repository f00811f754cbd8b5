"""The initialisation of every freshly built module of the sequence agents, pinned.

With the timestep table left at torch's N(0, 1) our DT scored 14 where N(0, 0.02) scored 44 after
1,500 steps (one experiment of the learning-parity issue, docs/deviations.md). These tests fail if that, or the
initialisation of any other DT-side module, silently changes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from offline_zoo import DT, LaMo, WikiRL
from offline_zoo.models import TrajectoryTransformer, TransformerSpec
from offline_zoo.models.embeddings import TiedActionHead
from offline_zoo.testing import tiny_dataset

TINY_LM = dict(lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2, corpus="random", lm_block_size=8, lm_batch_size=1)
TINY = dict(device="cpu", context_len=4, batch_size=4)
AGENTS = {
    "dt": lambda **kw: DT(tiny_dataset(), hidden_size=16, n_layer=1, **TINY, **kw),
    "wikirl": lambda **kw: WikiRL(tiny_dataset(), **TINY_LM, **TINY, **kw),
    "lamo": lambda **kw: LaMo(tiny_dataset(), **TINY_LM, **TINY, **kw),
}


def _check_torch_default_linear(layer: nn.Linear, name: str) -> None:
    """torch's default: weight and bias uniform in +-1/sqrt(fan_in), and not degenerate."""
    bound = 1.0 / math.sqrt(layer.in_features)
    for pname, p in (("weight", layer.weight), ("bias", layer.bias)):
        assert p.abs().max() <= bound + 1e-6, f"{name}.{pname} exceeds torch's default bound {bound}"
        if p.numel() >= 16:  # a uniform draw reaches at least a third of its bound
            assert p.abs().max() >= bound / 3, f"{name}.{pname} is far smaller than torch's default init"


def _linears(module: nn.Module):
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_default_timestep_table_is_small_normal(agent):
    model = AGENTS[agent]().model
    w = model.embed_timestep.weight.detach()
    if agent == "wikirl":  # released --extend_positions: the table starts as the LM's wpe
        torch.testing.assert_close(w, model.body.wpe.weight.detach(), rtol=0, atol=0)
    assert w.numel() >= 10_000  # enough draws for a 10% check of the standard deviation
    assert abs(float(w.mean())) < 0.002
    assert float(w.std()) == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_released_timestep_table_is_unit_normal(agent):
    fresh_table = {"extend_positions": False} if agent == "wikirl" else {}  # else the table is wpe
    model = AGENTS[agent](timestep_init="released", **fresh_table).model
    w = model.embed_timestep.weight.detach()
    assert float(w.std()) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_embeddings_heads_and_layer_norm_keep_torch_defaults(agent):
    model = AGENTS[agent]().model
    parts = ("embed_state", "embed_action", "embed_return", "predict_action")
    if agent == "wikirl":  # released --share_input_output_proj: the head is the action embedding's weight
        assert isinstance(model.predict_action, TiedActionHead) and not list(model.predict_action.parameters())
        assert model.predict_action._embedding[0] is model.embed_action
        parts = parts[:-1]
    for part in parts:
        layers = _linears(getattr(model, part))
        assert layers, f"{agent}: {part} has no Linear layer"
        for name, layer in layers:
            _check_torch_default_linear(layer, f"{agent}.{part}.{name}" if name else f"{agent}.{part}")
    torch.testing.assert_close(model.embed_ln.weight, torch.ones_like(model.embed_ln.weight))
    torch.testing.assert_close(model.embed_ln.bias, torch.zeros_like(model.embed_ln.bias))


def test_dt_body_defaults_to_d3rlpys_draw_and_eps():
    # docs/deviations.md row 1d: d3rlpy's N(0, 0.02) for every body matrix (no 1 / sqrt(2 n_layer) on
    # the residual projections) and its LayerNorm eps 3e-3; the embedding LayerNorm keeps torch's 1e-5
    model = DT(tiny_dataset(), hidden_size=64, n_layer=2, **TINY).model
    for block in model.body.h:
        for w in (block.mlp.c_fc.weight, block.attn.c_attn.weight, block.attn.c_proj.weight, block.mlp.c_proj.weight):
            assert float(w.detach().std()) == pytest.approx(0.02, rel=0.1)
        assert float(block.mlp.c_fc.bias.detach().abs().max()) == 0.0
    assert {m.eps for m in model.body.modules() if isinstance(m, nn.LayerNorm)} == {3e-3}
    assert model.embed_ln.eps == 1e-5


@pytest.mark.parametrize("residual_init, std", [("gpt2", 0.02 / math.sqrt(4)), ("unscaled", 0.02)])
def test_dt_residual_projections(residual_init, std):
    """GPT-2 scales the residual projections by 1 / sqrt(2 n_layer); d3rlpy's DT does not."""
    body = DT(tiny_dataset(), hidden_size=64, n_layer=2, residual_init=residual_init, **TINY).model.body
    for block in body.h:
        for w in (block.attn.c_proj.weight, block.mlp.c_proj.weight):
            assert float(w.detach().std()) == pytest.approx(std, rel=0.1)
        assert float(block.mlp.c_fc.weight.detach().std()) == pytest.approx(0.02, rel=0.1)  # only c_proj changes


def test_dt_layer_norm_eps_and_residual_init_are_validated():
    body = DT(tiny_dataset(), hidden_size=16, n_layer=1, layer_norm_eps=3e-3, **TINY).model.body
    assert {m.eps for m in body.modules() if isinstance(m, nn.LayerNorm)} == {3e-3}
    with pytest.raises(ValueError, match="residual_init='scaled'; allowed: 'gpt2', 'unscaled'"):
        DT(tiny_dataset(), residual_init="scaled", **TINY)
    with pytest.raises(ValueError, match="layer_norm_eps=0.0 must be > 0"):
        DT(tiny_dataset(), layer_norm_eps=0, **TINY)


def test_timestep_init_is_validated_and_ignored_with_extend_positions():
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(ValueError, match="unknown timestep_init 'zeros'; allowed values: 'gpt2', 'released'"):
        TransformerSpec((3,), 2, timestep_init="zeros")
    with pytest.raises(ValueError, match="timestep_init"):
        DT(tiny_dataset(), timestep_init="zeros", **TINY)
    body = GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1, n_positions=16))
    m = TrajectoryTransformer(body, TransformerSpec((3,), 2, max_ep_len=16, extend_positions=True, timestep_init="released"))
    torch.testing.assert_close(m.embed_timestep.weight, body.wpe.weight)


def test_timestep_init_is_saved_with_the_agent(tmp_path):
    algo = AGENTS["dt"](timestep_init="released")
    same = DT.load(algo.save(tmp_path / "dt.zip"))
    assert same.config.timestep_init == "released"
    torch.testing.assert_close(same.model.embed_timestep.weight, algo.model.embed_timestep.weight)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_training_windows_end_at_the_drawn_step_by_default(agent):
    # the measured default (docs/deviations.md row 1b): the short, left-padded windows are those of
    # episode starts, like the contexts of an evaluation episode's first steps; with "start" (the
    # released code) they are those of episode ends
    import numpy as np

    for anchor in ("end", "start"):
        algo = AGENTS[agent]() if anchor == "end" else AGENTS[agent](window_anchor="start")
        assert algo.config.window_anchor == anchor
        algo._before_learn()
        batch = algo._sampler.sample(512)
        real = batch["mask"] > 0
        padded = ~real[:, 0]
        assert padded.any() and real[:, -1].all()  # padding always sits left of the real steps
        first_real = real.argmax(axis=1)
        t_first = batch["timesteps"][np.arange(len(real)), first_real][padded]
        if anchor == "end":
            assert (t_first == 0).all()
        else:
            assert (t_first > 0).any()
