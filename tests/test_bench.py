"""zoo-bench: suites and run grids, the protocol's score, the report (golden Markdown), resume after
SIGKILL, the Ray executor.

Most tests use a fake algorithm (written to a temporary module, referenced as ``fake_algo:FakeAlgo``)
that imports no torch, so worker processes start in well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from offline_zoo.bench.protocol import Protocol, aggregate_runs, score_run
from offline_zoo.bench.suites import RunSpec, Suite, SuiteError, list_suites, load_suite
from offline_zoo.cli import bench_main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "data" / "golden_report.md"
REFERENCE = ROOT / "benchmarks" / "paper_results.yaml"

FAKE_ALGO = '''
import json, os, time
from pathlib import Path
import numpy as np
from offline_zoo.callbacks import as_callback
from offline_zoo.evaluation import EvaluationResult
from offline_zoo.tasks import get_task


class FakeAlgo:
    """Deterministic stand-in: scores grow with the step count; logs every attempt and completion."""

    def __init__(self, task, ratio=1.0, seed=0, source=None, device="auto", sleep=0.0, variant="a", fail=False, n_steps=0, **config):
        if fail:
            raise RuntimeError("this run is configured to fail")
        self.task = get_task(task)
        self.ratio, self.seed, self.sleep, self.variant, self.n_steps = ratio, seed, float(sleep), variant, int(n_steps)
        self.config = {"sleep": sleep, "variant": variant, "n_steps": n_steps, **config}
        self.num_steps = 0
        self.dataset = None
        self.data_info = {"name": self.task.name, "source": source, "ratio": ratio, "selection_hash": f"h{seed}"}
        self._log("starts")

    def _log(self, kind):
        log = os.environ.get("FAKE_LOG")
        if log:
            Path(log).mkdir(parents=True, exist_ok=True)
            with open(Path(log) / f"{self.task.name}_{self.ratio:g}_{self.variant}_{self.seed}.{kind}", "a") as f:
                f.write(f"{os.getpid()}\\n")

    def learn(self, n_steps, callback=None, progress_bar=False):
        cb = as_callback(callback)
        cb.on_training_start(self, n_steps)
        for _ in range(n_steps):
            if self.sleep:
                time.sleep(self.sleep)
            self.num_steps += 1
            cb.on_step(self)
        cb.on_training_end(self)
        if self.num_steps == self.n_steps:
            self._log("done")
        return self

    def evaluate(self, n_episodes=None, target_returns=None, seed=0):
        base = self.num_steps * 0.5 + 3.0 * self.seed + (7.0 if self.variant == "b" else 0.0) + 10.0 * self.ratio
        targets = [76.0, 40.0]
        ret = {t: np.array([base + 2.0 * i, base + 2.0 * i + 1.0]) for i, t in enumerate(targets)}
        return EvaluationResult(ret, {t: np.array([100, 100]) for t in targets},
                                {t: self.task.normalized_score(v) for t, v in ret.items()}, task=self.task.name, seed=seed)

    def save(self, path):
        state = {"num_steps": self.num_steps, "task": self.task.name, "seed": self.seed, "ratio": self.ratio,
                 "config": self.config, "source": self.data_info["source"]}
        Path(path).write_text(json.dumps(state))
        return Path(path)

    @classmethod
    def load(cls, path, dataset=None, device="auto"):
        d = json.loads(Path(path).read_text())
        obj = cls(d["task"], d["ratio"], d["seed"], d["source"], **d["config"])
        obj.num_steps = d["num_steps"]
        return obj
'''


def _fake_suite(tmp: Path, sleep: float = 0.0, steps: int = 40, seeds=(0, 1), extra_algos: str = "", filename: str = "fake.yaml") -> Path:
    mod = tmp / "plugins"
    mod.mkdir(exist_ok=True)
    (mod / "fake_algo.py").write_text(FAKE_ALGO)
    suite = tmp / filename
    suite.write_text(textwrap.dedent(f"""\
        name: fake
        title: Fake suite
        reference: table1_sparse
        seeds: {list(seeds)}
        source: generated
        protocol: {{steps: {steps}, eval_every: 10, last_steps: 20}}
        algos:
          - {{label: LaMo, algo: "fake_algo:FakeAlgo", config: {{variant: b, sleep: {sleep}}}}}
          - {{label: DT, algo: "fake_algo:FakeAlgo", config: {{variant: a, sleep: {sleep}}}}}
        {extra_algos}
        groups:
          - name: ratio 1
            rows:
              - {{task: reacher2d-medium, ratio: 1.0}}
          - name: ratio < 1
            rows:
              - {{task: reacher2d-medium, ratio: 0.1}}
        """))
    return suite


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """The fake algorithm importable here and in every child process."""
    _fake_suite(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    return tmp_path


# -- suites ----------------------------------------------------------------------------------------
def test_every_suite_file_parses_and_expands():
    suites = list_suites()
    for name in ("quickstart", "cpu-paper", "smoke", "sparse", "atari", "mujoco", "ablation-embedding", "ablation-finetuning", "ablation-language-loss", "ablation-pretraining", "ablation-lm-quality"):
        assert name in suites, f"missing suite {name}"
        runs = load_suite(name).expand()
        assert runs and len({r.run_id for r in runs}) == len(runs), f"{name}: run ids collide"


def test_the_cpu_scale_suites_are_offline_and_generated_and_build_their_configs():
    from offline_zoo.bench.worker import check_configs

    quick = load_suite("quickstart").expand()
    assert {r.label for r in quick} == {"LaMo", "DT", "Wiki-RL", "CQL", "IQL", "TD3+BC", "BC"} and len(quick) == 7
    paper = load_suite("cpu-paper").expand()
    assert len(paper) == 6 * 8 * 3 and {r.label for r in paper} >= {"LaMo", "LaMo w/o PT", "DT"}
    for runs in (quick, paper):
        assert {r.source for r in runs} == {"generated"}
        for r in runs:
            if r.algo in ("lamo", "wikirl"):
                assert r.config["lm"] == "embedded", r      # the shipped LM: no network
        check_configs(runs)                               # every config builds (types, ranges)
    nopt = [r for r in paper if r.label == "LaMo w/o PT"]
    assert nopt and all(r.config["pretrained"] is False for r in nopt)


def test_table1_grid_is_9_rows_x_7_algos_x_3_seeds():
    suite = load_suite("sparse")
    runs = suite.expand()
    assert len(runs) == 9 * 7 * 3
    rows = {(r.task, r.ratio) for r in runs}
    assert rows == {
        ("kitchen-partial", 0.01), ("kitchen-partial", 0.1), ("kitchen-partial", 1.0),
        ("kitchen-complete", 0.3), ("kitchen-complete", 0.5), ("kitchen-complete", 1.0),
        ("reacher2d-medium", 0.1), ("reacher2d-medium", 0.3), ("reacher2d-medium", 1.0),
    }
    assert [a.label for a in suite.algos] == ["LaMo", "DT", "Wiki-RL", "CQL", "IQL", "TD3+BC", "BC"]
    assert {r.algo for r in runs} == {"lamo", "dt", "wikirl", "cql", "iql", "td3+bc", "bc"}
    assert {r.seed for r in runs} == {0, 1, 2}
    medium = {(r.task, r.ratio) for r in runs if r.config.get("lm") == "gpt2-medium"}
    assert medium == {("kitchen-partial", 1.0), ("kitchen-complete", 0.3)}
    assert all(r.label == "LaMo" for r in runs if r.config.get("lm") == "gpt2-medium")
    reacher = next(r for r in runs if r.task == "reacher2d-medium")
    kitchen = next(r for r in runs if r.task == "kitchen-partial")
    assert (reacher.protocol.steps, reacher.protocol.eval_every, reacher.protocol.last_steps) == (37_500, 2_500, 12_500)
    assert (kitchen.protocol.steps, kitchen.protocol.eval_every, kitchen.protocol.last_steps) == (100_000, 2_500, 20_000)
    assert reacher.source == "generated" and kitchen.source == "minari"


def test_tables_2_and_3_grids():
    atari = load_suite("atari").expand()
    assert len(atari) == 6 * 7 * 3
    assert {r.label for r in atari} == {"LaMo", "DT", "Wiki-RL", "CQL", "BCQ", "NFQ", "BC"}
    brk = next(r for r in atari if r.task == "breakout-medium")
    assert (brk.protocol.steps, brk.protocol.last_steps) == (50_000, 10_000)
    assert {r.source for r in atari} == {"d4rl-atari"}
    assert all(r.subset_seed == r.seed for r in atari)  # Atari: a subset per run, as released
    with pytest.raises(SuiteError, match="'breakout-medium' has no 'minari' source.*'breakout-expert'"):
        load_suite("atari").expand(source="minari")  # Minari's expert data never stands in for medium
    mujoco = load_suite("mujoco").expand()
    assert len(mujoco) == 12 * 7 * 3
    assert {r.subset_seed for r in mujoco} == {0}        # one subset per (task, ratio) for all seeds
    assert RunSpec.from_dict(mujoco[1].to_dict()).run_id == mujoco[1].run_id
    assert {r.ratio for r in mujoco} == {1.0, 0.1, 0.01, 0.005}


def test_filters_scale_and_steps():
    suite = load_suite("sparse")
    runs = suite.expand(algos=["td3plusbc", "lamo"], tasks=["reacher2d"], seeds=[5], scale=0.01)
    assert {(r.label, r.task, r.seed) for r in runs} == {(a, "reacher2d-medium", 5) for a in ("LaMo", "TD3+BC")}
    assert len(runs) == 3 * 2
    p = runs[0].protocol
    assert (p.steps, p.eval_every, p.last_steps) == (375, 25, 125)
    k = suite.expand(tasks=["kitchen"], algos=["DT"], steps=400)[0].protocol
    assert (k.steps, k.eval_every, k.last_steps) == (400, 10, 80)
    assert Protocol(100, 40, 10).scaled(0.5) == Protocol(50, 20, 20)  # the window keeps >= 1 interval


def test_run_ids_are_stable_and_distinct():
    a = load_suite("sparse").expand()
    b = load_suite("sparse").expand()
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert RunSpec.from_dict(a[0].to_dict()).run_id == a[0].run_id
    scaled = load_suite("sparse").expand(scale=0.1)
    assert not {r.run_id for r in a} & {r.run_id for r in scaled}


def test_bad_input_gives_suggestions():
    with pytest.raises(SuiteError, match="Did you mean 'sparse'"):
        load_suite("sprase")
    with pytest.raises(SuiteError, match="Did you mean 'LaMo'"):
        load_suite("sparse").expand(algos=["lamoo"])
    with pytest.raises(SuiteError, match="hopper"):
        load_suite("sparse").expand(tasks=["hopper"])
    base = {"algos": ["DT"], "rows": [{"task": "hoper-medium"}]}
    with pytest.raises(SuiteError, match="hopper-medium"):
        Suite.from_dict(base, name="x")
    with pytest.raises(SuiteError, match="outside"):
        Suite.from_dict({"algos": ["DT"], "rows": [{"task": "hopper-medium", "ratio": 2}]}, name="x")
    with pytest.raises(SuiteError, match="did you mean 'ratio'"):
        Suite.from_dict({"algos": ["DT"], "rows": [{"task": "hopper-medium", "ratoi": 0.1}]}, name="x")
    with pytest.raises(SuiteError, match="steps"):
        Suite.from_dict({"algos": ["DT"], "rows": [{"task": "hopper-medium"}], "protocol": {"steps": 0}}, name="x")


def test_cli_dry_run_and_errors(capsys):
    assert bench_main(["--suite", "sparse", "--dry-run", "--out", "/nonexistent/zoo"]) == 0
    assert "189 runs (9 task/ratio rows x 7 algorithms x 3 seeds" in capsys.readouterr().out
    assert bench_main(["--suite", "sprase", "--dry-run"]) == 2
    assert "Did you mean 'sparse'" in capsys.readouterr().err
    assert bench_main(["--suite", "sparse", "--algos", "lamoo", "--dry-run"]) == 2
    assert bench_main(["report", "/nonexistent/zoo"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_validates_configs_devices_and_the_output_directory(tmp_path, capsys):
    cases = [
        (["--config", "DT.bach_size=8"], r"config of DT on reacher2d-medium: unknown DTConfig field\(s\) 'bach_size'.*did you mean 'batch_size'"),
        (["--config", "DT.n_layer=two"], r"DTConfig.n_layer='two' has the wrong type \(str\): it must be an integer"),
        (["--config", "CQL.batch_size=-4"], r"CQLConfig.batch_size=-4 is out of range"),
        (["--device", "tpu"], r"--device: device='tpu' is not supported"),
    ]
    import re

    for extra, message in cases:
        assert bench_main(["--suite", "smoke", "--dry-run", "--out", str(tmp_path / "o"), *extra]) == 2
        assert re.search(message, capsys.readouterr().err), extra
    a_file = tmp_path / "afile"
    a_file.write_text("")
    for dry in (["--dry-run"], []):
        assert bench_main(["--suite", "smoke", "--out", str(a_file), "--algos", "DT", "--seeds", "0", "--no-progress", *dry]) == 2
        assert f"--out {a_file}: exists and is not a directory" in capsys.readouterr().err
    assert bench_main(["--suite", "smoke", "--out", str(a_file / "sub"), "--algos", "DT", "--seeds", "0", "--no-progress"]) == 2
    assert "cannot create it" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # dry runs create nothing


# -- protocol --------------------------------------------------------------------------------------
def _curve(values_by_target: dict[str, list[float]], every: int = 10) -> list[dict]:
    n = len(next(iter(values_by_target.values())))
    return [{"step": every * (i + 1), "scores": {t: v[i] for t, v in values_by_target.items()}} for i in range(n)]


def test_score_aggregation_matches_hand_computation():
    p = Protocol(steps=100, eval_every=10, last_steps=30)  # window (70, 100]: steps 80, 90, 100
    assert [s for s in p.eval_steps if p.in_window(s)] == [80, 90, 100]
    #                  10  20  30  40  50  60  70  80  90  100
    seed0 = _curve({"76": [1, 2, 3, 4, 5, 6, 90, 10, 20, 30], "40": [0, 0, 0, 0, 0, 0, 0, 25, 25, 25]})
    seed1 = _curve({"76": [1, 2, 3, 4, 5, 6, 7, 14, 16, 18], "40": [0, 0, 0, 0, 0, 0, 0, 40, 40, 10]})
    r0, r1 = score_run(seed0, p), score_run(seed1, p)
    # seed 0: "76" (10 + 20 + 30) / 3 = 20, "40" = 25 -> best 40; seed 1: "76" = 16, "40" = 30
    assert r0["target_scores"] == {"76": 20.0, "40": 25.0} and r0["score"] == 25.0 and r0["best_target"] == "40"
    assert r1["target_scores"] == {"76": 16.0, "40": 30.0}
    assert r0["final_scores"] == {"76": 30.0, "40": 25.0} and r0["final_score"] == 25.0
    assert r0["best_scores"]["76"] == 90.0 and r0["best_steps"]["76"] == 70  # the best evaluation may be outside the window
    assert r0["n_window_evals"] == 3
    cell = aggregate_runs([r0, r1], seeds=[0, 1])
    # cell target: mean("76") = 18 < mean("40") = 27.5; std over seeds (population) of 25, 30 = 2.5
    assert cell.target == "40" and cell.mean == pytest.approx(27.5) and cell.std == pytest.approx(2.5)
    assert cell.final_mean == pytest.approx((25 + 10) / 2) and cell.best_mean == pytest.approx((25 + 40) / 2)
    per_run = aggregate_runs([r0, r1], target_selection="run")
    assert per_run.mean == pytest.approx(27.5)
    markov = score_run(_curve({"none": [5, 5, 5, 5, 5, 5, 5, 1, 2, 6]}), p)
    assert markov["score"] == pytest.approx(3.0) and markov["best_target"] == "none"
    with pytest.raises(ValueError, match="window"):
        score_run(_curve({"none": [1, 2, 3]}), p)


# -- report ----------------------------------------------------------------------------------------
def _write_synthetic_results(out: Path) -> None:
    """A results directory as zoo-bench writes it, with hand-made curves (no training)."""
    from offline_zoo.bench.store import BENCH_FILE, CURVE_FILE, RESULT_FILE, RUN_FILE, atomic_write_json, runs_dir

    suite = Suite.from_dict({
        "name": "golden", "title": "Golden table", "reference": "table1_sparse", "seeds": [0, 1, 2],
        "protocol": {"steps": 100, "eval_every": 10, "last_steps": 30},
        "algos": ["LaMo", "DT", "CQL"],
        "groups": [
            {"name": "ratio 1", "rows": [{"task": "kitchen-partial", "ratio": 1.0}, {"task": "reacher2d-medium", "ratio": 1.0}]},
            {"name": "ratio < 1", "rows": [{"task": "reacher2d-medium", "ratio": 0.1}]},
        ],
    }, name="golden")
    specs = suite.expand()
    atomic_write_json(out / BENCH_FILE, {
        "settings": {"suite": "golden", "scale": 0.001, "steps": None, "source": None},
        "suite": suite.describe(),
        "planned": {s.run_id: s.to_dict() for s in specs},
        "invocations": [{"argv": ["zoo-bench", "--suite", "golden", "--scale", "0.001"], "executor": {"kind": "local", "workers": 2, "threads_per_run": 1}}],
    })
    offsets = {"LaMo": 30.0, "DT": 20.0, "CQL": 10.0}
    for s in specs:
        if (s.label, s.task, s.ratio) == ("DT", "reacher2d-medium", 0.1):
            continue  # never run: "— (paper)"
        if (s.label, s.task, s.seed) == ("CQL", "kitchen-partial", 2):
            continue  # one seed missing: [n=2]
        base = offsets[s.label] + 2.0 * s.seed + 5.0 * s.ratio
        steps = s.protocol.eval_steps
        if s.label == "CQL":
            curve = [{"step": st, "scores": {"none": base + st / 100}} for st in steps]
        else:
            curve = [{"step": st, "scores": {"76": base + st / 50, "40": base + 1.0 + (s.seed == 2) * 4.0}} for st in steps]
        d = runs_dir(out) / s.dirname
        atomic_write_json(d / CURVE_FILE, {"evaluations": curve})
        atomic_write_json(d / RUN_FILE, {
            "spec": s.to_dict(), "status": "finished", "device": "cpu",
            "host": {"cpu": "Test CPU", "cpus": 2, "torch_threads": 1, "gpu": None},
            "versions": {"offline-zoo": "0.1.0", "torch": "2.x", "d3rlpy": "2.8.1", "git_commit": "0123456789abcdef"},
        })
        atomic_write_json(d / RESULT_FILE, {
            "run_id": s.run_id, "task": s.task, "ratio": s.ratio, "label": s.label, "algo": s.algo, "seed": s.seed,
            **score_run(curve, s.protocol), "source": s.source,
        })


def test_report_matches_golden_markdown(tmp_path):
    from offline_zoo.bench.report import build_report

    _write_synthetic_results(tmp_path / "out")
    rep = build_report(tmp_path / "out", reference=REFERENCE)
    md = rep.markdown()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(md)
    assert md == GOLDEN.read_text(), "report Markdown differs from tests/data/golden_report.md (UPDATE_GOLDEN=1 to rewrite after checking)"
    # a few cells by hand: LaMo on reacher2d 1.0, seeds 0, 1, 2 -> base 35, 37, 39; window steps 80, 90, 100:
    # target "76" = base + 1.8 on average -> 36.8, 38.8, 40.8 (mean 38.8); target "40" = base + 1 (+4 for
    # seed 2) -> 36, 38, 44 (mean 39.33): the cell reports "40" for every seed
    cell = rep.cells[("reacher2d-medium", 1.0, "LaMo")]
    assert cell.target == "40" and cell.mean == pytest.approx(118 / 3) and cell.std == pytest.approx(np.std([36.0, 38.0, 44.0]))
    assert "| reacher2d-medium | 1 | 39.3 ± 3.4 (33.0; +6.3) |" in md
    # per run, seeds 0 and 1 would pick "76": (36.8 + 38.8 + 44) / 3
    per_run = build_report(tmp_path / "out", reference=REFERENCE, target_selection="run")
    assert per_run.cells[("reacher2d-medium", 1.0, "LaMo")].mean == pytest.approx((36.8 + 38.8 + 44.0) / 3)
    assert rep.cells[("kitchen-partial", 1.0, "CQL")].n == 2
    csv_text = rep.csv()
    assert csv_text.splitlines()[0].startswith("suite,group,task,ratio,algo,n_seeds")
    assert "golden,ratio 1,reacher2d-medium,1.0,LaMo,3,0 1 2,40,39.333," in csv_text


def test_report_cli_writes_markdown_csv_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _write_synthetic_results(tmp_path / "out")
    md, csv_file, plots = tmp_path / "README.md", tmp_path / "r.csv", tmp_path / "plots"
    assert bench_main(["report", str(tmp_path / "out"), "--markdown", str(md), "--csv", str(csv_file), "--plots", str(plots), "--reference", str(REFERENCE)]) == 0
    text = md.read_text()
    assert "do not edit by hand" in text and "Golden table" in text and "![score_vs_ratio](plots/score_vs_ratio.png)" in text
    assert (plots / "score_vs_ratio.png").stat().st_size > 1000
    assert (plots / "curves_reacher2d-medium.png").is_file() and (plots / "targets_reacher2d-medium_r1.png").is_file()
    assert "LaMo vs DT" in capsys.readouterr().out
    # a new report keeps the sections other tools maintain in the file (perf.py's), replaces its own
    md.write_text(text.replace("Golden table", "Stale table") + "\n<!-- perf:start -->\n## Performance\n| x | 1.4x |\n<!-- perf:end -->\n")
    assert bench_main(["report", str(tmp_path / "out"), "--markdown", str(md), "--reference", str(REFERENCE), "--quiet"]) == 0
    again = md.read_text()
    assert "Stale table" not in again and again.count("Golden table") == text.count("Golden table")
    assert again.count("<!-- perf:start -->\n## Performance\n| x | 1.4x |\n<!-- perf:end -->") == 1


def _write_scored_results(out, algos, rows, score, seeds=(0, 1)):
    """Finished runs of a made-up suite whose every evaluation scores ``score(label, task, ratio, seed)``."""
    from offline_zoo.bench import Suite, score_run
    from offline_zoo.bench.store import atomic_write_json

    suite = Suite.from_dict({"name": "made-up", "reference": "table1_sparse", "algos": algos, "seeds": list(seeds),
                             "protocol": {"steps": 20, "eval_every": 10, "last_steps": 10}, "rows": rows})
    atomic_write_json(out / "bench.json", {"suite": suite.describe(), "planned": {s.run_id: s.to_dict() for s in suite.expand()}})
    for s in suite.expand():
        curve = [{"step": t, "scores": {"none": score(s.label, s.task, s.ratio, s.seed)}} for t in s.protocol.eval_steps]
        atomic_write_json(out / "runs" / s.dirname / "curve.json", {"evaluations": curve})
        atomic_write_json(out / "runs" / s.dirname / "result.json", {**s.to_dict(), **score_run(curve, s.protocol)})


def test_report_table_fits_100_columns_with_seven_algorithms(tmp_path, monkeypatch):
    """A 100-column terminal gets the compact layout: no line wider than 100, every value still there."""
    from offline_zoo.bench.report import build_report

    algos = ["LaMo", "DT", "Wiki-RL", "CQL", "IQL", "TD3+BC", "BC"]
    out = tmp_path / "out"
    _write_scored_results(out, algos, [{"task": "reacher2d-medium", "ratios": [0.1, 1.0]}],
                          lambda label, task, ratio, seed: 10.0 + algos.index(label) + 0.25 * seed)
    monkeypatch.setenv("COLUMNS", "100")
    from offline_zoo.bench.command import _console

    console = _console()
    with console.capture() as cap:
        build_report(out, reference=REFERENCE).print_table(console)
    text = cap.get()
    lines = text.splitlines()
    assert console.width == 100 and max(map(len, lines)) <= 100
    header = next(line for line in lines if "Ratio" in line)
    assert all(a in header for a in algos)          # no header cut to "Wiki-…"
    assert "16.1" in text and "±0.1" in text         # BC's 16.0 / 16.25 -> 16.1 ± 0.1 (mean, then std line)
    assert "p 14.0" in text                          # BC's paper value on reacher2d 1.0 (Table 1)
    monkeypatch.delenv("COLUMNS")
    console = _console()                             # piped output without COLUMNS: the full layout
    with console.capture() as cap:
        build_report(out, reference=REFERENCE).print_table(console)
    assert "16.1 ± 0.1" in cap.get() and "paper 14.0" in cap.get()


# -- running ---------------------------------------------------------------------------------------
def test_inline_suite_resume_settings_and_failures(plugin_path):
    from offline_zoo.bench.executors import InlineExecutor
    from offline_zoo.bench.runner import run_suite

    suite_file = _fake_suite(plugin_path, extra_algos='  - {label: Broken, algo: "fake_algo:FakeAlgo", config: {fail: true}}')
    out = plugin_path / "out"
    res = run_suite(load_suite(suite_file), out, executor=InlineExecutor(), progress=False, say=lambda m: None)
    assert len(res.planned) == 12 and len(res.finished) == 8 and len(res.failed) == 4
    run = json.loads(next((out / "runs").glob("*Broken*/run.json")).read_text())
    assert run["status"] == "failed" and "configured to fail" in run["error"] and "Traceback" in run["traceback"]
    again = run_suite(load_suite(suite_file), out, resume=True, executor=InlineExecutor(), progress=False, say=lambda m: None)
    assert len(again.already_finished) == 8 and set(again.outcomes) == set(res.failed)  # only the failed ones again
    with pytest.raises(SuiteError, match="--resume"):
        run_suite(load_suite(suite_file), out, executor=InlineExecutor(), progress=False, say=lambda m: None)
    with pytest.raises(SuiteError, match="different settings"):
        run_suite(load_suite(suite_file), out, resume=True, steps=20, executor=InlineExecutor(), progress=False, say=lambda m: None)


def test_damaged_run_files_are_detected_named_and_rerun(plugin_path):
    from offline_zoo.bench.executors import InlineExecutor
    from offline_zoo.bench.report import build_report
    from offline_zoo.bench.runner import execute_run, run_suite
    from offline_zoo.bench.store import scan_runs

    suite_file = _fake_suite(plugin_path, seeds=(0,))
    out = plugin_path / "out"
    quiet = dict(executor=InlineExecutor(), progress=False, say=lambda m: None)
    first = run_suite(load_suite(suite_file), out, **quiet)
    assert len(first.finished) == 4
    runs = sorted((out / "runs").iterdir())
    (runs[0] / "result.json").write_text('{"run_id": "x", "sco')  # torn
    (runs[1] / "result.json").write_text("{}")                      # incomplete
    records = scan_runs(out)
    assert sorted(r.status for r in records.values()) == ["damaged", "damaged", "finished", "finished"]
    text = build_report(out).markdown()
    assert f"Damaged: {runs[0] / 'result.json'} is damaged (not valid JSON)" in text
    assert "is incomplete (no " in text and "2 finished" in text
    again = run_suite(load_suite(suite_file), out, resume=True, **quiet)
    assert len(again.already_finished) == 2 and len(again.outcomes) == 2  # exactly the damaged two ran again
    assert all(r.finished for r in scan_runs(out).values())
    assert (runs[0] / "result.json.damaged").is_file()

    # a damaged checkpoint: the run starts again instead of failing at every resume
    spec = next(s for s in load_suite(suite_file).expand() if s.run_id == scan_runs(out)[next(iter(scan_runs(out)))].run_id)
    run_dir = out / "runs" / spec.dirname
    (run_dir / "result.json").unlink()
    (run_dir / "checkpoint.zip").write_text('{"num_st')
    assert execute_run(spec, out)["status"] == "finished"
    assert (run_dir / "checkpoint.zip.damaged").is_file()
    assert "the run started again from step 0" in json.loads((run_dir / "run.json").read_text())["notes"][0]

    # a damaged bench.json: the settings cannot be checked, so nothing is resumed or reported
    (out / "bench.json").write_text('{"settings": {"suite": "fa')
    with pytest.raises(SuiteError, match=r"bench.json is damaged.*runs of different settings could be mixed"):
        run_suite(load_suite(suite_file), out, resume=True, steps=20, **quiet)
    with pytest.raises(SuiteError, match=r"bench.json is damaged \(not valid JSON\): restore it"):
        build_report(out)


def test_config_overrides_reach_the_runs_and_pin_the_directory(plugin_path, capsys):
    from offline_zoo.bench.executors import InlineExecutor
    from offline_zoo.bench.runner import run_suite
    from offline_zoo.bench.suites import parse_config_overrides

    suite = load_suite(_fake_suite(plugin_path))
    overrides = parse_config_overrides(["*.sleep=0", "lamo.variant=a", "DT.extra=[1, 2]"])
    runs = suite.expand(seeds=[0], config=overrides)
    by_label = {r.label: r.config for r in runs}
    # '*' reaches every algorithm, a named one wins over '*' and over the suite's own value
    assert by_label["LaMo"] == {"variant": "a", "sleep": 0}
    assert by_label["DT"] == {"variant": "a", "sleep": 0, "extra": [1, 2]}
    plain = {r.label: r.run_id for r in suite.expand(seeds=[0])}
    assert all(r.run_id != plain[r.label] for r in runs)  # another config is another run
    with pytest.raises(SuiteError, match="is not in suite 'fake'.*Its algorithms: LaMo, DT"):
        suite.expand(config={"cql": {"batch_size": 1}})
    for bad in (["lm=embedded"], ["LaMo.=1"], ["LaMo.lm"], ["LaMo.x=[1,"]):
        with pytest.raises(SuiteError, match="--config"):
            parse_config_overrides(bad)

    out = plugin_path / "out"
    res = run_suite(suite, out, seeds=[0], config=overrides, executor=InlineExecutor(), progress=False, say=lambda m: None)
    assert res.ok and len(res.finished) == 4
    configs = {json.loads(f.read_text())["spec"]["label"]: json.loads(f.read_text())["spec"]["config"] for f in (out / "runs").glob("*/run.json")}
    assert configs["LaMo"]["variant"] == "a" and configs["DT"]["extra"] == [1, 2]
    with pytest.raises(SuiteError, match="different settings.*config"):
        run_suite(suite, out, resume=True, seeds=[0], executor=InlineExecutor(), progress=False, say=lambda m: None)
    again = run_suite(suite, out, resume=True, seeds=[0], config=overrides, executor=InlineExecutor(), progress=False, say=lambda m: None)
    assert len(again.already_finished) == 4 and not again.outcomes

    assert bench_main(["--suite", "sparse", "--dry-run", "--tasks", "reacher2d", "--algos", "LaMo", "--seeds", "0",
                       "--config", "LaMo.lm=embedded", "--out", str(plugin_path / "dry"), "--config", "LaMo.lora_rank=4"]) == 0
    assert capsys.readouterr().out.count("lm=embedded, lora_rank=4") == 3  # the 3 Reacher2d rows
    assert bench_main(["--suite", "sparse", "--dry-run", "--config", "LaMo:lm=embedded"]) == 2
    assert "write ALGO.FIELD=VALUE" in capsys.readouterr().err


def test_cwd_modules_resolve_only_when_asked_and_main_classes_are_refused_for_workers(tmp_path, monkeypatch):
    from offline_zoo.algos import register_algo
    from offline_zoo.bench.command import add_import_path
    from offline_zoo.bench.runner import check_algos, resolve_algo

    (tmp_path / "cwd_algo_mod.py").write_text("class Mine:\n    name = 'mine'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.setenv("PYTHONPATH", "")
    with pytest.raises(KeyError, match=r"cwd_algo_mod is in the current directory, which is not searched: pass --import-path \."):
        resolve_algo("cwd_algo_mod:Mine")  # importing runs code: the cwd is not searched by default
    assert str(tmp_path) not in sys.path
    add_import_path(".")  # zoo-bench --import-path .
    assert resolve_algo("cwd_algo_mod:Mine").__name__ == "Mine"
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)  # the workers see it too

    notebook_class = register_algo(type("NotebookAlgo", (), {"__module__": "__main__", "name": "notebook-algo-test"}))
    spec = RunSpec("x", "", "reacher2d-medium", 1.0, "NB", "notebook-algo-test", 0, {}, "generated", Protocol(20, 10, 10))
    check_algos([spec], in_process=True)  # fine in this process
    with pytest.raises(SuiteError, match="defined in __main__.*imports:"):
        check_algos([spec], in_process=False)
    assert notebook_class.__module__ == "__main__"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and PR_SET_PDEATHSIG")
def test_resume_after_sigkill_loses_nothing_and_runs_nothing_twice(plugin_path):
    from offline_zoo.bench.executors import InlineExecutor
    from offline_zoo.bench.report import build_report
    from offline_zoo.bench.runner import run_suite

    suite_file = _fake_suite(plugin_path, sleep=0.02)  # 2 rows x 2 algos x 2 seeds = 8 runs of ~0.8 s
    out = plugin_path / "out"
    cmd = [sys.executable, "-m", "offline_zoo.bench", "--suite", str(suite_file), "--out", str(out), "--workers", "2", "--no-progress", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 60
    runs = out / "runs"
    while time.monotonic() < deadline:  # kill once a run finished and another is mid-way, past a checkpoint
        finished = list(runs.glob("*/result.json")) if runs.exists() else []
        midway = [d for d in runs.glob("*")] if runs.exists() else []
        midway = [d for d in midway if (d / "checkpoint.zip").exists() and not (d / "result.json").exists()]
        if finished and midway:
            break
        if proc.poll() is not None:
            pytest.fail(f"the suite ended before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    else:
        pytest.fail("no run reached a checkpoint in time")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    workers = [json.loads((d / "run.json").read_text()).get("pid") for d in runs.glob("*") if (d / "run.json").exists()]
    t_end = time.monotonic() + 5
    while any(_alive(p) for p in workers if p) and time.monotonic() < t_end:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers if p), "workers survived the killed suite"
    n_finished_before = len(list(runs.glob("*/result.json")))
    assert 1 <= n_finished_before < 8
    # a run can be killed after its training completed but before result.json (its "finished"
    # mark) was written: it is unfinished and trains its last chunk again on resume
    done_at_kill = {f.name for f in (plugin_path / "log").glob("*.done")}

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{n_finished_before} of 8 runs already finished" in resumed.stdout
    records = [json.loads((d / "run.json").read_text()) for d in runs.glob("*")]
    assert len(records) == 8 and all(r["status"] == "finished" for r in records)
    assert any((r.get("resumed_from_step") or 0) > 0 for r in records), "no run continued from its checkpoint"
    for d in runs.glob("*"):
        steps = [e["step"] for e in json.loads((d / "curve.json").read_text())["evaluations"]]
        assert steps == [10, 20, 30, 40], f"{d.name}: evaluations {steps}"
    log = plugin_path / "log"
    done = sorted(log.glob("*.done"))
    twice = [f.name for f in done if len(f.read_text().split()) > 1]
    assert len(done) == 8 and all(len(f.read_text().split()) <= 2 for f in done), "a run was completed three times"
    assert set(twice) <= done_at_kill and len(twice) <= len(done_at_kill) - n_finished_before, f"a finished run was completed twice: {twice}"

    # the same table as an uninterrupted run (without the sleep, which changes nothing else)
    ref = plugin_path / "uninterrupted"
    run_suite(load_suite(_fake_suite(plugin_path, filename="fast.yaml")), ref, executor=InlineExecutor(), progress=False, say=lambda m: None)
    assert build_report(out, reference=REFERENCE).csv() == build_report(ref, reference=REFERENCE).csv()


def test_ray_executor_runs_a_tiny_suite(plugin_path):
    ray = pytest.importorskip("ray")
    from offline_zoo.bench.executors import RayExecutor, RayStartError, loopback_problem, start_ray
    from offline_zoo.bench.runner import run_suite

    problem = loopback_problem()
    if problem is not None:
        pytest.skip(f"a local Ray instance cannot start here: {problem}")
    suite_file = _fake_suite(plugin_path, seeds=(0,))
    try:  # workers inherit PYTHONPATH
        start_ray(ray, num_cpus=2, include_dashboard=False, log_to_driver=False, timeout=120)
    except RayStartError as e:
        pytest.skip(f"a local Ray instance cannot start here: {e}")
    try:
        res = run_suite(load_suite(suite_file), plugin_path / "out", executor=RayExecutor(cpus_per_run=1), progress=False, say=lambda m: None)
    finally:
        ray.shutdown()
    assert res.ok and len(res.finished) == 4
    results = [json.loads(p.read_text()) for p in (plugin_path / "out" / "runs").glob("*/result.json")]
    assert sorted(r["label"] for r in results) == ["DT", "DT", "LaMo", "LaMo"]


class _StuckRay:
    """A stand-in for the ray module whose init never returns (Ray retrying an unreachable GCS)."""

    def __init__(self, error: BaseException | None = None):
        self.error, self.calls = error, []
        import threading

        self.release = threading.Event()

    def init(self, address=None, **kwargs):
        self.calls.append((address, kwargs))
        if self.error is not None:
            raise self.error
        self.release.wait(60)

    def is_initialized(self):
        return False


def test_ray_start_gives_up_with_a_clear_message(monkeypatch, capsys, plugin_path):
    from offline_zoo.bench import executors
    from offline_zoo.bench.executors import RayStartError, start_ray

    # loopback down (as in a fresh network namespace): no local Ray instance is even tried
    monkeypatch.setattr(executors, "loopback_problem", lambda: "TCP on the loopback interface (127.0.0.1) does not work here: down")
    fake = _StuckRay()
    with pytest.raises(RayStartError, match="cannot start a local Ray instance: TCP on the loopback.*--executor local"):
        start_ray(fake)
    assert fake.calls == []
    # zoo-bench says so and exits 2 instead of hanging
    monkeypatch.setattr(executors, "_import_ray", lambda: fake)
    assert bench_main(["--suite", str(_fake_suite(plugin_path, seeds=(0,))), "--out", str(plugin_path / "o"),
                       "--executor", "ray", "--no-progress"]) == 2
    assert "cannot start a local Ray instance" in capsys.readouterr().err
    # an init that keeps retrying is abandoned at the deadline; one that fails is reported
    monkeypatch.setattr(executors, "loopback_problem", lambda: None)
    t0 = time.monotonic()
    with pytest.raises(RayStartError, match=r"could not join the Ray cluster at 10\.0\.0\.1:6379 within 0\.5 s"):
        start_ray(fake, "10.0.0.1:6379", timeout=0.5)
    assert time.monotonic() - t0 < 5 and fake.calls[-1][0] == "10.0.0.1:6379"
    fake.release.set()
    with pytest.raises(RayStartError, match="could not start a local Ray instance: ConnectionError: no GCS"):
        start_ray(_StuckRay(ConnectionError("no GCS")), timeout=5)
    monkeypatch.setenv("OFFLINE_ZOO_RAY_START_TIMEOUT", "soon")
    with pytest.raises(RayStartError, match="OFFLINE_ZOO_RAY_START_TIMEOUT='soon' is not a number"):
        start_ray(fake)


def test_ray_start_stops_on_ctrl_c():
    """SIGINT while ray.init retries: KeyboardInterrupt in the caller, promptly."""
    code = textwrap.dedent("""
        import os, signal, threading, time
        from offline_zoo.bench import executors
        # Python's own Ctrl-C behaviour, whatever disposition this child inherited from the test run
        signal.signal(signal.SIGINT, signal.default_int_handler)
        entered, sent = threading.Event(), []
        class Stuck:
            def init(self, address=None, **kw):
                entered.set()
                threading.Event().wait(60)
        def interrupt():  # once ray.init is retrying (not on a timer: a loaded machine is slow)
            entered.wait(30)
            time.sleep(0.2)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)
        executors.loopback_problem = lambda: None
        threading.Thread(target=interrupt, daemon=True).start()
        try:
            executors.start_ray(Stuck(), timeout=60)
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - sent[0]:.1f} s")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("interrupted after") and float(proc.stdout.split()[2]) < 5


