"""Every CUDA check of offline-zoo in one run of under 10 minutes on a lent GPU machine.

    python benchmarks/gpu_check.py --out "$OUT"            # on the GPU machine (or benchmarks/gpu_check.sh)
    python benchmarks/gpu_check.py --cpu-dry-run --out DIR # the same pipeline on CPU at tiny sizes (< 1 min)
    python benchmarks/gpu_check.py --from-json OUT/gpu_check.json --write-readme   # refresh benchmarks/README.md

Steps, in order, each in its own process with a time budget (the whole run under ``--time-limit``,
default 570 s; a step may use what earlier steps left unused but never the budgets of later ones).
A step that overruns is stopped (its process group killed) and reported as ``timeout``; the later
steps still run while time remains. A step whose packages are missing skips that part with a line
saying so instead of failing.

1. ``env``: torch / CUDA / cuDNN versions, the GPU, its bf16 support and SDPA backends, and which
   optional packages (d3rlpy, gymnasium, mujoco, minari, ray, ...) import.
2. ``pytest``: ``pytest -m cuda tests/test_cuda.py``, JUnit XML and text output saved.
3. ``perf``: ``benchmarks/perf.py --device cuda --json``: DT step vs transformers' and d3rlpy's
   DT, LaMo GPT-2-small step (batch 64, language loss) in fp32 and bf16 vs a plain implementation,
   evaluation of 80 parallel Hopper episodes vs one at a time.
4. ``train``: LaMo with a randomly initialised GPT-2 small (``pretrained=False``, nothing from the
   hub; random-token language corpus, the same cost as WikiText) for 2,000 steps on generated
   hopper-medium data (100k transitions, ``zoo-data generate``'s Python equivalent; random arrays
   with Hopper's shapes where minari/mujoco are missing), evaluated twice; projects the time of
   the 100k-step run with its 40 evaluations.

Everything measured goes into ``OUT/gpu_check.json`` (rewritten after every step), logs into
``OUT/logs/``. ``--from-json FILE --write-readme`` renders the ``gpu-check`` section of
``benchmarks/README.md`` from that file (nothing in it is typed by hand).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"
SCHEMA = 1

#: seconds per step on the GPU (they add up to 560 of the default 570 s)
BUDGETS = {"env": 30, "pytest": 150, "perf": 170, "train": 210}
#: the same on CPU at tiny sizes (--cpu-dry-run)
DRY_BUDGETS = {"env": 30, "pytest": 60, "perf": 60, "train": 60}
STEPS = tuple(BUDGETS)
OPTIONAL = ("d3rlpy", "gymnasium", "mujoco", "minari", "ray", "h5py", "rich", "yaml", "tokenizers", "datasets", "matplotlib")
REQUIRED = ("torch", "transformers", "peft", "numpy", "pytest")

#: the train step: the run it projects (LaMo hopper: 100k steps, an evaluation every 2,500)
FULL_RUN_STEPS, FULL_RUN_EVALUATIONS = 100_000, 40


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def child_env(out: Path) -> dict:
    """Environment of every step: this checkout first on the path, no network, private caches."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("OFFLINE_ZOO_HOME", tempfile.mkdtemp(prefix="gpu_check_home_"))  # caches stay out of $OUT
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ------------------------------------------------------------------------------------------------
# step 1: environment (runs in a child: --step env)


