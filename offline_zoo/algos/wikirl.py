"""Wiki-RL (Reid et al. 2022, "Can Wikipedia Help Offline RL?"), as machelreid/can-wikipedia-help-offline-rl does it.

A pre-trained LM (GPT-2, or a ChibiT-sized GPT-2 pre-trained on Wikipedia) is fully fine-tuned as
the Decision Transformer body, with linear embeddings and the LayerNorm applied to the stacked
modality embeddings before the timestep embedding is added; residual dropout 0.2. As the released
``run.sh`` (``--extend_positions --share_input_output_proj``): the timestep table starts as the
pre-trained wpe and the action head is tied to the action embedding, ``tanh(x @ W_embed_action)``
without bias (``action_head="tied_tanh"``; ``"linear_tanh"`` is DT's untied Linear + Tanh).

Two auxiliary losses, both switchable:

* **L_cos** (``alignment_coef``): pulls the input embeddings towards the nearest of 1000 k-means
  centres of the LM's token embeddings (cached on disk per LM), with the released annealing
  ``lambda_1 = 0.1 * sigmoid((5000 - step) / 500 - 5)`` (0.05 at step 2500, ~0 by 5000).
* **L_LM** (``lm_loss_coef``): next-token loss on text through the same body (co-training). As in
  the released co-training code, the language forward adds position embeddings (the timestep
  table with ``extend_positions``, which the released code shares with wpe; else the LM's wpe)
  and the RL forward does not.

Examples:
    >>> from offline_zoo import WikiRL
    >>> WikiRL("hopper-medium", ratio=0.1, lm="embedded").learn(100)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..lm import alignment_loss, alignment_weight, token_centres
from ..models import TransformerSpec
from .lm_backed import LMBackedAlgo, LMBackedConfig
from .registry import register_algo

__all__ = ["WikiRL", "WikiRLConfig"]

ALIGNMENT_MODES = ("released", "cosine")


@dataclass
class WikiRLConfig(LMBackedConfig):
    """Wiki-RL config (defaults: the released MuJoCo scripts).

    Attributes:
        resid_dropout: residual dropout of the body (0.2 in the released code).
        attn_dropout: attention dropout of the body (0.1 in the released code).
        action_head: ``"tied_tanh"`` (released run.sh ``--share_input_output_proj``: ``tanh(x @
            W_embed_action)``, no bias), or an untied head (``"linear_tanh"``, ``"linear"``, ``"mlp"``).
        extend_positions: use the pre-trained wpe as the timestep table (tiled past n_positions;
            released run.sh ``--extend_positions``); False: a fresh table (``timestep_init``).
        alignment_coef: base weight lambda_1 of L_cos (0 disables it).
        alignment_anneal: anneal lambda_1 with the released sigmoid schedule over ``alignment_horizon``.
        alignment_horizon: steps of the annealing schedule (lambda_1 is about 0 from there on).
        alignment_mode: ``"released"`` (per-dimension max of the released code) or ``"cosine"`` (paper Eq. 8).
        n_clusters: k-means centres of the token embeddings.
        lm_loss_coef: lambda_2 of the LM co-training loss (0 disables it).

    Examples:
        >>> cfg = WikiRLConfig()
        >>> cfg.alignment_coef, cfg.lm_loss_coef, cfg.resid_dropout, cfg.n_clusters
        (0.1, 0.0, 0.2, 1000)
        >>> cfg.action_head, cfg.extend_positions  # the released run.sh
        ('tied_tanh', True)
    """

    action_head: str = "tied_tanh"
    weight_decay: float = 1e-4
    adam_eps: float = 1e-6
    warmup_steps: int = 10_000
    resid_dropout: float = 0.2
    attn_dropout: float = 0.1
    extend_positions: bool = True
    alignment_coef: float = 0.1
    alignment_anneal: bool = True
    alignment_horizon: float = 5000.0
    alignment_mode: str = "released"
    n_clusters: int = 1000
    lm_loss_coef: float = 0.0


@register_algo(aliases=("wiki-rl", "wikipedia-rl"))
class WikiRL(LMBackedAlgo):
    """Wiki-RL: a fully fine-tuned pre-trained LM as DT body, with embedding alignment and LM co-training.

    Takes the arguments of `OfflineAlgo` and the fields of `WikiRLConfig`.

    Examples:
        With the small pre-trained LM shipped with offline-zoo (no network needed), both auxiliary
        losses on:

        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = WikiRL(tiny_dataset(), device="cpu", lm="embedded", n_clusters=16, lm_loss_coef=0.2,
        ...               corpus="random", lm_block_size=8, lm_batch_size=1, context_len=4, batch_size=4)
        >>> sorted(algo.learn(2, progress_bar=False).last_metrics)
        ['action_loss', 'alignment_loss', 'grad_norm', 'lm_loss', 'loss']
        >>> tuple(algo.model.token_centres.shape) == (16, algo.model.body.config.n_embd)
        True
        >>> counts = algo.parameter_counts()  # full fine-tuning
        >>> counts["trainable"] == counts["total"]
        True
    """

    name = "wikirl"
    config_class = WikiRLConfig
    embed_order = "wikirl"

    def _make_body(self):
        c = self.config
        if c.alignment_mode not in ALIGNMENT_MODES:
            raise ValueError(f"alignment_mode={c.alignment_mode!r}; allowed: {', '.join(ALIGNMENT_MODES)}")
        return self._load_lm(resid_pdrop=c.resid_dropout, embd_pdrop=c.dropout, attn_pdrop=c.attn_dropout)

    def _transformer_spec(self) -> TransformerSpec:
        c = self.config
        # co-training adds positions in the language forward only, as the released lm_cotraining code
        return super()._transformer_spec().replace(
            extend_positions=c.extend_positions, language_positions=c.lm_loss_coef > 0,
            resid_pdrop=c.resid_dropout, attn_pdrop=c.attn_dropout,
        )

    def _prepare_body(self, model) -> None:
        if self.config.alignment_coef > 0:
            if self.restoring:  # the saved centres overwrite these (k-means of random weights is wasted work)
                centres = torch.zeros(self.config.n_clusters, model.body.wte.weight.shape[1])
            else:
                # centres of the pre-trained token embeddings, fixed during training (cached per LM)
                centres = token_centres(model.body.wte.weight.detach(), n_clusters=self.config.n_clusters, seed=0)
            model.register_buffer("token_centres", centres.float(), persistent=True)

    def _uses_corpus(self) -> bool:
        return self.config.lm_loss_coef > 0

    def extra_losses(self, out, b):
        c = self.config
        losses = {}
        if c.alignment_coef > 0:
            weight = alignment_weight(self.num_steps + 1, base=c.alignment_coef, horizon=c.alignment_horizon) if c.alignment_anneal else c.alignment_coef
            losses["alignment_loss"] = (weight, alignment_loss(out.token_embeddings, self.model.token_centres, mode=c.alignment_mode))
        if c.lm_loss_coef > 0:
            losses["lm_loss"] = (c.lm_loss_coef, self.language_loss_term())
        return losses

    @classmethod
    def tiny_config(cls, spec):
        return {
            **super().tiny_config(spec),
            "lm": "gpt2", "pretrained": False, "n_layer": 1, "n_embd": 16, "n_head": 2,
            "n_clusters": 8, "lm_loss_coef": 0.2, "corpus": "random", "lm_block_size": 8, "lm_batch_size": 1,
        }
