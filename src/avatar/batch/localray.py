"""A throwaway Ray cluster on this machine: a head and worker nodes on 127.0.0.1, each
``ray start --block`` in its own process group, so that one node can be killed alone
(as a real node dies) and the whole cluster stopped without touching any other Ray
running here. For the cluster test and the scaling benchmark; a real cluster is started
with ``ray start`` on each machine (see the README).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_SECONDS = 120.0
STOP_SECONDS = 5.0  # then SIGKILL: a throwaway cluster keeps no state worth a slow stop
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # jobs pass paths, not arrays: keep shared memory small


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_command() -> str:
    """The ``ray`` next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


class LocalRayCluster:
    """``with LocalRayCluster(workers=1) as cluster: ... cluster.address ...``"""

    def __init__(self, workers: int = 1, cpus_per_node: int = 1, log_dir=None):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus_per_node = cpus_per_node
        self.log_dir = Path(log_dir) if log_dir else None
        self.head: subprocess.Popen | None = None
        self.nodes: list[subprocess.Popen] = []
        self._workers = workers
        # no usage reporting, no dashboard: offline, and less memory
        self._env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}

    def _start(self, *args: str, name: str) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.log", "w") if self.log_dir else subprocess.DEVNULL
        return subprocess.Popen([_ray_command(), "start", "--block", f"--num-cpus={self.cpus_per_node}",
                                 f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=self._env, start_new_session=True)

    def __enter__(self) -> "LocalRayCluster":
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.head = self._start("--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                                "--include-dashboard=false", name="head")
        try:
            self._wait_for_nodes(1)
            for i in range(self._workers):  # one at a time: nodes starting together race for ports
                self.add_node(name=f"node{i + 1}")
                self._wait_for_nodes(2 + i)
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self, name: str = "node") -> subprocess.Popen:
        node = self._start(f"--address={self.address}", "--node-ip-address=127.0.0.1", name=name)
        self.nodes.append(node)
        return node

    def _wait_for_nodes(self, count: int) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError(f"the Ray head exited (code {self.head.returncode})")
            if self.alive_nodes() >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the local Ray cluster did not reach {count} node(s) in {START_SECONDS:g} s")

    def alive_nodes(self) -> int:
        """Nodes the cluster counts as alive, from ``ray status`` (no driver needed)."""
        status = subprocess.run([_ray_command(), "status", f"--address={self.address}"], capture_output=True,
                                text=True, env=self._env, timeout=30)
        if status.returncode != 0:
            return 0
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return sum(1 for line in active.splitlines() if line.strip().startswith("1 node_"))

    @staticmethod
    def pids(node: subprocess.Popen) -> set[int]:
        """Every process of a node: its ``ray start``, raylet and workers (Ray puts its
        workers in process groups of their own, so these are found by parent)."""
        parents = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # not a process, or gone
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = {node.pid}, [node.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
            found.update(children)
            frontier.extend(children)
        return found

    @classmethod
    def kill(cls, node: subprocess.Popen) -> None:
        """Kill a node at once (SIGKILL to all its processes), as a machine dies."""
        for pid in cls.pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.wait()

    def stop(self) -> None:
        """Stop every node: gracefully (``ray start --block`` stops what it started), then
        SIGKILL to whatever is left, found before the stop (orphans lose their parent)."""
        nodes = [n for n in (*self.nodes, self.head) if n is not None]
        leftovers = set().union(*(self.pids(n) for n in nodes))
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for node in nodes:
            node.wait()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False
