import json, sys, time, torch
torch.set_num_threads(1)
from offline_zoo import LaMo, load_dataset
name = sys.argv[1]
over = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
ds = load_dataset("hopper-medium", source="generated")
cfg = dict(lm="embedded", corpus="embedded", lm_batch_size=1, lm_block_size=64, warmup_steps=50, seed=0)
cfg.update(over)
a = LaMo(ds, **cfg)
out = open(f"/tmp/lamox/{name}.jsonl", "a")
t0 = time.time()
for k in range(1, 4):
    a.learn(1000, progress_bar=False)
    r = a.evaluate(n_episodes=10, target_returns=(3600, 1800))
    rec = {"name": name, "over": over, "step": 1000 * k, "scores": r.to_dict()["scores"], "s": round(time.time() - t0)}
    print(json.dumps(rec), flush=True); out.write(json.dumps(rec) + "\n"); out.flush()
