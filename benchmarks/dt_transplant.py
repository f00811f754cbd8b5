"""Is the gap between our DT and d3rlpy's in training or in evaluation? Swap the weights and see.

d3rlpy's ``DecisionTransformer`` and `offline_zoo.DT` (paper settings) have the same architecture
up to parameter layout: this script copies the weights of one into the other (q/k/v -> GPT-2's
fused ``c_attn``, Linear -> Conv1D transposes, d3rlpy's 1-based timestep rows -> our 0-based ones,
d3rlpy's LayerNorm eps 3e-3 and observation-scaler eps 1e-3 carried over) and

1. checks that both forwards then give the same actions on the same windows (untrained and trained);
2. trains one implementation for ``--steps`` on the generated ``hopper-medium`` data and evaluates
   the *same weights* through both evaluation loops (10 episodes at target 3600, reset seeds
   10000+i, as ``learning_parity.py``).

If a model scores the same through both loops, evaluation is not where the implementations differ.
``--init offline_zoo`` reverses the swap: d3rlpy's DT starts from our DT's seed-k initial draw
(to tell whether a difference follows the initial weights or the training pipeline). d3rlpy's
seed-k draw is the one `learning_parity.py`'s d3rlpy run of seed k starts from, so ``--train
offline_zoo --eval-every 2000`` can be read against that run's curve.
Results are appended to ``benchmarks/results/dt_transplant.jsonl``.

    python benchmarks/dt_transplant.py --train d3rlpy --seeds 0 --steps 2000
    python benchmarks/dt_transplant.py --train d3rlpy --init offline_zoo --seeds 0 1 --steps 2000
    python benchmarks/dt_transplant.py --train offline_zoo --seeds 4 --steps 6000 --eval-every 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_parity as lp  # noqa: E402
from _protocol import EVAL_SEED, TARGET, append_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "dt_transplant.jsonl"
D3RLPY_LN_EPS, D3RLPY_OBS_EPS = 3e-3, 1e-3


def _pairs(ours, theirs):
    """(our parameter, d3rlpy parameter, transpose) for every weight; the fused q/k/v come separately."""
    body = ours.body
    out = [(ours.embed_state.weight, theirs._encoder._layers[0].weight, False),
           (ours.embed_state.bias, theirs._encoder._layers[0].bias, False),
           (ours.embed_return.weight, theirs._rtg_embed.weight, False), (ours.embed_return.bias, theirs._rtg_embed.bias, False),
           (ours.embed_action.weight, theirs._action_embed.weight, False), (ours.embed_action.bias, theirs._action_embed.bias, False),
           (ours.embed_ln.weight, theirs._embed_ln.weight, False), (ours.embed_ln.bias, theirs._embed_ln.bias, False),
           (body.ln_f.weight, theirs._gpt2._layer_norm.weight, False), (body.ln_f.bias, theirs._gpt2._layer_norm.bias, False)]
    head = [m for m in ours.predict_action.modules() if isinstance(m, torch.nn.Linear)]
    if len(head) != 1:
        raise ValueError(f"expected a Linear + Tanh action head, got {ours.predict_action}")
    out += [(head[0].weight, theirs._output.weight, False), (head[0].bias, theirs._output.bias, False)]
    for ob, tb in zip(body.h, theirs._gpt2._transformer):
        out += [(ob.ln_1.weight, tb._layer_norm1.weight, False), (ob.ln_1.bias, tb._layer_norm1.bias, False),
                (ob.ln_2.weight, tb._layer_norm2.weight, False), (ob.ln_2.bias, tb._layer_norm2.bias, False),
                (ob.attn.c_proj.weight, tb._attention._proj.weight, True), (ob.attn.c_proj.bias, tb._attention._proj.bias, False),
                (ob.mlp.c_fc.weight, tb._mlp._l1.weight, True), (ob.mlp.c_fc.bias, tb._mlp._l1.bias, False),
                (ob.mlp.c_proj.weight, tb._mlp._l2.weight, True), (ob.mlp.c_proj.bias, tb._mlp._l2.bias, False)]
    return out


def fused_qkv(attention) -> tuple[torch.Tensor, torch.Tensor]:
    """d3rlpy's separate q/k/v Linears as GPT-2's fused ``c_attn`` Conv1D (weight, bias)."""
    a = attention
    return torch.cat([a._q.weight.T, a._k.weight.T, a._v.weight.T], dim=1), torch.cat([a._q.bias, a._k.bias, a._v.bias])


def timestep_rows(ours_table: torch.Tensor, theirs_table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of the rows of the same timesteps: d3rlpy's timesteps start at 1, ours at 0 (our row t is its row t + 1)."""
    n = min(ours_table.shape[0], theirs_table.shape[0] - 1)
    return ours_table[:n], theirs_table[1:n + 1]


