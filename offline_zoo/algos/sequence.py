"""What DT, Wiki-RL and LaMo share: the return-conditioned trajectory-transformer agent.

The three algorithm files (``dt.py``, ``wikirl.py``, ``lamo.py``) only say how their body is built
and which extra losses they add; this file holds the common loop, top to bottom:

1. ``_build``: body (from the subclass) + :class:`~offline_zoo.models.TrajectoryTransformer` +
   AdamW over the trainable parameters (one group) + linear warmup.
2. ``_train_step``: K-step windows (:class:`~offline_zoo.data.WindowSampler`) -> action loss (MSE
   on real positions, or cross-entropy for discrete actions) + the subclass's extra losses ->
   clipped gradient step.
3. ``_predict``: the last K steps of every parallel episode (kept in a :class:`SequenceRolloutState`)
   -> one batched forward -> the action predicted at the last position. Returns-to-go drop by
   ``reward / rtg_scale`` after every step, as in the released evaluation loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.samplers import WindowSampler
from ..models import TrajectoryTransformer, TransformerSpec
from .base import OfflineAlgo, RolloutState, Spec
from .config import AlgoConfig

__all__ = ["SequenceConfig", "SequenceAlgo", "SequenceRolloutState"]

PRECISIONS = ("fp32", "bf16")


@dataclass
class SequenceConfig(AlgoConfig):
    """Fields shared by DT, Wiki-RL and LaMo (defaults: the original Decision Transformer).

    Attributes:
        context_len: K, timesteps per window (3K tokens).
        learning_rate, weight_decay, adam_eps: AdamW over all trainable parameters (one group).
        warmup_steps: linear learning-rate warmup, then constant.
        grad_clip: gradient-norm clipping.
        embedding: ``"linear"`` or ``"mlp"`` modality embeddings.
        action_head: ``"linear_tanh"``, ``"linear"`` or ``"mlp"`` (continuous); discrete tasks use logits.
        dropout: GPT-2 residual/embedding/attention dropout of the body.
        precision: ``"fp32"`` or ``"bf16"`` (autocast for training and inference).
    """

    context_len: int = 20
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    adam_eps: float = 1e-8
    warmup_steps: int = 10_000
    grad_clip: float = 0.25
    embedding: str = "linear"
    action_head: str = "linear_tanh"
    dropout: float = 0.1
    precision: str = "fp32"


class SequenceRolloutState(RolloutState):
    """The last K steps of each parallel episode, left-aligned windows ready for the model.

    Arrays hold one row per episode: ``states`` (n, K, *obs) normalized, ``actions`` (n, K, act)
    or (n, K), ``rtg`` (n, K) scaled, ``timesteps`` (n, K), ``n_real`` (n,) real steps in the window;
    ``next_rtg`` / ``t`` are the return-to-go and timestep of the coming step.
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
        return (np.arange(self.K)[None, :] >= (self.K - self.n_real)[:, None]).astype(np.float32)

    def record_reward(self, rewards) -> None:
        """After the environment step: return-to-go drops by reward / scale, time advances."""
        self.next_rtg = self.next_rtg - np.asarray(rewards, dtype=np.float64) / self.rtg_scale
        self.t = self.t + 1

    def subset(self, indices) -> "SequenceRolloutState":
        idx = np.asarray(indices, dtype=np.int64)
        new = object.__new__(SequenceRolloutState)
        new.K, new.rtg_scale, new.max_ep_len = self.K, self.rtg_scale, self.max_ep_len
        for name in ("states", "actions", "rtg", "timesteps", "n_real", "next_rtg", "t"):
            setattr(new, name, getattr(self, name)[idx])
        return new


