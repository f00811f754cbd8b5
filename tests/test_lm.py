"""Tests of offline_zoo.lm: offline-safe loading, token blocks, k-means / L_cos, pre-training.

All offline and tiny; the only packaged file used is the embedded LM (and its GPT-2 tokenizer).
"""

from __future__ import annotations

import json
import math
import socket
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from offline_zoo import lm as lm_pkg
from offline_zoo.lm import (
    EMBEDDED_LM,
    LanguageModelNotAvailableError,
    TokenBlockSource,
    alignment_loss,
    alignment_weight,
    load_language_model,
    load_tokenizer,
    perplexity,
    pretrain_language_model,
    spherical_kmeans,
    token_centres,
)
from offline_zoo.lm import kmeans as kmeans_mod
from offline_zoo.lm import loading as loading_mod

UNCACHED = "offline-zoo-tests/definitely-not-cached-gpt2"


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def offline(monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def zoo_home(monkeypatch, tmp_path):
    home = tmp_path / "zoo_home"
    monkeypatch.setenv("OFFLINE_ZOO_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("embedded")


def _tiny_corpus(path: Path, n_lines: int = 300) -> Path:
    rng = np.random.default_rng(0)
    subjects = ["the cat", "a dog", "the old man", "my sister", "the river"]
    verbs = ["sat on", "looked at", "walked to", "sang about", "jumped over"]
    objects = ["the mat", "a hill", "the house", "the moon", "a tree"]
    lines = [
        f"{subjects[i % 5]} {verbs[(i // 5) % 5]} {objects[rng.integers(5)]} .\n" for i in range(n_lines)
    ]
    path.write_text("".join(lines))
    return path


# ----------------------------------------------------------------------------------- loading
def test_offline_uncached_hub_name_fails_fast_with_fix(offline):
    start = time.perf_counter()
    with pytest.raises(LanguageModelNotAvailableError) as err:
        load_language_model(UNCACHED)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"offline failure took {elapsed:.2f} s"
    message = str(err.value)
    for hint in ("HF_HOME", "save_pretrained", 'lm="embedded"', "pretrained=False", "network"):
        assert hint in message, f"{hint!r} missing from: {message}"
    assert isinstance(err.value, OSError)


def test_loading_a_model_from_disk_prints_no_progress_bar(capfd):
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    load_language_model("embedded")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled() == before  # scoped: nothing switched off for good


def test_offline_uncached_tokenizer_fails_fast(offline):
    start = time.perf_counter()
    with pytest.raises(LanguageModelNotAvailableError, match='(?s)HF_HOME.*tokenizer="embedded"'):
        load_tokenizer(UNCACHED)
    assert time.perf_counter() - start < 2.0


def test_unreachable_hub_without_offline_env_fails_fast(monkeypatch, no_network):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(loading_mod, "_hub_reachable", lambda timeout=3.0: (False, "probe: no route"))
    start = time.perf_counter()
    with pytest.raises(LanguageModelNotAvailableError, match="probe: no route"):
        load_language_model(UNCACHED)
    assert time.perf_counter() - start < 2.0


def test_cached_hub_model_loads_offline(tmp_path):
    """A model in the Hugging Face cache (HF_HOME) loads under HF_HUB_OFFLINE=1 (fresh process)."""
    import os
    import subprocess
    import sys

    snapshot = tmp_path / "hf" / "hub" / "models--zoo-test--tiny-gpt2" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=1)
    transformers.GPT2LMHeadModel(config).save_pretrained(snapshot)
    code = (
        "import os, time; from offline_zoo.lm import load_language_model, loading; t = time.time(); "
        "m = load_language_model('zoo-test/tiny-gpt2'); "
        # without the offline variable the cache is still tried first: no probe, no download
        "del os.environ['HF_HUB_OFFLINE']; "
        "loading._hub_reachable = lambda *a, **k: 1 / 0; "
        "m2 = load_language_model('zoo-test/tiny-gpt2'); "
        "print(m.config.n_embd, m2.config.vocab_size, round(time.time() - t, 2))"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    n_embd, vocab, _seconds = out.stdout.split()[-3:]
    assert (n_embd, vocab) == ("8", "50")


def test_random_init_with_overrides_needs_no_network(offline):
    model = load_language_model("gpt2", pretrained=False, n_layer=2, n_embd=64, n_head=2)
    assert isinstance(model, transformers.GPT2LMHeadModel)
    assert model.config.n_layer == 2 and len(model.transformer.h) == 2
    assert model.transformer.wte.weight.shape == (50257, 64)
    assert model.transformer.wpe.weight.shape == (1024, 64)
    assert model.config.n_head == 2
    # known architecture defaults (only the depth overridden to keep the test small)
    medium = loading_mod._base_config("gpt2-medium", None)  # the config pretrained=False builds
    assert (medium.n_layer, medium.n_embd, medium.n_head, medium.vocab_size, medium.n_positions) == (
        24, 1024, 16, 50257, 1024)
    dropout = load_language_model("gpt2", pretrained=False, n_layer=1, n_embd=48, resid_pdrop=0.2)
    assert (dropout.config.n_head, dropout.config.resid_pdrop) == (12, 0.2)
    assert lm_pkg.KNOWN_GPT2_ARCHITECTURES["gpt2"] == {"n_layer": 12, "n_embd": 768, "n_head": 12}
    assert lm_pkg.KNOWN_GPT2_ARCHITECTURES["gpt2-medium"] == {"n_layer": 24, "n_embd": 1024, "n_head": 16}


def test_size_overrides_with_pretrained_is_a_clear_error(offline):
    with pytest.raises(ValueError, match="pretrained=False"):
        load_language_model("gpt2", pretrained=True, n_layer=3)
    with pytest.raises(ValueError, match="n_embd"):
        load_language_model("gpt2", pretrained=False, n_embd=-1)
    with pytest.raises(ValueError, match="not_a_field"):
        load_language_model("gpt2", pretrained=False, n_layer=1, not_a_field=3)
    with pytest.raises(ValueError, match="divisible"):
        load_language_model("gpt2", pretrained=False, n_layer=1, n_embd=30, n_head=4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_language_model("./no/such/dir")


def test_local_directory_round_trip(offline, tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=97, n_positions=64, n_embd=16, n_layer=2, n_head=2)
    original = transformers.GPT2LMHeadModel(config)
    original.save_pretrained(tmp_path / "tiny")
    loaded = load_language_model(tmp_path / "tiny")
    loaded_str = load_language_model(str(tmp_path / "tiny"), resid_pdrop=0.0)
    assert loaded_str.config.resid_pdrop == 0.0
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    fresh = load_language_model(tmp_path / "tiny", pretrained=False, n_layer=1)
    assert fresh.config.vocab_size == 97 and fresh.config.n_layer == 1 and fresh.config.n_embd == 16


def test_tokenizer_from_local_directory(tmp_path, offline, tokenizer):
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((Path(EMBEDDED_LM) / name).read_bytes())
    tok = load_tokenizer(tmp_path)
    assert tok("Hello world")["input_ids"] == [15496, 995] == tokenizer("Hello world")["input_ids"]
    assert len(tok) == 50257
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        load_tokenizer(tmp_path / "..")


# ------------------------------------------------------------------------------------ corpus
def test_token_source_shapes_seed_and_contiguity(tmp_path, zoo_home, tokenizer):
    corpus = _tiny_corpus(tmp_path / "corpus.txt")
    src = TokenBlockSource(corpus, tokenizer, block_size=16, batch_size=3, seed=7)
    assert src.tokens.dtype == np.uint16 and src.tokens.ndim == 1
    batch = src.next_batch()
    assert batch.shape == (3, 16) and batch.dtype == torch.long
    # same seed, same stream; another seed, another stream
    again = TokenBlockSource(corpus, tokenizer, block_size=16, batch_size=3, seed=7)
    other = TokenBlockSource(corpus, tokenizer, block_size=16, batch_size=3, seed=8)
    first = [again.next_batch() for _ in range(5)]
    assert torch.equal(first[0], batch)
    assert not all(torch.equal(a, other.next_batch()) for a in first)
    src.reset()
    assert torch.equal(src.next_batch(), batch)
    # every row is a contiguous slice of the corpus tokens
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(src.tokens, dtype=np.int64), 16)
    for _ in range(10):
        for row in src.next_batch().numpy():
            assert (windows == row).all(axis=1).any()
    # tokens agree with a direct tokenization of the file
    direct = tokenizer(corpus.read_text().splitlines(keepends=True))["input_ids"]
    assert np.array_equal(np.asarray(src.tokens), np.concatenate([np.asarray(d) for d in direct]))


def test_token_source_offsets_are_uniform_slices():
    src = TokenBlockSource.from_tokens(np.arange(1000), block_size=10, batch_size=4, seed=0)
    starts = []
    for _ in range(200):
        b = src.next_batch()
        assert torch.equal(b - b[:, :1], torch.arange(10).expand(4, 10))
        starts.extend(b[:, 0].tolist())
    assert min(starts) >= 0 and max(starts) <= 990
    assert len(set(starts)) > 300  # spread over the corpus, not a fixed set of chunks


def test_token_source_memory_is_constant():
    src = TokenBlockSource.from_tokens(np.arange(20000) % 50000, block_size=64, batch_size=2)
    for _ in range(50):
        src.next_batch()
    attrs = {k: (v.nbytes if isinstance(v, np.ndarray) else 0) for k, v in vars(src).items()}
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(3000):
        src.next_batch()
    now, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert now - base < 200_000, f"memory grew by {now - base} bytes over 3000 batches"
    assert {k: (v.nbytes if isinstance(v, np.ndarray) else 0) for k, v in vars(src).items()} == attrs


def test_token_cache_is_written_and_reused(tmp_path, zoo_home, tokenizer, monkeypatch):
    corpus = _tiny_corpus(tmp_path / "c.txt", 50)
    first = TokenBlockSource(corpus, tokenizer, block_size=8)
    cached = list((zoo_home / "tokens").glob("*.npy"))
    assert len(cached) == 1
    from offline_zoo.lm import corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "tokenize_lines", lambda *a, **k: pytest.fail("re-tokenized"))
    second = TokenBlockSource(corpus, tokenizer, block_size=8)
    assert isinstance(second.tokens, np.memmap)
    assert np.array_equal(np.asarray(first.tokens), np.asarray(second.tokens))


def test_token_source_inputs_and_errors(tmp_path, tokenizer):
    corpus_dir = tmp_path / "wiki"
    corpus_dir.mkdir()
    _tiny_corpus(corpus_dir / "a.txt", 20)
    _tiny_corpus(corpus_dir / "b.txt", 30)
    src = TokenBlockSource(corpus_dir, tokenizer, block_size=8, cache_dir=False)
    assert [Path(s["file"]).name for s in src.description["sources"]] == ["a.txt", "b.txt"]
    texts = TokenBlockSource.from_texts(["one two three four five six seven eight nine ten"], tokenizer, 4)
    assert texts.n_tokens >= 10
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        TokenBlockSource("missing.txt", tokenizer)
    with pytest.raises(ValueError, match="block_size"):
        TokenBlockSource.from_tokens(np.arange(5), block_size=10)
    with pytest.raises(ValueError, match="batch_size"):
        TokenBlockSource.from_tokens(np.arange(50), block_size=10, batch_size=0)
    blocks = list(src.iter_blocks(block_size=8, batch_size=4))
    assert sum(b.shape[0] for b in blocks) == src.n_tokens // 8
    assert torch.equal(blocks[0][0], torch.from_numpy(np.asarray(src.tokens[:8], dtype=np.int64)))
    shuffled = src.shuffled(seed=1)
    assert np.array_equal(np.sort(np.asarray(shuffled.tokens)), np.sort(np.asarray(src.tokens)))
    assert not np.array_equal(np.asarray(shuffled.tokens), np.asarray(src.tokens))


def test_hf_wikitext_without_datasets_is_clear(monkeypatch, zoo_home, tokenizer):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        TokenBlockSource.from_hf_wikitext103(tokenizer, split="validation")
    with pytest.raises(ValueError, match="split"):
        TokenBlockSource.from_hf_wikitext103(tokenizer, split="dev")
    # once tokenized, the split is served from the token cache with neither datasets nor network
    from offline_zoo.lm import corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "_download_wikitext", lambda *a: np.arange(5000, dtype=np.uint16))
    first = TokenBlockSource.from_hf_wikitext103(tokenizer, split="validation", block_size=32)
    monkeypatch.setattr(corpus_mod, "_download_wikitext", lambda *a: pytest.fail("downloaded twice"))
    again = TokenBlockSource.from_hf_wikitext103(tokenizer, split="validation", block_size=32)
    assert again.n_tokens == first.n_tokens == 5000


