"""Torch modules of the sequence-model agents (no training loops, no data loading).

* `TrajectoryTransformer` / `TransformerSpec` / `spec_preset`: the
  return-conditioned trajectory transformer shared by DT, Wiki-RL and LaMo over a GPT-2 body.
* `offline_zoo.models.embeddings`: residual-MLP embeddings and action heads.
* `NatureCNN`: Atari frame encoder.
* `apply_lora`, `freeze_for_mode`, `merge_lora`, `count_parameters`:
  LaMo's LoRA structure (three adapters on Q, K, V) and fine-tuning modes.

Examples:
    >>> from transformers import GPT2Config, GPT2Model
    >>> body = GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50))
    >>> model = TrajectoryTransformer(body, spec_preset("lamo", (11,), 3, max_ep_len=1000))
    >>> _ = apply_lora(model, rank=4)
    >>> _ = freeze_for_mode(model, "lora")
    >>> count_parameters(model)["lora"]
    1536
"""

from offline_zoo.models.cnn import NatureCNN
from offline_zoo.models.embeddings import (
    MLPHead,
    ResidualMLP,
    ResidualTokenEmbedding,
    make_action_head,
    make_discrete_head,
    make_embedding,
    make_token_embedding,
)
from offline_zoo.models.lora import (
    FREEZE_MODES,
    LORA_MODES,
    SplitQKV,
    apply_lora,
    count_parameters,
    freeze_for_mode,
    has_lora,
    merge_lora,
)
from offline_zoo.models.trajectory_transformer import (
    EMBED_ORDERS,
    NullPositionEmbedding,
    TrajectoryOutput,
    TrajectoryTransformer,
    TransformerSpec,
    attention_keep,
    disable_position_embeddings,
    extended_position_table,
    set_body_dropout,
    spec_preset,
    token_positions,
    unwrap_body,
)

__all__ = [
    "EMBED_ORDERS",
    "FREEZE_MODES",
    "LORA_MODES",
    "MLPHead",
    "NatureCNN",
    "NullPositionEmbedding",
    "ResidualMLP",
    "ResidualTokenEmbedding",
    "SplitQKV",
    "TrajectoryOutput",
    "TrajectoryTransformer",
    "TransformerSpec",
    "apply_lora",
    "attention_keep",
    "count_parameters",
    "disable_position_embeddings",
    "extended_position_table",
    "freeze_for_mode",
    "has_lora",
    "make_action_head",
    "make_discrete_head",
    "make_embedding",
    "make_token_embedding",
    "merge_lora",
    "set_body_dropout",
    "spec_preset",
    "token_positions",
    "unwrap_body",
]