def test_remote_run_without_shared_storage_returns_its_files(plugin_path):
    """A Ray task on a node that cannot see OUT runs in a temporary directory and returns the files."""
    from offline_zoo.bench.executors import _ray_task, _store_returned_files
    from offline_zoo.bench.store import scan_runs

    spec = load_suite(_fake_suite(plugin_path, seeds=(0,))).expand(algos=["DT"], ratios=[1.0])[0]
    outcome = _ray_task(spec.to_dict(), str(plugin_path / "not-shared"), None, "cpu", True, 1)
    assert outcome["status"] == "finished" and {"result.json", "curve.json", "run.json", "checkpoint.zip"} <= set(outcome["files"])
    _store_returned_files(plugin_path / "out", spec, outcome["files"])
    rec = scan_runs(plugin_path / "out")[spec.run_id]
    assert rec.finished and rec.result["score"] == outcome["score"]


def test_real_dt_run_resumes_exactly_from_its_checkpoint(tmp_path, monkeypatch):
    """A real algorithm interrupted after a checkpoint and resumed ends with the uninterrupted weights."""
    monkeypatch.setenv("OFFLINE_ZOO_HOME", str(tmp_path / "home"))
    from offline_zoo.algos import OfflineAlgo
    from offline_zoo.bench.runner import execute_run
    from offline_zoo.data.generation import generate_dataset

    generate_dataset("reacher2d-medium", n_episodes=3)
    suite = Suite.from_dict({
        "name": "exact", "algos": ["DT"], "seeds": [0], "source": "generated",
        "config": {"DT": {"context_len": 5, "batch_size": 8, "hidden_size": 16, "n_layer": 1, "n_head": 1, "warmup_steps": 5}},
        "protocol": {"steps": 30, "eval_every": 10, "last_steps": 20, "eval_episodes": 1},
        "rows": [{"task": "reacher2d-medium"}],
    }, name="exact")
    spec = suite.expand()[0]
    assert execute_run(spec, tmp_path / "a", device="cpu")["status"] == "finished"

    def interrupt(ev):
        if ev.get("type") == "progress" and ev.get("step") == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, tmp_path / "b", interrupt, device="cpu")
    run_b = tmp_path / "b" / "runs" / spec.dirname
    assert json.loads((run_b / "run.json").read_text())["status"] == "interrupted" and not (run_b / "result.json").exists()
    assert execute_run(spec, tmp_path / "b", device="cpu")["status"] == "finished"
    assert json.loads((run_b / "run.json").read_text())["resumed_from_step"] == 20
    curve = lambda d: [(e["step"], e["returns"]) for e in json.loads((d / "runs" / spec.dirname / "curve.json").read_text())["evaluations"]]  # noqa: E731
    assert curve(tmp_path / "a") == curve(tmp_path / "b")
    assert json.loads((run_b / "result.json").read_text())["subset_seed"] == 0
    seeds = [e["eval_seed"] for e in json.loads((run_b / "curve.json").read_text())["evaluations"]]
    assert seeds == [spec.protocol.eval_seed(0, s) for s in (10, 20, 30)]  # the resumed run too
    a = OfflineAlgo.load(tmp_path / "a" / "runs" / spec.dirname / "checkpoint.zip", device="cpu")
    b = OfflineAlgo.load(run_b / "checkpoint.zip", device="cpu")
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and bool((va == vb).all()), f"{ka} differs after resuming"


