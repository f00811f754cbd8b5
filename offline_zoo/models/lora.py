"""LoRA with the structure of the released LaMo code, built on `peft`, and fine-tuning modes.

GPT-2 computes Q, K and V with one fused ``Conv1D`` (``attn.c_attn``, weight (d, 3d)). LaMo puts
THREE independent rank-r adapters on it, one each for Q, K and V; a single peft adapter on the
fused ``c_attn`` is a different (smaller) structure. `apply_lora` with ``mode="qkv"``
replaces every ``c_attn`` by a `SplitQKV` holding three ``nn.Linear`` (``q_proj``,
``k_proj``, ``v_proj``) with the fused weights and bias copied exactly (Conv1D stores its weight
as (in, out), nn.Linear as (out, in)), then lets peft wrap each of the three Linears with a LoRA
adapter (A kaiming-uniform(a=sqrt 5), B zeros, scale alpha / r). For GPT-2 small (12 layers,
d = 768) and r = 16 this gives 12 x 3 x 2 x 16 x 768 = 884,736 LoRA parameters, plus the
12 x 2304 = 27,648 Q/K/V biases that LaMo also trains. ``mode="fused"`` is the one-adapter variant
of LaMo's Atari code (r = 32, alpha = 32, no dropout there).

`merge_lora` folds the adapters into the base weights and fuses Q/K/V back into a GPT-2
``Conv1D``, so a merged body has exactly the stock GPT-2 structure and speed.

Examples:
    >>> from transformers import GPT2Config, GPT2Model
    >>> body = apply_lora(GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=10)), rank=4)
    >>> count_parameters(body)["lora"]  # 2 layers x 3 adapters x (4x32 + 32x4)
    1536
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "LORA_MODES",
    "FREEZE_MODES",
    "SplitQKV",
    "apply_lora",
    "freeze_for_mode",
    "merge_lora",
    "count_parameters",
    "has_lora",
    "is_lora_parameter",
]

LORA_MODES = ("qkv", "fused")
FREEZE_MODES = ("lora", "full", "frozen")
_QKV_NAMES = ("q_proj", "k_proj", "v_proj")


def _allowed(values) -> str:
    return ", ".join(repr(v) for v in values)


def _conv1d_class():
    from transformers.pytorch_utils import Conv1D

    return Conv1D


class SplitQKV(nn.Module):
    """GPT-2's fused Q/K/V projection as three separate ``nn.Linear`` (``q_proj``, ``k_proj``, ``v_proj``).

    Output is ``cat([q(x), k(x), v(x)], -1)``, identical to the fused ``Conv1D`` it was built
    from, so ``GPT2Attention`` uses it unchanged.

    Examples:
        >>> import torch
        >>> from transformers.pytorch_utils import Conv1D
        >>> fused = Conv1D(3 * 8, 8)
        >>> x = torch.randn(2, 8)
        >>> torch.allclose(SplitQKV.from_conv1d(fused)(x), fused(x), atol=1e-6)
        True
    """

    def __init__(self, dim: int, bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)

    @classmethod
    def from_conv1d(cls, conv: nn.Module) -> "SplitQKV":
        """Build from a fused GPT-2 ``Conv1D`` with weight (d, 3d), copying weights exactly."""
        weight = conv.weight  # (in = d, out = 3d)
        d_in, d_out = weight.shape
        if d_out != 3 * d_in:
            raise ValueError(f"expected a fused Q/K/V Conv1D with weight (d, 3d), got {tuple(weight.shape)}")
        module = cls(d_in, bias=conv.bias is not None).to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for i, lin in enumerate((module.q_proj, module.k_proj, module.v_proj)):
                lin.weight.copy_(weight[:, i * d_in : (i + 1) * d_in].t())
                if conv.bias is not None:
                    lin.bias.copy_(conv.bias[i * d_in : (i + 1) * d_in])
        return module

    def to_conv1d(self) -> nn.Module:
        """Fuse back into a GPT-2 ``Conv1D`` (the Linears must not carry unmerged adapters)."""
        linears = [getattr(self, n) for n in _QKV_NAMES]
        for n, lin in zip(_QKV_NAMES, linears):
            if not isinstance(lin, nn.Linear):
                raise ValueError(f"{n} still carries a LoRA adapter ({type(lin).__name__}); merge it first")
        conv = _conv1d_class()(3 * self.dim, self.dim)
        ref = self.q_proj.weight
        conv = conv.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([lin.weight.t() for lin in linears], dim=1))
            if self.q_proj.bias is not None:
                conv.bias.copy_(torch.cat([lin.bias for lin in linears]))
            else:
                conv.bias = None
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project (..., d) to (..., 3d) = Q | K | V."""
        return torch.cat((self.q_proj(x), self.k_proj(x), self.v_proj(x)), dim=-1)


