"""What DT, Wiki-RL and LaMo share: the return-conditioned trajectory-transformer agent.

The three algorithm files (``dt.py``, ``wikirl.py``, ``lamo.py``) only say how their body is built
and which extra losses they add; this file holds the common loop, top to bottom:

1. ``_build``: body (from the subclass) + `TrajectoryTransformer` +
   AdamW over the trainable parameters (one group) + linear warmup.
2. ``_train_step``: K-step windows (`WindowSampler`) -> action loss (MSE
   on real positions, or cross-entropy for discrete actions) + the subclass's extra losses ->
   clipped gradient step.
3. ``_predict``: the last K steps of every parallel episode (kept in a `SequenceRolloutState`)
   -> one batched forward -> the action predicted at the last position. Returns-to-go drop by
   ``reward / rtg_scale`` after every step, as in the released evaluation loop.

Speed (``docs/performance.md``; the helpers live in `offline_zoo.algos.fast`): fused AdamW,
masked losses without boolean indexing (no host sync on a GPU), bf16 autocast
(``precision="bf16"``), fast CPU dropout and attention kernels (``fast_kernels``), page-locked
asynchronous batch copies on CUDA, optional ``torch.compile`` (``compile``), and for inference a
cached copy of the model with LoRA merged and, in bf16, bf16 matmul weights (``fast_inference``).
Inference stays an exact recompute of the K-step window (no key/value cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.samplers import WindowSampler
from ..models import TrajectoryOutput, TrajectoryTransformer, TransformerSpec, has_lora
from . import fast
from .base import OfflineAlgo, RolloutState, Spec
from .config import AlgoConfig

__all__ = ["ACTION_LOSSES", "LR_SCHEDULES", "ReleasedAtariLR", "SequenceConfig", "SequenceAlgo", "SequenceRolloutState"]

PRECISIONS = ("fp32", "bf16")
#: ``"constant_after_warmup"``: linear warmup over ``warmup_steps`` gradient steps, then constant;
#: ``"released_atari"``: `ReleasedAtariLR`, the released LaMo Atari schedule with its token-count bug
LR_SCHEDULES = ("constant_after_warmup", "released_atari")
#: continuous action loss: ``"sum_dims"`` (default): squared error summed over the action dimensions,
#: averaged over real positions (d3rlpy's DecisionTransformer): act_dim times the gradient, so the clip binds
#: longer; ``"mean"``: averaged over real positions and action dimensions (kzl/decision-transformer, the
#: released LaMo and Wiki-RL code). docs/deviations.md row 1c has the measurements behind the default.
ACTION_LOSSES = ("mean", "sum_dims")


class ReleasedAtariLR(torch.optim.lr_scheduler.LRScheduler):
    """The learning-rate schedule of the released LaMo Atari code (``experiment-atari/core.py``),
    bug included: linear warmup over ``warmup_tokens`` then cosine decay to ``final_tokens``
    (floored at 0.1x), of a token count that adds up the *cumulative* count at every step.

    `step_tokens` (n) is called once per gradient step with the step's tokens (the released code
    counts the batch's non-zero actions): ``seen += n; tokens += seen``. So ``tokens`` grows
    quadratically with the steps: with about 3,000 tokens a step, warmup ends near step 500, the
    cosine reaches its end near step 13,000, after which the multiplier oscillates between 0.1 and
    1 (the cosine of a progress past 1). Counted correctly, 375e6 warmup tokens would outlast a
    100k-step run. The counters are saved with the scheduler's state dict.

    Examples:
        >>> import torch
        >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = ReleasedAtariLR(opt, warmup_tokens=100, final_tokens=1000)
        >>> opt.param_groups[0]["lr"]  # the released first step runs at lr 0
        0.0
        >>> for _ in range(3):
        ...     sched.step_tokens(10)  # seen 10, 20, 30: tokens 10, 30, 60
        >>> sched.tokens, round(opt.param_groups[0]["lr"], 6)
        (60.0, 0.6)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_tokens: float, final_tokens: float) -> None:
        if not 0 < warmup_tokens < final_tokens:
            raise ValueError(f"need 0 < warmup_tokens < final_tokens, got {warmup_tokens} and {final_tokens}")
        self.warmup_tokens, self.final_tokens = float(warmup_tokens), float(final_tokens)
        self.seen = 0.0  # tokens of all steps so far (what the released loop passes)
        self.tokens = 0.0  # the released scheduler's sum of those cumulative counts
        super().__init__(optimizer)

    def multiplier(self) -> float:
        """The factor on the base learning rate at the current ``tokens``."""
        if self.tokens < self.warmup_tokens:
            return self.tokens / self.warmup_tokens
        progress = (self.tokens - self.warmup_tokens) / (self.final_tokens - self.warmup_tokens)
        return max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))

    def get_lr(self) -> list[float]:
        return [lr * self.multiplier() for lr in self.base_lrs]

    def step_tokens(self, n: float) -> None:
        """One gradient step that saw ``n`` tokens."""
        self.seen += float(n)
        self.tokens += self.seen
        self.step()


