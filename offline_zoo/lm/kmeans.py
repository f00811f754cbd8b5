"""Wiki-RL's alignment loss L_cos: k-means centres of the LM token embeddings, loss and schedule.

Wiki-RL (Reid et al. 2022, Sec. 3.2) pulls the trajectory input embeddings (the LayerNorm-ed stacked
R / s / a embeddings, before the timestep embedding is added) towards the language token embeddings.
To make it cheap, the vocabulary embedding matrix ``wte`` (50257 x 768 for GPT-2) is clustered into
1000 centres with cosine (spherical) k-means, computed once per LM and cached on disk:

* :func:`spherical_kmeans` - batched torch k-means on the unit sphere (seeded; random or k-means++
  init; assignment matmuls in bfloat16 where the hardware has it). GPT-2 small -> 1000 centres takes
  a few seconds on a CPU.
* :func:`token_centres` - the cached entry point: ``<cache>/kmeans/<hash>.pt`` with ``<cache>`` =
  ``$OFFLINE_ZOO_HOME`` or ``~/.cache/offline_zoo``; the key hashes the wte values, the number of
  clusters, the seed and the k-means settings.
* :func:`alignment_loss` - ``mode="cosine"`` is the paper's Eq. 8 (mean over tokens of the negative
  best cosine similarity to a centre); ``mode="released"`` is what the released code computes:
  ``-mean_{b,t,j} max_k x̂[b,t,j] * ĉ[k,j]`` with x̂, ĉ the L2-normalised input embeddings and centres,
  i.e. a max over clusters taken separately for every hidden dimension (an upper bound of the
  cosine version: it can reach ``-sum_j max_k |...|``, not a similarity to any single centre). The
  released code materialises the (B, T, K, d) product tensor; here the identity
  ``max_k x_j c_kj = x_j * (max_k c_kj if x_j >= 0 else min_k c_kj)`` gives the same value and
  gradient with O(B T d) memory. The released code averages over all positions, padding included;
  pass ``mask`` to average over real tokens only.
* :func:`alignment_weight` - the released annealing of lambda_1 (``kmeans_anneal``)::

      lambda_1(step) = base * sigmoid((horizon - step) / (horizon / 10) - 5),  horizon = 5000

  so lambda_1 = 0.993 * base at step 0 (it is the sigmoid factor that is "~1"; lambda_1 itself starts
  at ~base = 0.1, not at ~1), exactly base/2 at step 2500 and 0.0067 * base at 5000 (the paper: "decay lambda_1
  to reach 0.0 after 5000 steps"). The released trainer increments its step counter before the loss,
  so its first gradient step uses step = 1. ``base`` = ``--gpt_kmeans_const`` = 0.1 in the released
  run script; the LM co-training variant of the released code uses ``horizon = 15000``.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from offline_zoo.files import atomic_writer
from offline_zoo.lm.corpus import default_cache_dir

__all__ = [
    "alignment_loss",
    "alignment_weight",
    "spherical_kmeans",
    "token_centres",
    "wte_of",
]

_KMEANS_VERSION = 1
_INITS = ("random", "k-means++")
_MODES = ("cosine", "released")


def _bf16_matmul_is_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # pragma: no cover - private torch helpers may change
            pass
    return False


def _assign(
    xm: torch.Tensor, centres: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and cosine of the most similar centre for every row of xm (unit rows, matmul dtype)."""
    xn = xm
    c = centres.to(xm.dtype)
    labels = torch.empty(xn.shape[0], dtype=torch.long, device=xn.device)
    best = torch.empty(xn.shape[0], dtype=torch.float32, device=xn.device)
    for start in range(0, xn.shape[0], chunk_size):
        sims = xn[start : start + chunk_size] @ c.T
        value, index = sims.max(dim=1)
        labels[start : start + chunk_size] = index
        best[start : start + chunk_size] = value.float()
    return labels, best


def _kmeanspp_init(
    xn: torch.Tensor, k: int, gen: torch.Generator, sample_size: int
) -> torch.Tensor:
    """k-means++ seeding (cosine distance 1 - cos) on a random subsample of the rows."""
    n = xn.shape[0]
    idx = torch.randperm(n, generator=gen, device="cpu")[: min(n, max(sample_size, k))]
    pool = xn[idx.to(xn.device)]
    chosen = [int(torch.randint(pool.shape[0], (1,), generator=gen))]
    dist = (1.0 - pool @ pool[chosen[0]]).clamp_min(0)
    for _ in range(1, k):
        weights = dist.double().cpu()
        if float(weights.sum()) <= 0:  # fewer distinct points than k: fall back to uniform
            weights = torch.ones_like(weights)
        nxt = int(torch.multinomial(weights, 1, generator=gen))
        chosen.append(nxt)
        dist = torch.minimum(dist, (1.0 - pool @ pool[nxt]).clamp_min(0))
    return pool[torch.tensor(chosen, device=xn.device)].clone()