# ------------------------------------------------------------------------------------ kmeans
def _planted(n_per: int = 150, k: int = 6, d: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1)
    points = directions.repeat_interleave(n_per, 0) + 0.05 * torch.randn(k * n_per, d, generator=g)
    scale = torch.rand(k * n_per, 1, generator=g) * 3 + 0.5  # cosine k-means ignores norms
    truth = torch.arange(k).repeat_interleave(n_per)
    perm = torch.randperm(k * n_per, generator=g)
    return (points * scale)[perm], truth[perm], directions


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_kmeans_recovers_planted_clusters(init):
    x, truth, directions = _planted()
    centres, labels = spherical_kmeans(x, n_clusters=6, n_iter=20, seed=0, init=init,
                                       matmul_dtype=torch.float32)
    if init == "random":  # random init may merge clusters; k-means++ must not
        return
    # a bijection between planted and found clusters
    pairs = {(int(t), int(l)) for t, l in zip(truth, labels)}
    assert len(pairs) == 6 and len({p[1] for p in pairs}) == 6
    assert torch.allclose(centres.norm(dim=1), torch.ones(6), atol=1e-5)
    assert (centres @ directions.T).max(dim=0).values.min() > 0.99


def test_kmeans_seeded_and_checked():
    x, _, _ = _planted()
    a, la = spherical_kmeans(x, 6, seed=3)
    b, lb = spherical_kmeans(x, 6, seed=3)
    assert torch.equal(a, b) and torch.equal(la, lb)
    with pytest.raises(ValueError, match="n_clusters"):
        spherical_kmeans(x, 0)
    with pytest.raises(ValueError, match="init"):
        spherical_kmeans(x, 3, init="farthest")


