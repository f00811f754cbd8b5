"""Token embeddings and prediction heads of the trajectory transformer.

Two embedding kinds exist for every modality (return-to-go, state, action):

* ``"linear"``: a single ``nn.Linear`` (DT, Wiki-RL, LaMo on Hopper), or ``nn.Embedding`` for
  discrete actions.
* ``"mlp"``: LaMo's residual MLP block ``out = Linear(d, d)(GELU(h)) + h`` with
  ``h = Linear(in, d)(x)`` (or ``h = Embedding(n, d)(x)`` for discrete actions).

Action heads: ``"linear_tanh"`` (Linear + Tanh, DT / LaMo-Hopper), ``"linear"`` (no squashing),
``"mlp"`` (LaMo: Linear(d, d) -> GELU -> Linear(d, act_dim), no Tanh), and in the trajectory
transformer ``"tied_tanh"`` (`TiedActionHead`: Wiki-RL's ``--share_input_output_proj``). Discrete heads are a
``Linear(d, n_actions)`` with an optional Tanh on the logits (inherited by LaMo's Atari code).

Examples:
    >>> import torch
    >>> emb = make_embedding("mlp", 11, 64)
    >>> emb(torch.zeros(2, 5, 11)).shape
    torch.Size([2, 5, 64])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "EMBEDDING_KINDS",
    "ACTION_HEAD_KINDS",
    "ResidualMLP",
    "ResidualTokenEmbedding",
    "MLPHead",
    "TiedActionHead",
    "make_embedding",
    "make_token_embedding",
    "make_action_head",
    "make_discrete_head",
]

EMBEDDING_KINDS = ("linear", "mlp")
ACTION_HEAD_KINDS = ("linear_tanh", "linear", "mlp")


def _check_kind(kind: str, allowed: tuple[str, ...], what: str) -> None:
    if kind not in allowed:
        raise ValueError(f"unknown {what} {kind!r}; allowed values: {', '.join(map(repr, allowed))}")


class ResidualMLP(nn.Module):
    """LaMo's residual MLP block: ``h = fc1(x); out = fc2(GELU(h)) + h``.

    Args:
        in_dim: input features.
        out_dim: output (and hidden) features.

    Examples:
        >>> import torch
        >>> ResidualMLP(3, 8)(torch.zeros(4, 3)).shape
        torch.Size([4, 8])
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``x`` of shape (..., in_dim) to (..., out_dim)."""
        h = self.fc1(x)
        return self.fc2(self.act(h)) + h


class ResidualTokenEmbedding(nn.Module):
    """Residual embedding of discrete tokens: ``h = Embedding(x); out = fc2(GELU(h)) + h``.

    Used for discrete (Atari) actions by LaMo's MLP-embedding variant.

    Examples:
        >>> import torch
        >>> ResidualTokenEmbedding(6, 8)(torch.zeros(2, 3, dtype=torch.long)).shape
        torch.Size([2, 3, 8])
    """

    def __init__(self, num_embeddings: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.act = nn.GELU()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embed integer ``tokens`` of any shape to (*tokens.shape, dim)."""
        h = self.embedding(tokens)
        return self.fc2(self.act(h)) + h


class MLPHead(nn.Module):
    """LaMo's action head: ``Linear(d, hidden) -> GELU -> Linear(hidden, out_dim)``, no Tanh.

    Examples:
        >>> import torch
        >>> MLPHead(8, 3)(torch.zeros(2, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map hidden states (..., in_dim) to predictions (..., out_dim)."""
        return self.fc2(self.act(self.fc1(x)))


def make_embedding(kind: str, in_dim: int, dim: int) -> nn.Module:
    """Embedding of a continuous modality (return-to-go, vector state, continuous action).

    Args:
        kind: ``"linear"`` (``nn.Linear(in_dim, dim)``) or ``"mlp"`` (`ResidualMLP`).
        in_dim: input features.
        dim: embedding size (the body's ``n_embd``).

    Examples:
        >>> make_embedding("linear", 1, 16)
        Linear(in_features=1, out_features=16, bias=True)
    """
    _check_kind(kind, EMBEDDING_KINDS, "embedding kind")
    if kind == "linear":
        return nn.Linear(in_dim, dim)
    return ResidualMLP(in_dim, dim)


def make_token_embedding(kind: str, num_embeddings: int, dim: int) -> nn.Module:
    """Embedding of a discrete modality (Atari actions).

    Args:
        kind: ``"linear"`` (``nn.Embedding``) or ``"mlp"`` (`ResidualTokenEmbedding`).
        num_embeddings: number of discrete values (actions).
        dim: embedding size.

    Examples:
        >>> make_token_embedding("linear", 4, 16)
        Embedding(4, 16)
    """
    _check_kind(kind, EMBEDDING_KINDS, "embedding kind")
    if kind == "linear":
        return nn.Embedding(num_embeddings, dim)
    return ResidualTokenEmbedding(num_embeddings, dim)


def make_action_head(kind: str, dim: int, act_dim: int) -> nn.Module:
    """Continuous action head.

    Args:
        kind: ``"linear_tanh"`` (Linear + Tanh), ``"linear"`` (Linear only) or ``"mlp"``
            (`MLPHead`, no Tanh).
        dim: hidden size of the body.
        act_dim: action dimension.

    Examples:
        >>> make_action_head("linear_tanh", 16, 3)
        Sequential(
          (0): Linear(in_features=16, out_features=3, bias=True)
          (1): Tanh()
        )
    """
    _check_kind(kind, ACTION_HEAD_KINDS, "action head")
    if kind == "linear_tanh":
        return nn.Sequential(nn.Linear(dim, act_dim), nn.Tanh())
    if kind == "linear":
        return nn.Linear(dim, act_dim)
    return MLPHead(dim, act_dim)


class TiedActionHead(nn.Module):
    """Action head tied to a linear action embedding: ``tanh(x @ W)`` with ``W`` the embedding's
    (d, act_dim) weight, no bias and no parameter of its own (Wiki-RL's released
    ``--share_input_output_proj``).

    The embedding is referenced, not registered as a submodule: its weight stays under
    ``embed_action`` in the state dict, once.

    Examples:
        >>> import torch
        >>> emb = torch.nn.Linear(3, 8)
        >>> head = TiedActionHead(emb)
        >>> x = torch.randn(2, 8)
        >>> torch.allclose(head(x), torch.tanh(x @ emb.weight)), len(list(head.parameters()))
        (True, 0)
    """

    def __init__(self, embedding: nn.Linear) -> None:
        super().__init__()
        if not isinstance(embedding, nn.Linear):
            raise ValueError(f"a tied action head needs a linear action embedding, got {type(embedding).__name__}")
        self._embedding = (embedding,)  # a tuple: not a submodule (no second copy of the weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``tanh(x @ W)`` for ``x`` of shape (..., d)."""
        return torch.tanh(x @ self._embedding[0].weight)


def make_discrete_head(dim: int, n_actions: int, logits_tanh: bool = False) -> nn.Module:
    """Discrete action head: ``Linear(dim, n_actions)``, optionally followed by Tanh.

    ``logits_tanh=True`` reproduces LaMo's Atari head (Tanh squashes the logits into [-1, 1],
    which caps how peaked the softmax can get; kept as a switch for faithfulness).

    Examples:
        >>> make_discrete_head(16, 4)
        Linear(in_features=16, out_features=4, bias=True)
    """
    if logits_tanh:
        return nn.Sequential(nn.Linear(dim, n_actions), nn.Tanh())
    return nn.Linear(dim, n_actions)