def _body_of(model: nn.Module) -> nn.Module:
    """The GPT-2 body of a TrajectoryTransformer (``model.body``) or the module itself."""
    body = getattr(model, "body", None)
    return body if isinstance(body, nn.Module) else model


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def is_lora_parameter(name: str) -> bool:
    """True for peft LoRA parameter names (``...lora_A...`` / ``...lora_B...``).

    Examples:
        >>> is_lora_parameter("h.0.attn.c_attn.q_proj.lora_A.default.weight")
        True
    """
    return "lora_A" in name or "lora_B" in name


def _is_attn_bias(name: str) -> bool:
    """Bias of the Q/K/V projection: any ``bias`` below an ``attn.c_attn`` (fused, split or peft-wrapped)."""
    parts = name.split(".")
    return parts[-1] == "bias" and "c_attn" in parts and not is_lora_parameter(name)


def has_lora(model: nn.Module) -> bool:
    """Whether any LoRA adapter is present.

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> has_lora(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)))
        False
    """
    return any(is_lora_parameter(n) for n, _ in model.named_parameters())


def apply_lora(
    body: nn.Module,
    rank: int = 16,
    alpha: float = 32,
    dropout: float = 0.1,
    mode: str = "qkv",
) -> nn.Module:
    """Add LoRA adapters to every ``attn.c_attn`` of a GPT-2 body, in place, via peft.

    Args:
        body: a ``GPT2Model`` / ``GPT2LMHeadModel``, or a model with a ``.body`` (e.g.
            `TrajectoryTransformer`), whose body is adapted.
        rank: LoRA rank r.
        alpha: LoRA alpha (scale alpha / r).
        dropout: dropout on the adapter input.
        mode: ``"qkv"`` (LaMo: three adapters, one each on Q, K, V) or ``"fused"`` (one adapter on
            the fused c_attn, LaMo's Atari variant).

    The body's parameters are left in the ``"lora"`` trainable state (LoRA + Q/K/V biases
    trainable, everything else of the body frozen; for ``"fused"`` the c_attn bias stays
    trainable too - call ``freeze_for_mode(model, "lora", train_attn_bias=False)`` for the Atari
    code's exact set). Modules outside the body are untouched.

    Returns:
        the argument (modified in place).

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = apply_lora(GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=1, vocab_size=10)), rank=2)
        >>> type(body.h[0].attn.c_attn).__name__
        'SplitQKV'
    """
    from peft import LoraConfig, inject_adapter_in_model

    if mode not in LORA_MODES:
        raise ValueError(f"unknown LoRA mode {mode!r}; allowed values: {_allowed(LORA_MODES)}")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    target = _body_of(body)
    if has_lora(target):
        raise ValueError("the body already has LoRA adapters; apply_lora must be called once")
    Conv1D = _conv1d_class()
    attn_convs = [
        name
        for name, mod in target.named_modules()
        if name.split(".")[-1] == "c_attn" and isinstance(mod, Conv1D)
    ]
    if not attn_convs:
        raise ValueError(f"no GPT-2 attn.c_attn Conv1D found in {type(target).__name__}")
    if mode == "qkv":
        for name in attn_convs:
            _set_submodule(target, name, SplitQKV.from_conv1d(target.get_submodule(name)))
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=r".*\.c_attn\.(q_proj|k_proj|v_proj)",
            bias="none",
        )
    else:
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=r".*\.c_attn",
            fan_in_fan_out=True,
            bias="none",
        )
    inject_adapter_in_model(config, target)
    freeze_for_mode(target, "lora")
    return body