def test_token_centres_cache_is_reused(tmp_path, monkeypatch):
    x, _, _ = _planted(n_per=40)
    first = token_centres(x, n_clusters=6, seed=0, cache_dir=tmp_path)
    assert len(list((tmp_path / "kmeans").glob("*.pt"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("recomputed instead of loading the cache")

    monkeypatch.setattr(kmeans_mod, "spherical_kmeans", boom)
    second = token_centres(torch.nn.Embedding.from_pretrained(x), n_clusters=6, seed=0, cache_dir=tmp_path)
    assert torch.equal(first, second)
    with pytest.raises(AssertionError, match="recomputed"):  # other seed -> other key
        token_centres(x, n_clusters=6, seed=1, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):  # other matrix -> other key
        token_centres(x + 1e-3, n_clusters=6, seed=0, cache_dir=tmp_path)


def test_alignment_loss_hand_computed():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # unit: (0.6, 0.8), (1, 0)
    c = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # unit: (1, 0), (0, 1)
    # cosine: best similarities 0.8 and 1.0
    assert alignment_loss(x, c).item() == pytest.approx(-0.9)
    # released: per dim max_k x_j c_kj -> token 1: (0.6, 0.8) -> 0.7; token 2: (1, 0) -> 0.5
    assert alignment_loss(x, c, mode="released").item() == pytest.approx(-0.6)
    # negative components take the most negative centre coordinate
    c3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.6, 0.8]])
    xn = torch.tensor([[-0.6, 0.8]])  # dims: -0.6 * -0.6 = 0.36, 0.8 * 1 = 0.8
    assert alignment_loss(xn, c3, mode="released").item() == pytest.approx(-0.58)
    assert alignment_loss(xn, c3).item() == pytest.approx(-1.0)
    # mask: only the first token counts
    batch = x[None]  # (1, 2, 2)
    mask = torch.tensor([[1, 0]])
    assert alignment_loss(batch, c, mask=mask).item() == pytest.approx(-0.8)
    with pytest.raises(ValueError, match="mode"):
        alignment_loss(x, c, mode="dot")