@dataclass
class SequenceConfig(AlgoConfig):
    """Fields shared by DT, Wiki-RL and LaMo (defaults: the original Decision Transformer).

    Attributes:
        context_len: K, timesteps per window (3K tokens).
        learning_rate: AdamW learning rate (one group: all trainable parameters).
        weight_decay: AdamW weight decay.
        adam_eps: AdamW epsilon.
        warmup_steps: linear learning-rate warmup, then constant (``lr_schedule="constant_after_warmup"``).
        lr_schedule: ``"constant_after_warmup"`` (default) or ``"released_atari"`` (`ReleasedAtariLR`:
            the released LaMo Atari schedule, token warmup + cosine fed with the cumulative token
            count, as it produced the paper's Table 2; LaMo's Atari default). See ``docs/deviations.md``.
        warmup_tokens: ``"released_atari"`` only: warmup tokens (released 375e6).
        final_tokens: ``"released_atari"`` only: end of the cosine, in tokens (released 260e9).
        grad_clip: gradient-norm clipping.
        embedding: ``"linear"`` or ``"mlp"`` modality embeddings.
        action_head: ``"linear_tanh"``, ``"linear"``, ``"mlp"`` or ``"tied_tanh"`` (tied to the linear
            action embedding, Wiki-RL's default) for continuous actions; discrete tasks use logits.
        dropout: GPT-2 residual/embedding/attention dropout of the body.
        timestep_init: initialisation of the timestep table: ``"gpt2"`` (N(0, 0.02), default) or
            ``"released"`` (N(0, 1), torch's default, as the released DT/LaMo/Wiki-RL code; see
            ``docs/deviations.md`` for the measurements behind the default).
        action_loss_reduction: continuous actions: ``"sum_dims"`` (default: squared error summed over
            the action dimensions and averaged over the real positions, as d3rlpy's DecisionTransformer:
            ``act_dim`` times the gradients of the mean, so ``grad_clip`` keeps binding after the
            first ~700 steps) or ``"mean"`` (averaged over the action dimensions too, the released
            DT/LaMo/Wiki-RL loss). The reported ``action_loss`` is the loss as trained. Discrete
            actions always use cross-entropy. See ``docs/deviations.md`` (row 1c).
        window_anchor: how training windows are drawn: ``"end"`` (default: a uniform last step,
            windows cut at episode starts, like the contexts of an evaluation episode's first steps;
            d3rlpy) or ``"start"`` (a uniform first step, windows cut at episode ends; the released
            code). Measured in ``docs/deviations.md`` (row 1b); the same for DT, Wiki-RL and LaMo.
        precision: ``"fp32"`` or ``"bf16"`` (autocast for training and inference).
        fast_kernels: the training speed paths of `offline_zoo.algos.fast` and
            ``_state_token_forward``: the last block computed only at the state tokens the loss
            reads, GPT-2's GELU fused, and on CPU dropout from 16-bit random lanes (p realised to
            1/65536), a leaner attention with that dropout, and glibc keeping freed memory.
            False: the model's standard forward with torch's dropout and transformers' sdpa.
        fast_inference: predict with a cached inference copy of the model (LoRA merged into the
            weights; bf16 matmul weights under ``precision="bf16"``), rebuilt whenever the weights
            change. Actions equal the training model's up to float rounding.
        compile: ``torch.compile`` the training forward, the language loss and the inference copy
            (off by default: worth it on a GPU; on CPU compilation takes minutes and gains nothing).

    Examples:
        >>> cfg = SequenceConfig(context_len=4)
        >>> cfg.context_len, cfg.precision, cfg.batch_size
        (4, 'fp32', 64)
        >>> from offline_zoo import DT, LaMo, WikiRL
        >>> all(issubclass(a.config_class, SequenceConfig) for a in (DT, LaMo, WikiRL))
        True
    """

    context_len: int = 20
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    adam_eps: float = 1e-8
    warmup_steps: int = 10_000
    lr_schedule: str = "constant_after_warmup"
    warmup_tokens: float = 375e6
    final_tokens: float = 260e9
    grad_clip: float = 0.25
    embedding: str = "linear"
    action_head: str = "linear_tanh"
    dropout: float = 0.1
    timestep_init: str = "gpt2"
    action_loss_reduction: str = "sum_dims"
    window_anchor: str = "end"
    precision: str = "fp32"
    fast_kernels: bool = True
    fast_inference: bool = True
    compile: bool = False

    # the behaviour before each of these fields existed: the released code's (docs/deviations.md)
    values_before_field: ClassVar[dict[str, Any]] = {
        "timestep_init": "released", "action_loss_reduction": "mean", "window_anchor": "start",
    }