@torch.no_grad()
def copy_weights(ours, theirs, direction: str) -> None:
    """``direction`` "to_ours" (d3rlpy -> offline-zoo) or "to_d3rlpy"."""
    for o, t, transpose in _pairs(ours, theirs):
        src, dst = (t, o) if direction == "to_ours" else (o, t)
        dst.copy_(src.T if transpose else src)
    d = ours.hidden_size
    for ob, tb in zip(ours.body.h, theirs._gpt2._transformer):
        a = tb._attention
        if direction == "to_ours":
            weight, bias = fused_qkv(a)
            ob.attn.c_attn.weight.copy_(weight)
            ob.attn.c_attn.bias.copy_(bias)
        else:
            for i, lin in enumerate((a._q, a._k, a._v)):
                lin.weight.copy_(ob.attn.c_attn.weight[:, i * d:(i + 1) * d].T)
                lin.bias.copy_(ob.attn.c_attn.bias[i * d:(i + 1) * d])
    ts, tt = timestep_rows(ours.embed_timestep.weight, theirs._position_encoding._embed.weight)
    (ts if direction == "to_ours" else tt).copy_(tt if direction == "to_ours" else ts)


def make_pair(dataset, seed: int, **dt_overrides):
    """Our DT (paper defaults, d3rlpy's LayerNorm and observation eps) and d3rlpy's DT, built on ``dataset``.

    ``dt_overrides`` (e.g. ``dropout=0.0``) change our DT's config; d3rlpy's is built from it.
    d3rlpy's weights are its seed-``seed`` draw, the same as `learning_parity.py`'s d3rlpy run of
    that seed (building our DT leaves torch's global generator as it found it).
    """
    import d3rlpy

    from offline_zoo import DT

    ours = DT(dataset, seed=seed, device="cpu", **{"fast_kernels": False, "layer_norm_eps": D3RLPY_LN_EPS, **dt_overrides})
    d3rlpy.seed(seed)
    ref = lp._d3rlpy_dt(ours.config)
    buffer = lp._mdp_dataset(dataset)
    ref.build_with_dataset(buffer)
    # fit() fits the scalers; the untrained comparison needs them before it
    ref.config.observation_scaler.fit_with_transition_picker(buffer.episodes, buffer.transition_picker)
    ref.config.reward_scaler.fit_with_transition_picker(buffer.episodes, buffer.transition_picker)
    return ours, ref


def _ours_ready_for_eval(ours, ref) -> None:
    """Our algorithm's normalisation made identical to d3rlpy's fitted scaler (std + 1e-3)."""
    sc = ref.config.observation_scaler
    ours._before_learn() if ours._sampler is None else None
    ours.stats["state_mean"] = np.asarray(sc.mean, dtype=np.float32)
    ours.stats["state_std"] = (np.asarray(sc.std, dtype=np.float32) + D3RLPY_OBS_EPS).astype(np.float32)
    ours._weights_epoch += 1