class SequenceAlgo(OfflineAlgo):
    """Shared implementation of the return-conditioned trajectory transformers (see module doc)."""

    config_class = SequenceConfig
    conditions_on_return = True
    #: preset of :func:`offline_zoo.models.spec_preset` style fields, set by subclasses
    embed_order: str = "dt"

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
            action_head=("linear" if c.action_head == "linear_tanh" else c.action_head) if s.discrete else c.action_head,
        )
        return TransformerSpec(**kwargs)

    def _prepare_body(self, model: TrajectoryTransformer) -> None:
        """Freeze / add adapters after the transformer is assembled (LaMo's LoRA)."""

    def _build(self) -> None:
        if self.config.precision not in PRECISIONS:
            raise ValueError(f"precision={self.config.precision!r}; allowed: {', '.join(PRECISIONS)}")
        if self.config.context_len < 1:
            raise ValueError(f"context_len={self.config.context_len} must be >= 1")
        self.model = TrajectoryTransformer(self._make_body(), self._transformer_spec())
        self._prepare_body(self.model)
        self.model.to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        c = self.config
        opt = torch.optim.AdamW(params, lr=c.learning_rate, weight_decay=c.weight_decay, eps=c.adam_eps)
        warmup = max(1, int(c.warmup_steps))
        self.optimizers = {"model": opt}
        self.schedulers = {"model": torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min((step + 1) / warmup, 1.0))}
        self._sampler: WindowSampler | None = None

    def _max_ep_len(self) -> int:
        return self.task.max_ep_len if self.task is not None else 1000

    def _rtg_scale(self) -> float:
        return self.task.rtg_scale if self.task is not None else 1.0

    # -- training ------------------------------------------------------------------------------
    def _before_learn(self) -> None:
        if self._sampler is None or self._sampler.dataset is not self.dataset:
            self._sampler = WindowSampler(
                self.dataset, self.config.context_len, self._rtg_scale(), self._max_ep_len(),
                state_mean=self.stats.get("state_mean"), state_std=self.stats.get("state_std"),
            )
            self._sampler.rng = self.rng  # one saved generator drives every draw

    def _batch_tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        dev = self.device
        non_blocking = dev.type == "cuda"
        return {k: torch.from_numpy(v).to(dev, non_blocking=non_blocking) for k, v in batch.items()}

    def _autocast(self):
        enabled = self.config.precision == "bf16"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def action_loss(self, preds: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """MSE on real (unpadded) positions; cross-entropy for discrete actions."""
        real = b["mask"].reshape(-1) > 0
        if self.spec.discrete:
            logits = preds.reshape(-1, preds.shape[-1])[real].float()
            return F.cross_entropy(logits, b["actions"].reshape(-1)[real])
        pred = preds.reshape(-1, preds.shape[-1])[real].float()
        target = b["actions"].reshape(-1, preds.shape[-1])[real]
        return ((pred - target) ** 2).mean()

    def extra_losses(self, out, b: dict[str, torch.Tensor]) -> dict[str, tuple[float, torch.Tensor]]:
        """Auxiliary losses as ``{name: (weight, loss)}``; ``weight * loss`` joins the action loss."""
        return {}

    def _train_step(self) -> dict[str, Any]:
        self.model.train()
        b = self._batch_tensors(self._sampler.sample(self.config.batch_size))
        with self._autocast():
            out = self.model(b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
            action_loss = self.action_loss(out.action_preds, b)
            extra = self.extra_losses(out, b)
            loss = action_loss
            for weight, term in extra.values():
                loss = loss + weight * term
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        opt.step()
        self.schedulers["model"].step()
        metrics = {"loss": loss.detach(), "action_loss": action_loss.detach()}
        metrics.update({k: term.detach() for k, (_, term) in extra.items()})
        return metrics

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

    def _predict(self, observations: np.ndarray, state: SequenceRolloutState | None) -> np.ndarray:
        self.model.eval()  # dropout off; _train_step switches back
        if state is None:
            state = self.new_rollout_state(len(observations))
        if self.spec.image:
            state.push(observations)
        else:
            state.push((observations - self.stats["state_mean"]) / self.stats["state_std"])
        dev = self.device
        with self._autocast():
            out = self.model(
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
