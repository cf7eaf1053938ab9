"""Each fold trains in a fresh worker process, so nothing one fold compiled or allocated (XLA
executables, their memory maps, backend caches) survives into the next.

The parent (the runner) keeps the featurized arrays on disk and starts
`python -m keras_chem.training.worker` for each fold (the next one while the current fold
trains, so that its imports are done when its turn comes); the worker reads its fold from stdin,
trains it from those files and exits. Its stderr passes through the parent to
the terminal, and the last lines are kept: a worker that dies (an exception, an abort, an
out-of-memory kill) leaves `fold_<k>/failed.json` with the reason, and the run goes on.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

from keras_chem.io import atomic_write_json
from keras_chem.training.run_files import RunDirectory

TAIL_LINES = 40
# Start-up chatter of the TensorFlow runtime, printed by every worker before logging is set up.
NOISE = (b"All log messages before absl::InitializeLog()", b"oneDNN custom operations are on", b"Could not find cuda drivers")


def _die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this worker when the runner dies (Linux), so a killed run leaves no
    orphan that goes on training the fold; elsewhere a thread watches the parent."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)
    if not sys.platform.startswith("linux"):
        def watch():
            while os.getppid() == parent_pid:
                time.sleep(2)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_chem.training.worker",
                                     description="Train one fold of a run: RUN_DIR FOLD STORE, or a JSON line on stdin.")
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("fold", type=int, nargs="?")
    parser.add_argument("store", nargs="?")
    parser.add_argument("--family", default=None, help="The family's module, imported before the fold arrives.")
    parser.add_argument("--devices", default=None)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    if args.parent is not None:
        _die_with_parent(args.parent)
    from keras_chem.training.distribute import parse_devices, prepare_devices

    devices = parse_devices(args.devices)
    prepare_devices(devices)
    _warm_up(args.family)
    if args.run_dir is None:
        line = sys.stdin.readline()
        if not line.strip():
            return 0  # not needed after all
        job = json.loads(line)
        args.run_dir, args.fold, args.store = job["run_dir"], job["fold"], job["store"]
    run = RunDirectory(args.run_dir)
    run.fold(args.fold).mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.fold(args.fold) / "worker.json", {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
    try:
        from keras_chem.training.fold import train_fold

        train_fold(args.run_dir, args.fold, args.store, devices)
    except Exception as error:  # noqa: BLE001 - reported in failed.json, the parent goes on
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        run.fold(args.fold).mkdir(parents=True, exist_ok=True)
        run.write_failure(args.fold, reason, traceback=traceback.format_exc().splitlines()[-TAIL_LINES:],
                          host=socket.gethostname(), time=time.time())
        print(f"fold {args.fold} failed: {reason}", file=sys.stderr)
        return 1
    return 0


def _warm_up(family: str | None) -> None:
    """Import what a fold needs (the backend, the training code, the family's module): a worker
    started ahead does this while the previous fold still trains."""
    import importlib

    keep_tensorflow_out_under_jax()
    import keras_chem.training.fold  # noqa: F401

    if family:
        importlib.import_module(family)


def keep_tensorflow_out_under_jax() -> None:
    """A fold under JAX never uses TensorFlow, yet Keras's `set_random_seed` and keras-hub import it when
    it is installed (4-5 s of a process's start, and its memory): make it unimportable in this process."""
    import keras

    if keras.backend.backend() == "jax":
        sys.modules.setdefault("tensorflow", None)


def worker_environment(devices, env: dict | None = None) -> dict:
    """The worker's environment: this process's, with its backend, its import path and the devices."""
    from keras_chem.training.distribute import device_environment

    env = dict(os.environ if env is None else env)
    keras = sys.modules.get("keras")
    if keras is not None:
        env["KERAS_BACKEND"] = keras.backend.backend()
    paths = [p for p in sys.path if p and os.path.isdir(p)] + env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(p for p in dict.fromkeys(paths) if p)
    from keras_chem.training.console import console

    if console.is_terminal and os.environ.get("KCHEM_PROGRESS", "1") != "0":
        env["KCHEM_FORCE_TERMINAL"] = "1"
    return device_environment(devices, env.get("KERAS_BACKEND", "tensorflow"), env)


class Worker:
    """A fresh process for one fold. Started ahead (`Workers`), it imports the backend and the
    family's code while the previous fold trains, then waits for its fold on stdin."""

    def __init__(self, family_module: str, devices=None):
        command = [sys.executable, "-m", "keras_chem.training.worker", "--parent", str(os.getpid()), "--family", family_module]
        if devices is not None:
            command += ["--devices", str(devices)]
        self.process = subprocess.Popen(command, env=worker_environment(devices), stdin=subprocess.PIPE, stdout=None,
                                        stderr=subprocess.PIPE)
        self.relay = _relay(self.process.stderr)

    def train(self, run_dir, k: int, store) -> dict | None:
        """Train fold `k`; None when it finished, else its failure record."""
        run = RunDirectory(run_dir)
        try:
            self.process.stdin.write((json.dumps({"run_dir": str(run_dir), "fold": k, "store": str(store)}) + "\n").encode())
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # it died while starting: its return code tells
        try:
            returncode = self.process.wait()
            self.relay.join()
        except BaseException:
            self.close()
            raise
        if returncode == 0 and run.is_finished(k):
            return None
        recorded = run.failure(k)
        if recorded is not None and returncode == 1:
            return recorded
        reason = _reason(returncode, self.relay.lines)
        run.fold(k).mkdir(parents=True, exist_ok=True)
        run.write_failure(k, reason, returncode=returncode, stderr_tail=list(self.relay.lines), host=socket.gethostname(),
                          time=time.time())
        return run.failure(k)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Workers:
    """Hands out fold workers, keeping the next one started (one at a time beside the running fold)."""

    def __init__(self, family_module: str, devices=None):
        self.family_module, self.devices, self.ready = family_module, devices, None

    def next(self, more_to_come: bool) -> Worker:
        worker = self.ready or Worker(self.family_module, self.devices)
        self.ready = Worker(self.family_module, self.devices) if more_to_come else None
        return worker

    def close(self) -> None:
        if self.ready is not None:
            self.ready.close()
            self.ready = None


class _Relay(threading.Thread):
    """Copies the worker's stderr to ours as it comes and keeps its last lines."""

    def __init__(self, stream):
        super().__init__(daemon=True, name="worker stderr")
        self.stream = stream
        self.lines = collections.deque(maxlen=TAIL_LINES)

    def run(self):
        partial = b""
        while chunk := os.read(self.stream.fileno(), 65536):
            *complete, partial = (partial + chunk).split(b"\n")
            for line in complete:
                self._forward(line + b"\n")
            if partial and not any(marker.startswith(partial[:20]) for marker in NOISE):
                self._forward(partial)  # a progress bar redrawn in place: no newline yet
                partial = b""
        if partial:
            self._forward(partial)

    def _forward(self, line: bytes) -> None:
        if any(marker in line for marker in NOISE):
            return
        text = line.decode(errors="replace").split("\r")[-1].strip()
        if text:
            self.lines.append(text)
        out = sys.stderr
        try:
            out.buffer.write(line) if hasattr(out, "buffer") else out.write(line.decode(errors="replace"))
            out.flush()
        except (OSError, ValueError):
            pass


def _relay(stream) -> _Relay:
    relay = _Relay(stream)
    relay.start()
    return relay


def _reason(returncode: int, lines) -> str:
    last = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        if -returncode == signal.SIGKILL:
            why = f"the fold's worker was killed by {name} (out of memory?)"
        else:
            why = f"the fold's worker died of {name}"
        return f"{why}: {last}" if last else why
    return f"the fold's worker exited with code {returncode}" + (f": {last}" if last else "")


if __name__ == "__main__":
    sys.exit(main())