def forward_gap(ours, ref, dataset, n: int = 16, seed: int = 0) -> float:
    """Max |action difference| of the two forwards on ``n`` training windows (eval mode)."""
    from offline_zoo.data.samplers import WindowSampler

    sc = ref.config.observation_scaler
    std = np.asarray(sc.std, np.float32) + D3RLPY_OBS_EPS
    smp = WindowSampler(dataset, 20, 1000.0, 1000, np.asarray(sc.mean, np.float32), std, seed=seed, anchor="end")
    b = smp.sample(n)
    ours.model.eval()
    net = ref.impl.modules.transformer
    net.eval()
    with torch.no_grad():
        a_ours = ours.model(torch.from_numpy(b["states"]), torch.from_numpy(b["actions"]), torch.from_numpy(b["returns_to_go"]),
                            torch.from_numpy(b["timesteps"]), torch.from_numpy(b["mask"])).action_preds
        actions = np.where(b["mask"][..., None] > 0, b["actions"], 0.0).astype(np.float32)
        # d3rlpy drops the last action token at inference; predictions at real steps are causal either way
        net.train(False)
        a_ref = net(torch.from_numpy(b["states"]), torch.from_numpy(actions), torch.from_numpy(b["returns_to_go"]),
                    torch.from_numpy(b["timesteps"] + 1), torch.from_numpy(1.0 - b["mask"]))
    real = b["mask"] > 0
    return float((a_ours[torch.from_numpy(real)] - a_ref[torch.from_numpy(real)]).abs().max())


def evaluate_both(ours, ref, episodes: int) -> dict:
    task = ours.task
    _ours_ready_for_eval(ours, ref)
    r_ours = lp._evaluate(ours, task, episodes, TARGET, EVAL_SEED)
    r_ref = lp._evaluate(lp._D3rlpyPolicy(ref, True), task, episodes, TARGET, EVAL_SEED)
    return {"ours_loop": r_ours, "d3rlpy_loop": r_ref}


def run(train: str, seed: int, steps: int, episodes: int, eval_every: int | None = None, init: str = "d3rlpy") -> dict:
    """Train ``train``'s implementation for ``steps`` from ``init``'s seed-``seed`` initial weights."""
    import d3rlpy

    torch.set_num_threads(1)
    dataset = lp._load("hopper-medium", 1.0)
    ours, ref = make_pair(dataset, seed)
    copy_weights(ours.model, ref.impl.modules.transformer, "to_ours" if init == "d3rlpy" else "to_d3rlpy")
    rec = {"train": train, "init": init, "seed": seed, "steps": steps, "episodes": episodes, "data_hash": lp.data_hash(dataset),
           "forward_gap_init": forward_gap(ours, ref, dataset)}
    t0 = time.perf_counter()
    if train == "d3rlpy":
        d3rlpy.seed(seed)
        ref.fit(lp._mdp_dataset(dataset), n_steps=steps, n_steps_per_epoch=steps, show_progress=False, save_interval=10**9,
                logger_adapter=d3rlpy.logging.NoopAdapterFactory(), with_timestamp=False)
        copy_weights(ours.model, ref.impl.modules.transformer, "to_ours")
    else:  # ours trains from the chosen initial weights, with its own sampler, loss and optimizer
        every = eval_every or steps
        rec["checkpoints"] = []
        while ours.num_steps < steps:
            ours.learn(every, progress_bar=False)
            if ours.num_steps < steps:  # the last checkpoint is evaluated through both loops below
                stats = dict(ours.stats)
                _ours_ready_for_eval(ours, ref)
                rec["checkpoints"].append({"step": ours.num_steps, **lp._evaluate(ours, ours.task, episodes, TARGET, EVAL_SEED)})
                ours.stats.update(stats)  # training goes on with its own normalisation
                print(f"[transplant seed {seed}] step {ours.num_steps}: {rec['checkpoints'][-1]['score']:.1f}", flush=True)
        copy_weights(ours.model, ref.impl.modules.transformer, "to_d3rlpy")
    rec["train_seconds"] = round(time.perf_counter() - t0, 1)
    rec["forward_gap_trained"] = forward_gap(ours, ref, dataset)
    rec.update(evaluate_both(ours, ref, episodes))
    rec["date"] = time.strftime("%Y-%m-%d")
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", choices=("d3rlpy", "offline_zoo"), default="d3rlpy", help="the implementation that trains")
    p.add_argument("--init", choices=("d3rlpy", "offline_zoo"), default="d3rlpy",
                   help="whose seed-k initial weights both models start from (offline_zoo: our DT's default draw)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=None, help="--train offline_zoo: also evaluate every N steps (our loop)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    for seed in args.seeds:
        rec = run(args.train, seed, args.steps, args.episodes, args.eval_every, args.init)
        append_jsonl(args.out, rec)
        print(json.dumps({k: (v["score"] if isinstance(v, dict) else v) for k, v in rec.items() if k != "checkpoints"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