class SequenceRolloutState(RolloutState):
    """The last K steps of each parallel episode, left-aligned windows ready for the model.

    Arrays hold one row per episode: ``states`` (n, K, *obs) normalized, ``actions`` (n, K, act)
    or (n, K), ``rtg`` (n, K) scaled, ``timesteps`` (n, K), ``n_real`` (n,) real steps in the window;
    ``next_rtg`` / ``t`` are the return-to-go and timestep of the coming step.
    ``SequenceAlgo.new_rollout_state`` builds it for an algorithm.

    Examples:
        >>> import numpy as np
        >>> st = SequenceRolloutState(2, K=3, obs_shape=(1,), obs_dtype=np.float32, act_shape=(1,),
        ...                           act_dtype=np.float32, target_returns=[10.0, 20.0], rtg_scale=10.0, max_ep_len=100)
        >>> st.push(np.array([[0.5], [1.5]]))
        >>> st.rtg.tolist(), st.mask().tolist()
        ([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]], [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
        >>> st.record_reward([5.0, 5.0])
        >>> st.next_rtg.tolist(), st.t.tolist()
        ([0.5, 1.5], [1, 1])
        >>> st.subset([1]).states[:, -1].tolist()
        [[1.5]]
    """

    def __init__(self, n: int, K: int, obs_shape, obs_dtype, act_shape, act_dtype, target_returns, rtg_scale: float, max_ep_len: int):
        self.K, self.rtg_scale, self.max_ep_len = K, float(rtg_scale), int(max_ep_len)
        self.states = np.zeros((n, K, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((n, K, *act_shape), dtype=act_dtype)
        self.rtg = np.zeros((n, K), dtype=np.float32)
        self.timesteps = np.zeros((n, K), dtype=np.int64)
        self.n_real = np.zeros(n, dtype=np.int64)
        self.next_rtg = np.broadcast_to(np.asarray(target_returns, dtype=np.float64), (n,)).astype(np.float64) / self.rtg_scale
        self.t = np.zeros(n, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.t)

    def push(self, states: np.ndarray) -> None:
        """Append the current observation of every episode (the action slot is filled by predict)."""
        for arr in (self.states, self.actions, self.rtg, self.timesteps):
            arr[:, :-1] = arr[:, 1:]
        self.states[:, -1] = states
        self.actions[:, -1] = 0
        self.rtg[:, -1] = self.next_rtg
        self.timesteps[:, -1] = np.minimum(self.t, self.max_ep_len - 1)
        self.n_real = np.minimum(self.n_real + 1, self.K)

    def mask(self) -> np.ndarray:
        """``(n, K)`` float mask: 1 at the real steps of each window, 0 at the left padding."""
        return (np.arange(self.K)[None, :] >= (self.K - self.n_real)[:, None]).astype(np.float32)

    def record_reward(self, rewards) -> None:
        """After the environment step: return-to-go drops by reward / scale, time advances."""
        self.next_rtg = self.next_rtg - np.asarray(rewards, dtype=np.float64) / self.rtg_scale
        self.t = self.t + 1

    def subset(self, indices) -> "SequenceRolloutState":
        """A new state holding only the episodes at ``indices`` (copies)."""
        idx = np.asarray(indices, dtype=np.int64)
        new = object.__new__(SequenceRolloutState)
        new.K, new.rtg_scale, new.max_ep_len = self.K, self.rtg_scale, self.max_ep_len
        for name in ("states", "actions", "rtg", "timesteps", "n_real", "next_rtg", "t"):
            setattr(new, name, getattr(self, name)[idx])
        return new


class SequenceAlgo(OfflineAlgo):
    """Shared implementation of the return-conditioned trajectory transformers (see module doc).

    Subclasses build the body (``_make_body``), may adapt it (``_prepare_body``) and add losses
    (`extra_losses`).

    Examples:
        A DT with an extra (made-up) penalty on the size of its action predictions:

        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> class PenalizedDT(DT):
        ...     def extra_losses(self, out, b):
        ...         return {"l2": (0.01, out.action_preds.pow(2).mean())}
        >>> algo = PenalizedDT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> sorted(algo.learn(2, progress_bar=False).last_metrics)
        ['action_loss', 'grad_norm', 'l2', 'loss']
        >>> algo.new_rollout_state(3).rtg.shape  # 3 episodes, K = 4
        (3, 4)
    """

    config_class = SequenceConfig
    conditions_on_return = True
    #: preset of `offline_zoo.models.spec_preset` style fields, set by subclasses
    embed_order: str = "dt"
    #: set True in a subclass whose extra losses read ``out.hidden_states`` of every token (the fast
    #: training forward computes the last block only at the state tokens the action loss reads)
    needs_all_hidden_states: bool = False

    # -- model ---------------------------------------------------------------------------------
    def _make_body(self) -> torch.nn.Module:
        """The GPT-2 body (a ``GPT2Model`` or ``GPT2LMHeadModel``); subclasses decide."""
        raise NotImplementedError

    def _transformer_spec(self) -> TransformerSpec:
        c, s = self.config, self.spec
        kwargs: dict[str, Any] = dict(
            obs_shape=s.observation_shape,
            act_dim=s.action_dim,
            discrete=s.discrete,
            max_ep_len=self._max_ep_len(),
            embed_order=self.embed_order,
            embedding=c.embedding,
            timestep_init=c.timestep_init,
            # discrete actions: logits (a tanh-squashed or tied head is a continuous choice)
            action_head=("linear" if c.action_head in ("linear_tanh", "tied_tanh") else c.action_head) if s.discrete else c.action_head,
        )
        return TransformerSpec(**kwargs)

    def _prepare_body(self, model: TrajectoryTransformer) -> None:
        """Freeze / add adapters after the transformer is assembled (LaMo's LoRA)."""

    def _build(self) -> None:
        if self.config.precision not in PRECISIONS:
            raise ValueError(f"precision={self.config.precision!r}; allowed: {', '.join(PRECISIONS)}")
        if self.config.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.config.lr_schedule!r}; allowed: {', '.join(LR_SCHEDULES)}")
        if self.config.context_len < 1:
            raise ValueError(f"context_len={self.config.context_len} must be >= 1")
        if self.config.action_loss_reduction not in ACTION_LOSSES:
            raise ValueError(f"action_loss_reduction={self.config.action_loss_reduction!r}; allowed: {', '.join(ACTION_LOSSES)}")
        self.model = TrajectoryTransformer(self._make_body(), self._transformer_spec())
        self._prepare_body(self.model)
        self.model.to(self.device)
        c = self.config
        if c.fast_kernels:
            fast.enable_fast_training(self.model, cast_lora_inputs=False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = fast.make_adamw(params, self.device, lr=c.learning_rate, weight_decay=c.weight_decay, eps=c.adam_eps)
        self.optimizers = {"model": opt}
        if c.lr_schedule == "released_atari":
            self.schedulers = {"model": ReleasedAtariLR(opt, c.warmup_tokens, c.final_tokens)}
        else:
            warmup = max(1, int(c.warmup_steps))
            self.schedulers = {"model": torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min((step + 1) / warmup, 1.0))}
        self._sampler: WindowSampler | None = None
        self._stager = fast.PinnedStager(self.device) if self.device.type == "cuda" else None
        self._inference: tuple[tuple, torch.nn.Module] | None = None  # (weights key, model)
        self._weights_epoch = 0  # bumped by every optimizer step and load (fused AdamW bumps no version counter)
        self._compiled: dict[str, Any] = {}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        super()._load_state_dict(state)
        self._weights_epoch += 1

    def _max_ep_len(self) -> int:
        return self.task.max_ep_len if self.task is not None else 1000

    def _rtg_scale(self) -> float:
        return self.task.rtg_scale if self.task is not None else 1.0

    # -- training ------------------------------------------------------------------------------
    def _before_learn(self) -> None:
        if self.config.fast_kernels and self.device.type == "cpu":
            fast.tune_cpu_allocator()
        if self._sampler is None or self._sampler.dataset is not self.dataset:
            self._sampler = WindowSampler(
                self.dataset, self.config.context_len, self._rtg_scale(), self._max_ep_len(),
                state_mean=self.stats.get("state_mean"), state_std=self.stats.get("state_std"),
                anchor=self.config.window_anchor,
            )
            self._sampler.rng = self.rng  # one saved generator drives every draw

    def _batch_tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Numpy batch -> tensors on the device (CUDA: pinned, asynchronous copies)."""
        if self._stager is not None:
            return self._stager(batch)
        return {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}

    def _compiled_fn(self, name: str, fn):
        """``fn`` itself, or (``compile=True``) its ``torch.compile`` version, built once."""
        if not self.config.compile:
            return fn
        if name not in self._compiled:
            self._compiled[name] = torch.compile(fn, dynamic=True)
        return self._compiled[name]

    def _autocast(self):
        enabled = self.config.precision == "bf16"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def action_loss(self, preds: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """MSE on real (unpadded) positions; cross-entropy for discrete actions.

        Padded positions are excluded with ``torch.where`` rather than boolean indexing (same
        value, no data-dependent shapes, no host synchronisation on a GPU).
        """
        real = b["mask"] > 0  # (B, K)
        n_real = real.sum().clamp_min(1)
        if self.spec.discrete:
            logits = preds.reshape(-1, preds.shape[-1]).float()
            targets = b["actions"].reshape(-1).long().masked_fill(~real.reshape(-1), 0)
            ce = F.cross_entropy(logits, targets, reduction="none")
            return torch.where(real.reshape(-1), ce, 0.0).sum() / n_real
        sq = (preds.float() - b["actions"]) ** 2
        per_dims = 1 if self.config.action_loss_reduction == "sum_dims" else preds.shape[-1]
        return torch.where(real[..., None], sq, 0.0).sum() / (n_real * per_dims)

    def extra_losses(self, out, b: dict[str, torch.Tensor]) -> dict[str, tuple[float, torch.Tensor]]:
        """Auxiliary losses as ``{name: (weight, loss)}``; ``weight * loss`` joins the action loss."""
        return {}

    def _train_step(self) -> dict[str, Any]:
        self.model.train()
        batch = self._sampler.sample(self.config.batch_size)
        b = self._batch_tensors(batch)
        if self._state_token_forward_applies():
            forward = self._compiled_fn("state_token_forward", self._state_token_forward)
        else:
            forward = self._compiled_fn("forward", self.model)
        with self._autocast():
            out = forward(b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
            action_loss = self.action_loss(out.action_preds, b)
            extra = self.extra_losses(out, b)
            loss = action_loss
            for weight, term in extra.values():
                loss = loss + weight * term
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)  # before clipping
        opt.step()
        self._weights_epoch += 1
        scheduler = self.schedulers["model"]
        if isinstance(scheduler, ReleasedAtariLR):  # the released count: non-zero actions (real steps), from the host copy
            real = batch["mask"] > 0
            scheduler.step_tokens(int(((batch["actions"].reshape(*real.shape, -1) > 0) & real[..., None]).sum()))
        else:
            scheduler.step()
        metrics = {"loss": loss.detach(), "action_loss": action_loss.detach()}
        metrics.update({k: term.detach() for k, (_, term) in extra.items()})
        metrics["grad_norm"] = grad_norm.detach()
        return metrics

    def _body_supports_partial_last_block(self, model: torch.nn.Module) -> bool:
        """Whether `_run_body` can drive this body (a plain GPT-2 stack, as in every agent here)."""
        body = model.body
        cfg = getattr(body, "config", None)
        return (
            all(hasattr(body, a) for a in ("h", "ln_f", "drop", "wpe"))
            and len(body.h) > 0
            and cfg is not None
            and not getattr(cfg, "reorder_and_upcast_attn", False)
            and not getattr(cfg, "add_cross_attention", False)
            and not getattr(body, "gradient_checkpointing", False)
        )

    def _state_token_forward_applies(self) -> bool:
        return self.config.fast_kernels and not self.needs_all_hidden_states and self._body_supports_partial_last_block(self.model)

    @staticmethod
    def _run_body(model, x: torch.Tensor, keep: torch.Tensor, rows: slice, rows_keep: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """GPT-2 over ``x`` (B, T, d), the last block only at the query positions ``rows``.

        ``positions`` (B, T) are the wpe position ids (None: ``0 .. T-1``).

        Every block but the last runs GPT-2's own modules on all tokens with the boolean mask
        ``keep`` (B or 1, 1, T, T). The last block computes keys and values for all tokens but
        queries, attention output, MLP and the final LayerNorm only at ``rows``, whose mask is
        ``rows_keep``. Returns the final hidden states at ``rows``, those of the full body up to
        float rounding.
        """
        body = model.body
        B, T, d = x.shape
        if positions is None:
            positions = torch.arange(T, device=x.device)[None]
        h = body.drop(x + body.wpe(positions))
        for block in body.h[:-1]:
            h = block(h, None, keep)
            if isinstance(h, tuple):
                h = h[0]
        block = body.h[-1]
        attn = block.attn
        q, k, v = attn.c_attn(block.ln_1(h)).split(d, dim=2)
        heads, head_dim = attn.num_heads, attn.head_dim
        q = q[:, rows]
        n_rows = q.shape[1]
        q = q.reshape(B, n_rows, heads, head_dim).transpose(1, 2)
        k = k.reshape(B, T, heads, head_dim).transpose(1, 2)
        v = v.reshape(B, T, heads, head_dim).transpose(1, 2)
        dropout = attn.attn_dropout.p if attn.training else 0.0
        a, _ = fast.fast_attention(attn, q, k, v, rows_keep, scaling=attn.scaling, dropout=dropout, is_causal=False)
        h = h[:, rows] + attn.resid_dropout(attn.c_proj(a.reshape(B, n_rows, d)))
        h = h + block.mlp(block.ln_2(h))
        return body.ln_f(h)

    def _state_token_forward(self, states, actions, returns_to_go, timesteps, attention_mask) -> TrajectoryOutput:
        """The model's forward for training, without the last block's work on tokens no loss reads.

        The action loss reads the final hidden state of the K state tokens only, so the last block
        runs its queries, attention output, MLP and final LayerNorm only there (`_run_body`):
        about 2/3 of the last block's work is skipped (a 3-layer DT: ~17% of the step). The action
        predictions are those of ``model(...)`` up to float rounding (bitwise equal in tests);
        ``hidden_states`` of the output is None (see ``needs_all_hidden_states``).
        """
        m = self.model
        tok, x = m.embed(states, actions, returns_to_go, timesteps, attention_mask)
        T = x.shape[1]
        if attention_mask is None:
            keep, positions = torch.ones(T, T, dtype=torch.bool, device=x.device).tril_()[None, None], None
        else:  # the model's own mask and positions (no fully masked row, positions from the first real token)
            keep, positions = m.padding_inputs(attention_mask)
        rows = slice(1, T, 3)  # the state tokens
        h = self._run_body(m, x, keep, rows, keep[:, :, rows, :], positions)
        return TrajectoryOutput(m.predict_action(h), tok, x, None)

    # -- inference -----------------------------------------------------------------------------
    def new_rollout_state(self, n: int, target_returns=None) -> SequenceRolloutState:
        """Context for ``n`` parallel episodes, each conditioned on its target return (raw, unscaled)."""
        if target_returns is None:
            target_returns = self.default_targets()[0]
        s = self.spec
        image = s.image
        return SequenceRolloutState(
            n, self.config.context_len, s.observation_shape, np.uint8 if image else np.float32,
            () if s.discrete else (s.action_dim,), np.int64 if s.discrete else np.float32,
            target_returns, self._rtg_scale(), self._max_ep_len(),
        )

    def inference_model(self) -> torch.nn.Module:
        """The module ``predict`` runs: the model itself, or its cached fast inference copy.

        With ``fast_inference`` a copy is made when it helps (LoRA adapters to merge, bf16 weights
        to store, or ``compile``); it shares every tensor it does not change with the model and is
        rebuilt whenever the model's weights change: after every training step and ``load`` (a
        counter), and after in-place edits of parameters or buffers (torch's version counters,
        storage pointers). Replacing ``algo.model`` wholesale is noticed too.
        """
        c = self.config
        wants_copy = c.fast_inference and (has_lora(self.model) or c.precision == "bf16" or c.compile)
        if not wants_copy:
            self.model.eval()  # dropout off; _train_step switches back
            return self.model
        key = (c.precision, c.compile, str(self.device), self._weights_epoch, fast.weights_key(self.model))
        if self._inference is None or self._inference[0] != key:
            self._inference = None  # free the stale copy first
            model = fast.inference_copy(self.model, merge_lora=True, bf16_weights=c.precision == "bf16")
            if c.compile:
                model = torch.compile(model, dynamic=True)
            self._inference = (key, model)
        return self._inference[1]

    def _predict(self, observations: np.ndarray, state: SequenceRolloutState | None) -> np.ndarray:
        model = self.inference_model()
        if state is None:
            state = self.new_rollout_state(len(observations))
        if self.spec.image:
            state.push(observations)
        else:
            state.push((observations - self.stats["state_mean"]) / self.stats["state_std"])
        dev = self.device
        # the whole K-step window is recomputed for every episode (no key/value cache: once the
        # window slides, every remaining token's prefix changes); rows never interact, so the
        # actions do not depend on which other episodes share the batch
        with torch.inference_mode(), self._autocast():
            out = model(
                torch.from_numpy(state.states).to(dev),
                torch.from_numpy(state.actions).to(dev),
                torch.from_numpy(state.rtg[..., None]).to(dev),
                torch.from_numpy(state.timesteps).to(dev),
                torch.from_numpy(state.mask()).to(dev),
            )
        last = out.action_preds[:, -1].float()
        if self.spec.discrete:
            actions = last.argmax(dim=-1).cpu().numpy()
        else:
            actions = last.cpu().numpy()
        state.actions[:, -1] = actions
        return actions

    def parameter_counts(self) -> dict[str, int]:
        """Total / trainable parameters (Table 14), plus LoRA and c_attn-bias counts where present."""
        from ..models import count_parameters

        counts = count_parameters(self.model)
        return {k: int(v) for k, v in counts.items()}

    @classmethod
    def tiny_config(cls, spec: Spec) -> dict[str, Any]:
        tiny = {"context_len": 4, "batch_size": 4, "warmup_steps": 2, "eval_episodes": 1}
        if spec.task is None:  # no task, no paper targets
            tiny["target_returns"] = (10.0, 5.0)
        return tiny
