"""Side-by-side speed of offline-zoo's sequence agents against their peers, in one process.

    python benchmarks/perf.py                      # CPU (or the GPU when torch sees one)
    python benchmarks/perf.py --device cuda        # force the GPU
    python benchmarks/perf.py --write-readme       # also refresh the "Performance" section of benchmarks/README.md
    python benchmarks/perf.py --quick              # smoke run (smaller, NOT the published protocol)
    python benchmarks/perf.py --tiny --device cpu  # pipeline check in seconds (tiny models; numbers mean nothing)
    python benchmarks/perf.py --json perf.json     # also write the results to a file (after every section)

Every ratio is measured in this run, with the compared implementations interleaved (A, B, A, B,
...) and medians taken, so a slower or busier machine moves both sides alike:

1. DT training step (128 dim, 3 layers, 1 head, K=20, batch 64, hopper shapes): ours vs
   ``transformers.DecisionTransformerModel`` (forward + backward + clip + AdamW) vs d3rlpy's
   ``DecisionTransformer.update`` on a ReplayBuffer batch (skipped, with a line saying so, where
   d3rlpy does not import), all fp32; then ours in bf16 autocast against the same fp32 peers.
2. LaMo training step (GPT-2 small, three rank-16 LoRA adapters on Q/K/V + c_attn bias, language
   loss on 2 x 1024 tokens every step): ours vs a straightforward implementation written here
   (fp32, peft adapters unmerged, torch's dropout and sdpa, per-tensor AdamW loop, Python-loop
   window sampling, language batches from ``itertools.cycle`` over a DataLoader). On CUDA ours is
   measured in both fp32 and bf16 (on CPU in bf16 where native, else fp32).
3. Evaluation throughput (episode-steps/s, environment stepping included) of the GPT-2-small LaMo
   on Hopper-v5 with 4 targets x 20 episodes stepped together: ours (fp32 and bf16) vs the released
   code's way written here (one episode at a time, batch 1, history re-concatenated and the K-step
   window re-padded every step, unmerged adapters, fp32). Skipped where gymnasium or mujoco does
   not import.
4. Window sampling time as a fraction of our training step.
5. The measured matmul throughput of the device and the fraction of it our DT step reaches.

The last line printed is one JSON object with every number (``--json FILE`` also writes it to a file,
updated after every section, so a run stopped part-way leaves what it measured). A section that
raises is recorded under ``"errors"`` and the others still run (the exit status is then 1); parts
skipped for a missing package are listed under ``"skipped"``. The models are randomly initialised
(a pre-trained GPT-2 has the same cost), the corpus is uniform random token ids, and the datasets
are random arrays with Hopper's shapes: speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_section import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- perf:start -->", "<!-- perf:end -->"


# ------------------------------------------------------------------------------------------------
# timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict, device: torch.device, rounds: int, inner: int = 1, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, measured A, B, C, A, B, C, ... ``rounds`` times."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            _sync(device)
            times[k].append((time.perf_counter() - t0) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def importable(module: str, what: str, results: dict) -> bool:
    """Whether ``module`` imports; if not, say so on stderr and under ``results["skipped"]``."""
    try:
        __import__(module)
        return True
    except Exception as err:  # ImportError, or a package that fails while importing
        reason = f"{module} does not import ({type(err).__name__}: {err})"
        log(f"   SKIPPED {what}: {reason}")
        results.setdefault("skipped", {})[what] = reason
        return False


@contextmanager
def section(name: str):
    t0 = time.perf_counter()
    log(f"== {name} (load average {os.getloadavg()[0]:.2f})")
    yield
    log(f"   {name}: {time.perf_counter() - t0:.0f} s")


# ------------------------------------------------------------------------------------------------
# machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (not emulated) on the device."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def matmul_peak(device: torch.device, dtype: torch.dtype, quick: bool) -> float:
    """Best GEMM throughput (FLOP/s) over a few large square and transformer-shaped products
    (measured at the start and again after the DT steps; the larger value is kept)."""
    shapes = [(2048, 2048, 2048), (3840, 768, 2304)] if device.type == "cpu" else [(8192, 8192, 8192), (4096, 4096, 4096)]
    if TINY:
        shapes = [(256, 256, 256)]
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        reps = 1 if TINY else (2 if quick else 8)
        for _ in range(reps):
            _sync(device)
            t0 = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, 2.0 * m * k * n / (time.perf_counter() - t0))
    return best


def step_flops(fn) -> int:
    """Matmul/attention FLOPs of one call, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