def test_released_mode_matches_brute_force_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    c = torch.randn(11, 8, generator=g)
    ours = alignment_loss(x, c, mode="released")
    (grad_ours,) = torch.autograd.grad(ours, x)
    xn = torch.nn.functional.normalize(x, dim=-1)
    cn = torch.nn.functional.normalize(c, dim=-1)
    brute = -torch.einsum("iaj,bj->iabj", xn, cn).max(2).values.mean()  # the released expression
    (grad_brute,) = torch.autograd.grad(brute, x)
    assert ours.item() == pytest.approx(brute.item(), abs=1e-6)
    assert torch.allclose(grad_ours, grad_brute, atol=1e-6)


def test_alignment_weight_schedule():
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert alignment_weight(0) == pytest.approx(0.1 * sig(5)) == pytest.approx(0.0993307, abs=1e-7)
    assert alignment_weight(1) == pytest.approx(0.1 * sig(5 - 1 / 500))
    assert alignment_weight(2500) == pytest.approx(0.05)
    assert alignment_weight(5000) == pytest.approx(0.1 * sig(-5)) == pytest.approx(0.000669285, abs=1e-8)
    assert alignment_weight(10**7) == pytest.approx(0.0, abs=1e-12)  # no overflow
    assert alignment_weight(7500, horizon=15000) == pytest.approx(0.05)
    assert alignment_weight(2500, base=0.2) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="step"):
        alignment_weight(-1)


