"""Per-fold lock files: one holder at a time, stale locks (dead holder, silent heartbeat) taken over."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from keras_chem import locks

pytestmark = pytest.mark.backend_independent


def _write(path, **info):
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), **info}))


def test_a_held_lock_is_refused_and_released(tmp_path):
    path = tmp_path / "fold_0" / ".lock"
    with locks.held(path) as holder:
        assert holder is None and json.loads(path.read_text())["pid"] == os.getpid()
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            _write(path, pid=sleeper.pid)  # now held by a live process
            assert locks.try_acquire(path)["pid"] == sleeper.pid
        finally:
            sleeper.kill()
            sleeper.wait()
        _write(path)
    assert not path.exists()


def test_the_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    path = tmp_path / ".lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write(path, pid=dead.pid)
    assert locks.is_stale(locks.read_lock(path))
    assert locks.try_acquire(path) is None
    assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_is_stale_once_its_heartbeat_stops(tmp_path, monkeypatch):
    path = tmp_path / ".lock"
    _write(path, host="node-17", pid=12345)
    assert locks.try_acquire(path)["host"] == "node-17"  # fresh heartbeat: still held
    old = time.time() - 3600
    os.utime(path, (old, old))
    monkeypatch.setenv("KCHEM_LOCK_STALE_SECONDS", "600")
    assert locks.try_acquire(path) is None


def test_the_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_SECONDS", 0.05)
    path = tmp_path / ".lock"
    with locks.held(path):
        old = time.time() - 3600
        os.utime(path, (old, old))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 10