# ------------------------------------------------------------------------------------------------
# data


def hopper_like_dataset(n_episodes: int, episode_len: int, seed: int = 0):
    """Random arrays with Hopper-v5's shapes (11-dim states, 3-dim actions), bound to hopper-medium."""
    from offline_zoo.data import Dataset

    rng = np.random.default_rng(seed)
    n = n_episodes * episode_len
    ends = np.zeros(n, dtype=bool)
    ends[episode_len - 1 :: episode_len] = True
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    rew = rng.normal(3.0, 1.0, size=n).astype(np.float32)
    return Dataset.from_arrays(obs, act, rew, ends, np.zeros(n, dtype=bool), task="hopper-medium", source="synthetic")


# ------------------------------------------------------------------------------------------------
# 1 + 4 + 5: DT step against transformers and d3rlpy


#: extra config of our side (``--compile``)
OURS: dict = {}
#: ``--tiny``: tiny models and single repetitions, to check the pipeline (e.g. benchmarks/gpu_check.py --cpu-dry-run)
TINY = False

DT_CFG = dict(hidden=128, n_layer=3, n_head=1, K=20, batch=64, dropout=0.1, lr=1e-4, wd=1e-4, clip=0.25)


def build_hf_dt(device: torch.device, batch: dict):
    """transformers.DecisionTransformerModel at the DT configuration, plain AdamW, same masked MSE."""
    from transformers import DecisionTransformerConfig, DecisionTransformerModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    c = DT_CFG
    cfg = DecisionTransformerConfig(
        state_dim=11, act_dim=3, hidden_size=c["hidden"], max_ep_len=1000, n_layer=c["n_layer"], n_head=c["n_head"],
        n_inner=4 * c["hidden"], activation_function="relu", n_positions=1024, resid_pdrop=c["dropout"],
        embd_pdrop=c["dropout"], attn_pdrop=c["dropout"], action_tanh=True,
    )
    model = DecisionTransformerModel(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], weight_decay=c["wd"])
    b = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    real = b["mask"].reshape(-1) > 0
    mask_long = b["mask"].long()

    def step():
        model.train()
        _, action_preds, _ = model(
            states=b["states"], actions=b["actions"], rewards=b["rewards"], returns_to_go=b["returns_to_go"],
            timesteps=b["timesteps"], attention_mask=mask_long, return_dict=False,
        )
        pred = action_preds.reshape(-1, 3)[real]
        loss = ((pred - b["actions"].reshape(-1, 3)[real]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        opt.step()

    return step


def build_d3rlpy_dt(device: torch.device, ds):
    """d3rlpy's DecisionTransformer built through its API; times ``update`` on one ReplayBuffer batch."""
    import d3rlpy
    from d3rlpy.algos import DecisionTransformerConfig
    from d3rlpy.models import VectorEncoderFactory
    from d3rlpy.optimizers import AdamWFactory

    try:  # d3rlpy logs through structlog at info level; keep the benchmark output readable
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    except ImportError:
        pass
    c = DT_CFG
    mdp = d3rlpy.dataset.MDPDataset(
        observations=ds.observations, actions=ds.actions, rewards=ds.rewards[:, None],
        terminals=ds.terminals.astype(np.float32), timeouts=ds.timeouts.astype(np.float32),
    )
    dev = "cuda:0" if device.type == "cuda" else "cpu:0"
    algo = DecisionTransformerConfig(
        batch_size=c["batch"], context_size=c["K"], max_timestep=1000, learning_rate=c["lr"],
        encoder_factory=VectorEncoderFactory(hidden_units=[c["hidden"]], exclude_last_activation=True),
        optim_factory=AdamWFactory(weight_decay=c["wd"], clip_grad_norm=c["clip"]),
        num_heads=c["n_head"], num_layers=c["n_layer"], attn_dropout=c["dropout"], resid_dropout=c["dropout"],
        embed_dropout=c["dropout"], activation_type="relu",
    ).create(device=dev)
    algo.build_with_dataset(mdp)
    batch = mdp.sample_trajectory_batch(c["batch"], length=c["K"])
    return lambda: algo.update(batch)


def bench_dt(device: torch.device, quick: bool, results: dict) -> None:
    from offline_zoo import DT

    c = DT_CFG
    ds = hopper_like_dataset(4, 50) if TINY else hopper_like_dataset(20 if quick else 100, 1000)
    kwargs = dict(device=str(device), batch_size=c["batch"], context_len=c["K"], hidden_size=c["hidden"],
                  n_layer=c["n_layer"], n_head=c["n_head"], dropout=c["dropout"], seed=0)
    ours32 = DT(ds, precision="fp32", **kwargs, **OURS)
    ours16 = DT(ds, precision="bf16", **kwargs, **OURS)
    for a in (ours32, ours16):
        a._before_learn()
    hf = build_hf_dt(device, ours32._sampler.sample(c["batch"]))
    d3 = build_d3rlpy_dt(device, ds) if importable("d3rlpy", "DT step against d3rlpy's DecisionTransformer", results) else None

    def ours(a):
        def step():
            with a._own_rng():
                a._train_step()
        return step

    fns = {"ours_fp32": ours(ours32), "transformers": hf}
    if d3 is not None:
        fns["d3rlpy"] = d3
    if bf16_native(device):
        fns["ours_bf16"] = ours(ours16)
    rounds = 3 if quick else (9 if device.type == "cpu" else 30)
    inner = 2 if device.type == "cpu" else 20
    if TINY:
        rounds, inner = 1, 1
    t = interleaved(fns, device, rounds=rounds, inner=inner, warmup=1 if TINY else 2)
    best_peer = min(t[k] for k in ("transformers", "d3rlpy") if k in t)
    results["dt_config"] = dict(c)
    results["dt_step_ms"] = {k: v * 1e3 for k, v in t.items()}
    results["dt_step_speedup_vs_best_peer"] = best_peer / t["ours_fp32"]
    results["dt_step_speedup_vs_transformers"] = t["transformers"] / t["ours_fp32"]
    results["dt_step_speedup_vs_d3rlpy"] = t["d3rlpy"] / t["ours_fp32"] if "d3rlpy" in t else None
    results["dt_step_bf16_speedup_vs_best_peer"] = best_peer / t["ours_bf16"] if "ours_bf16" in t else None

    # the peak again, right after the steps: a one-off disturbance at the start must not halve it
    results["matmul_peak_gflops"]["fp32"] = max(results["matmul_peak_gflops"]["fp32"], matmul_peak(device, torch.float32, quick) / 1e9)
    if "bf16" in results["matmul_peak_gflops"]:
        results["matmul_peak_gflops"]["bf16"] = max(results["matmul_peak_gflops"]["bf16"], matmul_peak(device, torch.bfloat16, quick) / 1e9)

    # 5: FLOPs of a step against the measured matmul peak. Ours skips the last block's work on
    # tokens no loss reads, so it executes fewer FLOPs than the standard step ("model FLOPs").
    flops = step_flops(ours(ours32))
    hf_flops = step_flops(hf)
    results["dt_step_gflop"] = flops / 1e9
    results["dt_step_model_gflop"] = hf_flops / 1e9
    peak32 = results["matmul_peak_gflops"]["fp32"] * 1e9
    results["dt_step_fraction_of_matmul_peak"] = flops / t["ours_fp32"] / peak32
    results["dt_step_model_flops_fraction_of_matmul_peak"] = hf_flops / t["ours_fp32"] / peak32
    results["dt_step_transformers_fraction_of_matmul_peak"] = hf_flops / t["transformers"] / peak32
    if "ours_bf16" in t and results["matmul_peak_gflops"].get("bf16"):
        results["dt_step_bf16_fraction_of_bf16_matmul_peak"] = flops / t["ours_bf16"] / (results["matmul_peak_gflops"]["bf16"] * 1e9)

    # 4: window sampling (and the host-to-device copy) against the step
    sampler = ours32._sampler
    n = 5 if TINY else (50 if quick else 300)
    sample_t = []
    for _ in range(n):
        _sync(device)
        t0 = time.perf_counter()
        ours32._batch_tensors(sampler.sample(c["batch"]))
        _sync(device)
        sample_t.append(time.perf_counter() - t0)
    s = statistics.median(sample_t)
    results["sampling_ms"] = s * 1e3
    fastest = t.get("ours_bf16", t["ours_fp32"])
    results["sampling_fraction_of_step"] = s / fastest
    results["sampling_fraction_of_fp32_step"] = s / t["ours_fp32"]


# ------------------------------------------------------------------------------------------------
# 2: LaMo step against a straightforward implementation


LAMO_CFG = dict(batch=64, K=20, lm_batch=2, lm_block=1024, coef=0.1)


def lamo_kwargs(device: torch.device, quick: bool) -> dict:
    c = LAMO_CFG
    kw = dict(device=str(device), lm="gpt2", pretrained=False, corpus="random", batch_size=c["batch"], context_len=c["K"],
              lm_batch_size=c["lm_batch"], lm_block_size=c["lm_block"], language_loss_coef=c["coef"], seed=0)
    if quick:  # smoke run only: a 2-layer GPT-2-small-width body and short language blocks
        kw.update(n_layer=2, lm_block_size=256)
    if TINY:  # pipeline check only
        kw.update(n_layer=1, n_embd=16, n_head=2, lm_block_size=8, lora_rank=2, batch_size=8, context_len=4)
    return kw


class PlainLaMoStep:
    """A straightforward LaMo training step, modelled on how the released code trains.

    Same architecture and LoRA structure as ``offline_zoo.LaMo`` (the model is built by a LaMo
    with every speed path off, weights copied from ``reference``) but run the plain way: fp32,
    torch's dropout and transformers' sdpa attention, peft adapters applied unmerged with their fp32
    input casts, the per-tensor AdamW loop, windows cut and padded one sample at a time in Python,
    the loss on boolean-indexed positions, and language batches drawn from ``itertools.cycle``
    over a shuffled ``DataLoader`` of token blocks (so every block lives in memory as a tensor).
    """

    def __init__(self, ds, device: torch.device, quick: bool):
        from torch.utils.data import DataLoader, TensorDataset

        from offline_zoo import LaMo

        kw = lamo_kwargs(device, quick)
        self.algo = LaMo(ds, precision="fp32", fast_kernels=False, fast_inference=False, **kw)
        self.model = self.algo.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-5, eps=1e-6, foreach=False)
        self.params = params
        self.device = device
        self.ds = ds
        self.K = kw["context_len"]
        self.scale = 1000.0
        self.mean, self.std = ds.state_mean, ds.state_std
        self.rng = np.random.default_rng(0)
        # the episodes as python lists of arrays, returns-to-go per episode
        self.episodes = []
        for ep in ds.episodes:
            r = np.asarray(ep.rewards, dtype=np.float64)
            rtg = np.cumsum(r[::-1])[::-1]
            self.episodes.append((np.asarray(ep.observations), np.asarray(ep.actions), rtg))
        lengths = np.array([len(e[0]) for e in self.episodes], dtype=np.float64)
        self.p = lengths / lengths.sum()
        block = kw["lm_block_size"]
        vocab = self.model.body.wte.weight.shape[0]
        tokens = torch.randint(0, vocab, (64, block), generator=torch.Generator().manual_seed(0))
        loader = DataLoader(TensorDataset(tokens), batch_size=LAMO_CFG["lm_batch"], shuffle=True, drop_last=True)
        self.lm_iter = itertools.cycle(loader)

    def sample(self):
        s, a, r, t, m = [], [], [], [], []
        K = self.K
        for _ in range(self.algo.config.batch_size):
            obs, act, rtg = self.episodes[self.rng.choice(len(self.episodes), p=self.p)]
            si = self.rng.integers(0, len(obs))
            so, sa, sr = obs[si : si + K], act[si : si + K], rtg[si : si + K]
            n = len(so)
            ts = np.minimum(np.arange(si, si + n), 999)
            pad = K - n
            s.append(np.concatenate([np.zeros((pad, so.shape[1])), (so - self.mean) / self.std]))
            a.append(np.concatenate([np.ones((pad, sa.shape[1])) * -10.0, sa]))
            r.append(np.concatenate([np.zeros(pad), sr / self.scale])[:, None])
            t.append(np.concatenate([np.zeros(pad), ts]))
            m.append(np.concatenate([np.zeros(pad), np.ones(n)]))
        to = lambda x, dt: torch.from_numpy(np.stack(x)).to(dtype=dt, device=self.device)  # noqa: E731
        return to(s, torch.float32), to(a, torch.float32), to(r, torch.float32), to(t, torch.long), to(m, torch.float32)

    def step(self):
        self.model.train()
        states, actions, rtg, timesteps, mask = self.sample()
        out = self.model(states, actions, rtg, timesteps, mask)
        real = mask.reshape(-1) > 0
        pred = out.action_preds.reshape(-1, actions.shape[-1])[real]
        action_loss = ((pred - actions.reshape(-1, actions.shape[-1])[real]) ** 2).mean()
        (tokens,) = next(self.lm_iter)
        lm_loss = self.model.language_loss(tokens.to(self.device))
        loss = action_loss + LAMO_CFG["coef"] * lm_loss
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 0.25)
        self.opt.step()


