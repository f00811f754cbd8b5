"""Experiment logging (offline_zoo.loggers): CSV / JSONL / TensorBoard / W&B adapters, the metric
names every algorithm logs through ``learn(logger=...)``, and zoo-bench's per-run logs.

Offline and fast: tiny datasets and configs, a fake ``wandb`` module, stand-in benchmark algorithms.
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import offline_zoo as oz
from offline_zoo.algos.base import Spec
from offline_zoo.callbacks import EvalCallback
from offline_zoo.loggers import (
    CSVLogger, JSONLLogger, Logger, LoggerCallback, TensorBoardLogger, WandbLogger, check_logger, make_logger, read_jsonl,
)
from offline_zoo.testing import tiny_dataset

HOPPER = Spec((11,), 3, False, "hopper-medium")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _tiny(cls, **overrides):
    return cls(tiny_dataset(), device="cpu", **{**cls.tiny_config(HOPPER), **overrides})


# -- learn(logger=...) -----------------------------------------------------------------------------
def test_dt_learn_writes_csv_and_jsonl_with_train_and_eval_metrics(tmp_path):
    algo = _tiny(oz.DT)
    algo.learn(4, progress_bar=False, log_every=2, logger=["csv", "jsonl"], log_dir=tmp_path, callback=EvalCallback(2, n_episodes=1))
    entries = read_jsonl(tmp_path / "metrics.jsonl")
    train = [e for e in entries if "train/loss" in e]
    evals = [e for e in entries if "eval/normalized" in e]
    assert [e["step"] for e in train] == [2, 4] and [e["step"] for e in evals] == [2, 4]
    for e in train:
        assert {"train/loss", "train/action_loss", "train/grad_norm", "train/learning_rate", "time/steps_per_second"} <= set(e)
        assert all(np.isfinite(e[k]) for k in e)
        assert e["train/grad_norm"] > 0 and e["time/steps_per_second"] > 0
    assert train[-1]["train/loss"] == pytest.approx(algo.last_metrics["loss"])
    assert train[-1]["train/learning_rate"] == pytest.approx(algo.optimizers["model"].param_groups[0]["lr"])
    targets = [f"{t:g}" for t in algo.default_targets()]
    for t in targets:
        assert {f"eval/score_{t}", f"eval/normalized_{t}"} <= set(evals[0])
    assert evals[0]["eval/normalized"] == pytest.approx(algo.history["eval"][0]["score"])
    assert evals[0][f"eval/score_{targets[0]}"] == pytest.approx(algo.history["eval"][0]["mean_returns"][targets[0]])
    # the CSV holds the same rows: train and eval rows at each logged step, one header with every name
    rows = _rows(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["2", "2", "4", "4"]
    assert float(rows[2]["train/loss"]) == pytest.approx(train[1]["train/loss"]) and rows[2]["eval/normalized"] == ""
    assert float(rows[3]["eval/normalized"]) == pytest.approx(evals[1]["eval/normalized"])
    # a second learn appends to the same files
    algo.learn(2, progress_bar=False, log_every=2, logger="csv", log_dir=tmp_path)
    assert [r["step"] for r in _rows(tmp_path / "metrics.csv")] == ["2", "2", "4", "4", "6"]


def test_td3bc_logs_every_loss_term_even_on_steps_without_an_actor_update(tmp_path):
    algo = _tiny(oz.TD3PlusBC)
    algo.learn(4, progress_bar=False, log_every=2, logger="csv", log_dir=tmp_path)
    # d3rlpy's TD3+BC updates its actor on even grad steps only: steps 2 and 4 (grad steps 1, 3) have none
    assert set(algo.last_metrics) == {"loss", "critic_loss"}
    rows = _rows(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["2", "4"]
    for name in ("train/loss", "train/critic_loss", "train/actor_loss", "train/bc_loss", "train/learning_rate",
                 "train/actor_learning_rate", "train/critic_learning_rate", "time/steps_per_second"):
        assert all(r[name] != "" and np.isfinite(float(r[name])) for r in rows), name
    assert float(rows[0]["train/bc_loss"]) > 0
    assert {"actor_loss", "bc_loss"} <= set(algo.history["train"][-1])  # the history keeps them too


@pytest.mark.parametrize("cls", [oz.CQL, oz.IQL, oz.BCQ, oz.BC], ids=lambda c: c.__name__)
def test_d3rlpy_algorithms_log_the_shared_names(cls, tmp_path):
    algo = _tiny(cls)
    algo.learn(2, progress_bar=False, log_every=1, logger="jsonl", log_dir=tmp_path)
    last = read_jsonl(tmp_path / "metrics.jsonl")[-1]
    assert {"train/loss", "train/learning_rate", "time/steps_per_second"} <= set(last)
    assert {f"train/{k}" for k in algo.last_metrics} <= set(last)


def test_tensorboard_event_files_hold_the_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    algo = _tiny(oz.DT)
    algo.learn(4, progress_bar=False, log_every=2, logger="tensorboard", log_dir=tmp_path, callback=EvalCallback(4, n_episodes=1))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/action_loss", "train/grad_norm", "train/learning_rate", "time/steps_per_second", "eval/normalized"} <= tags
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4]
    assert acc.Scalars("train/loss")[-1].value == pytest.approx(algo.last_metrics["loss"], rel=1e-6)
    assert [e.step for e in acc.Scalars("eval/normalized")] == [4]
    assert {f"eval/score_{t:g}" for t in algo.default_targets()} <= tags


def test_tensorboard_purge_step_hides_what_a_resumed_run_writes_again(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with TensorBoardLogger(tmp_path) as lg:
        for step in (1, 2, 3):
            lg.log(step, {"train/loss": float(step)})
    with TensorBoardLogger(tmp_path, purge_step=3) as lg:  # resumed from the checkpoint of step 2
        lg.log(3, {"train/loss": 30.0})
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(1, 1.0), (2, 2.0), (3, 30.0)]


# -- the file adapters -----------------------------------------------------------------------------
def test_csv_widens_its_header_and_purges_on_resume(tmp_path):
    path = tmp_path / "sub" / "m.csv"
    lg = CSVLogger(path)
    lg.log(1, {"a": 1.0})
    assert path.read_text() == "step,a\n1,1.0\n"  # flushed at once: nothing lost on a crash
    lg.log(2, {"a": 2.0, "b": np.float32(0.5)})
    lg.close()
    assert path.read_text() == "step,a,b\n1,1.0,\n2,2.0,0.5\n"
    with CSVLogger(path, purge_step=2) as lg:
        lg.log(2, {"b": 7.0})
    assert path.read_text() == "step,a,b\n1,1.0,\n2,,7.0\n"


def test_jsonl_appends_flushes_and_purges(tmp_path):
    path = tmp_path / "m.jsonl"
    lg = JSONLLogger(path)
    lg.log(1, {"a": 1})
    assert json.loads(path.read_text()) == {"step": 1, "a": 1.0}
    lg.log(2, {"a": float("inf")})
    lg.close()
    with open(path, "a") as f:
        f.write('{"step": 3, "a"')  # cut by a crash
    assert read_jsonl(path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": None}]
    JSONLLogger(path, purge_step=2).close()
    assert read_jsonl(path) == [{"step": 1, "a": 1.0}]


def test_a_logger_passed_in_stays_open_and_one_made_by_name_is_closed(tmp_path):
    class Recorder(Logger):
        def __init__(self):
            self.calls, self.closed, self.flushed = [], False, 0

        def log(self, step, metrics):
            self.calls.append((step, sorted(metrics)))

        def flush(self):
            self.flushed += 1

        def close(self):
            self.closed = True

    rec = Recorder()
    algo = _tiny(oz.BC)
    algo.learn(2, progress_bar=False, log_every=1, logger=rec)
    assert [s for s, _ in rec.calls] == [1, 2] and not rec.closed and rec.flushed == 1
    assert rec.calls[0][1] == ["time/steps_per_second", "train/learning_rate", "train/loss"]
    cb = LoggerCallback("jsonl", log_every=1, log_dir=tmp_path)
    algo.learn(1, progress_bar=False, callback=cb)
    assert cb.logger is None  # closed at the end; a next learn opens it again
    algo.learn(1, progress_bar=False, callback=cb)
    assert [e["step"] for e in read_jsonl(tmp_path / "metrics.jsonl")] == [3, 4]


# -- W&B -------------------------------------------------------------------------------------------
def test_wandb_missing_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'offline-zoo\[wandb\]'"):
        WandbLogger(mode="offline")
    with pytest.raises(ImportError, match=r"offline-zoo\[wandb\]"):
        _tiny(oz.BC).learn(1, progress_bar=False, logger="wandb")


def _fake_wandb(monkeypatch):
    calls: dict[str, list] = {"init": [], "log": [], "finish": 0}

    class Run:
        def log(self, data, step=None):
            calls["log"].append((step, dict(data)))

        def finish(self):
            calls["finish"] += 1

    def init(**kwargs):
        calls["init"].append(kwargs)
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    return calls


def test_wandb_adapter_calls_init_offline_and_logs_with_steps(monkeypatch, tmp_path):
    calls = _fake_wandb(monkeypatch)
    lg = WandbLogger(project="my-project", mode="offline", dir=tmp_path / "wb", config={"lr": 1e-4}, group="g")
    assert calls["init"] == [{"project": "my-project", "mode": "offline", "config": {"lr": 1e-4}, "group": "g", "dir": str(tmp_path / "wb")}]
    algo = _tiny(oz.DT)
    algo.learn(4, progress_bar=False, log_every=2, logger=lg, callback=EvalCallback(4, n_episodes=1))
    assert [s for s, _ in calls["log"]] == [2, 4, 4]
    assert {"train/loss", "train/grad_norm", "train/learning_rate"} <= set(calls["log"][0][1])
    assert "eval/normalized" in calls["log"][2][1] and all(isinstance(v, float) for v in calls["log"][2][1].values())
    assert calls["finish"] == 0  # a logger passed in is left open
    lg.close()
    assert calls["finish"] == 1
    # by name: the default project, no entity, files under log_dir; finished when learn returns
    _tiny(oz.BC).learn(1, progress_bar=False, logger="wandb", log_dir=tmp_path / "logs")
    assert calls["init"][1] == {"project": "offline-zoo", "dir": str(tmp_path / "logs")} and calls["finish"] == 2


# -- bad input -------------------------------------------------------------------------------------
def test_bad_logger_names_are_clear_errors(tmp_path):
    allowed = "'csv', 'jsonl', 'tensorboard', 'wandb'"
    with pytest.raises(ValueError, match=rf"unknown logger 'mlflow': use one of {allowed}"):
        make_logger("mlflow", tmp_path)
    with pytest.raises(ValueError, match="unknown logger 'tensorbord'"):
        _tiny(oz.DT).learn(1, progress_bar=False, logger=["csv", "tensorbord"], log_dir=tmp_path)
    assert not (tmp_path / "metrics.csv").exists()  # checked before anything is opened
    with pytest.raises(ValueError, match=r"logger list item 3 is not a logger"):
        check_logger(["csv", 3])
    with pytest.raises(ValueError, match=r"logger=\{'csv': 1\} is not a logger"):
        check_logger({"csv": 1})
    with pytest.raises(ValueError, match="log_every=0"):
        LoggerCallback("csv", log_every=0)
    from offline_zoo.bench.executors import InlineExecutor, make_executor

    with pytest.raises(ValueError, match="unknown logger 'tb2'"):
        make_executor("local", workers=0, loggers=["tb2"])
    with pytest.raises(ValueError, match="logger names"):
        InlineExecutor(loggers=[CSVLogger(tmp_path / "x.csv")])


def test_zoo_bench_refuses_an_unknown_logger(capsys):
    from offline_zoo.bench.command import main

    with pytest.raises(SystemExit) as e:
        main(["--suite", "smoke", "--dry-run", "--logger", "mlflow"])
    assert e.value.code == 2 and "invalid choice: 'mlflow'" in capsys.readouterr().err


# -- zoo-bench -------------------------------------------------------------------------------------
METRIC_ALGO = '''
from offline_zoo.callbacks import as_callback
from offline_zoo.testing import StepCountAlgo


class MetricAlgo(StepCountAlgo):
    """StepCountAlgo with a loss (1 / step) and a learning rate, through the callbacks."""

    last_metrics = {}

    def learn(self, n_steps, callback=None, progress_bar=False):
        cb = as_callback(callback)
        cb.on_training_start(self, n_steps)
        for _ in range(int(n_steps)):
            self.num_steps += 1
            self.last_metrics = {"loss": 1.0 / self.num_steps}
            cb.on_step(self)
        cb.on_training_end(self)
        return self

    def learning_rates(self):
        return {"learning_rate": 0.5}
'''


@pytest.fixture
def metric_suite(tmp_path, monkeypatch):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "metric_algo.py").write_text(METRIC_ALGO)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    suite = tmp_path / "metric.yaml"
    suite.write_text(textwrap.dedent("""\
        name: metric
        seeds: [0]
        source: generated
        protocol: {steps: 20, eval_every: 10, last_steps: 10}
        algos:
          - {label: Toy, algo: "metric_algo:MetricAlgo"}
        rows:
          - {task: reacher2d-medium, ratio: 1.0}
        """))
    return suite


def test_zoo_bench_writes_csv_jsonl_and_tensorboard_logs_per_run(metric_suite, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from offline_zoo.bench.command import main

    out = tmp_path / "out"
    assert main(["run", "--suite", str(metric_suite), "--out", str(out), "--workers", "0", "--logger", "tensorboard", "--no-progress", "--no-report"]) == 0
    (run_dir,) = (out / "runs").iterdir()
    entries = read_jsonl(run_dir / "metrics.jsonl")
    train = [(e["step"], e["train/loss"]) for e in entries if "train/loss" in e]
    assert train == [(10, 0.1), (20, 0.05)]  # every eval_every (< 100) steps
    assert [(e["step"], e["eval/normalized"]) for e in entries if "eval/normalized" in e] == [(10, 10.0), (20, 20.0)]
    assert all(e["train/learning_rate"] == 0.5 and e["time/steps_per_second"] > 0 for e in entries if "train/loss" in e)
    rows = _rows(run_dir / "metrics.csv")
    assert [r["step"] for r in rows] == ["10", "10", "20", "20"] and float(rows[2]["train/loss"]) == 0.05
    assert json.loads((run_dir / "run.json").read_text())["loggers"] == ["csv", "jsonl", "tensorboard"]
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [10, 20] and [e.value for e in acc.Scalars("eval/normalized")] == [10.0, 20.0]
    assert json.loads((out / "bench.json").read_text())["invocations"][-1]["executor"]["loggers"] == ["tensorboard"]


def test_a_resumed_run_logs_each_step_once(metric_suite, tmp_path):
    from offline_zoo.bench.store import runs_dir
    from offline_zoo.bench.worker import execute_run

    from offline_zoo.bench.suites import load_suite

    spec = load_suite(metric_suite).expand()[0]

    def interrupt(ev):
        if ev.get("type") == "progress" and ev.get("step") == 10:  # after the checkpoint of step 10
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, tmp_path / "out", interrupt, device="cpu")
    run_dir = runs_dir(tmp_path / "out") / spec.dirname
    assert [e["step"] for e in read_jsonl(run_dir / "metrics.jsonl")] == [10, 10]
    (run_dir / "metrics.jsonl").open("a").write(json.dumps({"step": 15, "train/loss": 9.0}) + "\n")  # logged after the checkpoint
    assert execute_run(spec, tmp_path / "out", device="cpu")["status"] == "finished"
    assert [e["step"] for e in read_jsonl(run_dir / "metrics.jsonl")] == [10, 10, 20, 20]
    assert [r["step"] for r in _rows(run_dir / "metrics.csv")] == ["10", "10", "20", "20"]


def test_a_remote_run_returns_its_tensorboard_folder(metric_suite, tmp_path):
    from offline_zoo.bench.executors import _ray_task, _store_returned_files
    from offline_zoo.bench.store import runs_dir
    from offline_zoo.bench.suites import load_suite

    spec = load_suite(metric_suite).expand()[0]
    outcome = _ray_task(spec.to_dict(), str(tmp_path / "not-shared"), None, "cpu", True, 1, ("tensorboard",))
    events = [name for name in outcome["files"] if name.startswith("tensorboard/events.out.tfevents.")]
    assert outcome["status"] == "finished" and events and {"metrics.csv", "metrics.jsonl"} <= set(outcome["files"])
    _store_returned_files(tmp_path / "out", spec, {**outcome["files"], "../escape.txt": b"x"})
    run_dir = runs_dir(tmp_path / "out") / spec.dirname
    assert (run_dir / events[0]).is_file() and not (run_dir.parent / "escape.txt").exists()
