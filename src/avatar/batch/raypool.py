"""The same as avatar.batch.pool.LocalPool, on a Ray cluster (``--ray auto|ADDRESS``).

Ray schedules the tasks over the cluster's nodes, one CPU each; its worker processes
are reused between tasks of the same function, so models stay loaded per worker. A task
whose worker or node dies is submitted again (up to ``retries`` more times) so that the
manifest can say how many attempts a job took; an exception raised by the task itself is
not retried (our tasks return their failures instead of raising them).

Every node needs avatar installed (the same version) and the job's files at the same
paths, e.g. on a shared file system.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable, Iterator, Sequence

from avatar.batch.pool import TaskDone
from avatar.errors import AvatarError

WAIT_SECONDS = 1.0  # how often the progress is refreshed while nothing finishes
CONNECT_SECONDS = 5.0
RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # written by `ray start` (Ray's default temp dir)


def _call(fn, task):
    return fn(task)


def _ray():
    try:
        import ray
    except ImportError:
        raise AvatarError("Ray is not installed", "--ray", "pip install 'ray[default]' on every node, "
                                                           "or leave out --ray to run locally") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at HOST:PORT (ray.init would keep retrying for minutes)."""
    if address == "auto":
        address = _auto_address()
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep:
        return
    if not port.isdigit():
        raise AvatarError(f"not a HOST:PORT address: {address!r}", "--ray", "give e.g. 10.0.0.5:6379, or auto")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise AvatarError(f"no Ray cluster answers at {address} ({e.strerror or e})", "--ray",
                          "start one with `ray start --head` there, or check the head's address") from None


def _auto_address() -> str:
    """Where ``auto`` points: $RAY_ADDRESS, else the cluster that ``ray start`` on this
    machine recorded (Ray's own lookup, done here so that a stale record fails fast)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        return RAY_CURRENT_CLUSTER.read_text().strip()
    except OSError:
        raise AvatarError("no Ray cluster was started on this machine", "--ray auto",
                          "start one with `ray start --head`, or give the head's HOST:PORT") from None


class RayPool:
    """Tasks on the Ray cluster at ``address`` ("auto": the one this machine belongs to)."""

    def __init__(self, address: str, retries: int = 2, cpus_per_task: float = 1.0):
        ray = _ray()
        self._ray = ray
        self.retries = retries
        self.cpus_per_task = cpus_per_task
        self.running = 0
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise AvatarError(f"cannot connect to the Ray cluster ({str(e).splitlines()[0]})", f"--ray {address}",
                              "start one with `ray start --head` or give the head's address, e.g. 10.0.0.5:6379") from None
        self._remote = ray.remote(_call).options(num_cpus=cpus_per_task, max_retries=0)

    def describe(self) -> str:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return f"Ray cluster: {len(nodes)} node(s), {self._cpus():g} CPU(s)"

    def _cpus(self) -> float:
        return self._ray.cluster_resources().get("CPU", 0.0)

    def run(self, fn: Callable, tasks: Sequence) -> Iterator[TaskDone]:
        """TaskDone for every task, in the order they finish."""
        ray = self._ray
        fn_ref = ray.put(fn)
        pending = {self._remote.remote(fn_ref, task): (index, 1) for index, task in enumerate(tasks)}
        try:
            while pending:
                self.running = int(min(len(pending), self._cpus() // self.cpus_per_task))
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=WAIT_SECONDS)
                for ref in ready:
                    index, attempt = pending.pop(ref)
                    done = self._result(ref, index, attempt)
                    if done is None:  # its worker died: again
                        pending[self._remote.remote(fn_ref, tasks[index])] = (index, attempt + 1)
                    else:
                        yield done
        finally:
            self.running = 0
            for ref in pending:
                ray.cancel(ref, force=True)

    def _result(self, ref, index: int, attempt: int) -> TaskDone | None:
        ray = self._ray
        try:
            return TaskDone(index, ray.get(ref), attempts=attempt)
        except ray.exceptions.RayTaskError as e:  # raised by the task itself: not a worker loss
            return TaskDone(index, error=f"task failed: {str(e).splitlines()[0]}", attempts=attempt)
        except ray.exceptions.RayError as e:  # worker or node died, object lost, ...
            if attempt <= self.retries:
                return None
            return TaskDone(index, error=f"{e.__class__.__name__} on each of {attempt} attempt(s)",
                            attempts=attempt)

    def close(self) -> None:
        self._ray.shutdown()
