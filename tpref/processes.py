"""Processes that never outlive their command, and one writer per run directory.

- :class:`RunLock`: an exclusive lock on ``<run dir>/.tpref-lock`` held while a run writes
  there. Two processes never write one run directory: the second is refused with the first
  one's pid. The lock is an ``fcntl.flock`` where that exists (released by the kernel when its
  holder dies, even by SIGKILL, so a lock is never stale); elsewhere a pid file, taken over
  when the pid it names is no longer running.
- :func:`init_worker`: the initializer of the worker processes of ``tpref compare`` /
  ``reproduce``. A worker ignores SIGINT (its parent decides when it stops and forwards the
  signal), turns SIGTERM into an interruption of its run, and notices a dead parent: on
  Linux through ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, everywhere through a watchdog thread
  that polls the parent pid. A run interrupted that way writes its summary and the worker
  exits: nothing keeps training or appending to metrics.jsonl after its command ended.
- :func:`run_in_workers`: runs a function over items in worker processes (children of the
  caller, started with :func:`init_worker`). When the caller is interrupted (Ctrl-C,
  SIGTERM) it sends SIGTERM to every worker, waits for them (SIGKILL after a grace period)
  and raises :class:`Interrupted`.
"""

import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time

try:
    import fcntl
except ImportError:                       # Windows: pid-file fallback
    fcntl = None

LOCK_NAME = ".tpref-lock"
#: Seconds between two looks at the parent pid in a worker's watchdog thread.
WATCHDOG_PERIOD = 0.5
#: Seconds the parent waits for interrupted workers to write their summaries before SIGKILL.
STOP_GRACE = 30.0


class RunLockedError(OSError):
    """Another live process is writing the run directory."""


class Interrupted(Exception):
    """A command was interrupted (Ctrl-C or SIGTERM) after stopping its workers cleanly."""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:               # exists, owned by someone else
        return True
    return True


class RunLock:
    """Exclusive lock of a run directory: ``with RunLock(out_dir): ...``."""

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK_NAME)
        self.fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RunLockedError(self._busy(holder)) from None
        else:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            if holder.isdigit() and int(holder) != os.getpid() and _pid_alive(int(holder)):
                os.close(fd)
                raise RunLockedError(self._busy(holder))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def _busy(self, holder):
        return (f"{os.path.dirname(self.path)} is being written by another tpref process "
                f"(pid {holder}); wait for it to end or stop it, or use another output "
                f"directory (two writers would interleave metrics.jsonl)")

    def release(self):
        if self.fd is None:
            return
        if fcntl is None:
            os.ftruncate(self.fd, 0)
        else:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------------------------
# workers


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _set_parent_death_signal():
    """Linux: have the kernel send SIGTERM to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)         # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass                                                # the watchdog still covers it


def _watch_parent(parent_pid):
    while True:
        time.sleep(WATCHDOG_PERIOD)
        if not parent_alive(parent_pid):
            os.kill(os.getpid(), signal.SIGTERM)
            return


def parent_alive(parent_pid):
    """Whether the process that started this one is still its parent."""
    return os.getppid() == parent_pid


def init_worker(parent_pid):
    """Initializer of a worker process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _set_parent_death_signal()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="tpref-parent-watchdog").start()
    if not parent_alive(parent_pid):          # the parent died before the watch began
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(conn, fn, item, parent_pid):
    init_worker(parent_pid)
    try:
        result = ("ok", fn(item))
    except KeyboardInterrupt:
        result = ("interrupted", None)
    except BaseException as err:            # re-raised in the parent
        result = ("error", err)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)      # done: nothing left to interrupt
    if parent_alive(parent_pid):
        try:
            conn.send(result)
        except Exception as err:            # an unpicklable exception: send its text
            conn.send(("error", RuntimeError(f"{type(result[1]).__name__}: {result[1]}")))
    conn.close()


def run_in_workers(fn, items, jobs):
    """``[fn(item) for item in items]`` in at most ``jobs`` worker processes at a time.

    Every worker is a child of this process that never outlives it: Ctrl-C or SIGTERM here
    sends SIGTERM to every running worker, waits for them (they stop their runs cleanly),
    and raises Interrupted; a worker whose parent is killed stops by itself (init_worker).
    An exception in a worker is raised here. A worker interrupted by someone else yields None.
    """
    ctx = multiprocessing.get_context()
    parent = os.getpid()
    pending = list(enumerate(items))
    running = {}                                   # sentinel -> (index, process, connection)
    results = [None] * len(items)
    with interrupt_on_sigterm():
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    index, item = pending.pop(0)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_worker_main, args=(send, fn, item, parent),
                                       name=f"tpref-worker-{index}")
                    proc.start()
                    send.close()
                    running[proc.sentinel] = (index, proc, recv)
                for sentinel in multiprocessing.connection.wait(list(running), timeout=1.0):
                    index, proc, recv = running.pop(sentinel)
                    status, value = recv.recv() if recv.poll() else ("error", None)
                    recv.close()
                    proc.join()
                    if status == "error":
                        stop_workers([p for _, p, _ in running.values()])
                        if value is None:
                            raise RuntimeError(f"worker {proc.name} died (exit code "
                                               f"{proc.exitcode})")
                        raise value
                    results[index] = value
        except KeyboardInterrupt:
            stop_workers([p for _, p, _ in running.values()])
            raise Interrupted("interrupted; every run stopped at its last iteration and kept "
                              "its checkpoint: rerun the same command to resume") from None
    return results


def stop_workers(processes, grace=STOP_GRACE):
    """SIGTERM every live process of ``processes``, wait ``grace`` seconds, then SIGKILL."""
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


class interrupt_on_sigterm:
    """Context manager: SIGTERM raises KeyboardInterrupt in the main thread (else a no-op)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
