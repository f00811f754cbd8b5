"""LaMo (Shi et al. 2023): Language Models for Motion control, as the released code (srzer/LaMo-2023) does it.

1. **Pre-trained body**: GPT-2 small (``lm="gpt2-medium"`` for Kitchen complete 30% / partial 100%)
   driven through ``inputs_embeds``; GPT-2's position embeddings are not added on the continuous
   path (neither in the RL nor in the language forward); Atari keeps them.
2. **LoRA**: three independent rank-16 adapters on Q, K and V of every ``c_attn`` (alpha 32,
   dropout 0.1) plus the trainable ``c_attn`` bias; the rest of GPT-2 is frozen; every module
   outside the body (embeddings, embedding LayerNorm, timestep table, heads) is trained. Atari:
   one rank-32 peft adapter on the fused ``c_attn``.
3. **MLP embeddings** and an MLP action head (Hopper: linear embeddings, Linear + Tanh head).
   Embedding order: LayerNorm(modality embeddings) + timestep embedding.
4. **Auxiliary language loss** every step: a batch of token blocks through the same body with the
   frozen, tied ``wte`` / ``lm_head``; ``loss = action loss + lambda * CE`` (lambda 0.1).

Ablation switches: ``embedding`` (``"mlp"`` / ``"linear"``), ``finetune`` (``"lora"`` / ``"full"`` /
``"frozen"``), ``language_loss_coef`` (0 turns it off), ``pretrained`` (False = random init).

    >>> from offline_zoo import LaMo
    >>> algo = LaMo("hopper-medium", ratio=0.1).learn()  # doctest: +SKIP
    >>> algo.parameter_counts()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import TransformerSpec, apply_lora, freeze_for_mode
from .lm_backed import LMBackedAlgo, LMBackedConfig
from .registry import register_algo

__all__ = ["LaMo", "LaMoConfig"]

FINETUNE_MODES = ("lora", "full", "frozen")


@dataclass
class LaMoConfig(LMBackedConfig):
    """LaMo config (defaults: the released MuJoCo/Kitchen scripts; per task in ``configs/lamo.yaml``).

    Attributes:
        finetune: ``"lora"`` (LaMo), ``"full"`` fine-tuning or ``"frozen"`` body (ablations).
        lora_rank: rank of the LoRA adapters.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_rank``).
        lora_dropout: dropout on the adapters' input.
        lora_structure: ``"qkv"`` (three adapters, the released MuJoCo/Kitchen code) or ``"fused"``
            (one peft adapter on ``c_attn``, the released Atari code); None: by action space.
        train_attn_bias: train the ``c_attn`` bias with LoRA (released MuJoCo code: yes; Atari: no);
            None: by action space.
        language_loss_coef: lambda of the auxiliary language loss (0 disables it).
        use_position_embeddings: add GPT-2's wpe (released code: Atari only); None: by action space.

    Examples:
        >>> cfg = LaMoConfig()
        >>> cfg.lm, cfg.finetune, cfg.lora_rank, cfg.embedding, cfg.language_loss_coef
        ('gpt2', 'lora', 16, 'mlp', 0.1)
    """

    embedding: str = "mlp"
    action_head: str = "mlp"
    weight_decay: float = 1e-5
    adam_eps: float = 1e-6
    warmup_steps: int = 2500
    finetune: str = "lora"
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.1
    lora_structure: str | None = None
    train_attn_bias: bool | None = None
    language_loss_coef: float = 0.1
    use_position_embeddings: bool | None = None


@register_algo
class LaMo(LMBackedAlgo):
    """LaMo: a pre-trained GPT-2 adapted with LoRA to offline RL, with an auxiliary language loss.

    Takes the arguments of `OfflineAlgo` and the fields of `LaMoConfig`.

    Examples:
        With the small pre-trained LM shipped with offline-zoo (no network needed):

        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = LaMo(tiny_dataset(), device="cpu", lm="embedded", corpus="random", lm_block_size=8,
        ...             lm_batch_size=1, context_len=4, batch_size=4)
        >>> sorted(algo.learn(2, progress_bar=False).last_metrics)
        ['action_loss', 'grad_norm', 'language_loss', 'loss']
        >>> counts = algo.parameter_counts()  # LoRA: the body is frozen but for the adapters and c_attn biases
        >>> counts["lora"] > 0, counts["body_trainable"] < counts["body"]
        (True, True)

        The paper's setting (GPT-2 small from the Hugging Face hub, WikiText-103 through ``datasets``):

        >>> LaMo("hopper-medium", ratio=0.1, corpus="wikitext-103").learn()  # doctest: +SKIP
    """

    name = "lamo"
    config_class = LaMoConfig
    embed_order = "lamo"

    def _make_body(self):
        if self.config.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune={self.config.finetune!r}; allowed: {', '.join(FINETUNE_MODES)}")
        d = self.config.dropout
        return self._load_lm(resid_pdrop=d, embd_pdrop=d, attn_pdrop=d)

    def _by_action_space(self, value, continuous, discrete):
        """A config value, or (None) the released code's choice for this action space."""
        if value is not None:
            return value
        return discrete if self.spec.discrete else continuous

    def _transformer_spec(self) -> TransformerSpec:
        spec = super()._transformer_spec()
        wpe = self._by_action_space(self.config.use_position_embeddings, False, True)
        if self.spec.discrete:  # released Atari code: timestep added before the LayerNorm, Tanh on logits
            return spec.replace(embed_order="atari_lamo", logits_tanh=True, use_position_embeddings=wpe)
        return spec.replace(use_position_embeddings=wpe)

    def _prepare_body(self, model) -> None:
        c = self.config
        if c.finetune == "lora":
            structure = self._by_action_space(c.lora_structure, "qkv", "fused")
            apply_lora(model.body, rank=c.lora_rank, alpha=c.lora_alpha, dropout=c.lora_dropout, mode=structure)
        freeze_for_mode(model, c.finetune, train_attn_bias=self._by_action_space(c.train_attn_bias, True, False))

    def _uses_corpus(self) -> bool:
        return self.config.language_loss_coef > 0

    def extra_losses(self, out, b):
        if self.config.language_loss_coef <= 0:
            return {}
        return {"language_loss": (self.config.language_loss_coef, self.language_loss_term())}

    @classmethod
    def tiny_config(cls, spec):
        return {
            **super().tiny_config(spec),
            "lm": "gpt2", "pretrained": False, "n_layer": 1, "n_embd": 16, "n_head": 2,
            "lora_rank": 2, "corpus": "random", "lm_block_size": 8, "lm_batch_size": 1,
        }