def step_env(args) -> dict:
    import importlib
    import importlib.metadata as md

    info: dict = {"python": platform.python_version(), "platform": platform.platform(), "cpu_cores": os.cpu_count()}
    packages = {}
    for name in REQUIRED + OPTIONAL:
        entry: dict = {"required": name in REQUIRED}
        dist = {"yaml": "pyyaml"}.get(name, name)
        try:
            entry["version"] = md.version(dist)
        except md.PackageNotFoundError:
            entry["version"] = None
        try:
            importlib.import_module(name)
            entry["imports"] = True
        except Exception as err:  # ImportError, or a package failing while importing
            entry["imports"] = False
            entry["error"] = f"{type(err).__name__}: {err}"[:300]
        packages[name] = entry
    info["packages"] = packages
    info["missing"] = [k for k, v in packages.items() if not v["imports"]]
    try:
        import offline_zoo

        info["offline_zoo"] = {"version": getattr(offline_zoo, "__version__", None), "path": str(Path(offline_zoo.__file__).parent)}
    except Exception as err:
        info["offline_zoo"] = {"error": f"{type(err).__name__}: {err}"}
    try:
        info["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    import torch

    cuda = torch.cuda.is_available()
    info["torch"] = torch.__version__
    info["cuda_available"] = cuda
    info["torch_cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        info["sdpa_enabled"] = {
            name: bool(getattr(torch.backends.cuda, f"{name}_sdp_enabled", lambda: None)())
            for name in ("flash", "mem_efficient", "math", "cudnn")
            if hasattr(torch.backends.cuda, f"{name}_sdp_enabled")
        }
        x = torch.randn(256, 256, device="cuda")
        info["cuda_matmul_ok"] = bool(torch.isfinite(x @ x).all())
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()[:200]
        except (OSError, subprocess.SubprocessError) as err:
            info["nvidia_smi"] = f"unavailable ({type(err).__name__})"
    for name in OPTIONAL:
        if not packages[name]["imports"]:
            log(f"optional package {name} does not import: the parts that need it are skipped ({packages[name].get('error')})")
    return info


# ------------------------------------------------------------------------------------------------
# step 4: LaMo GPT-2 small, 2,000 steps (runs in a child: --step train)


def _synthetic_hopper(n_transitions: int, episode_len: int = 1000, seed: int = 0):
    import numpy as np

    from offline_zoo.data import Dataset

    rng = np.random.default_rng(seed)
    n = n_transitions
    ends = np.zeros(n, dtype=bool)
    ends[episode_len - 1 :: episode_len] = True
    ends[-1] = True
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    rew = rng.normal(3.0, 1.0, size=n).astype(np.float32)
    return Dataset.from_arrays(obs, act, rew, np.zeros(n, dtype=bool), ends, task="hopper-medium", source="synthetic")


def _importable(*names) -> str | None:
    """None when every module imports, else why not."""
    for name in names:
        try:
            __import__(name)
        except Exception as err:
            return f"{name} does not import ({type(err).__name__}: {err})"
    return None


def step_train(args) -> dict:
    import numpy as np
    import torch

    from offline_zoo import LaMo

    dry = args.cpu_dry_run
    deadline = args.step_deadline or (time.time() + 1e9)
    out_file = Path(args.out) / "work" / "train_partial.json"
    device = "cpu" if dry else "cuda"
    if not dry and not torch.cuda.is_available():
        raise RuntimeError("the train step needs CUDA (use --cpu-dry-run on a CPU)")
    if dry:
        torch.set_num_threads(1)
    res: dict = {"device": device, "dry_run": dry}

    def save():
        write_json(out_file, res)

    # -- data
    n_transitions = 2_000 if dry else 100_000
    t0 = time.perf_counter()
    why_not = _importable("gymnasium", "mujoco", "minari")
    ds = None
    if why_not is None:
        try:
            from offline_zoo.data.generation import generate_dataset

            root = Path(tempfile.mkdtemp(prefix="gpu_check_data_"))
            ds = generate_dataset("hopper-medium", n_transitions=n_transitions, root=root, seed=0, progress=False)
            res["data"] = {"source": "generated", "how": f"generate_dataset('hopper-medium', n_transitions={n_transitions})"}
        except Exception as err:
            why_not = f"generation failed ({type(err).__name__}: {err})"
            traceback.print_exc()
    if ds is None:
        log(f"SKIPPED generated hopper data: {why_not}; training on random arrays with Hopper's shapes instead")
        ds = _synthetic_hopper(n_transitions)
        res["data"] = {"source": "synthetic", "why": why_not}
    res["data"].update(transitions=int(ds.n_steps), episodes=int(ds.n_episodes), seconds=time.perf_counter() - t0)
    log(f"data: {res['data']}")
    save()

    # -- agent
    bf16 = (not dry) and torch.cuda.is_bf16_supported()
    kw = dict(device=device, seed=0, lm="gpt2", pretrained=False, corpus="random", precision="bf16" if bf16 else "fp32")
    if dry:
        kw.update(n_layer=1, n_embd=16, n_head=2, lm_block_size=8, lm_batch_size=1, lora_rank=2, batch_size=8,
                  context_len=4, eval_episodes=1)
    t0 = time.perf_counter()
    algo = LaMo(ds, **kw)
    res["build_s"] = time.perf_counter() - t0
    from dataclasses import asdict

    cfg = asdict(algo.config)
    res["config"] = {k: cfg.get(k) for k in ("lm", "pretrained", "corpus", "precision", "batch_size", "context_len", "lm_batch_size",
                                             "lm_block_size", "lora_rank", "embedding", "action_head", "eval_episodes", "compile")}
    res["parameters"] = algo.parameter_counts()
    n_steps = 20 if dry else 2_000
    eval_at = {n_steps // 2, n_steps}
    chunk = 5 if dry else 100
    can_eval = _importable("gymnasium", "mujoco")
    if can_eval:
        log(f"SKIPPED evaluations: {can_eval}")
        res["evaluation_skipped"] = can_eval
    res.update(planned_steps=n_steps, chunk=chunk, chunks=[], evaluations=[])
    eval_estimate = 10.0 if dry else 40.0

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    while algo.num_steps < n_steps:
        evals_left = 0 if can_eval else sum(1 for s in eval_at if s > algo.num_steps)
        per_chunk = statistics.median([c["seconds"] for c in res["chunks"]]) if res["chunks"] else 0.0
        if time.time() + per_chunk + evals_left * eval_estimate > deadline:
            res["stopped_early"] = f"stopped at step {algo.num_steps} of {n_steps}: the step's time budget would not hold the rest"
            log(res["stopped_early"])
            break
        n = min(chunk, n_steps - algo.num_steps)
        sync()
        t0 = time.perf_counter()
        algo.learn(n, progress_bar=False, log_every=chunk)
        sync()
        res["chunks"].append({"steps": n, "seconds": time.perf_counter() - t0, "end_step": algo.num_steps,
                              "loss": float(algo.last_metrics["loss"])})
        if algo.num_steps in eval_at and not can_eval:
            t0 = time.perf_counter()
            result = algo.evaluate(seed=0)
            seconds = time.perf_counter() - t0
            eval_estimate = max(eval_estimate, 1.2 * seconds) if not dry else eval_estimate
            steps = int(sum(np.asarray(v).sum() for v in result.lengths.values()))
            res["evaluations"].append({
                "step": algo.num_steps, "seconds": seconds, "episode_steps": steps, "episode_steps_per_s": steps / seconds,
                "episodes": int(sum(len(v) for v in result.lengths.values())), "score": None if result.score is None else float(result.score),
                "scores": {str(k): float(np.mean(v)) for k, v in result.normalized.items()},
            })
            log(f"evaluation at step {algo.num_steps}: {seconds:.1f} s, {steps} episode-steps, score {result.score}")
        save()
    res["steps_done"] = algo.num_steps
    timed = res["chunks"][1:] or res["chunks"]  # the first chunk warms up (allocator, kernels)
    if timed:
        s_per_step = sum(c["seconds"] for c in timed) / sum(c["steps"] for c in timed)
        res["seconds_per_step"] = s_per_step
        res["steps_per_s"] = 1.0 / s_per_step
        res["train_seconds"] = sum(c["seconds"] for c in res["chunks"])
        train = FULL_RUN_STEPS * s_per_step
        proj = {"steps": FULL_RUN_STEPS, "evaluations": FULL_RUN_EVALUATIONS, "train_s": train}
        evs = res["evaluations"]
        if evs:
            mean_eval = statistics.mean(e["seconds"] for e in evs)
            episodes = evs[-1]["episodes"]
            eps = statistics.mean(e["episode_steps_per_s"] for e in evs)
            proj["eval_s_as_measured"] = FULL_RUN_EVALUATIONS * mean_eval
            # upper bound: every episode runs the full 1000 steps at the measured throughput
            proj["eval_s_upper_bound"] = FULL_RUN_EVALUATIONS * episodes * 1000 / eps
            proj["total_s"] = train + proj["eval_s_as_measured"]
            proj["total_s_upper_bound"] = train + proj["eval_s_upper_bound"]
        else:
            proj["total_s"] = train
            proj["note"] = "training only: no evaluation was measured"
        proj["total_hours"] = proj["total_s"] / 3600
        res["projection_100k"] = proj
    if device == "cuda":
        res["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    save()
    return res


# ------------------------------------------------------------------------------------------------
# running a step: its own process group, killed when it overruns


def run_process(cmd: list[str], log_path: Path, timeout: float, env: dict) -> tuple[str, int | None, float]:
    """Run ``cmd`` with output to ``log_path``; returns (status, return code, seconds)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            status, rc = "timeout", None
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            fh.write(f"\n[gpu_check] stopped after {timeout:.0f} s (its budget)\n")
    return status, rc, time.perf_counter() - t0


def junit_summary(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        return {"error": f"unreadable JUnit XML: {err}"}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    summary = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time_s": 0.0}
    cases = []
    for s in suites:
        for k in ("tests", "failures", "errors", "skipped"):
            summary[k] += int(s.get(k, 0))
        summary["time_s"] += float(s.get("time", 0.0))
        for case in s.iter("testcase"):
            entry = {"name": case.get("name"), "time_s": float(case.get("time", 0.0)), "status": "passed"}
            for tag in ("failure", "error", "skipped"):
                node = case.find(tag)
                if node is not None:
                    entry["status"] = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    entry["message"] = (node.get("message") or node.text or "")[:400]
            cases.append(entry)
    summary["passed"] = summary["tests"] - summary["failures"] - summary["errors"] - summary["skipped"]
    summary["cases"] = cases
    return summary


def log_summary(path: Path) -> dict | None:
    """Per-test outcomes from pytest's -v lines, for a run stopped before it wrote its JUnit XML."""
    import re

    if not path.is_file():
        return None
    words = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped", "XFAIL": "skipped", "XPASS": "passed"}
    cases = []
    for m in re.finditer(r"^\S*::(\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", path.read_text(errors="replace"), re.MULTILINE):
        cases.append({"name": m.group(1), "status": words[m.group(2)]})
    count = {k: sum(c["status"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    return {"tests": len(cases), "passed": count["passed"], "failures": count["failed"], "errors": count["error"],
            "skipped": count["skipped"], "cases": cases, "from_log": True, "note": "no JUnit XML (stopped?): outcomes read from the -v log"}


def run_check(args) -> dict:
    out = Path(args.out).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    dry = args.cpu_dry_run
    budgets = dict(DRY_BUDGETS if dry else BUDGETS)
    steps = [s for s in STEPS if s in set(args.steps.split(","))]
    env = child_env(out)
    t_start = time.time()
    deadline = t_start + args.time_limit
    report: dict = {
        "schema": SCHEMA, "kind": "cpu-dry-run" if dry else "gpu", "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "time_limit_s": args.time_limit, "budgets_s": budgets, "steps": {}, "host": platform.node(),
    }
    json_path = out / "gpu_check.json"
    write_json(json_path, report)
    py = sys.executable
    me = str(Path(__file__).resolve())
    for i, name in enumerate(steps):
        remaining = deadline - time.time()
        later = sum(budgets[s] for s in steps[i + 1 :])
        timeout = min(remaining, max(budgets[name], remaining - later))
        rec: dict = {"budget_s": budgets[name], "timeout_s": round(timeout, 1), "log": f"logs/{name}.log"}
        if timeout < 5:
            rec["status"] = "not_run"
            rec["why"] = f"only {max(remaining, 0):.0f} s left of the {args.time_limit:.0f} s limit"
            log(f"step {name}: not run ({rec['why']})")
            report["steps"][name] = rec
            write_json(json_path, report)
            continue
        log(f"step {name}: up to {timeout:.0f} s")
        step_json = out / "work" / f"step_{name}.json"
        step_json.unlink(missing_ok=True)
        if name in ("env", "train"):
            cmd = [py, me, "--step", name, "--out", str(out), "--step-deadline", str(time.time() + timeout - 10)]
            cmd += ["--cpu-dry-run"] if dry else []
        elif name == "pytest":
            xml = out / "pytest_cuda.xml"
            xml.unlink(missing_ok=True)
            cmd = [py, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-v", "-rfEs", "--durations=15", "-p", "no:cacheprovider",
                   f"--junitxml={xml}", "-o", "junit_family=xunit2"]
        else:  # perf
            perf_json = out / "perf.json"
            perf_json.unlink(missing_ok=True)
            cmd = [py, str(ROOT / "benchmarks" / "perf.py"), "--json", str(perf_json)]
            cmd += ["--device", "cpu", "--tiny", "--threads", "1"] if dry else ["--device", "cuda"]
        status, rc, seconds = run_process(cmd, out / "logs" / f"{name}.log", timeout, env)
        rec.update(status=status, returncode=rc, seconds=round(seconds, 1), command=" ".join(cmd[1:]) if cmd[0] == py else " ".join(cmd))
        if name in ("env", "train"):
            if step_json.is_file():
                rec["result"] = json.loads(step_json.read_text())
            elif name == "train" and (out / "work" / "train_partial.json").is_file():
                rec["result"] = json.loads((out / "work" / "train_partial.json").read_text())
                rec["partial"] = True
        elif name == "pytest":
            rec["junit"] = "pytest_cuda.xml"
            rec["result"] = junit_summary(out / "pytest_cuda.xml") or log_summary(out / "logs" / "pytest.log")
            (out / "pytest_cuda.txt").write_text((out / "logs" / "pytest.log").read_text(errors="replace"))
        else:
            if perf_json.is_file():
                rec["result"] = json.loads(perf_json.read_text())
                rec["partial"] = status != "ok"
        if status != "ok":
            tail = (out / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            rec["log_tail"] = tail
        log(f"step {name}: {rec['status']} in {seconds:.0f} s")
        report["steps"][name] = rec
        report["elapsed_s"] = round(time.time() - t_start, 1)
        write_json(json_path, report)
    report["elapsed_s"] = round(time.time() - t_start, 1)
    report["ok"] = all(r.get("status") == "ok" for r in report["steps"].values()) and len(report["steps"]) == len(steps)
    write_json(json_path, report)
    log(f"wrote {json_path} ({report['elapsed_s']:.0f} s; {'all steps ok' if report['ok'] else 'NOT all steps ok'})")
    return report


# ------------------------------------------------------------------------------------------------
# the README section, from the JSON


def _f(x, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{suffix}"


def markdown(report: dict, source: str = "gpu_check.json") -> str:
    steps = report.get("steps", {})
    env = steps.get("env", {}).get("result") or {}
    dry = report.get("kind") == "cpu-dry-run"
    where = env.get("gpu") or ("CPU (dry run)" if dry else "no GPU seen")
    lines = [START, "## GPU check", "",
             f"<!-- generated by benchmarks/gpu_check.py --from-json {source} --write-readme; do not edit by hand -->"]
    if dry:
        lines += ["", "**CPU dry run at tiny sizes: a check of the pipeline, not a GPU measurement.**"]
    lines += [
        "",
        f"`python benchmarks/gpu_check.py` on **{where}**"
        + (f" ({env.get('gpu_memory_gib')} GiB, compute capability {env.get('gpu_capability')})" if env.get("gpu") else "")
        + f", {env.get('cpu_cores', '?')} CPU cores; torch {env.get('torch', '?')}, CUDA {env.get('torch_cuda') or 'none'}, "
        f"cuDNN {env.get('cudnn') or 'none'}, python {env.get('python', '?')}; started {report.get('started', '?')}, "
        f"{_f(report.get('elapsed_s'), 0)} s of the {_f(report.get('time_limit_s'), 0)} s limit.",
    ]
    missing = env.get("missing")
    if missing is not None:
        lines += ["", "Packages that do not import there (their parts are skipped): " + (", ".join(missing) if missing else "none") + "."]
    lines += ["", "| step | status | seconds (budget) | summary |", "| --- | --- | --- | --- |"]
    for name in STEPS:
        rec = steps.get(name)
        if rec is None:
            continue
        lines.append(f"| {name} | {rec.get('status')} | {_f(rec.get('seconds'), 0)} ({rec.get('budget_s')}) | {_step_summary(name, rec)} |")
    perf = (steps.get("perf") or {}).get("result")
    if perf:
        lines += ["", "### `benchmarks/perf.py`" + (" --device cuda" if not dry else " --tiny (dry run)"), "",
                  "| measurement | ours | peer(s) | ratio |", "| --- | --- | --- | --- |"]
        dt = perf.get("dt_step_ms") or {}
        if dt:
            peers = ", ".join(f"{k} {_f(dt.get(k), 2)} ms" for k in ("transformers", "d3rlpy") if k in dt) or "n/a"
            c = perf.get("dt_config") or {}
            lines.append(f"| DT step ({c.get('hidden')} dim, {c.get('n_layer')} layers, K={c.get('K')}, batch {c.get('batch')}), fp32 | "
                         f"{_f(dt.get('ours_fp32'), 2)} ms | {peers} | "
                         f"**{_f(perf.get('dt_step_speedup_vs_best_peer'))}x** vs the faster peer |")
            if "ours_bf16" in dt:
                lines.append(f"| DT step, ours bf16 | {_f(dt.get('ours_bf16'), 2)} ms | (fp32 peers) | **{_f(perf.get('dt_step_bf16_speedup_vs_best_peer'))}x** |")
        lamo = perf.get("lamo_step_s") or {}
        for p, ratio in (perf.get("lamo_step_speedup_vs_plain_by_precision") or {}).items():
            lines.append(f"| LaMo GPT-2-small step (LoRA, language loss), batch {perf.get('lamo_batch_size', 64)}, {p} | "
                         f"{_f(1e3 * lamo.get('ours_' + p, float('nan')), 1)} ms | plain fp32 {_f(1e3 * lamo.get('plain_fp32', float('nan')), 1)} ms | **{_f(ratio)}x** |")
        ev = perf.get("eval_steps_per_s") or {}
        if ev:
            for p in ("fp32", "bf16"):
                if f"ours_{p}" in ev:
                    key = "eval_speedup_vs_sequential" if p == "fp32" else "eval_bf16_speedup_vs_sequential"
                    lines.append(f"| Evaluation, {perf.get('eval_parallel_episodes')} parallel Hopper episodes x {perf.get('eval_max_steps')} steps, {p} | "
                                 f"{_f(ev[f'ours_{p}'], 1)} episode-steps/s | one at a time {_f(ev.get('sequential'), 1)} | **{_f(perf.get(key))}x** |")
        for what, why in (perf.get("skipped") or {}).items():
            lines.append(f"| {what} | skipped | {why} | |")
        for what, why in (perf.get("errors") or {}).items():
            lines.append(f"| {what} | **error** | {why} | |")
    train = (steps.get("train") or {}).get("result")
    if train:
        cfg = train.get("config") or {}
        data = train.get("data") or {}
        proj = train.get("projection_100k") or {}
        lines += ["", f"### LaMo, randomly initialised GPT-2 {'(tiny, dry run)' if dry else 'small'}, {train.get('steps_done')} of {train.get('planned_steps')} steps", "",
                  f"Data: {data.get('source')} hopper-medium, {data.get('transitions')} transitions ({data.get('episodes')} episodes)"
                  + (f"; {data['why']}" if data.get("why") else "") + f". Precision {cfg.get('precision')}, batch {cfg.get('batch_size')}, "
                  f"K={cfg.get('context_len')}, language loss on {cfg.get('lm_batch_size')} x {cfg.get('lm_block_size')} random tokens, "
                  f"{(train.get('parameters') or {}).get('trainable')} trainable parameters.", "",
                  "| measurement | value |", "| --- | --- |",
                  f"| training | {_f(train.get('steps_per_s'), 2)} steps/s ({_f(1e3 * train['seconds_per_step'] if train.get('seconds_per_step') else None, 1)} ms per step) |"]
        for e in train.get("evaluations") or []:
            lines.append(f"| evaluation at step {e['step']} | {_f(e['seconds'], 1)} s, {e['episodes']} episodes, {e['episode_steps']} episode-steps "
                         f"({_f(e['episode_steps_per_s'], 0)}/s), normalized score {_f(e.get('score'), 1)} |")
        if train.get("evaluation_skipped"):
            lines.append(f"| evaluations | skipped: {train['evaluation_skipped']} |")
        if proj:
            lines.append(f"| projected {proj['steps']:,}-step run with {proj['evaluations']} evaluations | **{_f(proj.get('total_hours'), 2)} h** "
                         f"(training {_f(proj['train_s'] / 3600, 2)} h; evaluations as measured {_f((proj.get('eval_s_as_measured') or 0) / 3600, 2)} h, "
                         f"if every episode ran 1000 steps {_f((proj.get('eval_s_upper_bound') or 0) / 3600, 2)} h) |")
        if train.get("stopped_early"):
            lines.append(f"| note | {train['stopped_early']} |")
    lines += ["", END]
    return "\n".join(lines)


def _step_summary(name: str, rec: dict) -> str:
    r = rec.get("result") or {}
    if rec.get("status") == "not_run":
        return rec.get("why", "")
    if name == "env":
        return f"{r.get('gpu') or 'no GPU'}; bf16 {r.get('bf16_supported')}; SDPA {r.get('sdpa_enabled')}" if r else "no result"
    if name == "pytest":
        if not r:
            return "no JUnit XML"
        failed = [c["name"] for c in r.get("cases", []) if c["status"] in ("failed", "error")]
        text = f"{r.get('passed')} passed, {r.get('skipped')} skipped, {r.get('failures')} failed, {r.get('errors')} errors"
        return text + (f" ({', '.join(failed[:6])})" if failed else "")
    if name == "perf":
        return ("complete" if not rec.get("partial") else "partial") + (f"; errors: {', '.join(r['errors'])}" if r.get("errors") else "") if r else "no JSON"
    if name == "train":
        proj = r.get("projection_100k") or {}
        return f"{r.get('steps_done')} steps, {_f(r.get('steps_per_s'))} steps/s, projected 100k run {_f(proj.get('total_hours'))} h" if r else "no result"
    return ""


def write_readme(block: str, path: Path = README) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from readme_section import write_section

    write_section(path, block, START, END)


# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="results directory (default $OUT, else ./gpu_check_out)")
    parser.add_argument("--time-limit", type=float, default=570.0, help="seconds for the whole run (default 570)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    parser.add_argument("--cpu-dry-run", action="store_true", help="the same pipeline on CPU at tiny sizes (well under a minute)")
    parser.add_argument("--from-json", default=None, metavar="FILE", help="render the README section from a gpu_check.json (no measuring)")
    parser.add_argument("--write-readme", action="store_true", help="with --from-json: replace the gpu-check section of the README")
    parser.add_argument("--readme", default=str(README), help="the README to write (default benchmarks/README.md)")
    parser.add_argument("--step", choices=("env", "train"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--step-deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        block = markdown(report, source=Path(args.from_json).name)
        print(block)
        if args.write_readme:
            write_readme(block, Path(args.readme))
            log(f"wrote the gpu-check section of {args.readme}")
        return 0
    if args.write_readme:
        parser.error("--write-readme needs --from-json FILE (the README is rendered from a saved run)")
    if args.step:
        fn = {"env": step_env, "train": step_train}[args.step]
        result = fn(args)
        write_json(Path(args.out) / "work" / f"step_{args.step}.json", result)
        return 0
    report = run_check(args)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
