"""Lock files that several processes, on one machine or many sharing a file system, agree on.

A lock is a JSON file (host, pid, start time) created with `O_CREAT | O_EXCL`, which is atomic
on local file systems and on NFS v3 and later. Its holder refreshes the file's mtime (a
heartbeat) while it works. A lock is stale when its holder is a dead process on this host, or
when its heartbeat is older than `KCHEM_LOCK_STALE_SECONDS` (default 300 s: a holder on
another host that stopped beating); a stale lock is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

HEARTBEAT_SECONDS = 20.0
BREAK_LOCK_SECONDS = 60.0  # a `.break` file older than this belongs to a process that died while breaking


def stale_after() -> float:
    return float(os.environ.get("KCHEM_LOCK_STALE_SECONDS", "300"))


def holder_description(info: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"{info.get('host', '?')} pid {info.get('pid', '?')} since {started}"


def read_lock(path: Path) -> dict | None:
    """The holder of the lock at `path` (with `age`, seconds since its last heartbeat), or None."""
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:  # written but not yet filled: a holder that is starting
        info = {}
    return {**info, "age": age}


def is_stale(info: dict) -> bool:
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and not _alive(info["pid"]):
        return True
    return info["age"] > stale_after()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create(path: Path, extra: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), **extra}
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
    return True


def _break_stale(path: Path, seen: dict) -> None:
    """Remove `path` if it still holds the stale lock `seen`; a `.break` lock makes sure only one
    process removes it (another could otherwise remove the fresh lock of the process that won)."""
    guard = path.with_name(path.name + ".break")
    if not _create(guard, {}):
        try:
            if time.time() - guard.stat().st_mtime > BREAK_LOCK_SECONDS:
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return
    try:
        current = read_lock(path)
        if current is not None and all(current.get(k) == seen.get(k) for k in ("host", "pid", "started")):
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def try_acquire(path: Path, **extra) -> dict | None:
    """Take the lock at `path` (taking over a stale one); None on success, else its live holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if _create(path, extra):
            return None
        holder = read_lock(path)
        if holder is None:
            continue
        if not is_stale(holder):
            return holder
        _break_stale(path, holder)
    return read_lock(path) or {"host": "?", "pid": "?", "started": 0, "age": 0}


def release(path: Path) -> None:
    holder = read_lock(path)
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


class _Heartbeat(threading.Thread):
    def __init__(self, path: Path):
        super().__init__(daemon=True, name=f"heartbeat {path.name}")
        self.path = path
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return


@contextmanager
def held(path: Path, **extra):
    """`with held(path) as holder:` holder is None when this process holds the lock (refreshed
    in the background until the block ends), else the description of its live holder."""
    holder = try_acquire(path, **extra)
    if holder is not None:
        yield holder
        return
    beat = _Heartbeat(path)
    beat.start()
    try:
        yield None
    finally:
        beat.stopped.set()
        release(path)


@contextmanager
def waiting_for(path: Path, on_wait=None, poll_seconds: float = 1.0):
    """Hold the lock at `path`, waiting while another live process holds it; `on_wait(holder)` is
    called once when waiting starts."""
    told = False
    while True:
        with held(path) as holder:
            if holder is None:
                yield
                return
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        time.sleep(poll_seconds)
