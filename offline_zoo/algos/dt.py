"""Decision Transformer (Chen et al. 2021), as in kzl/decision-transformer.

A randomly initialised GPT-2 body (128 dim, 3 layers, 1 head, n_inner 512, ReLU, dropout 0.1)
without GPT-2's position embeddings; the timestep embedding is added to each modality embedding
before the embedding LayerNorm; linear embeddings, Linear + Tanh action head. AdamW 1e-4,
weight decay 1e-4, 10k warmup steps, gradient clip 0.25, K = 20. Atari: Nature CNN state encoder,
discrete actions with cross-entropy, K = 30 (``configs/dt.yaml``). The body's initial draw and
LayerNorm eps are d3rlpy's DecisionTransformer's by default (measured against the released GPT-2
body in ``docs/learning-parity.md``, ``docs/deviations.md`` row 1d); ``residual_init="gpt2",
layer_norm_eps=1e-5`` give the released body.

    >>> from offline_zoo import DT
    >>> DT("hopper-medium", ratio=0.1, source="generated").learn(1000)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import GPT2Config, GPT2Model

from .registry import register_algo
from .sequence import SequenceAlgo, SequenceConfig

__all__ = ["DT", "DTConfig"]


@dataclass
class DTConfig(SequenceConfig):
    """Decision Transformer config (defaults: the original MuJoCo settings).

    Attributes:
        hidden_size: n_embd of the GPT-2 body.
        n_layer: depth (transformer blocks) of the body.
        n_head: attention heads of the body.
        activation: MLP activation of the body (``"relu"`` in the original).
        residual_init: draw of the residual projections (attention and MLP ``c_proj``): ``"unscaled"``
            (default, N(0, 0.02), as d3rlpy's DecisionTransformer: GPT-2's draw, scaled up) or
            ``"gpt2"`` (GPT-2 and the released code: N(0, 0.02 / sqrt(2 n_layer))).
        layer_norm_eps: epsilon of the body's LayerNorms (default 3e-3, d3rlpy's DecisionTransformer;
            GPT-2 and the released code 1e-5).

    Examples:
        >>> cfg = DTConfig()
        >>> cfg.hidden_size, cfg.n_layer, cfg.n_head, cfg.context_len
        (128, 3, 1, 20)
        >>> from offline_zoo.testing import tiny_dataset
        >>> DT(tiny_dataset(), device="cpu").config.target_returns  # configs/dt.yaml, hopper section
        (3600.0, 1800.0)
    """

    hidden_size: int = 128
    n_layer: int = 3
    n_head: int = 1
    activation: str = "relu"
    residual_init: str = "unscaled"
    layer_norm_eps: float = 3e-3

    # the released GPT-2 body (benchmarks/learning_parity.py lists a run's deviations against these)
    values_before_field: ClassVar[dict[str, Any]] = {
        **SequenceConfig.values_before_field, "residual_init": "gpt2", "layer_norm_eps": 1e-5,
    }


RESIDUAL_INITS = ("gpt2", "unscaled")


@register_algo(aliases=("decision-transformer",))
class DT(SequenceAlgo):
    """Decision Transformer: a small GPT-2 trained from scratch on (R, s, a) sequences.

    Takes the arguments of `OfflineAlgo` and the fields of `DTConfig`.

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> algo.learn(2, progress_bar=False).num_steps
        2
        >>> actions, state = algo.predict(tiny_dataset().observations[:3])
        >>> actions.shape
        (3, 3)
        >>> DT(tiny_dataset(), device="cpu", hidden_size=10, n_head=4)
        Traceback (most recent call last):
        ...
        ValueError: hidden_size=10 must be divisible by n_head=4
    """

    name = "dt"
    config_class = DTConfig
    embed_order = "dt"

    def _make_body(self) -> GPT2Model:
        c = self.config
        if c.hidden_size % c.n_head:
            raise ValueError(f"hidden_size={c.hidden_size} must be divisible by n_head={c.n_head}")
        if c.residual_init not in RESIDUAL_INITS:
            raise ValueError(f"residual_init={c.residual_init!r}; allowed: {', '.join(map(repr, RESIDUAL_INITS))}")
        if not c.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps={c.layer_norm_eps!r} must be > 0")
        body = GPT2Model(
            GPT2Config(
                vocab_size=1,  # tokens come in through inputs_embeds
                bos_token_id=0,
                eos_token_id=0,
                n_embd=c.hidden_size,
                n_layer=c.n_layer,
                n_head=c.n_head,
                n_inner=4 * c.hidden_size,
                activation_function=c.activation,
                n_positions=1024,
                resid_pdrop=c.dropout,
                embd_pdrop=c.dropout,
                attn_pdrop=c.dropout,
                layer_norm_epsilon=c.layer_norm_eps,
            )
        )
        if c.residual_init == "unscaled":  # undo GPT-2's 1 / sqrt(2 n_layer): no new draw, same random stream
            with torch.no_grad():
                for name, p in body.named_parameters():
                    if name.endswith("c_proj.weight"):
                        p.mul_(math.sqrt(2 * c.n_layer))
        return body

    @classmethod
    def tiny_config(cls, spec):
        return {**super().tiny_config(spec), "hidden_size": 16, "n_layer": 1, "n_head": 1}
