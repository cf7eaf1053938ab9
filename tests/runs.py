"""Helpers of the end-to-end tests: the `kchem` command in a subprocess, small training runs."""

import json
import os
import subprocess
import sys

TINY = ["--limit", "120", "--epochs", "2", "--batch-size", "32", "--seed", "3", "--tokens", "v0"]


def kchem(*args, check=True, **kwargs):
    env = {**os.environ, "KCHEM_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "keras_chem.cli", *args], env=env, capture_output=True, text=True, check=check, **kwargs)


class Started:
    """A `kchem` command running in the background, its output going to a file (a pipe nobody
    reads while the test polls would fill up and stop the command)."""

    def __init__(self, args, log):
        self.log = log
        with open(log, "w") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "keras_chem.cli", *args], env={**os.environ, "KCHEM_PROGRESS": "0"},
                                            stdout=handle, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def poll(self):
        return self.process.poll()

    def wait(self, timeout=600) -> tuple[int, str]:
        return self.process.wait(timeout=timeout), self.log.read_text()


def start_kchem(*args, log):
    return Started(args, log)


def train_args(out, folds=2, dataset="bbbp", extra=TINY):
    return ["train", "elembert", "--dataset", dataset, "--folds", str(folds), "--out", str(out), *extra]


def fold_worker_pid(run_dir, fold: int) -> int | None:
    """The pid of the process training `fold` (from `fold_<k>/worker.json`), if it has started."""
    path = run_dir / f"fold_{fold}" / "worker.json"
    try:
        return json.loads(path.read_text())["pid"]
    except (FileNotFoundError, json.JSONDecodeError):
        return None
