"""CUDA checks of the sequence agents: ``pytest -m cuda tests/test_cuda.py`` on a GPU machine.

Every test here is marked ``cuda`` and skips without a GPU, so the CPU suite passes over them.
``benchmarks/gpu_check.py`` runs this file on a lent GPU machine and saves the JUnit XML. The
datasets are built from arrays (no gymnasium, mujoco, minari or d3rlpy needed) and the models are
tiny, so the whole file takes well under a minute on a GPU (the ``compile=True`` test compiles).

What is checked:

* the training forward and backward of DT and LaMo (LoRA adapters non-zero, language loss
  included) give the CPU's values on CUDA, in fp32 with TF32 off;
* windows with fully padded and left-padded rows give finite losses and gradients under every
  scaled-dot-product-attention backend this torch has (math, memory-efficient, flash, cuDNN), in
  fp32 and bf16; a backend that cannot run the model's masked attention is skipped, not failed;
* bf16 training steps stay finite;
* `offline_zoo.algos.fast.PinnedStager` delivers exactly the arrays it was given, also when its
  pinned buffers are reused and the caller changes its arrays afterwards;
* an agent saved on the GPU loads on a CPU with identical weights and predictions;
* ``compile=True`` trains and predicts like eager mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offline_zoo import DT, LaMo
from offline_zoo.algos import fast
from offline_zoo.data import Dataset

CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]
DEV = "cuda"

TINY_DT = dict(hidden_size=32, n_layer=2, n_head=2, context_len=5, batch_size=8, dropout=0.0)
TINY_LAMO = dict(lm="gpt2", pretrained=False, n_layer=2, n_embd=32, n_head=2, corpus="random", lm_block_size=16,
                 lm_batch_size=2, context_len=5, batch_size=8, lora_rank=2, dropout=0.0, lora_dropout=0.0)
KINDS = ["dt", "lamo"]
#: window starts of the hand-made batches (episodes of 30 steps: 7 and 28 are cut by the episode end)
STARTS = [0, 7, 28, 33, 61, 90, 120, 151]


def hopper_like(n_episodes: int = 6, episode_len: int = 30, seed: int = 0) -> Dataset:
    """Random arrays with Hopper's shapes, bound to hopper-medium (no gymnasium needed)."""
    rng = np.random.default_rng(seed)
    n = n_episodes * episode_len
    ends = np.zeros(n, dtype=bool)
    ends[episode_len - 1 :: episode_len] = True
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    rew = rng.normal(1.0, 0.5, size=n).astype(np.float32)
    return Dataset.from_arrays(obs, act, rew, ends, np.zeros(n, dtype=bool), task="hopper-medium", source="synthetic")


def build(kind: str, device: str, ds: Dataset | None = None, **overrides):
    cls, cfg = (DT, TINY_DT) if kind == "dt" else (LaMo, TINY_LAMO)
    return cls(hopper_like() if ds is None else ds, device=device, seed=0, **{**cfg, **overrides})


def nonzero_adapters(algo, seed: int = 0):
    """LoRA's B starts at zero (the adapters are a no-op then); give them values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in algo.model.named_parameters():
            if "lora_B" in name:
                p.copy_((torch.randn(p.shape, generator=g) * 0.3).to(p.device))
    return algo


def padded_batch(algo) -> dict[str, np.ndarray]:
    """Deterministic windows with a fully padded row (0) and a left-padded one (1)."""
    algo._before_learn()
    batch = algo._sampler.window(STARTS)
    batch["mask"][0] = 0
    batch["mask"][1, :3] = 0
    return batch


def language_tokens(algo, n: int = 2, block: int = 16, seed: int = 0) -> torch.Tensor:
    vocab = algo.model.body.wte.weight.shape[0]
    return torch.randint(0, vocab, (n, block), generator=torch.Generator().manual_seed(seed)).to(algo.device)


def loss_and_grads(algo, batch: dict[str, np.ndarray], forward: str = "full"):
    """Loss, action predictions and gradients of one training forward/backward (no optimizer step)."""
    b = {k: torch.from_numpy(v).to(algo.device) for k, v in batch.items()}
    args = (b["states"], b["actions"], b["returns_to_go"], b["timesteps"], b["mask"])
    algo.model.train()
    algo.model.zero_grad(set_to_none=True)
    with algo._autocast():
        out = algo._state_token_forward(*args) if forward == "state_token" else algo.model(*args)
        loss = algo.action_loss(out.action_preds, b)
        if isinstance(algo, LaMo):
            loss = loss + 0.1 * algo.model.language_loss(language_tokens(algo))
    loss.backward()
    grads = {n: p.grad.detach().float().cpu() for n, p in algo.model.named_parameters() if p.grad is not None}
    return loss.detach().float().cpu(), out.action_preds.detach().float().cpu(), grads


def assert_grads_close(got: dict, expected: dict, rel: float) -> None:
    assert got.keys() == expected.keys()
    for name, e in expected.items():
        g = got[name]
        scale = float(e.norm())
        err = float((g - e).norm())
        assert err <= rel * scale + 1e-7, f"{name}: |cuda - cpu| = {err:.3g}, |cpu| = {scale:.3g}"


@pytest.fixture
def no_tf32():
    """fp32 matmuls and convolutions in full precision (TF32 would make 1e-3 differences)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