def test_each_evaluation_of_a_run_resets_on_fresh_but_reproducible_starts(tmp_path):
    """Evaluations of one run draw different reset seeds (so different start states), fixed by the
    run seed and the evaluation index, and recorded per evaluation in curve.json."""
    from offline_zoo.bench.runner import execute_run
    from offline_zoo.envs import make_env

    protocol = Protocol(steps=30, eval_every=10, last_steps=20)
    def seeds(out, seed):
        spec = RunSpec("demo", "", "reacher2d-medium", 1.0, "Toy", "offline_zoo.testing:StepCountAlgo", seed, {}, "generated", protocol)
        assert execute_run(spec, out)["status"] == "finished"
        return [e["eval_seed"] for e in json.loads((out / "runs" / spec.dirname / "curve.json").read_text())["evaluations"]]

    s0 = seeds(tmp_path / "a", 0)
    assert len(set(s0)) == 3 and all(isinstance(s, int) and 0 <= s < 2**31 for s in s0)
    assert seeds(tmp_path / "b", 0) == s0                      # deterministic given the run seed
    assert not set(seeds(tmp_path / "c", 1)) & set(s0)         # another run seed, other starts
    env = make_env("reacher2d-medium")
    starts = [env.reset(seed=s)[0] for s in s0]
    assert not np.allclose(starts[0], starts[1]) and not np.allclose(starts[1], starts[2])
    env.close()