def spherical_kmeans(
    x: torch.Tensor,
    n_clusters: int = 1000,
    n_iter: int = 10,
    seed: int = 0,
    init: str = "random",
    tol: float = 1e-3,
    chunk_size: int = 8192,
    matmul_dtype: torch.dtype | None = None,
    kmeanspp_sample: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine k-means: unit-norm centres maximising the summed cosine similarity of their members.

    Args:
        x: ``(n, d)`` points (rows need not be normalised; zero rows are left unassigned-ish: they
            join an arbitrary cluster).
        n_clusters: number of centres ``k`` (``k <= n``).
        n_iter: maximum Lloyd iterations.
        seed: seeds the initialisation.
        init: ``"random"`` (k distinct data points, as the ``kmeans_pytorch`` package the released
            code used) or ``"k-means++"`` (on a random subsample of ``kmeanspp_sample`` rows).
        tol: stop when fewer than this fraction of points change cluster.
        chunk_size: rows per assignment matmul (bounds memory to chunk_size x k).
        matmul_dtype: dtype of the assignment matmuls; default bfloat16 on CUDA and on CPUs with
            AVX512-BF16 / AMX, else float32. Centres are always accumulated in float32.
        kmeanspp_sample: subsample size for ``init="k-means++"``.

    Returns:
        ``(centres, labels)``: float32 ``(k, d)`` unit-norm centres and the ``(n,)`` cluster index of
        every row. Empty clusters are re-seeded with the points worst served by their centre.

    Examples:
        >>> centres, labels = spherical_kmeans(torch.randn(5000, 32), n_clusters=50, seed=0)
        >>> centres.shape, labels.shape
        (torch.Size([50, 32]), torch.Size([5000]))
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor (n, d), got {type(x).__name__} {getattr(x, 'shape', '')}")
    n = x.shape[0]
    if not isinstance(n_clusters, int) or isinstance(n_clusters, bool) or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be an int in [1, n={n}], got {n_clusters!r}")
    if not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive int, got {n_iter!r}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")
    xn = F.normalize(x.detach().float(), dim=1)
    if matmul_dtype is None:
        matmul_dtype = torch.bfloat16 if _bf16_matmul_is_fast(xn.device) else torch.float32
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if init == "random":
        centres = xn[torch.randperm(n, generator=gen)[:n_clusters].to(xn.device)].clone()
    else:
        centres = _kmeanspp_init(xn, n_clusters, gen, kmeanspp_sample)
    xm = xn if matmul_dtype == torch.float32 else xn.to(matmul_dtype)
    labels: torch.Tensor | None = None
    for _ in range(n_iter):
        new_labels, best = _assign(xm, centres, chunk_size)
        changed = n if labels is None else int((new_labels != labels).sum())
        labels = new_labels
        sums = torch.zeros_like(centres).index_add_(0, labels, xn)
        counts = torch.bincount(labels, minlength=n_clusters)
        empty = (counts == 0).nonzero().flatten()
        centres = F.normalize(sums, dim=1)
        if empty.numel():
            worst = best.argsort()[: empty.numel()]
            centres[empty] = xn[worst]
        if changed <= tol * n and empty.numel() == 0:
            break
    labels, _ = _assign(xm, centres, chunk_size)
    return centres, labels


def wte_of(lm_or_wte: Any) -> torch.Tensor:
    """The token-embedding matrix of a model (``get_input_embeddings()``), an Embedding or a tensor.

    Examples:
        >>> from offline_zoo.lm import load_language_model
        >>> wte_of(load_language_model("embedded")).shape
        torch.Size([50257, 128])
        >>> wte_of(torch.nn.Embedding(10, 4)).shape
        torch.Size([10, 4])
    """
    if isinstance(lm_or_wte, torch.Tensor):
        weight = lm_or_wte
    elif isinstance(lm_or_wte, torch.nn.Embedding):
        weight = lm_or_wte.weight
    elif hasattr(lm_or_wte, "get_input_embeddings"):
        weight = lm_or_wte.get_input_embeddings().weight
    else:
        raise TypeError(
            "expected a transformers model, an nn.Embedding or a (vocab, d) tensor, got "
            f"{type(lm_or_wte).__name__}"
        )
    if weight.dim() != 2:
        raise ValueError(f"token embeddings must be 2-D (vocab, d), got shape {tuple(weight.shape)}")
    return weight.detach()


def token_centres(
    lm_or_wte: Any,
    n_clusters: int = 1000,
    seed: int = 0,
    n_iter: int = 10,
    init: str = "random",
    cache_dir: str | os.PathLike | bool | None = None,
) -> torch.Tensor:
    """Cached cosine k-means centres of an LM's token embeddings (Wiki-RL's L_cos targets).

    Computed once per (wte values, n_clusters, seed, n_iter, init) and stored as
    ``<cache_dir>/kmeans/<hash>.pt`` (``cache_dir`` default: ``$OFFLINE_ZOO_HOME`` or
    ``~/.cache/offline_zoo``; ``False`` disables the cache). Returns float32 unit-norm ``(k, d)``
    centres on the wte's device.

    Examples:
        Wiki-RL uses 1000 centres of GPT-2's embeddings (``(1000, 768)``, a few seconds on a CPU):

        >>> centres = token_centres(load_language_model("gpt2"), n_clusters=1000)  # doctest: +SKIP

        The same on the embedded LM (ChibiT), with fewer centres:

        >>> from offline_zoo.lm import load_language_model
        >>> lm = load_language_model("embedded")
        >>> centres = token_centres(lm, n_clusters=16, n_iter=3)
        >>> centres.shape, torch.allclose(centres.norm(dim=1), torch.ones(16))
        (torch.Size([16, 128]), True)
        >>> torch.equal(token_centres(lm, n_clusters=16, n_iter=3), centres)   # read from the cache
        True
    """
    wte = wte_of(lm_or_wte)
    flat = wte.float().contiguous().cpu()
    h = hashlib.blake2b(digest_size=16)
    h.update(flat.numpy().tobytes())
    h.update(repr((tuple(flat.shape), n_clusters, seed, n_iter, init, _KMEANS_VERSION)).encode())
    key = h.hexdigest()
    path: Path | None = None
    if cache_dir is not False:
        root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir).expanduser()
        path = root / "kmeans" / f"k{n_clusters}-{key}.pt"
        if path.is_file():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
                return blob["centres"].to(wte.device)
            except Exception:
                pass  # unreadable entry: recompute and overwrite
    centres, _ = spherical_kmeans(flat, n_clusters=n_clusters, n_iter=n_iter, seed=seed, init=init)
    if path is not None:
        with atomic_writer(path) as f:
            torch.save(
                {"centres": centres.contiguous(), "n_clusters": n_clusters, "seed": seed, "n_iter": n_iter,
                 "init": init, "wte_shape": list(flat.shape), "version": _KMEANS_VERSION},
                f,
            )
    return centres.to(wte.device)