@pytest.mark.parametrize("forward", ["full", "state_token"])
@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_match_the_cpu(kind, forward, no_tf32):
    ds = hopper_like()
    cpu = build(kind, "cpu", ds)
    if kind == "lamo":
        nonzero_adapters(cpu)
    gpu = build(kind, DEV, ds)
    gpu.model.load_state_dict(cpu.model.state_dict())
    batch = padded_batch(cpu)
    loss_c, preds_c, grads_c = loss_and_grads(cpu, batch, forward)
    loss_g, preds_g, grads_g = loss_and_grads(gpu, batch, forward)
    real = torch.from_numpy(batch["mask"]) > 0
    torch.testing.assert_close(loss_g, loss_c, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(preds_g[real], preds_c[real], rtol=1e-4, atol=1e-5)
    assert_grads_close(grads_g, grads_c, rel=1e-3)


def _sdpa_backend(name: str):
    attention = pytest.importorskip("torch.nn.attention", reason="torch.nn.attention.sdpa_kernel needs torch >= 2.3")
    backend = getattr(attention.SDPBackend, name, None)
    if backend is None:
        pytest.skip(f"SDPBackend.{name} does not exist in torch {torch.__version__}")
    return attention.sdpa_kernel, backend


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("backend", ["MATH", "EFFICIENT_ATTENTION", "FLASH_ATTENTION", "CUDNN_ATTENTION"])
@pytest.mark.parametrize("kind", KINDS)
def test_padded_rows_give_finite_gradients_under_every_sdpa_backend(kind, backend, precision):
    sdpa_kernel, chosen = _sdpa_backend(backend)
    algo = build(kind, DEV, precision=precision, dropout=0.1, **({"lora_dropout": 0.1} if kind == "lamo" else {}))
    if kind == "lamo":
        nonzero_adapters(algo)
    batch = padded_batch(algo)
    for forward in ("full", "state_token"):
        try:
            with sdpa_kernel([chosen]):
                loss, preds, grads = loss_and_grads(algo, batch, forward)
                torch.cuda.synchronize()
        except RuntimeError as err:
            if "No available kernel" in str(err) or "not supported" in str(err).lower():
                pytest.skip(f"SDPBackend.{backend} cannot run this attention ({precision}, masked): {str(err)[:200]}")
            raise
        assert torch.isfinite(loss), f"{forward}: loss {loss}"
        real = torch.from_numpy(batch["mask"]) > 0
        assert torch.isfinite(preds[real]).all(), f"{forward}: non-finite action predictions"
        bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
        assert not bad, f"{forward}: non-finite gradients in {bad[:5]}"


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_training_steps_are_finite(kind):
    algo = build(kind, DEV, precision="bf16", dropout=0.1).learn(5, progress_bar=False)
    assert algo.num_steps == 5
    assert all(np.isfinite(v) for v in algo.last_metrics.values()), algo.last_metrics
    assert all(torch.isfinite(p).all() for p in algo.model.parameters())
    obs = algo.dataset.observations[:4]
    actions, _ = algo.predict(obs, state=algo.new_rollout_state(len(obs)))
    assert actions.shape == (4, 3) and np.isfinite(actions).all()


def test_pinned_stager_delivers_exactly_what_it_was_given():
    stager = fast.PinnedStager(torch.device(DEV), slots=2)
    rng = np.random.default_rng(0)
    sent, got = [], []
    for i in range(12):
        rows = 64 if i < 8 else 32  # a shape change gives new buffers
        batch = {
            "states": rng.normal(size=(rows, 5, 11)).astype(np.float32),
            "timesteps": rng.integers(0, 1000, size=(rows, 5)),
            "mask": rng.random((rows, 5)) > 0.5,
            "transposed": rng.normal(size=(3, rows)).astype(np.float32).T,  # not contiguous
        }
        expected = {k: v.copy() for k, v in batch.items()}
        got.append(stager(batch))
        for v in batch.values():  # the caller reuses its arrays at once
            v[...] = 0
        sent.append(expected)
    torch.cuda.synchronize()
    for i, (expected, out) in enumerate(zip(sent, got)):
        for k, v in expected.items():
            t = out[k]
            assert t.device.type == "cuda" and tuple(t.shape) == v.shape, (i, k, t.device, t.shape)
            assert t.dtype == torch.from_numpy(v).dtype, (i, k, t.dtype)
            np.testing.assert_array_equal(t.cpu().numpy(), v, err_msg=f"batch {i}, {k}")
    assert all(buf.is_pinned() for slot in stager._buffers for buf in slot.values())


def test_agent_batches_go_through_the_stager_unchanged():
    algo = build("dt", DEV)
    assert isinstance(algo._stager, fast.PinnedStager)
    batch = padded_batch(algo)
    for k, t in algo._batch_tensors(batch).items():
        assert t.device.type == "cuda"
        np.testing.assert_array_equal(t.cpu().numpy(), batch[k], err_msg=k)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("kind", KINDS)
def test_saved_on_the_gpu_loads_on_a_cpu(kind, precision, tmp_path, no_tf32):
    ds = hopper_like()
    gpu = build(kind, DEV, ds, precision=precision, dropout=0.1).learn(3, progress_bar=False)
    path = gpu.save(tmp_path / "agent")
    cpu = type(gpu).load(path, dataset=ds, device="cpu")
    assert cpu.device.type == "cpu" and cpu.config == gpu.config and cpu.num_steps == 3
    assert all(t.device.type == "cpu" for t in cpu.model.state_dict().values())
    saved, loaded = gpu.model.state_dict(), cpu.model.state_dict()
    assert saved.keys() == loaded.keys()
    for k in saved:
        assert torch.equal(saved[k].cpu(), loaded[k]), k
    obs = ds.observations[:6]
    a_gpu, _ = gpu.predict(obs, state=gpu.new_rollout_state(len(obs)))
    a_cpu, _ = cpu.predict(obs, state=cpu.new_rollout_state(len(obs)))
    tol = 1e-4 if precision == "fp32" else 5e-2  # bf16: one rounding step of a value near 1 is 8e-3
    np.testing.assert_allclose(a_cpu, a_gpu, rtol=tol, atol=tol)
    cpu.learn(2, progress_bar=False)  # training continues on the CPU (optimizer state moved too)
    assert cpu.num_steps == 5 and all(np.isfinite(v) for v in cpu.last_metrics.values())


def test_compile_trains_and_predicts_like_eager(no_tf32):
    ds = hopper_like()
    eager = build("dt", DEV, ds)
    compiled = build("dt", DEV, ds, compile=True)
    compiled.model.load_state_dict(eager.model.state_dict())
    losses = {}
    for name, algo in (("eager", eager), ("compiled", compiled)):
        algo.learn(3, progress_bar=False)
        losses[name] = algo.last_metrics["loss"]
    np.testing.assert_allclose(losses["compiled"], losses["eager"], rtol=1e-4, atol=1e-6)
    for (n, p), q in zip(eager.model.named_parameters(), compiled.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=lambda m, n=n: f"{n}: {m}")
    for n_obs in (6, 3):  # dynamic shapes: another batch size recompiles at most once
        obs = ds.observations[:n_obs]
        a, _ = eager.predict(obs, state=eager.new_rollout_state(n_obs))
        b, _ = compiled.predict(obs, state=compiled.new_rollout_state(n_obs))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