def bench_lamo(device: torch.device, quick: bool, results: dict) -> None:
    from offline_zoo import LaMo

    ds = hopper_like_dataset(4, 50) if TINY else hopper_like_dataset(20 if quick else 100, 1000)
    prec = "bf16" if bf16_native(device) else "fp32"
    # CPU: ours in one precision (the faster one); CUDA: both, side by side
    precisions = ["fp32", "bf16"] if device.type == "cuda" and prec == "bf16" else [prec]
    kw = lamo_kwargs(device, quick)
    ours = {p: LaMo(ds, precision=p, **kw, **OURS) for p in precisions}
    for a in ours.values():
        a._before_learn()
    plain = PlainLaMoStep(ds, device, quick)

    def ours_step(a):
        def step():
            with a._own_rng():
                a._train_step()
        return step

    fns = {"plain_fp32": plain.step, **{f"ours_{p}": ours_step(a) for p, a in ours.items()}}
    rounds = 2 if quick else (2 if device.type == "cpu" else 10)
    inner = 1 if device.type == "cpu" else 5
    if TINY:
        rounds, inner = 1, 1
    t = interleaved(fns, device, rounds=rounds, inner=inner, warmup=1)
    results["lamo_batch_size"] = kw["batch_size"]
    results["lamo_precision"] = prec
    results["lamo_step_s"] = t
    results["lamo_step_speedup_vs_plain"] = t["plain_fp32"] / t[f"ours_{prec}"]
    results["lamo_steps_per_s"] = 1.0 / t[f"ours_{prec}"]
    results["lamo_step_speedup_vs_plain_by_precision"] = {p: t["plain_fp32"] / t[f"ours_{p}"] for p in precisions}
    results["lamo_steps_per_s_by_precision"] = {p: 1.0 / t[f"ours_{p}"] for p in precisions}
    results["lamo_trainable_params"] = ours[prec].parameter_counts()["trainable"]
    if device.type == "cuda":
        results["lamo_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del ours, plain
    gc.collect()


# ------------------------------------------------------------------------------------------------
# 3: evaluation throughput


def released_way_episode(algo, model, env, target: float, seed: int, max_steps: int) -> int:
    """One episode the way the released evaluation does it: batch 1, history re-concatenated as
    tensors and the last K steps re-normalised and re-padded every step, the training module
    (unmerged adapters, stock GELU and attention) in eval mode, fp32. Returns the steps taken."""
    dev, K = algo.device, algo.config.context_len
    mean = torch.from_numpy(algo.stats["state_mean"]).to(dev)
    std = torch.from_numpy(algo.stats["state_std"]).to(dev)
    scale, act_dim = algo._rtg_scale(), algo.spec.action_dim
    model.eval()
    state, _ = env.reset(seed=seed)
    states = torch.from_numpy(np.asarray(state, dtype=np.float32)).reshape(1, -1).to(dev)
    actions = torch.zeros((0, act_dim), device=dev)
    rtg = torch.tensor([[target / scale]], dtype=torch.float32, device=dev)
    timesteps = torch.zeros((1, 1), dtype=torch.long, device=dev)
    steps = 0
    for t in range(max_steps):
        actions = torch.cat([actions, torch.zeros((1, act_dim), device=dev)], dim=0)
        s = ((states - mean) / std)[-K:]
        a, r, ts = actions[-K:], rtg[0, -K:], timesteps[0, -K:]
        n = s.shape[0]
        pad = K - n
        s = torch.cat([torch.zeros((pad, s.shape[1]), device=dev), s]).reshape(1, K, -1)
        a = torch.cat([torch.zeros((pad, act_dim), device=dev), a]).reshape(1, K, act_dim)
        r = torch.cat([torch.zeros(pad, device=dev), r]).reshape(1, K, 1)
        ts = torch.cat([torch.zeros(pad, dtype=torch.long, device=dev), ts.clamp(max=algo._max_ep_len() - 1)]).reshape(1, K)
        m = torch.cat([torch.zeros(pad, device=dev), torch.ones(n, device=dev)]).reshape(1, K)
        with torch.no_grad():
            action = model(s, a, r, ts, m).action_preds[0, -1]
        actions[-1] = action
        obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
        steps += 1
        states = torch.cat([states, torch.from_numpy(np.asarray(obs, dtype=np.float32)).reshape(1, -1).to(dev)], dim=0)
        rtg = torch.cat([rtg, (rtg[0, -1] - reward / scale).reshape(1, 1)], dim=1)
        timesteps = torch.cat([timesteps, torch.full((1, 1), t + 1, dtype=torch.long, device=dev)], dim=1)
        if terminated or truncated:
            break
    return steps


def bench_eval(device: torch.device, quick: bool, results: dict) -> None:
    if not all(importable(m, "evaluation throughput on Hopper-v5", results) for m in ("gymnasium", "mujoco")):
        return
    from offline_zoo import LaMo
    from offline_zoo.envs import make_env
    from offline_zoo.evaluation import run_episodes

    ds = hopper_like_dataset(5, 1000)
    kw = lamo_kwargs(device, quick)
    algo = LaMo(ds, precision="fp32", **kw, **OURS)
    # the released way runs the stock module: a LaMo with every speed path off, same weights
    plain = LaMo(ds, precision="fp32", fast_kernels=False, fast_inference=False, **kw)
    plain.model.load_state_dict(algo.model.state_dict())
    task = algo.task
    targets = list(task.target_returns)  # 4 targets
    n_eps = 1 if TINY else (5 if quick else 20)
    max_steps = 3 if TINY else (10 if quick else 30)

    def env_fn():
        # a random-init policy makes the hopper fall within ~15 steps; without the health
        # termination every episode runs the measured number of steps on both sides
        return make_env(task, terminate_when_unhealthy=False)

    def ours(precision: str):
        algo.config.precision = precision
        algo._set_eval_mode(True)
        try:
            t0 = time.perf_counter()
            r = run_episodes(algo, env_fn, n_eps, targets, seed=0, task=task, max_episode_steps=max_steps)
            dt = time.perf_counter() - t0
        finally:
            algo._set_eval_mode(False)
            algo.config.precision = "fp32"
        steps = int(sum(v.sum() for v in r.lengths.values()))
        return steps / dt, steps

    env = env_fn()
    seq_runs: list[float] = []

    def sequential(i: int):
        t0 = time.perf_counter()
        steps = released_way_episode(plain, plain.model, env, targets[i % len(targets)], seed=i, max_steps=max_steps)
        seq_runs.append(steps / (time.perf_counter() - t0))

    # the released way before, between and after ours, so both see the same machine state
    sequential(0)
    sequential(1)
    fp32, steps32 = ours("fp32")
    sequential(2)
    have_bf16 = bf16_native(device)
    if have_bf16:
        bf16, steps16 = ours("bf16")
        sequential(3)
    seq = statistics.median(seq_runs[1:])  # the first run warms up
    results["eval_parallel_episodes"] = n_eps * len(targets)
    results["eval_max_steps"] = max_steps
    results["eval_episode_steps"] = {"fp32": steps32, **({"bf16": steps16} if have_bf16 else {})}
    results["eval_steps_per_s"] = {"sequential": seq, "ours_fp32": fp32, **({"ours_bf16": bf16} if have_bf16 else {})}
    results["eval_speedup_vs_sequential"] = fp32 / seq
    results["eval_bf16_speedup_vs_sequential"] = bf16 / seq if have_bf16 else None
    env.close()


# ------------------------------------------------------------------------------------------------
# report


def environment(device: torch.device, threads: int) -> dict:
    import importlib.metadata as md

    info = {
        "device": str(device),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": threads,
        "bf16_native": bf16_native(device),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for pkg in ("torch", "transformers", "peft", "d3rlpy", "gymnasium", "mujoco", "numpy"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return info


def projected_run_hours(results: dict) -> float | None:
    """A full LaMo hopper run: 100k steps + an evaluation (4 targets x 20 episodes x 1000 steps)
    every 2500 steps, from the measured step time and evaluation throughput (upper bound: every
    episode assumed to last 1000 steps)."""
    sps = results.get("lamo_steps_per_s")
    ev = results.get("eval_steps_per_s", {})
    eval_sps = ev.get("ours_bf16") or ev.get("ours_fp32")
    if not sps or not eval_sps:
        return None
    train = 100_000 / sps
    evaluation = 40 * 80 * 1000 / eval_sps
    return (train + evaluation) / 3600


def markdown(results: dict) -> str:
    env = results["environment"]

    def f(x, digits=2):
        return "n/a" if x is None else f"{x:.{digits}f}"

    dt = results["dt_step_ms"]
    ev = results["eval_steps_per_s"]
    lines = [
        START,
        "## Performance",
        "",
        f"`python benchmarks/perf.py` on {env['device']} ({env['cpu']}, {env['cpu_cores']} cores, "
        f"{env['torch_threads']} torch threads{', ' + env['gpu'] if 'gpu' in env else ''}); torch {env.get('torch')}, "
        f"transformers {env.get('transformers')}, peft {env.get('peft')}, d3rlpy {env.get('d3rlpy')}. "
        f"Load average {results['load_average']['start']:.2f} at the start, {results['load_average']['end']:.2f} at the end; "
        f"{results['runtime_s']:.0f} s in all. Ratios are measured side by side in this one run "
        "(interleaved repetitions, medians; the process-wide CPU allocator setting applies to every "
        "implementation measured); see `docs/performance.md` for what each line compares.",
        "",
        "| measurement | result | goal (CPU) |",
        "| --- | --- | --- |",
        f"| DT step fp32, ours vs faster peer | **{f(results['dt_step_speedup_vs_best_peer'])}x** "
        f"(ours {dt['ours_fp32']:.0f} ms, transformers {dt['transformers']:.0f} ms, d3rlpy {f(dt.get('d3rlpy'), 0)} ms) | >= 1.1x |",
        f"| DT step bf16 autocast vs faster fp32 peer | **{f(results['dt_step_bf16_speedup_vs_best_peer'])}x** "
        f"(ours {f(dt.get('ours_bf16'), 0)} ms) | >= 2x |",
        f"| LaMo step (GPT-2 small, LoRA, language loss), ours {results['lamo_precision']} vs plain fp32 | "
        f"**{f(results['lamo_step_speedup_vs_plain'])}x** ({results['lamo_step_s']['plain_fp32']:.1f} s vs "
        f"{results['lamo_step_s']['ours_' + results['lamo_precision']]:.1f} s; {f(results['lamo_steps_per_s'], 3)} steps/s) | - |",
        f"| Evaluation, {results['eval_parallel_episodes']} episodes x {results['eval_max_steps']} steps, ours fp32 vs one episode at a time | "
        f"**{f(results['eval_speedup_vs_sequential'])}x** ({ev['ours_fp32']:.1f} vs {ev['sequential']:.1f} episode-steps/s) | >= 1.5x |",
        f"| Evaluation, ours bf16 vs one episode at a time | **{f(results['eval_bf16_speedup_vs_sequential'])}x** "
        f"({f(ev.get('ours_bf16'), 1)} episode-steps/s) | >= 4x |",
        f"| Window sampling / training step | **{100 * results['sampling_fraction_of_step']:.2f}%** "
        f"({results['sampling_ms']:.2f} ms per batch; {100 * results['sampling_fraction_of_fp32_step']:.2f}% of the fp32 step) | < 5% |",
        f"| Matmul peak (fp32 / bf16) | {results['matmul_peak_gflops']['fp32']:.0f} / {f(results['matmul_peak_gflops'].get('bf16'), 0)} GFLOP/s | - |",
        f"| DT step fp32, executed matmul FLOP/s as a fraction of the fp32 peak | **{100 * results['dt_step_fraction_of_matmul_peak']:.0f}%** "
        f"({results['dt_step_gflop']:.1f} GFLOP per step; counting the standard step's {results['dt_step_model_gflop']:.1f} GFLOP: "
        f"{100 * results['dt_step_model_flops_fraction_of_matmul_peak']:.0f}%; transformers: "
        f"{100 * results['dt_step_transformers_fraction_of_matmul_peak']:.0f}%) | - |",
    ]
    hours = results.get("projected_full_run_hours")
    if hours is not None:
        lines.append(f"| Projected full LaMo hopper run (100k steps + 40 evaluations of 80 x 1000 steps) | {hours:.1f} h | GPU: < 1 h |")
    lines += ["", END]
    return "\n".join(lines)


def write_readme(block: str) -> None:
    write_section(README, block, START, END)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke run: smaller models and fewer repetitions (not the protocol)")
    parser.add_argument("--only", default="dt,lamo,eval", help="comma-separated subset of dt, lamo, eval")
    parser.add_argument("--compile", action="store_true", help="run our side with compile=True (torch.compile; for GPUs)")
    parser.add_argument("--write-readme", action="store_true", help="replace the Performance section of benchmarks/README.md")
    parser.add_argument("--from-json", default=None, help="re-render the Markdown block from a saved final JSON line (no measuring)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results to FILE (rewritten after every section)")
    parser.add_argument("--tiny", action="store_true", help="pipeline check: tiny models, one repetition (the numbers mean nothing)")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text().strip().splitlines()[-1])
        block = markdown(results)
        print(block)
        if args.write_readme:
            write_readme(block)
        return results

    from offline_zoo.algos.base import resolve_device

    device = resolve_device(args.device)
    global TINY
    TINY = args.tiny
    if TINY:
        DT_CFG.update(hidden=16, n_layer=1, n_head=1, K=4, batch=8)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t_start = time.perf_counter()
    results: dict = {"environment": environment(device, torch.get_num_threads()), "quick": args.quick, "tiny": args.tiny}

    def save_json() -> None:
        if args.json:
            path = Path(args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, default=float, indent=1) + "\n")

    # process-wide, so every implementation measured here runs with it (the ratios do not include it)
    from offline_zoo.algos.fast import tune_cpu_allocator

    results["environment"]["allocator_tuned"] = tune_cpu_allocator() if device.type == "cpu" else False
    results["load_average"] = {"start": os.getloadavg()[0]}
    only = set(args.only.split(","))
    OURS.update(compile=args.compile)
    results["ours_compile"] = args.compile

    with section("matmul peak"):
        peaks = {"fp32": matmul_peak(device, torch.float32, args.quick) / 1e9}
        if bf16_native(device):
            peaks["bf16"] = matmul_peak(device, torch.bfloat16, args.quick) / 1e9
        results["matmul_peak_gflops"] = peaks
    save_json()
    for key, name, bench in (("dt", "DT step", bench_dt), ("lamo", "LaMo step", bench_lamo), ("eval", "evaluation", bench_eval)):
        if key not in only:
            continue
        with section(name):
            try:
                bench(device, args.quick, results)
            except Exception as err:  # recorded; the other sections still run
                import traceback

                traceback.print_exc()
                results.setdefault("errors", {})[key] = f"{type(err).__name__}: {err}"
                log(f"   FAILED {name}: {type(err).__name__}: {err}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        save_json()
    results["projected_full_run_hours"] = projected_run_hours(results)
    results["load_average"]["end"] = os.getloadavg()[0]
    results["runtime_s"] = time.perf_counter() - t_start
    save_json()
    complete = "eval_steps_per_s" in results and "lamo_step_s" in results and "dt_step_ms" in results
    if only >= {"dt", "lamo", "eval"} and complete and not results.get("errors"):
        block = markdown(results)
        print(block)
        if args.write_readme:
            write_readme(block)
    elif args.write_readme:
        log("not writing the README: a section failed or was skipped")
    print(json.dumps(results, default=float))
    if results.get("errors"):
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