# -------------------------------------------------------------------------------- pretraining
def test_pretraining_lowers_perplexity_and_saves_loadable_dir(tmp_path, zoo_home, tokenizer, offline):
    corpus = _tiny_corpus(tmp_path / "train.txt", 400)
    held_out = _tiny_corpus(tmp_path / "test.txt", 60)
    torch.set_num_threads(1)
    res = pretrain_language_model(
        corpus, tmp_path / "lm", n_layer=1, n_embd=16, n_head=2, steps=40, block_size=32,
        batch_size=4, lr=1e-2, seed=0, tokenizer=tokenizer, eval_corpus=held_out, progress_bar=False,
        warmup_steps=4, n_positions=64, save_dtype="float16",
    )
    assert res.steps == 40
    assert res.perplexity_after < 0.2 * res.perplexity_before
    out = tmp_path / "lm"
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt", "training_info.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "training_info.json").read_text())
    assert info["evaluation"]["perplexity_after"] == pytest.approx(res.perplexity_after, rel=1e-3)
    assert info["sample"]["prompt"] == "Hello, my name is Tom." and info["sample"]["continuation"]
    hf = transformers.GPT2LMHeadModel.from_pretrained(out)
    ours = load_language_model(out)
    assert ours.transformer.wte.weight.dtype == torch.float32
    assert hf.config.n_embd == ours.config.n_embd == 16
    held = TokenBlockSource(held_out, tokenizer, block_size=32)
    assert perplexity(ours, held, max_tokens=65536) == pytest.approx(res.perplexity_after, rel=0.02)
    assert transformers.AutoTokenizer.from_pretrained(out)("Hello world")["input_ids"] == [15496, 995]


def test_pretraining_ablations_early_stop_and_shuffle(tmp_path, zoo_home, tokenizer):
    corpus = _tiny_corpus(tmp_path / "train.txt", 100)
    res = pretrain_language_model(
        corpus, tmp_path / "es", n_layer=1, n_embd=8, n_head=1, steps=30, block_size=16, batch_size=2,
        lr=1e-2, seed=0, tokenizer=tokenizer, shuffle_tokens=True, early_stop_steps=5,
        progress_bar=False, n_positions=32, eval_max_tokens=512, bf16=True,
    )
    info = res.info
    assert res.steps == 5 and info["training"]["early_stopped"] and info["training"]["planned_steps"] == 30
    assert info["corpus"]["shuffled_tokens"] is True
    with pytest.raises(ValueError, match="early_stop_steps"):
        pretrain_language_model(corpus, tmp_path / "x", steps=3, early_stop_steps=4, tokenizer=tokenizer)