def freeze_for_mode(model: nn.Module, mode: str, train_attn_bias: bool = True) -> nn.Module:
    """Set ``requires_grad`` for a fine-tuning mode, in place.

    Modes (for the GPT-2 ``model.body``; every other module of ``model`` - embeddings,
    embedding LayerNorm, timestep table, heads - is always made trainable):

    * ``"lora"``: only LoRA parameters and (if ``train_attn_bias``) the Q/K/V biases of the body
      are trainable (LaMo). Requires `apply_lora` first.
    * ``"full"``: the whole body is trainable (Wiki-RL, DT, full fine-tuning ablation).
    * ``"frozen"``: the whole body is frozen (frozen-LM ablation).

    A disabled wpe (`NullPositionEmbedding`) is
    a buffer and never trainable.

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1, vocab_size=10))
        >>> count_parameters(freeze_for_mode(body, "frozen"))["trainable"]
        0
    """
    if mode not in FREEZE_MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; allowed values: {_allowed(FREEZE_MODES)}")
    body = _body_of(model)
    if mode == "lora" and not has_lora(body):
        raise ValueError("mode 'lora' needs LoRA adapters; call apply_lora(model) first")
    body_ids = {id(p) for p in body.parameters()}
    for p in model.parameters():
        if id(p) not in body_ids:
            p.requires_grad_(True)
    for name, p in body.named_parameters():
        if mode == "full":
            p.requires_grad_(True)
        elif mode == "frozen":
            p.requires_grad_(False)
        else:
            p.requires_grad_(is_lora_parameter(name) or (train_attn_bias and _is_attn_bias(name)))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the base weights and restore GPT-2's fused ``c_attn``, in place.

    For inference: the result has the stock GPT-2 structure (no peft layers, no
    `SplitQKV`) and computes the same function up to float rounding. Adapters can no
    longer be trained separately afterwards.

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = apply_lora(GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=1, vocab_size=10)), rank=2)
        >>> type(merge_lora(body).h[0].attn.c_attn).__name__
        'Conv1D'
    """
    from peft.tuners.lora import LoraLayer

    body = _body_of(model)
    lora_layers = [(n, m) for n, m in body.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in lora_layers:
        layer.merge()
        _set_submodule(body, name, layer.get_base_layer())
    for name, mod in [(n, m) for n, m in body.named_modules() if isinstance(m, SplitQKV)]:
        _set_submodule(body, name, mod.to_conv1d())
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts: ``total``, ``trainable``, ``lora`` (all LoRA parameters), ``bias``
    (trainable Q/K/V biases of the attention input projection), ``body`` and ``body_trainable``
    (GPT-2 body only; the body of a TrajectoryTransformer, else the whole module).

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = apply_lora(GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=1, vocab_size=10)), rank=2)
        >>> c = count_parameters(body); (c["lora"], c["bias"])
        (192, 48)
    """
    body = _body_of(model)
    counts = dict(total=0, trainable=0, lora=0, bias=0, body=0, body_trainable=0)
    for _, p in model.named_parameters():
        counts["total"] += p.numel()
        counts["trainable"] += p.numel() if p.requires_grad else 0
    for name, p in body.named_parameters():
        n = p.numel()
        counts["body"] += n
        counts["body_trainable"] += n if p.requires_grad else 0
        if is_lora_parameter(name):
            counts["lora"] += n
        elif p.requires_grad and _is_attn_bias(name):
            counts["bias"] += n
    return counts