def test_suite_progress_keeps_step_counts_on_an_80_column_terminal():
    import io

    from rich.console import Console

    from offline_zoo.bench.progress import _suite_progress

    for width in (60, 80, 120):
        buf = io.StringIO()
        console = Console(file=buf, width=width, color_system=None)
        p = _suite_progress(console)
        p.add_task("[bold]ablation-language-loss[/bold]: 3 done · 2 running · 40 queued", total=45, completed=3, info="")
        run = p.add_task("  kitchen-partial-v0 0.01 LaMo (random corpus) s2", total=100_000, info="")
        p.update(run, completed=12_345, info="score 12.3")
        console.print(p.get_renderable())
        lines = buf.getvalue().splitlines()
        assert len(lines) == 2 and all(len(line) <= width for line in lines), lines
        assert "3/45" in lines[0] and "12345/100000" in lines[1] and "score 12.3" in lines[1], lines


def test_plots_shade_a_spread_only_over_several_seeds_and_name_the_ratio(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PolyCollection

    from offline_zoo.bench import plots
    from offline_zoo.bench.report import build_report
    from offline_zoo.testing import write_demo_results

    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    specs = write_demo_results(tmp_path / "two")  # seeds 0 and 1
    one = tmp_path / "one"
    shutil.copytree(tmp_path / "two", one)
    for spec in specs:
        if spec.seed == 1:
            shutil.rmtree(one / "runs" / spec.dirname)

    def texts(fig):
        bands = sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
        return fig._suptitle.get_text(), [ax.get_title() for ax in fig.axes if ax.get_title()], bands

    for out, n in ((tmp_path / "two", 2), (one, 1)):
        report = build_report(out)
        figures.clear()
        plots.plot_learning_curves(report, "reacher2d-medium", tmp_path / "c.png")
        plots.plot_score_vs_ratio(report, tmp_path / "s.png")
        (curves_title, panels, curve_bands), (ratio_title, _, ratio_bands) = texts(figures[0]), texts(figures[1])
        assert panels == ["reacher2d-medium, ratio 0.1", "reacher2d-medium, ratio 1.0"]
        if n == 1:
            assert "std" not in curves_title and "1 seed" in curves_title and curve_bands == 0
            assert "std" not in ratio_title and ratio_bands == 0
        else:
            assert "mean ± 0.5 std over 2 seeds" in curves_title and curve_bands == 4  # 2 ratios x 2 algos
            assert "over 2 seeds" in ratio_title and ratio_bands == 2


def test_one_ratio_suite_plots_bars_instead_of_a_one_point_ratio_line(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from offline_zoo.bench import plots
    from offline_zoo.bench.report import build_report
    from offline_zoo.testing import write_demo_results

    specs = write_demo_results(tmp_path / "out")           # ratios 0.1 and 1
    for spec in specs:                                     # keep ratio 1 only
        if spec.ratio != 1.0:
            shutil.rmtree(tmp_path / "out" / "runs" / spec.dirname)
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    bench["planned"] = {k: v for k, v in bench["planned"].items() if v["ratio"] == 1.0}
    (tmp_path / "out" / "bench.json").write_text(json.dumps(bench))
    report = build_report(tmp_path / "out")
    assert {r.ratio for r in report.rows} == {1.0}
    bars = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: bars.append(fig) or path)
    files = [f.name for f in plots.plot_report(report, tmp_path / "plots")]
    assert "scores.png" in files and "score_vs_ratio.png" not in files
    ax = bars[0].axes[0]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    # ratio 1, last 20 of 30 steps (evaluations at 20 and 30): CQL = step -> 25; DT's best target is
    # "76" = step + seed -> 25.5 over seeds 0 and 1 (target "40" = step / 2 -> 12.5)
    assert heights == [25.0, 25.5]
    assert "over 2 seeds" in ax.get_title()


def test_report_checks_the_papers_orderings_row_by_row(tmp_path):
    from offline_zoo.bench.report import build_report

    algos = ["LaMo", "LaMo w/o PT", "DT", "CQL", "IQL", "BC"]
    scores = {  # (label, ratio) -> score of seed 0 (seed 1 adds 2)
        ("LaMo", 0.01): 30.0, ("DT", 0.01): 20.0, ("LaMo", 1.0): 50.0, ("DT", 1.0): 60.0,
        ("CQL", 1.0): 55.0, ("IQL", 1.0): 61.0, ("LaMo w/o PT", 0.01): 31.0, ("LaMo w/o PT", 1.0): 40.0,
    }
    _write_scored_results(tmp_path / "out", algos, [{"task": "hopper-medium", "ratios": [0.01, 1.0]}],
                          lambda label, task, ratio, seed: scores.get((label, ratio), 5.0) + 2.0 * seed)
    report = build_report(tmp_path / "out")
    found = {o["claim"]: o for o in report.orderings()}
    assert set(found) == {"LaMo > DT at ratio <= 0.01", "best value-based (CQL, IQL) >= DT at ratio 1", "LaMo > LaMo w/o PT"}
    low = found["LaMo > DT at ratio <= 0.01"]
    assert (low["holds"], low["of"]) == (1, 1) and low["rows"][0]["left_mean"] == 31.0 and low["rows"][0]["right_mean"] == 21.0
    value = found["best value-based (CQL, IQL) >= DT at ratio 1"]["rows"]
    assert [(r["ratio"], r["left"], r["holds"]) for r in value] == [(1.0, "IQL", True)]   # IQL 62 >= DT 61
    assert value[0]["within_std"]                                                      # 1 apart, std 1 each
    pt = found["LaMo > LaMo w/o PT"]
    assert (pt["holds"], pt["of"]) == (1, 2)                                           # 31 < 32 at 0.01; 51 > 41 at 1
    text = report.markdown()
    assert "**LaMo > DT at ratio <= 0.01**: holds on 1 of 1 rows." in text
    assert "hopper-medium 0.01: LaMo 31.0 ± 1.0 vs DT 21.0 ± 1.0: holds" in text


def test_prepare_warns_when_the_generated_data_on_disk_is_not_what_the_suite_asks(tmp_path, monkeypatch):
    from offline_zoo.bench.runner import prepare_datasets
    from offline_zoo.data.generation import generate_dataset

    monkeypatch.setenv("OFFLINE_ZOO_HOME", str(tmp_path / "home"))
    generate_dataset("reacher2d-medium", n_episodes=2)

    def prepare(kwargs):
        suite = Suite.from_dict({"name": "p", "algos": ["BC"], "source": "generated", "seeds": [0],
                                 "prepare": {"generate": {"reacher2d-medium": kwargs}}, "rows": [{"task": "reacher2d-medium"}]})
        said = []
        runs, notes = prepare_datasets(suite, suite.expand(), say=said.append)
        assert len(runs) == 1 and notes == []
        return said

    assert prepare({"n_episodes": 2}) == []                        # the same settings: nothing to say
    said = prepare({"n_episodes": 3})
    assert len(said) == 1 and "warning" in said[0] and "n_episodes=2" in said[0]
    assert "zoo-data generate reacher2d-medium --episodes 3 --seed 0 --noise 1.0 --overwrite" in said[0]
    assert "n_episodes=2" in prepare({})[0]                         # {} means the default 50 episodes
    assert prepare({"n_episodes": 2, "seed": 0}) == []
