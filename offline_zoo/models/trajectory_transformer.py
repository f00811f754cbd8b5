"""Trajectory transformer shared by Decision Transformer, Wiki-RL and LaMo.

A trajectory window of K steps becomes 3K tokens ``(R_1, s_1, a_1, R_2, s_2, a_2, ...)``; a
`transformers` GPT-2 body (``GPT2Model``) runs on them through ``inputs_embeds`` and the action
at step t is predicted from the hidden state of the STATE token ``s_t`` (it sees R_<=t, s_<=t and
a_<t only).

The three algorithm families differ only in small choices, all in `TransformerSpec`:

==================  ==========  ==========  ===========  ==============
option              DT          Wiki-RL     LaMo         LaMo (Atari)
==================  ==========  ==========  ===========  ==============
``embed_order``     ``"dt"``    ``"wikirl"``  ``"lamo"``   ``"atari_lamo"``
``embedding``       linear      linear      mlp (Hopper: linear)  mlp
``action_head``     linear_tanh tied_tanh   mlp (Hopper: linear_tanh)  linear + ``logits_tanh``
timestep table      fresh       wpe (``extend_positions``)  fresh  fresh
wpe added           no          language forward only (co-training)  no  yes
==================  ==========  ==========  ===========  ==============

Embedding orders: ``"dt"`` and ``"atari_lamo"`` add the timestep embedding to every modality
embedding and then apply the embedding LayerNorm; ``"lamo"`` and ``"wikirl"`` apply the
LayerNorm to the stacked modality embeddings first and add the timestep embedding after it.

**Padding.** Windows and rollouts are left-padded. The body gets the 4D boolean mask of
`attention_keep`: causal, padding keys hidden, and every query sees at least itself, so no row of
the attention is fully masked (some SDPA kernels return NaN for such rows; the masked loss then stays
finite while its gradients are NaN). With wpe added, positions count from a window's first real
token (`token_positions`), so a sequence gets the same positions padded or not, as the released
code's unpadded windows.

**GPT-2 position embeddings (wpe).** ``GPT2Model.forward`` always adds ``wpe(position_ids)`` to
``inputs_embeds``. With ``use_position_embeddings=False`` the body's ``wpe`` is replaced by a
`NullPositionEmbedding`: it keeps the pre-trained table as a (non-trainable) buffer under
the same state-dict key ``wpe.weight`` (so LM checkpoints still load into ``body`` with
``strict=True``) but its forward returns a scalar zero. wpe therefore contributes nothing - exactly,
not up to rounding as subtracting it would - to both the RL forward and the language forward
(as in the released LaMo continuous-control code), no parameter of it is trainable, and no
gradient or optimizer state is wasted on it.

Examples:
    >>> import torch
    >>> from transformers import GPT2Config, GPT2Model
    >>> body = GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=1, vocab_size=16, n_positions=64))
    >>> spec = TransformerSpec(obs_shape=(5,), act_dim=2, max_ep_len=100)
    >>> model = TrajectoryTransformer(body, spec)
    >>> B, K = 2, 4
    >>> out = model(torch.randn(B, K, 5), torch.randn(B, K, 2), torch.randn(B, K, 1),
    ...             torch.arange(K).repeat(B, 1), torch.ones(B, K))
    >>> out.action_preds.shape
    torch.Size([2, 4, 2])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from offline_zoo.models.cnn import NatureCNN
from offline_zoo.models.embeddings import (
    ACTION_HEAD_KINDS,
    EMBEDDING_KINDS,
    MLPHead,
    TiedActionHead,
    make_action_head,
    make_discrete_head,
    make_embedding,
    make_token_embedding,
)

__all__ = [
    "EMBED_ORDERS",
    "TIMESTEP_INITS",
    "TransformerSpec",
    "TrajectoryOutput",
    "TrajectoryTransformer",
    "NullPositionEmbedding",
    "attention_keep",
    "disable_position_embeddings",
    "extended_position_table",
    "set_body_dropout",
    "unwrap_body",
    "spec_preset",
    "token_positions",
]

EMBED_ORDERS = ("dt", "lamo", "wikirl", "atari_lamo")
#: ``"gpt2"``: N(0, body.config.initializer_range) (0.02), as GPT-2 and d3rlpy initialise embeddings;
#: ``"released"``: ``nn.Embedding``'s default N(0, 1), as kzl/decision-transformer and the LaMo code
TIMESTEP_INITS = ("gpt2", "released")
_LN_FIRST_ORDERS = ("lamo", "wikirl")
SPEC_PRESETS = ("dt", "wikirl", "lamo", "lamo_linear", "lamo_atari")
#: continuous heads: those of `offline_zoo.models.embeddings` and ``"tied_tanh"`` (`TiedActionHead`)
CONTINUOUS_HEADS = (*ACTION_HEAD_KINDS, "tied_tanh")


def _allowed(values) -> str:
    return ", ".join(repr(v) for v in values)


@dataclass
class TransformerSpec:
    """Options of `TrajectoryTransformer` (everything except the GPT-2 body).

    Attributes:
        obs_shape: observation shape: ``(obs_dim,)`` for vector states, ``(C, H, W)`` for stacked
            frames (a Nature CNN encodes them; uint8 or float frames in [0, 255]).
        act_dim: action dimension (continuous) or number of actions (discrete).
        discrete: discrete actions ``(B, K)`` long in, logits out.
        max_ep_len: rows of the timestep table; timesteps are clamped to ``max_ep_len - 1``.
        embed_order: ``"dt"`` | ``"lamo"`` | ``"wikirl"`` | ``"atari_lamo"`` (see module doc).
        embedding: ``"linear"`` | ``"mlp"`` for the R / s / a embeddings.
        action_head: continuous ``"linear_tanh"`` (default) | ``"linear"`` | ``"mlp"`` |
            ``"tied_tanh"`` (``tanh(x @ W_embed_action)``, no bias: Wiki-RL's released
            ``--share_input_output_proj``; needs ``embedding="linear"``); discrete ``"linear"``
            (default) | ``"mlp"``.
        logits_tanh: discrete only: Tanh on the logits (LaMo's Atari head).
        use_position_embeddings: add GPT-2's wpe over the 3K token positions (LaMo Atari only).
        extend_positions: Wiki-RL: the timestep table starts as the pre-trained wpe: all its
            ``n_positions`` rows, or, when ``max_ep_len > n_positions``, ``max_ep_len`` rows tiling
            rows ``2..n_positions-1`` (the released code uses wpe itself as the table).
        language_positions: add position embeddings in the language forward although the RL
            forward has none (Wiki-RL's released co-training): the timestep table with
            ``extend_positions`` (the released table is wpe itself), else the body's wpe, kept
            trainable. Needs ``use_position_embeddings=False`` (with wpe on, both forwards add it).
        timestep_init: initialisation of a fresh timestep table: ``"gpt2"`` (N(0, 0.02), the
            body's ``initializer_range``, as GPT-2 and d3rlpy) or ``"released"`` (N(0, 1), torch's
            ``nn.Embedding`` default, as the released DT/LaMo/Wiki-RL code). Ignored with
            ``extend_positions`` (the table is copied from wpe).
        resid_pdrop: overrides the body's residual dropout rate (None: keep).
        attn_pdrop: overrides the body's attention dropout rate (None: keep).
        embd_pdrop: overrides the body's embedding dropout rate (None: keep).

    Examples:
        >>> TransformerSpec(obs_shape=(17,), act_dim=6, embed_order="lamo", embedding="mlp",
        ...                 action_head="mlp").embed_order
        'lamo'
    """

    obs_shape: tuple[int, ...]
    act_dim: int
    discrete: bool = False
    max_ep_len: int = 1000
    embed_order: str = "dt"
    embedding: str = "linear"
    action_head: str | None = None
    logits_tanh: bool = False
    use_position_embeddings: bool = False
    extend_positions: bool = False
    language_positions: bool = False
    timestep_init: str = "gpt2"
    resid_pdrop: float | None = None
    attn_pdrop: float | None = None
    embd_pdrop: float | None = None

    def __post_init__(self) -> None:
        self.obs_shape = tuple(int(d) for d in self.obs_shape)
        if len(self.obs_shape) not in (1, 3):
            raise ValueError(
                f"obs_shape {self.obs_shape} not supported; allowed: (obs_dim,) or (C, H, W)"
            )
        if self.act_dim < 1:
            raise ValueError(f"act_dim must be >= 1, got {self.act_dim}")
        if self.max_ep_len < 1:
            raise ValueError(f"max_ep_len must be >= 1, got {self.max_ep_len}")
        if self.embed_order not in EMBED_ORDERS:
            raise ValueError(f"unknown embed_order {self.embed_order!r}; allowed values: {_allowed(EMBED_ORDERS)}")
        if self.timestep_init not in TIMESTEP_INITS:
            raise ValueError(
                f"unknown timestep_init {self.timestep_init!r}; allowed values: {_allowed(TIMESTEP_INITS)}"
            )
        if self.embedding not in EMBEDDING_KINDS:
            raise ValueError(f"unknown embedding {self.embedding!r}; allowed values: {_allowed(EMBEDDING_KINDS)}")
        if self.action_head is None:
            self.action_head = "linear" if self.discrete else "linear_tanh"
        heads = ("linear", "mlp") if self.discrete else CONTINUOUS_HEADS
        if self.action_head not in heads:
            kind = "discrete" if self.discrete else "continuous"
            hint = " (use logits_tanh=True for a Tanh on discrete logits)" if self.discrete else ""
            raise ValueError(
                f"unknown {kind} action_head {self.action_head!r}; allowed values: {_allowed(heads)}{hint}"
            )
        if self.action_head == "tied_tanh" and self.embedding != "linear":
            raise ValueError(
                f"action_head='tied_tanh' ties the head to a linear action embedding; got embedding={self.embedding!r} "
                "(use embedding='linear', or another action_head)"
            )
        if self.language_positions and self.use_position_embeddings:
            raise ValueError(
                "language_positions=True is for use_position_embeddings=False (with wpe on, the language "
                "forward adds it already)"
            )
        if self.logits_tanh and not self.discrete:
            raise ValueError("logits_tanh=True is only valid with discrete=True; use action_head='linear_tanh'")
        if self.extend_positions and self.use_position_embeddings:
            raise ValueError(
                "extend_positions=True requires use_position_embeddings=False (Wiki-RL uses the "
                "pre-trained wpe as the timestep table instead of as token positions)"
            )
        for name in ("resid_pdrop", "attn_pdrop", "embd_pdrop"):
            p = getattr(self, name)
            if p is not None and not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) observations encoded by a CNN."""
        return len(self.obs_shape) == 3

    def replace(self, **changes) -> "TransformerSpec":
        """Copy with some fields changed.

        Examples:
            >>> TransformerSpec((3,), 1).replace(max_ep_len=10).max_ep_len
            10
        """
        return dataclasses.replace(self, **changes)


def spec_preset(name: str, obs_shape: tuple[int, ...], act_dim: int, **overrides) -> TransformerSpec:
    """Published configuration of one algorithm as a `TransformerSpec`.

    Presets: ``"dt"`` (linear embeddings, Linear+Tanh head, timestep before LN),
    ``"wikirl"`` (LN first, resid dropout 0.2, attention dropout 0.1, the released run.sh's
    ``--extend_positions`` and tied head ``--share_input_output_proj``), ``"lamo"`` (LN first, MLP
    embeddings, MLP head), ``"lamo_linear"`` (LaMo on Hopper: linear embeddings, Linear+Tanh),
    ``"lamo_atari"`` (discrete, CNN + residual MLP, wpe added, Tanh on logits, max_ep_len 4096).
    ``overrides`` replace preset fields; with ``discrete=True`` a Linear+Tanh preset head becomes
    plain Linear logits (use ``logits_tanh=True`` to squash them).

    Examples:
        >>> spec_preset("lamo", (11,), 3).action_head
        'mlp'
    """
    presets = {
        "dt": dict(embed_order="dt", embedding="linear", action_head="linear_tanh"),
        "wikirl": dict(
            embed_order="wikirl", embedding="linear", action_head="tied_tanh", extend_positions=True,
            resid_pdrop=0.2, attn_pdrop=0.1,
        ),
        "lamo": dict(embed_order="lamo", embedding="mlp", action_head="mlp"),
        "lamo_linear": dict(embed_order="lamo", embedding="linear", action_head="linear_tanh"),
        "lamo_atari": dict(
            embed_order="atari_lamo",
            embedding="mlp",
            discrete=True,
            action_head="linear",
            logits_tanh=True,
            use_position_embeddings=True,
            max_ep_len=4096,
        ),
    }
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; allowed values: {_allowed(SPEC_PRESETS)}")
    kwargs = {**presets[name], **overrides}
    if kwargs.get("discrete") and kwargs.get("action_head") == "linear_tanh" and "action_head" not in overrides:
        kwargs["action_head"] = None  # discrete default: plain Linear logits
    return TransformerSpec(obs_shape=tuple(obs_shape), act_dim=act_dim, **kwargs)


class TrajectoryOutput(NamedTuple):
    """Result of `TrajectoryTransformer.forward`.

    Attributes:
        action_preds: (B, K, act_dim) continuous actions, or (B, K, n_actions) logits.
        token_embeddings: (B, 3K, d) the stacked modality embeddings after the embedding
            LayerNorm, before the timestep embedding for the ``"lamo"``/``"wikirl"`` orders (what
            Wiki-RL's alignment loss compares to the LM's token-embedding clusters).
        inputs_embeds: (B, 3K, d) exactly what entered the body.
        hidden_states: (B, 3K, d) the body's last hidden state.

    Examples:
        >>> TrajectoryOutput._fields[0]
        'action_preds'
    """

    action_preds: torch.Tensor
    token_embeddings: torch.Tensor
    inputs_embeds: torch.Tensor
    hidden_states: torch.Tensor


class NullPositionEmbedding(nn.Module):
    """Stand-in for GPT-2's ``wpe`` that adds nothing.

    Holds the original table as a persistent, non-trainable buffer named ``weight`` (state-dict
    compatible with ``nn.Embedding``) and returns a scalar zero, which broadcasts in
    ``inputs_embeds + wpe(position_ids)`` without changing the dtype. ``trainable=True`` keeps the
    table as a parameter instead, for a language forward that adds it itself
    (`TransformerSpec.language_positions`).

    Examples:
        >>> import torch
        >>> wpe = NullPositionEmbedding(torch.randn(8, 4))
        >>> float(wpe(torch.arange(3)))
        0.0
    """

    def __init__(self, weight: torch.Tensor, trainable: bool = False) -> None:
        super().__init__()
        if trainable:  # read by the language forward only (Wiki-RL co-training)
            self.weight = nn.Parameter(weight.detach().clone())
        else:
            self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("_zero", torch.zeros((), dtype=weight.dtype, device=weight.device), persistent=False)

    @property
    def num_embeddings(self) -> int:
        """Rows of the stored (unused) table."""
        return self.weight.shape[0]

    @property
    def embedding_dim(self) -> int:
        """Width of the stored (unused) table."""
        return self.weight.shape[1]

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # noqa: ARG002 - positions are ignored
        """Return a scalar zero (no position information)."""
        return self._zero

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, disabled"


def unwrap_body(body: nn.Module) -> nn.Module:
    """Return the ``GPT2Model`` inside a ``GPT2LMHeadModel`` (or the model itself).

    Raises ValueError for modules that are not GPT-2-like (need ``wte``, ``wpe``, ``h``).

    Examples:
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> lm = GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=1, n_head=1, vocab_size=10))
        >>> type(unwrap_body(lm)).__name__
        'GPT2Model'
    """
    if not all(hasattr(body, a) for a in ("wte", "wpe", "h")) and hasattr(body, "transformer"):
        body = body.transformer
    if not all(hasattr(body, a) for a in ("wte", "wpe", "h")):
        raise ValueError(
            f"body must be a GPT-2-architecture model (GPT2Model or GPT2LMHeadModel with wte, wpe, h); "
            f"got {type(body).__name__}"
        )
    return body


def disable_position_embeddings(body: nn.Module, trainable: bool = False) -> nn.Module:
    """Replace ``body.wpe`` by a `NullPositionEmbedding` in place (idempotent); ``trainable``:
    keep its table as a parameter (see `NullPositionEmbedding`).

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = disable_position_embeddings(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)))
        >>> type(body.wpe).__name__
        'NullPositionEmbedding'
    """
    body = unwrap_body(body)
    if not isinstance(body.wpe, NullPositionEmbedding) or isinstance(body.wpe.weight, nn.Parameter) != trainable:
        body.wpe = NullPositionEmbedding(body.wpe.weight, trainable=trainable)
    return body


def extended_position_table(wpe_weight: torch.Tensor, max_ep_len: int) -> torch.Tensor:
    """Wiki-RL's "extend positions": a (max_ep_len, d) table built from a pre-trained wpe.

    Rows 0 and 1 are copied; rows ``k >= 2`` repeat the pre-trained rows ``2 .. n_positions-1``
    cyclically (``row k = wpe[2 + (k - 2) % (n_positions - 2)]``). This is the released code's
    tiling, except that every row is filled (the released loop could leave the last row
    uninitialised). For ``max_ep_len <= n_positions`` it is simply ``wpe[:max_ep_len]``.

    Examples:
        >>> import torch
        >>> w = torch.arange(5.0).unsqueeze(1)
        >>> extended_position_table(w, 8).squeeze(1).tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 4.0]
    """
    n_pos = wpe_weight.shape[0]
    if max_ep_len <= n_pos:
        return wpe_weight[:max_ep_len].detach().clone()
    if n_pos <= 2:
        raise ValueError(f"cannot tile a position table with {n_pos} rows (need > 2)")
    k = torch.arange(max_ep_len, device=wpe_weight.device)
    idx = torch.where(k < 2, k, 2 + (k - 2) % (n_pos - 2))
    return wpe_weight.detach()[idx].clone()


def set_body_dropout(
    body: nn.Module,
    resid_pdrop: float | None = None,
    attn_pdrop: float | None = None,
    embd_pdrop: float | None = None,
) -> nn.Module:
    """Change the dropout rates of a built GPT-2 body in place (None keeps a rate).

    ``resid_pdrop`` covers the attention-output and MLP-output dropouts, ``attn_pdrop`` the
    attention-probability dropout, ``embd_pdrop`` the dropout on the input embeddings. The body's
    config is updated too.

    Examples:
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = set_body_dropout(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)), resid_pdrop=0.2)
        >>> body.h[0].mlp.dropout.p
        0.2
    """
    body = unwrap_body(body)
    if embd_pdrop is not None:
        body.drop.p = embd_pdrop
        body.config.embd_pdrop = embd_pdrop
    for block in body.h:
        if resid_pdrop is not None:
            block.attn.resid_dropout.p = resid_pdrop
            block.mlp.dropout.p = resid_pdrop
        if attn_pdrop is not None:
            block.attn.attn_dropout.p = attn_pdrop
    if resid_pdrop is not None:
        body.config.resid_pdrop = resid_pdrop
    if attn_pdrop is not None:
        body.config.attn_pdrop = attn_pdrop
    return body


def attention_keep(token_mask: torch.Tensor) -> torch.Tensor:
    """The boolean attention mask ``(B, 1, T, T)`` of a batch of token rows (True = attend).

    Causal, keys restricted to real tokens (``token_mask`` (B, T) > 0), and the diagonal always
    True: a padding query attends to itself only, so no row is fully masked (a softmax over no key
    is NaN on some SDPA kernels, and its gradient NaN everywhere it flows). Real queries attend
    to themselves anyway, so their attention is exactly the causal-and-padding one.

    Examples:
        >>> import torch
        >>> attention_keep(torch.tensor([[0, 1, 1]]))[0, 0].int().tolist()
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    if token_mask.dim() != 2:
        raise ValueError(f"token_mask must have shape (B, T), got {tuple(token_mask.shape)}")
    T = token_mask.shape[1]
    real = token_mask > 0
    causal = torch.ones(T, T, dtype=torch.bool, device=token_mask.device).tril_()
    eye = torch.eye(T, dtype=torch.bool, device=token_mask.device)
    return (causal & (real[:, None, :] | eye))[:, None]


def token_positions(token_mask: torch.Tensor) -> torch.Tensor:
    """GPT-2 position ids ``(B, T)`` counted from each row's first real token (padding: 0).

    ``cumsum(token_mask) - 1`` clamped at 0: left padding does not shift the real tokens'
    positions, so a padded window sees the positions of the same window unpadded.

    Examples:
        >>> import torch
        >>> token_positions(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])).tolist()
        [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    """
    return ((token_mask > 0).long().cumsum(dim=1) - 1).clamp_min_(0)


class TrajectoryTransformer(nn.Module):
    """Return-conditioned trajectory transformer over a GPT-2 body (DT / Wiki-RL / LaMo).

    Args:
        body: a ``GPT2Model`` (or ``GPT2LMHeadModel``, whose inner ``GPT2Model`` is used),
            random-init or pre-trained, built by the caller. It is modified in place: its wpe is
            disabled when ``spec.use_position_embeddings`` is False and dropout overrides are
            applied. Its hidden size sets the embedding size.
        spec: a `TransformerSpec`.

    Attributes:
        body: the GPT-2 body (also used by `language_logits` / `language_loss`).
        embed_return: embedding of the returns-to-go.
        embed_state: embedding of the states (a Nature CNN for frames).
        embed_action: embedding of the actions.
        embed_timestep: the timestep table.
        embed_ln: LayerNorm of the token embeddings.
        predict_action: the action head.

    ``embed_*``, ``embed_ln`` and ``predict_action`` are the "DT-side" modules (always trainable,
    see `offline_zoo.models.freeze_for_mode`).

    Examples:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2Model
        >>> body = GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=1, vocab_size=16))
        >>> m = TrajectoryTransformer(body, spec_preset("lamo", (3,), 2, max_ep_len=50))
        >>> out = m(torch.randn(1, 5, 3), torch.randn(1, 5, 2), torch.randn(1, 5, 1),
        ...         torch.arange(5)[None])
        >>> out.action_preds.shape, out.inputs_embeds.shape
        (torch.Size([1, 5, 2]), torch.Size([1, 15, 32]))
    """

    def __init__(self, body: nn.Module, spec: TransformerSpec) -> None:
        super().__init__()
        if not isinstance(spec, TransformerSpec):
            raise ValueError(f"spec must be a TransformerSpec, got {type(spec).__name__}")
        body = unwrap_body(body)
        self.spec = spec
        d = int(body.config.n_embd)
        self.hidden_size = d

        timestep_init = None
        n_timesteps = spec.max_ep_len
        if spec.extend_positions:
            # the released table is wpe itself: all its rows, tiled up to max_ep_len when longer
            n_timesteps = max(spec.max_ep_len, body.wpe.weight.shape[0])
            timestep_init = extended_position_table(body.wpe.weight, n_timesteps)
        if not spec.use_position_embeddings:
            disable_position_embeddings(body, trainable=spec.language_positions and not spec.extend_positions)
        elif isinstance(body.wpe, NullPositionEmbedding):
            raise ValueError("use_position_embeddings=True but the body's wpe was already disabled")
        set_body_dropout(body, spec.resid_pdrop, spec.attn_pdrop, spec.embd_pdrop)
        self.body = body

        if spec.is_image:
            c, h, w = spec.obs_shape
            self.embed_state = NatureCNN(c, (h, w), d, residual=spec.embedding == "mlp")
        else:
            self.embed_state = make_embedding(spec.embedding, spec.obs_shape[0], d)
        if spec.discrete:
            self.embed_action = make_token_embedding(spec.embedding, spec.act_dim, d)
        else:
            self.embed_action = make_embedding(spec.embedding, spec.act_dim, d)
        self.embed_return = make_embedding(spec.embedding, 1, d)
        self.embed_timestep = nn.Embedding(n_timesteps, d)
        with torch.no_grad():
            if timestep_init is not None:
                self.embed_timestep.weight.copy_(timestep_init)
            elif spec.timestep_init == "gpt2":
                # N(0, 1) rows are as large as the layer-normed modality embeddings and drown them
                # early in training (docs/deviations.md); GPT-2 initialises its tables at 0.02
                std = float(getattr(body.config, "initializer_range", 0.02))
                self.embed_timestep.weight.normal_(0.0, std)
        self.embed_ln = nn.LayerNorm(d)
        if spec.discrete:
            if spec.action_head == "mlp":
                head = MLPHead(d, spec.act_dim)
                self.predict_action = nn.Sequential(head, nn.Tanh()) if spec.logits_tanh else head
            else:
                self.predict_action = make_discrete_head(d, spec.act_dim, spec.logits_tanh)
        elif spec.action_head == "tied_tanh":
            self.predict_action = TiedActionHead(self.embed_action)
        else:
            self.predict_action = make_action_head(spec.action_head, d, spec.act_dim)
        self._ln_first = spec.embed_order in _LN_FIRST_ORDERS

    # ------------------------------------------------------------------ RL forward
    def embed(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings of a batch of windows.

        Returns ``(token_embeddings, inputs_embeds)``, both (B, 3K, d); see
        `TrajectoryOutput`. Arguments as in `forward`.

        Examples:
            >>> import torch
            >>> from transformers import GPT2Config, GPT2Model
            >>> m = TrajectoryTransformer(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)),
            ...                           TransformerSpec((3,), 2, max_ep_len=10))
            >>> m.embed(torch.zeros(1, 2, 3), torch.zeros(1, 2, 2), torch.zeros(1, 2, 1),
            ...         torch.zeros(1, 2, dtype=torch.long))[1].shape
            torch.Size([1, 6, 8])
        """
        spec = self.spec
        if timesteps.dim() != 2:
            raise ValueError(f"timesteps must have shape (B, K), got {tuple(timesteps.shape)}")
        B, K = timesteps.shape
        d = self.hidden_size
        dtype = self.embed_ln.weight.dtype

        if spec.is_image:
            frames = states.reshape(B * K, *spec.obs_shape).to(dtype) / 255.0
            s = self.embed_state(frames).view(B, K, d)
        else:
            s = self.embed_state(states.to(dtype))

        if spec.discrete:
            if actions.dim() == 3:
                actions = actions.squeeze(-1)
            actions = actions.long()
            if attention_mask is not None:
                # padded actions may hold any filler value; make them valid indices
                actions = actions.masked_fill(attention_mask == 0, 0)
            a = self.embed_action(actions)
        else:
            a = self.embed_action(actions.to(dtype))

        if returns_to_go.dim() == 2:
            returns_to_go = returns_to_go.unsqueeze(-1)
        r = self.embed_return(returns_to_go.to(dtype))
        t = self.embed_timestep(timesteps.long().clamp(0, spec.max_ep_len - 1)).unsqueeze(2)

        x = torch.stack((r, s, a), dim=2)  # (B, K, 3, d): R_t, s_t, a_t
        if self._ln_first:
            tok = self.embed_ln(x)
            x = tok + t
        else:
            x = self.embed_ln(x + t)
            tok = x
        return tok.reshape(B, 3 * K, d), x.reshape(B, 3 * K, d)

    def forward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> TrajectoryOutput:
        """Predict the action at every step of a batch of trajectory windows.

        Args:
            states: (B, K, *obs_shape); vector states already normalised; frames uint8 or float in
                [0, 255] (divided by 255 here, the input is not modified).
            actions: (B, K, act_dim) float, or (B, K) long for discrete actions.
            returns_to_go: (B, K, 1) (or (B, K)) already scaled.
            timesteps: (B, K) long; clamped to ``[0, max_ep_len - 1]``.
            attention_mask: (B, K), 1 for real steps and 0 for padding; None = all real.

        Returns:
            `TrajectoryOutput`; ``action_preds[:, t]`` is predicted from the state token
            of step t.

        Examples:
            >>> import torch
            >>> from transformers import GPT2Config, GPT2Model
            >>> m = TrajectoryTransformer(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)),
            ...                           TransformerSpec((3,), 4, discrete=True, max_ep_len=10))
            >>> m(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, 1),
            ...   torch.zeros(2, 5, dtype=torch.long)).action_preds.shape
            torch.Size([2, 5, 4])
        """
        tok, inputs_embeds = self.embed(states, actions, returns_to_go, timesteps, attention_mask)
        B, T, d = inputs_embeds.shape
        K = T // 3
        mask = positions = None
        if attention_mask is not None:
            if attention_mask.shape != (B, K):
                raise ValueError(
                    f"attention_mask must have shape (B, K) = {(B, K)}, got {tuple(attention_mask.shape)}"
                )
            keep, positions = self.padding_inputs(attention_mask)
            mask = self.body_mask(keep, inputs_embeds.dtype)
        hidden = self.body(
            inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state
        preds = self.predict_action(hidden.view(B, K, 3, d)[:, :, 1])
        return TrajectoryOutput(preds, tok, inputs_embeds, hidden)

    def padding_inputs(self, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """For a (B, K) step mask: the body's boolean attention mask (B, 1, 3K, 3K) of its tokens
        (`attention_keep`) and their wpe position ids (`token_positions`; None when wpe is off).

        Examples:
            >>> import torch
            >>> from transformers import GPT2Config, GPT2Model
            >>> m = TrajectoryTransformer(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)),
            ...                           TransformerSpec((3,), 2, max_ep_len=10))
            >>> keep, positions = m.padding_inputs(torch.tensor([[0, 1]]))
            >>> tuple(keep.shape), positions    # DT's preset adds no wpe
            ((1, 1, 6, 6), None)
        """
        tokens = attention_mask.repeat_interleave(3, dim=1)
        return attention_keep(tokens), (token_positions(tokens) if self.spec.use_position_embeddings else None)

    def body_mask(self, keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``keep`` (boolean, `attention_keep`) in the form the body's attention reads: as is for
        sdpa and offline-zoo's fast attention, additive (0 / lowest ``dtype`` value) for eager.

        Examples:
            >>> import torch
            >>> from transformers import GPT2Config, GPT2Model
            >>> m = TrajectoryTransformer(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1)),
            ...                           TransformerSpec((3,), 2, max_ep_len=10))
            >>> m.body_mask(attention_keep(torch.ones(1, 2)), torch.float32).dtype
            torch.bool
        """
        if getattr(self.body.config, "_attn_implementation", None) == "eager":
            return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill_(~keep, torch.finfo(dtype).min)
        return keep

    # ------------------------------------------------------------------ language forward
    def language_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits of the LM through the same body, with the tied head ``wte.weight``.

        Positions are added when ``spec.use_position_embeddings`` (wpe in both forwards: LaMo on
        Atari) or ``spec.language_positions`` (in this forward only: Wiki-RL's co-training) is
        True; the released LaMo continuous-control code adds them in neither forward.

        Args:
            input_ids: (B, T) token ids.
            attention_mask: optional (B, T), 1 for real tokens.

        Returns:
            (B, T, vocab_size) logits.

        Examples:
            >>> import torch
            >>> from transformers import GPT2Config, GPT2Model
            >>> m = TrajectoryTransformer(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1, vocab_size=20)),
            ...                           TransformerSpec((3,), 2, max_ep_len=10))
            >>> m.language_logits(torch.zeros(2, 6, dtype=torch.long)).shape
            torch.Size([2, 6, 20])
        """
        return F.linear(self._language_hidden(input_ids, attention_mask), self.body.wte.weight)

    def _language_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if not self.spec.language_positions:  # wpe in the body, or no positions at all
            return self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        table = self.embed_timestep.weight if self.spec.extend_positions else self.body.wpe.weight
        T = input_ids.shape[1]
        if T > table.shape[0]:
            raise ValueError(f"language blocks of {T} tokens exceed the {table.shape[0]} rows of the position table")
        x = self.body.wte(input_ids) + table[:T]  # the body's wpe adds nothing after this
        return self.body(inputs_embeds=x, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def language_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy of the LM on ``input_ids`` (B, T) through the body.

        Positions whose target token is masked out by ``attention_mask`` are ignored.

        Examples:
            >>> import torch
            >>> from transformers import GPT2Config, GPT2Model
            >>> m = TrajectoryTransformer(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=1, vocab_size=20)),
            ...                           TransformerSpec((3,), 2, max_ep_len=10))
            >>> m.language_loss(torch.randint(0, 20, (2, 6))).shape
            torch.Size([])
        """
        if input_ids.dim() != 2 or input_ids.shape[1] < 2:
            raise ValueError(f"input_ids must have shape (B, T) with T >= 2, got {tuple(input_ids.shape)}")
        hidden = self._language_hidden(input_ids, attention_mask)
        logits = F.linear(hidden[:, :-1], self.body.wte.weight)
        labels = input_ids[:, 1:]
        if attention_mask is not None:
            labels = labels.masked_fill(attention_mask[:, 1:] == 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
