"""Run one function over many tasks on local worker processes, surviving worker deaths.

Each worker is a long-lived spawned process that runs tasks one after another (so what a
task loads stays loaded for the next). When a worker dies mid-task (killed, out of
memory, a native crash), only that task is retried, on a fresh worker, up to ``retries``
more times; the other workers keep going. (concurrent.futures' pool would instead fail
every task in flight.) The function's own exceptions end its task (reported, not retried).

This module imports only the standard library at the top: a spawned worker sets its
thread limits before the task's modules (numpy, torch, onnxruntime) are imported.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator, Sequence

# Thread pools read these when they start: each worker gets its share of the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STOP_SECONDS = 10.0  # a worker asked to stop gets this long before it is killed


@dataclass(frozen=True)
class TaskDone:
    """The end of one task: ``value`` returned by the function, or ``error``: why it never
    returned (every attempt's worker died, or the function raised)."""

    index: int
    value: Any = None
    error: str | None = None
    attempts: int = 1


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_main(conn, threads: int) -> None:
    # Ctrl-C reaches the whole process group: the driver decides what stops (and cleans up)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, fn, task = message
        try:
            conn.send((index, fn(task), None))
        except Exception as e:  # a bug in the task: its error, not a dead worker (no retry)
            conn.send((index, None, f"task failed: {e.__class__.__name__}: {e}"))


class _Worker:
    def __init__(self, context, threads: int):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, threads), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[int, int] | None = None  # (index, attempt) being run

    def death(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"worker process killed by {signal.Signals(-code).name}"
        return f"worker process exited (code {code})"

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class LocalPool:
    """``workers`` processes on this machine, ``threads`` compute threads each."""

    def __init__(self, workers: int, retries: int = 2, threads: int | None = None):
        self.workers = max(1, workers)
        self.retries = retries
        self.threads = threads or max(1, cpu_count() // self.workers)
        self.running = 0  # tasks in progress (for the progress bar)
        self._context = multiprocessing.get_context("spawn")  # no inherited threads or locks

    def describe(self) -> str:
        return f"{self.workers} local worker(s), {self.threads} thread(s) each"

    def run(self, fn: Callable, tasks: Sequence) -> Iterator[TaskDone]:
        """TaskDone for every task, in the order they finish."""
        queue = deque((index, 1) for index in range(len(tasks)))
        workers = [_Worker(self._context, self.threads) for _ in range(min(self.workers, len(tasks)))]
        finished = False
        try:
            while queue or any(w.task for w in workers):
                for w in workers:
                    if w.task is None and queue:
                        w.task = queue.popleft()
                        w.conn.send((w.task[0], fn, tasks[w.task[0]]))
                self.running = sum(w.task is not None for w in workers)
                ready = wait([w.conn for w in workers if w.task] + [w.process.sentinel for w in workers])
                for i, w in enumerate(workers):
                    done = self._finished(w, ready)
                    if done is not None:
                        yield done
                    elif not w.process.is_alive():
                        lost = self._lost(w, queue) if w.task else None
                        w.conn.close()
                        workers[i] = _Worker(self._context, self.threads)
                        if lost is not None:
                            yield lost
            finished = True
        finally:  # interrupted (or closed early): stop at once, the caller removes partial files
            self.running = 0
            for w in workers:
                w.stop() if finished else w.kill()

    @staticmethod
    def _finished(w: _Worker, ready) -> TaskDone | None:
        if w.task is None or w.conn not in ready:
            return None
        try:
            index, value, error = w.conn.recv()
        except (EOFError, OSError):  # died while answering: handled as a death
            return None
        done = TaskDone(index, value, error, attempts=w.task[1])
        w.task = None
        return done

    def _lost(self, w: _Worker, queue: deque) -> TaskDone | None:
        """A worker died running its task: retry the task first, or give it up."""
        index, attempt = w.task
        w.process.join()
        reason = w.death()
        if attempt <= self.retries:
            queue.appendleft((index, attempt + 1))
            return None
        return TaskDone(index, error=f"{reason} on each of {attempt} attempt(s)", attempts=attempt)

    def close(self) -> None:
        """Nothing to release: the workers of a run stop when it ends."""