def alignment_loss(
    input_embeds: torch.Tensor,
    centres: torch.Tensor,
    mode: str = "cosine",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Wiki-RL's L_cos between input embeddings ``(..., d)`` and token centres ``(k, d)``.

    ``mode="cosine"`` (paper Eq. 8, averaged): ``-mean_tokens max_k cos(x, c_k)``, in [-1, 1].
    ``mode="released"``: ``-mean_{tokens, j} max_k x̂_j ĉ_kj`` with x̂, ĉ the L2-normalised vectors
    (the per-dimension max of the released ``kmeans_cosine_max_loss``; see the module docstring).
    ``mask`` (``input_embeds.shape[:-1]``, nonzero = real token) restricts the mean; the released code
    has no mask (padding counts). Gradients flow into ``input_embeds`` (and ``centres`` if they
    require grad; the released code keeps them fixed).

    Examples:
        >>> x = torch.tensor([[1.0, 0.0]]); c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> float(alignment_loss(x, c)), float(alignment_loss(x, c, mode="released"))
        (-1.0, -0.5)
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if centres.dim() != 2 or input_embeds.shape[-1] != centres.shape[-1]:
        raise ValueError(
            f"centres must be (k, d) with d = input_embeds.shape[-1] = {input_embeds.shape[-1]}, got "
            f"{tuple(centres.shape)}"
        )
    x = F.normalize(input_embeds.float(), dim=-1)
    c = F.normalize(centres.to(x.device).float(), dim=-1)
    if mode == "cosine":
        per_token = (x @ c.T).max(dim=-1).values
    else:
        cmax = c.max(dim=0).values
        cmin = c.min(dim=0).values
        per_token = torch.where(x >= 0, x * cmax, x * cmin).mean(dim=-1)
    if mask is None:
        return -per_token.mean()
    if mask.shape != per_token.shape:
        raise ValueError(
            f"mask must have shape {tuple(per_token.shape)} (input_embeds without the last dim), got "
            f"{tuple(mask.shape)}"
        )
    weights = mask.to(per_token.dtype)
    return -(per_token * weights).sum() / weights.sum().clamp_min(1.0)


def alignment_weight(step: float, base: float = 0.1, horizon: float = 5000) -> float:
    """Annealed L_cos weight of the released Wiki-RL code (``kmeans_anneal``), times ``base``.

    ``base * sigmoid((horizon - step) / (horizon / 10) - 5)``: 0.0993 at step 0 (base 0.1), 0.05 at
    2500, 0.00067 at 5000, -> 0 after. Use ``horizon=15000`` for the released LM co-training variant.

    Examples:
        >>> round(alignment_weight(2500), 6)
        0.05
    """
    if not isinstance(step, (int, float)) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be a non-negative number, got {step!r}")
    if not horizon > 0:
        raise ValueError(f"horizon must be positive, got {horizon!r}")
    z = (horizon - step) / (horizon / 10.0) - 5.0
    sig = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return base * sig
