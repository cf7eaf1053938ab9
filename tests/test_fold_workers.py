"""Folds run in fresh worker processes: memory does not build up over many folds, a crashed or
killed fold is reported and retried alone, a diverged fold is named, and processes on one run
directory (`--only-fold`) share the work and give the single-process summary; a JAX worker
loads no TensorFlow."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runs import TINY, fold_worker_pid, kchem, start_kchem, train_args

LINUX = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc")


def _maps_and_rss_mb(pid: int) -> tuple[int, float]:
    maps = sum(1 for _ in open(f"/proc/{pid}/maps"))
    rss = next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
    return maps, int(rss.split()[1]) / 1024


@LINUX
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") != "tensorflow", reason="the XLA map build-up was seen under TensorFlow")
def test_many_folds_keep_memory_maps_and_rss_flat(tmp_path):
    out, folds = tmp_path / "run", 3
    # bbbp's molecules span 10-130 tokens: several bucket shapes per fold
    process = start_kchem(*train_args(out, folds=folds, extra=["--limit", "200", "--epochs", "1", "--tokens", "v0", "--seed", "1", "--layers", "1"]),
                          log=tmp_path / "log")
    runner, seen, deadline = {}, set(), time.time() + 600
    while process.poll() is None:
        for k in range(folds):
            if k not in seen and (out / f"fold_{k}" / "metrics.json").exists():
                seen.add(k)
                runner[k] = _maps_and_rss_mb(process.pid)
        assert time.time() < deadline
        time.sleep(0.05)
    returncode, output = process.wait()
    assert returncode == 0, output[-3000:]
    resources = [json.loads((out / f"fold_{k}" / "history.json").read_text())["resources"] for k in range(folds)]
    assert len({r["pid"] for r in resources}) == folds, "every fold trains in a process of its own"
    first, last = resources[0], resources[-1]
    # each worker starts from nothing: the last fold's worker maps no more than the first's
    assert last["memory_maps"] <= first["memory_maps"] * 1.05 + 100, resources
    assert last["peak_rss_mb"] <= first["peak_rss_mb"] * 1.10 + 50, resources
    # and the runner itself (no Keras in it) does not grow from fold to fold
    (maps_first, rss_first), (maps_last, rss_last) = runner[min(runner)], runner[max(runner)]
    assert len(runner) >= 3 and maps_last <= maps_first + 50 and rss_last <= rss_first + 30, runner
    assert first["memory_maps"] > maps_first + 1000, "the workers hold the backend's maps, not the runner"


@LINUX
@pytest.mark.runner_logic
def test_a_killed_fold_is_reported_the_others_run_and_a_rerun_retries_it_alone(tmp_path):
    out = tmp_path / "run"
    process = start_kchem(*train_args(out, folds=2), log=tmp_path / "log")
    deadline = time.time() + 300
    while (pid := fold_worker_pid(out, 0)) is None:
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    returncode, output = process.wait()
    assert returncode == 1 and "fold 0 failed" in output and "SIGKILL" in output and "fold 1: roc_auc" in output

    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and list(summary["missing_folds"]) == ["0"] and summary["n_splits"] == 1
    assert "SIGKILL" in summary["missing_folds"]["0"]
    report = (out / "report.md").read_text()
    assert "Partial: 1 of 2 folds missing" in report and "fold 0: failed" in report
    again = kchem("summarize", str(out))
    assert "partial" in again.stdout and json.loads((out / "summary.json").read_text()) == summary

    finished = (out / "fold_1" / "metrics.json").stat().st_mtime_ns
    rerun = kchem(*train_args(out, folds=2))
    assert "fold 0: roc_auc" in rerun.stderr and "fold 1: finished earlier" in rerun.stderr
    assert (out / "fold_1" / "metrics.json").stat().st_mtime_ns == finished
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["n_splits"] == 2 and not (out / "fold_0" / "failed.json").exists()


@pytest.mark.runner_logic
def test_a_fold_that_raises_is_reported_with_its_reason(tmp_path):
    splits = [{"train": list(range(0, 60)), "val": [], "test": list(range(80, 120))},
              {"train": list(range(40, 120)), "val": [], "test": list(range(0, 40))}]
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(splits))
    out = tmp_path / "run"
    result = kchem("train", "elembert", "--dataset", "bbbp", "--splits-file", str(path), "--out", str(out), *TINY, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr.split("fold 1 failed")[-1]
    failure = json.loads((out / "fold_1" / "failed.json").read_text())
    assert "fold 1: the validation part is empty" in failure["reason"] and failure["traceback"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_splits"] == 0 and "validation part is empty" in summary["missing_folds"]["1"] and "0" in summary["missing_folds"]


@pytest.mark.runner_logic
def test_a_diverged_fold_is_named_and_stops_only_itself(tmp_path):
    out = tmp_path / "run"
    result = kchem("train", "elembert", "--dataset", "esol", "--replicates", "1", "--limit", "80", "--epochs", "3",
                   "--tokens", "v0", "--layers", "1", "--learning-rate", "1e12", "--out", str(out), check=False)
    assert result.returncode == 1
    reason = json.loads((out / "fold_0" / "failed.json").read_text())["reason"]
    assert "fold 0 diverged" in reason and "learning-rate" in reason


@pytest.mark.runner_logic
def test_only_fold_processes_share_one_run_directory_and_give_the_single_process_summary(tmp_path, bbbp_run):
    single = bbbp_run
    shared = tmp_path / "shared"
    first = start_kchem(*train_args(shared), "--only-fold", "0", log=tmp_path / "first")
    second = start_kchem(*train_args(shared), "--only-fold", "1", log=tmp_path / "second")
    (code_1, output_1), (code_2, output_2) = first.wait(), second.wait()
    assert code_1 == 0 and code_2 == 0, (output_1, output_2)
    assert json.loads((shared / "summary.json").read_text()) == json.loads((single / "summary.json").read_text())
    assert "fold 0: roc_auc" in output_1 and "fold 1: roc_auc" in output_2, "each process trained its own fold"


@pytest.mark.runner_logic
def test_summarize_marks_folds_not_trained_yet(tmp_path, bbbp_run):
    out = tmp_path / "run"
    shutil.copytree(bbbp_run, out)
    shutil.rmtree(out / "fold_0")
    summary = kchem("summarize", str(out))
    assert "partial: folds 0 missing" in " ".join(summary.stdout.split())
    written = json.loads((out / "summary.json").read_text())
    assert written["missing_folds"] == {"0": "not trained yet"} and written["n_splits"] == 1 and not written["complete"]
    assert "Partial: 1 of 2 folds missing" in (out / "report.md").read_text()
    wrong = kchem(*train_args(out), "--only-fold", "7", check=False)
    assert wrong.returncode == 2 and "this run has folds 0..1" in wrong.stderr


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") != "jax", reason="TensorFlow is the backend there")
def test_a_jax_fold_worker_seeds_and_builds_elembert_without_tensorflow():
    code = ("import sys\n"
            "from keras_chem.training.worker import _warm_up\n"
            "_warm_up('keras_chem.models.elembert')\n"
            "from keras_chem.models.base import TaskInfo\n"
            "from keras_chem.models.elembert import DEFAULTS, ElembertPreprocessor, build\n"
            "from keras_chem.training.fold import seed_everything\n"
            "seed_everything(0)\n"
            "pre = ElembertPreprocessor(tokens='v0')\n"
            "pre.fit_transform(['a'], ['CCO'], 'smiles')\n"
            "build(DEFAULTS, pre, TaskInfo('classification', ['t']))\n"
            "print(sys.modules.get('tensorflow') is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False", "a JAX fold worker imported TensorFlow"
