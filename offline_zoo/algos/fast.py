"""Speed paths of the sequence agents (DT, Wiki-RL, LaMo): nothing here changes what is computed.

Training (`enable_fast_training`, with ``fast_kernels=True``):

* **Dropout on CPU from 16-bit random lanes.** ``torch.nn.functional.dropout`` draws one
  Bernoulli per element from the CPU generator (about 10 ns per element on this project's CPUs,
  as much as the matmuls of a small model). `fast_dropout` cuts 64-bit words of the same
  torch generator into four 16-bit lanes and drops an element when its lane falls below
  ``round(p * 2**16)``: the same Bernoulli(p) dropout with ``p`` realised to 1/65536
  (|dp| <= 7.7e-6), several times cheaper, seeded and saved like everything else drawn from torch's
  generator. On CUDA (and under ``torch.compile``) torch's own dropout is used.
* **Attention with that dropout.** With attention dropout, ``scaled_dot_product_attention`` on
  CPU falls back to its math path anyway (the fused CPU kernels have no dropout);
  `fast_attention` is that math path in fp32 with fewer passes over the T x T map (one
  ``baddbmm`` for scale and mask, V pre-scaled by 1/(1-p)) and `fast_dropout`. Without
  dropout (evaluation) or off the CPU it calls transformers' sdpa attention unchanged.
* **Fused GELU** (`fuse_gelu`): GPT-2's ``gelu_new`` written as six elementwise ops becomes
  transformers' one-kernel ``GELUTanh`` (same function, equal up to rounding).
* **peft input casts.** Under bf16 autocast peft casts every LoRA input back to fp32 before the
  adapter's dropout (a full extra pass per adapter); the cast is switched off, autocast still
  runs the adapter matmuls in bf16 (same values: autocast rounds the fp32 copy to bf16 anyway).
* **CPU allocator** (`tune_cpu_allocator`): glibc serves every block above 32 MB with a
  fresh ``mmap`` and unmaps it on ``free``, so the large activations of a GPT-2 step (attention
  maps, language-model logits: gigabytes per step) are page-faulted in again at every step, which
  costs as much as the attention itself. Freed memory is kept for reuse instead (as CUDA's caching
  allocator does on a GPU); applied once per process when training starts on a CPU.

The forward that skips the last block's work on tokens no loss reads lives in
`SequenceAlgo` (``_state_token_forward``).

Optimizer: `make_adamw` uses the fused AdamW kernel where the device has one (CPU and CUDA in
torch >= 2.4; about 3x faster than the per-tensor loop on CPU), else the multi-tensor one.

Inference (`inference_copy`): a copy of the model for evaluation that shares every tensor it
does not change. LoRA adapters are merged into GPT-2's fused ``c_attn`` (one matmul instead of three
plus six low-rank ones; equal up to float rounding) and, for bf16 inference, the matmul weights are
stored in bf16 (autocast would round them to exactly these values on every call; storing them saves
the cast and half the memory traffic, the results are identical).

Batches to a GPU: `PinnedStager` copies numpy batches through page-locked, multi-buffered
host memory with ``non_blocking=True``, so sampling the next batch overlaps the running step.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ALLOCATOR_ENV",
    "FAST_ATTENTION",
    "FastDropout",
    "PinnedStager",
    "enable_fast_training",
    "fast_attention",
    "fast_dropout",
    "fuse_gelu",
    "inference_copy",
    "make_adamw",
    "tune_cpu_allocator",
    "weights_key",
]

ALLOCATOR_ENV = "OFFLINE_ZOO_NO_MALLOC_TUNING"

FAST_ATTENTION = "offline_zoo_fast"
_LANE_BITS = 16
_LANE_RANGE = 1 << _LANE_BITS


def _compiling() -> bool:
    return bool(getattr(torch, "compiler", None) and torch.compiler.is_compiling())


def _random_lanes(numel: int, device: torch.device) -> torch.Tensor:
    """``numel`` uniform int16 values: 64-bit words of torch's generator, cut into four lanes."""
    words = (numel + 3) // 4
    bits = torch.empty(words, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    return bits.view(torch.int16)[:numel]


class _KeepScale(torch.autograd.Function):
    """``x * keep * scale`` saving only the boolean ``keep`` for backward (a multiplication by a
    boolean mask is vectorised on CPU; ``masked_fill`` / ``where`` are 2-3x slower there)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return (x * keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None, None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Dropout with the keep/drop decision taken from 16-bit lanes of torch's generator (CPU).

    Each element is dropped with probability ``round(p * 65536) / 65536`` and the kept ones are
    scaled by ``1 / (1 - p)``. Off the CPU, under ``torch.compile``, for ``p`` 0 or 1, or outside
    training it is exactly ``torch.nn.functional.dropout``.

    Examples:
        >>> import torch
        >>> x = torch.ones(100_000)
        >>> y = fast_dropout(x, 0.1)
        >>> abs(float((y == 0).float().mean()) - 0.1) < 0.01, abs(float(y.max()) - 1 / 0.9) < 1e-6
        (True, True)
    """
    if not training or p <= 0.0:
        return x
    if p >= 1.0 or x.device.type != "cpu" or _compiling() or x.numel() == 0:
        return F.dropout(x, p, True)
    threshold = int(round(p * _LANE_RANGE)) - _LANE_RANGE // 2
    keep = _random_lanes(x.numel(), x.device).view(x.shape) >= threshold
    return _KeepScale.apply(x, keep, 1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` computed by `fast_dropout` (same ``p`` / ``inplace`` attributes, no state).

    `enable_fast_training` turns every ``nn.Dropout`` of a model into one.

    Examples:
        >>> import torch
        >>> drop = FastDropout(p=0.5)
        >>> sorted(set(drop(torch.ones(10_000)).tolist()))  # dropped, or kept and scaled by 1 / (1 - p)
        [0.0, 2.0]
        >>> drop.eval()(torch.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:  # nobody in offline-zoo uses it; keep torch's semantics
            return F.dropout(x, self.p, self.training, inplace=True)
        return fast_dropout(x, self.p, self.training)


def fast_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    is_causal: bool | None = None,
    **kwargs: Any,
):
    """Attention for transformers' ``AttentionInterface`` (registered as ``"offline_zoo_fast"``).

    With dropout on a CPU it computes, in fp32 whatever the autocast state: ``softmax(scale * Q K^T
    + bias)``, then the dropout mask of `fast_dropout`, then ``@ (V / (1 - p))`` (scaling V
    instead of the T x T map: the same product, one pass fewer). ``bias`` is 0 where the boolean
    (or additive) mask of transformers' ``sdpa`` mask builder allows attention (causal when no
    mask is given) and the lowest fp32 value elsewhere, added inside the same ``baddbmm`` as the
    scaled product; a query whose keys are all padding attends uniformly (finite, like
    transformers' eager attention) instead of producing NaN. Compared with a bf16 attention map
    this avoids four casts of the T x T map per layer. Without dropout (evaluation), off the CPU,
    or under ``torch.compile`` it is transformers' ``sdpa_attention_forward`` unchanged.
    Returns ``(B, T, heads, head_dim)`` in the dtype of ``value``, and None.

    Args:
        module: the attention module (its ``training`` flag and ``is_causal`` are read).
        query: ``(B, heads, T_q, head_dim)``.
        key: ``(B, heads, T_k, head_dim)`` (or fewer heads, repeated: grouped-query attention).
        value: same shape as ``key``.
        attention_mask: boolean (True = attend) or additive mask broadcastable to
            ``(B, heads, T_q, T_k)``; None: causal (or full, for a non-causal module).
        scaling: factor of ``Q K^T`` (default ``head_dim ** -0.5``).
        dropout: attention dropout probability.
        is_causal: overrides ``module.is_causal`` when no mask is given.
        **kwargs: passed on to transformers' sdpa attention.

    Examples:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2Model
        >>> attn = GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=2)).h[0].attn
        >>> q, k, v = torch.randn(3, 1, 2, 5, 4)  # (B, heads, T, head_dim) each
        >>> ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
        >>> out, weights = fast_attention(attn.train(), q, k, v, None, dropout=0.1)
        >>> out.shape, weights
        (torch.Size([1, 5, 2, 4]), None)
        >>> out, _ = fast_attention(attn.train(), q, k, v, None, dropout=1e-6)  # p realised to 0: nothing dropped
        >>> torch.allclose(out, ref, atol=1e-5)
        True
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout <= 0.0 or not module.training or query.device.type != "cpu" or _compiling() or dropout >= 1.0:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, is_causal=is_causal, **kwargs
        )
    B, H, Tq, D = query.shape
    if key.shape[1] != H:  # grouped-query attention (not GPT-2): repeat the key/value heads
        rep = H // key.shape[1]
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    Tk = key.shape[2]
    if scaling is None:
        scaling = D**-0.5
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    with torch.autocast(query.device.type, enabled=False):
        lowest = torch.finfo(torch.float32).min
        if attention_mask is None:
            bias = torch.zeros(Tq, Tk, device=query.device)
            if causal and Tq > 1:
                bias.masked_fill_(torch.ones(Tq, Tk, dtype=torch.bool, device=query.device).triu_(Tk - Tq + 1), lowest)
        else:
            if attention_mask.dtype == torch.bool:
                bias = torch.zeros(attention_mask.shape, device=query.device).masked_fill_(~attention_mask, lowest)
            else:
                bias = attention_mask.float()
            bias = bias.expand(B, H, Tq, Tk).reshape(B * H, Tq, Tk)
        q = query.float().reshape(B * H, Tq, D)
        k = key.float().reshape(B * H, Tk, D)
        v = value.float().reshape(B * H, Tk, D) * (1.0 / (1.0 - dropout))
        probs = torch.softmax(torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scaling), dim=-1)
        keep = _random_lanes(probs.numel(), probs.device).view(probs.shape) >= int(round(dropout * _LANE_RANGE)) - _LANE_RANGE // 2
        out = torch.bmm(probs * keep, v)
    out = out.view(B, H, Tq, D).transpose(1, 2).to(value.dtype).contiguous()
    return out, None


_REGISTERED = False


def _register_attention() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(FAST_ATTENTION, fast_attention)
    AttentionMaskInterface.register(FAST_ATTENTION, sdpa_mask)
    _REGISTERED = True


def _gpt2_bodies(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "config") and hasattr(m, "h") and hasattr(m, "wte")]


def fuse_gelu(model: nn.Module) -> nn.Module:
    """Replace transformers' ``NewGELUActivation`` (GPT-2's ``gelu_new``: the tanh approximation
    written as six elementwise ops) by its fused one-kernel form ``GELUTanh``, in place.

    Same function (``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``), results equal up to float
    rounding (|diff| < 1e-6 on N(0, 9) inputs); about a fifth of GPT-2 small's CPU inference time.
    Returns the model.

    Examples:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1))
        >>> before = body.h[0].mlp.act
        >>> type(before).__name__, type(fuse_gelu(body).h[0].mlp.act).__name__
        ('NewGELUActivation', 'GELUTanh')
        >>> x = 3 * torch.randn(1000)
        >>> bool((body.h[0].mlp.act(x) - before(x)).abs().max() < 1e-5)
        True
    """
    from transformers.activations import GELUTanh, NewGELUActivation

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is NewGELUActivation:
                setattr(parent, name, GELUTanh())
    return model


def enable_fast_training(model: nn.Module, cast_lora_inputs: bool = True) -> nn.Module:
    """Switch a model to the fast CPU training kernels, in place (see the module doc).

    Every ``nn.Dropout`` becomes a `FastDropout` (same ``p``), every GPT-2 body uses
    `fast_attention`, GPT-2's GELU is fused (`fuse_gelu`), and with ``cast_lora_inputs=False`` peft's fp32 input casts are off.
    Parameters, buffers and the state dict are untouched. Returns the model.

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = enable_fast_training(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)))
        >>> type(body.h[0].attn.attn_dropout).__name__, body.config._attn_implementation
        ('FastDropout', 'offline_zoo_fast')
    """
    _register_attention()
    fuse_gelu(model)
    for m in model.modules():
        if type(m) is nn.Dropout:
            m.__class__ = FastDropout
        if not cast_lora_inputs and hasattr(m, "lora_A") and hasattr(m, "cast_input_dtype_enabled"):
            m.cast_input_dtype_enabled = False
    for body in _gpt2_bodies(model):
        body.config._attn_implementation = FAST_ATTENTION
    return model


_ALLOCATOR_TUNED: bool | None = None


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it (process-wide, idempotent).

    Sets ``M_MMAP_MAX = 0`` (large blocks come from the heap, not from fresh ``mmap`` regions that
    must be page-faulted in again at every step) and a huge ``M_TRIM_THRESHOLD`` (freed heap
    memory is not returned to the OS). The process keeps its peak memory, as with CUDA's caching
    allocator. Returns whether the setting is active; a no-op (False) off glibc, or when the
    environment variable ``OFFLINE_ZOO_NO_MALLOC_TUNING=1`` is set.

    Examples:
        >>> active = tune_cpu_allocator()  # True on Linux with glibc
        >>> tune_cpu_allocator() is active  # applied once per process
        True
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is not None:
        return _ALLOCATOR_TUNED
    _ALLOCATOR_TUNED = False
    if os.environ.get(ALLOCATOR_ENV, "") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _ALLOCATOR_TUNED = bool(ok)
    return _ALLOCATOR_TUNED


def make_adamw(params, device: torch.device, **kwargs) -> torch.optim.AdamW:
    """AdamW with the fused kernel where the device supports it, else the multi-tensor (foreach) one.

    Examples:
        >>> import torch
        >>> opt = make_adamw([torch.nn.Parameter(torch.zeros(3))], torch.device("cpu"), lr=1e-3)
        >>> opt.defaults["fused"] or opt.defaults["foreach"]
        True
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def weights_key(model: nn.Module) -> tuple:
    """A key that changes when a parameter or buffer of ``model`` is edited in place (torch's
    version counters) or replaced (identity, storage). Fused optimizer kernels do NOT bump the
    version counters: callers also key on their own count of optimizer steps.

    Examples:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> key = weights_key(lin)
        >>> key == weights_key(lin)
        True
        >>> with torch.no_grad():
        ...     _ = lin.weight.add_(1.0)
        >>> key == weights_key(lin)
        False
    """
    return tuple((id(t), t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


def _matmul_modules() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D

    return (nn.Linear, Conv1D, nn.Conv2d)


def inference_copy(model: nn.Module, merge_lora: bool = True, bf16_weights: bool = False) -> nn.Module:
    """An evaluation-mode copy of ``model`` for fast inference; the original is not modified.

    * ``merge_lora``: LoRA adapters folded into the weights and Q/K/V fused back into GPT-2's
      ``c_attn`` (`offline_zoo.models.merge_lora`); outputs equal up to float rounding.
    * ``bf16_weights``: weights and biases of Linear / Conv1D / Conv2d stored in bf16, for use
      under bf16 autocast (identical results: autocast rounds them to the same values).

    Tensors the copy does not change are shared with ``model`` (no extra memory); the copy must be
    rebuilt after the model's weights change (`weights_key` tells when).

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> from offline_zoo.models import apply_lora
        >>> body = apply_lora(GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=10)), rank=2)
        >>> fast = inference_copy(body)
        >>> type(fast.h[0].attn.c_attn).__name__, type(body.h[0].attn.c_attn).__name__
        ('Conv1D', 'SplitQKV')
    """
    from ..models import has_lora
    from ..models import merge_lora as _merge

    merge = merge_lora and has_lora(model)
    matmul_types = _matmul_modules()
    memo: dict[int, Any] = {}
    for name, module in model.named_modules():
        in_attn = merge and "c_attn" in name.split(".")
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in memo:
                continue
            if in_attn:
                continue  # deep-copied, merged below
            if bf16_weights and isinstance(module, matmul_types) and p.is_floating_point():
                memo[id(p)] = nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False)
            else:
                memo[id(p)] = p
        for b in module.buffers(recurse=False):
            memo.setdefault(id(b), b)
    fast = copy.deepcopy(model, memo)
    if merge:
        with torch.no_grad():
            _merge(fast)
        if bf16_weights:
            for name, module in fast.named_modules():
                if "c_attn" in name.split(".") and isinstance(module, matmul_types):
                    for pname, p in list(module.named_parameters(recurse=False)):
                        setattr(module, pname, nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False))
    return fast.eval()


class PinnedStager:
    """Host-to-GPU copies of numpy batches through page-locked, double-buffered memory.

    ``stager(batch)`` writes each array into a pinned buffer of its shape and dtype and starts an
    asynchronous copy; a buffer is reused only after the copy issued from it ``slots`` calls earlier has
    finished (a CUDA event, four slots by default), so the CPU can prepare the next batch while the GPU works.

    Args:
        device: the CUDA device the batches go to.
        slots: number of pinned buffer sets in rotation.

    Examples:
        Needs a GPU:

        >>> import numpy as np, torch
        >>> stager = PinnedStager(torch.device("cuda"))  # doctest: +SKIP
        >>> batch = stager({"obs": np.zeros((64, 11), np.float32)})  # doctest: +SKIP
        >>> batch["obs"].device, batch["obs"].shape  # doctest: +SKIP
        (device(type='cuda', index=0), torch.Size([64, 11]))
        >>> PinnedStager(torch.device("cpu"))
        Traceback (most recent call last):
        ...
        ValueError: PinnedStager is for CUDA devices, got cpu
    """

    def __init__(self, device: torch.device, slots: int = 4):
        if torch.device(device).type != "cuda":
            raise ValueError(f"PinnedStager is for CUDA devices, got {device}")
        self.device = torch.device(device)
        self._buffers: list[dict[str, torch.Tensor]] = [{} for _ in range(slots)]
        self._events: list[Any] = [None] * slots
        self._next = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        if self._events[slot] is not None:
            self._events[slot].synchronize()
        buffers, out = self._buffers[slot], {}
        for k, v in batch.items():
            v = np.ascontiguousarray(v)
            host = torch.from_numpy(v)
            buf = buffers.get(k)
            if buf is None or buf.shape != host.shape or buf.dtype != host.dtype:
                buf = buffers[k] = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
            buf.copy_(host)
            out[k] = buf.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._events[slot] = event
        return out