# ----------------------------------------------------------------------------- embedded LM
def test_embedded_lm_loads_offline_with_documented_shape(offline):
    model = load_language_model("embedded")
    # ChibiT's sizes (Wiki-RL): 3 layers x 128 dim x 1 head, GPT-2's vocabulary
    assert model.config.n_layer == 3 and model.config.n_embd == 128 and model.config.n_head == 1
    assert model.config.vocab_size == 50257 and model.config.n_positions == 1024
    assert sum(p.numel() for p in model.parameters()) == 7_159_040
    assert model.transformer.wte.weight.dtype == torch.float32
    same = load_language_model(EMBEDDED_LM)
    assert torch.equal(same.transformer.wte.weight, model.transformer.wte.weight)
    tok = load_tokenizer("embedded")
    ids = torch.tensor([tok("The game was released in Japan .")["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], 50257) and torch.isfinite(logits).all()
    info = json.loads((Path(EMBEDDED_LM) / "training_info.json").read_text())
    assert info["evaluation"]["perplexity_after"] < info["evaluation"]["perplexity_before"] / 10
    size = sum(p.stat().st_size for p in Path(EMBEDDED_LM).iterdir())
    assert size < 17e6, f"embedded LM is {size / 1e6:.1f} MB (fp16 weights ~14.3 MB + tokenizer files)"


def test_zoo_lm_pretrain_command_saves_a_loadable_lm(tmp_path):
    from offline_zoo.cli import lm_main
    from offline_zoo.lm import load_language_model

    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(f"word{i % 50}" for i in range(3000)))
    out = tmp_path / "lm"
    assert lm_main(["pretrain", str(corpus), str(out), "--layers", "1", "--dim", "8", "--heads", "1", "--steps", "3",
                    "--block-size", "16", "--batch-size", "2", "--tokenizer", "embedded"]) == 0
    assert load_language_model(str(out)).config.n_embd == 8


def test_random_init_of_a_local_lm_uses_its_own_tokenizer_offline(offline, zoo_home, tmp_path):
    # pretrained=False keeps the directory's architecture and tokenizer; nothing comes from the hub
    from offline_zoo import LaMo
    from offline_zoo.testing import tiny_dataset

    corpus = _tiny_corpus(tmp_path / "corpus.txt")
    algo = LaMo(tiny_dataset(), device="cpu", lm=str(EMBEDDED_LM), pretrained=False, corpus=str(corpus),
                lm_block_size=16, lm_batch_size=1, context_len=4, batch_size=4, lora_rank=2)
    assert algo._default_tokenizer() == str(EMBEDDED_LM)
    algo.learn(2, progress_bar=False)
    assert np.isfinite(algo.last_metrics["language_loss"])


def test_default_corpus_works_on_a_default_install_and_bad_corpora_fail_at_construction(offline, zoo_home, tmp_path, monkeypatch):
    import sys
    import warnings

    from offline_zoo import LaMo, WikiRL
    from offline_zoo.testing import tiny_dataset

    small = dict(device="cpu", context_len=4, batch_size=4, lm_block_size=16, lm_batch_size=1, lora_rank=2)
    # lm="embedded": the shipped excerpt, silently; it is loaded when the agent is built
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        algo = LaMo(tiny_dataset(), lm="embedded", **small)
    assert algo.config.corpus == "embedded" and algo._corpus_source is not None
    assert algo.learn(2, progress_bar=False).last_metrics["language_loss"] > 0
    # a hub LM without `datasets`: the excerpt too, with a warning naming the papers' corpus
    monkeypatch.setitem(sys.modules, "datasets", None)
    monkeypatch.setattr("offline_zoo.algos.lm_backed._datasets_installed", lambda: False)
    with pytest.warns(UserWarning, match="WikiText-103 needs the `datasets` package"):
        algo = LaMo(tiny_dataset(), lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2,
                    tokenizer=str(EMBEDDED_LM), **small)
    assert algo.config.corpus == "embedded"
    # asked for explicitly, WikiText-103 without `datasets` fails when the agent is built, with the way out
    with pytest.raises(ImportError, match="corpus='wikitext-103'.*pip install datasets.*corpus='embedded'"):
        LaMo(tiny_dataset(), lm="embedded", corpus="wikitext-103", **small)
    # so does a corpus path that does not exist
    with pytest.raises(FileNotFoundError, match="corpus='path/to/text'.*does not exist.*Allowed: 'embedded'"):
        LaMo(tiny_dataset(), lm="embedded", corpus="path/to/text", **small)
    # no language loss, no corpus needed and no warning (Wiki-RL's L_LM is off by default)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert WikiRL(tiny_dataset(), lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2, n_clusters=8,
                      **{k: v for k, v in small.items() if k != "lora_rank"}).config.corpus is None
    WikiRL(tiny_dataset(), lm="embedded", corpus="path/to/text", n_clusters=8,
           **{k: v for k, v in small.items() if k != "lora_rank"})
    LaMo(tiny_dataset(), lm="embedded", corpus="path/to/text", language_loss_coef=0.0, **small)


def test_trained_tokenizer_round_trips_and_sizes_the_lm(offline, zoo_home, tmp_path):
    from offline_zoo.cli import lm_main
    from offline_zoo.lm import train_tokenizer

    corpus = _tiny_corpus(tmp_path / "corpus.txt")
    tok = train_tokenizer(corpus, tmp_path / "tok", vocab_size=320)
    assert 257 <= len(tok) <= 320 and tok.eos_token == "<|endoftext|>"
    text = "the old man walked to the moon .\nünïcödé never seen 123"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is unknown
    whole = corpus.read_text()
    assert len(tok(whole)["input_ids"]) < 0.4 * len(whole.encode())  # merges learned: words, not bytes
    line = whole.splitlines()[0]
    res = pretrain_language_model(corpus, tmp_path / "lm", n_layer=1, n_embd=16, n_head=1, steps=20, block_size=16,
                                  batch_size=4, lr=1e-2, tokenizer=tmp_path / "tok", progress_bar=False)
    model = load_language_model(tmp_path / "lm")
    assert model.config.vocab_size == len(tok) and res.perplexity_after < res.perplexity_before
    assert load_tokenizer(tmp_path / "lm")(line)["input_ids"] == tok(line)["input_ids"]
    with pytest.raises(ValueError, match="at least 257"):
        train_tokenizer(corpus, tmp_path / "small", vocab_size=100)
    assert lm_main(["train-tokenizer", str(corpus), str(tmp_path / "cli-tok"), "--vocab-size", "300"]) == 0
    assert len(load_tokenizer(tmp_path / "cli-tok")) <= 300
    assert lm_main(["train-tokenizer", str(tmp_path / "missing.txt"), str(tmp_path / "x")]) == 2


def test_pretraining_device_choice(tmp_path):
    corpus = _tiny_corpus(tmp_path / "corpus.txt")
    kwargs = dict(n_layer=1, n_embd=8, n_head=1, steps=2, block_size=16, batch_size=2, tokenizer="embedded", progress_bar=False)
    res = pretrain_language_model(corpus, tmp_path / "auto", device="auto", **kwargs)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert json.loads((tmp_path / "auto" / "training_info.json").read_text())["training"]["device"].startswith(expected)
    assert np.isfinite(res.perplexity_after)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no GPU"):
            pretrain_language_model(corpus, tmp_path / "gpu", device="cuda", **kwargs)
    with pytest.raises(ValueError, match="not a torch device"):
        pretrain_language_model(corpus, tmp_path / "bad", device="gpu", **kwargs)


def test_random_init_of_a_hub_architecture_tokenizes_offline(offline, zoo_home, tmp_path):
    # lm="gpt2", pretrained=False: GPT-2's architecture (no download) and GPT-2's tokenizer from the
    # files shipped with the package, which are GPT-2's own (same token ids as the hub tokenizer)
    from offline_zoo import LaMo
    from offline_zoo.testing import tiny_dataset

    corpus = _tiny_corpus(tmp_path / "corpus.txt")
    algo = LaMo(tiny_dataset(), device="cpu", lm="gpt2", pretrained=False, n_layer=1, n_embd=16, n_head=2,
                corpus=str(corpus), lm_block_size=16, lm_batch_size=1, context_len=4, batch_size=4, lora_rank=2)
    assert algo._default_tokenizer() == str(EMBEDDED_LM)
    assert load_tokenizer(algo._default_tokenizer())("Hello world")["input_ids"] == [15496, 995]  # GPT-2's ids
    algo.learn(2, progress_bar=False)
    assert np.isfinite(algo.last_metrics["language_loss"])
