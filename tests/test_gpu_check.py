"""benchmarks/gpu_check.py runs its whole pipeline on CPU (--cpu-dry-run) and renders its README
section from the JSON it wrote (the real run needs a lent GPU machine: docs/performance.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def test_cpu_dry_run_writes_the_json_and_the_readme_section(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-dry-run", "--out", str(out), "--time-limit", "240"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads((out / "gpu_check.json").read_text())
    steps = report["steps"]
    tails = {k: v.get("log_tail") for k, v in steps.items() if v.get("status") != "ok"}
    assert proc.returncode == 0 and report["ok"], (proc.stderr[-3000:], tails)
    assert report["kind"] == "cpu-dry-run" and report["schema"] == 1
    assert list(steps) == ["env", "pytest", "perf", "train"]
    for name, rec in steps.items():
        assert rec["status"] == "ok" and rec["seconds"] <= rec["timeout_s"] + 5, (name, rec)
        assert (out / rec["log"]).is_file()

    env_info = steps["env"]["result"]
    assert env_info["cuda_available"] is False and env_info["torch"]
    assert {"d3rlpy", "gymnasium", "mujoco", "minari", "ray"} <= set(env_info["packages"])
    assert all("imports" in p for p in env_info["packages"].values())

    junit = steps["pytest"]["result"]
    assert (out / "pytest_cuda.xml").is_file() and (out / "pytest_cuda.txt").is_file()
    assert junit["tests"] > 0 and junit["skipped"] == junit["tests"]  # no GPU here: every CUDA test skips
    assert all(c["status"] == "skipped" for c in junit["cases"])

    perf = steps["perf"]["result"]
    assert perf["tiny"] is True and perf["environment"]["device"] == "cpu"
    assert {"ours_fp32", "transformers"} <= set(perf["dt_step_ms"])
    assert "plain_fp32" in perf["lamo_step_s"] and perf["lamo_steps_per_s_by_precision"]
    assert "eval_steps_per_s" in perf or "evaluation throughput on Hopper-v5" in perf.get("skipped", {})

    train = steps["train"]["result"]
    assert train["steps_done"] == train["planned_steps"] == 20 and train["config"]["pretrained"] is False
    assert train["data"]["source"] in ("generated", "synthetic") and train["steps_per_s"] > 0
    assert [e["step"] for e in train["evaluations"]] in ([10, 20], [])  # none where mujoco is missing
    assert train["projection_100k"]["total_hours"] > 0

    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nkept\n\n<!-- gpu-check:start -->\nstale\n<!-- gpu-check:end -->\n\ntail\n")
    cmd = [sys.executable, str(SCRIPT), "--from-json", str(out / "gpu_check.json"), "--write-readme", "--readme", str(readme)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n") and text.rstrip().endswith("tail") and "stale" not in text
    assert text.count("<!-- gpu-check:start -->") == 1 and text.count("<!-- gpu-check:end -->") == 1
    assert "CPU dry run" in text and "| pytest | ok |" in text and "steps/s" in text
    again = subprocess.run(cmd[:-3], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    assert again.strip() in text  # the same JSON renders the same block


def test_readme_section_names_the_gpu_and_survives_missing_parts():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    report = {"kind": "gpu", "started": "2030-01-01T00:00:00+00:00", "elapsed_s": 500.0, "time_limit_s": 570.0, "steps": {
        "env": {"status": "ok", "seconds": 9.0, "budget_s": 30, "result": {
            "gpu": "NVIDIA H200", "gpu_memory_gib": 139.8, "gpu_capability": "9.0", "torch": "2.13.0", "torch_cuda": "12.8",
            "missing": ["d3rlpy", "mujoco"]}},
        "pytest": {"status": "failed", "seconds": 80.0, "budget_s": 120, "result": {
            "tests": 3, "passed": 1, "skipped": 1, "failures": 1, "errors": 0,
            "cases": [{"name": "test_x", "status": "failed"}]}},
        "perf": {"status": "timeout", "seconds": 180.0, "budget_s": 180, "partial": True, "result": {
            "dt_step_ms": {"ours_fp32": 5.0, "transformers": 9.0}, "dt_step_speedup_vs_best_peer": 1.8,
            "skipped": {"DT step against d3rlpy's DecisionTransformer": "d3rlpy does not import"}}},
        "train": {"status": "not_run", "budget_s": 230, "why": "only 3 s left"},
    }}
    block = gpu_check.markdown(report)
    assert block.startswith("<!-- gpu-check:start -->") and block.endswith("<!-- gpu-check:end -->")
    assert "**NVIDIA H200**" in block and "d3rlpy, mujoco" in block and "test_x" in block
    assert "| perf | timeout |" in block and "| train | not_run |" in block and "1.80x" in block
