"""Random walks on a motion graph: how often does a walk get stuck? (TANGO §3.1)

The paper samples paths from the unpruned graph and finds 75.9 % of 10 s and 98.6 % of 30 s
walks reach a dead end; after pruning (Algorithm 1) none should.
"""

from __future__ import annotations

import numpy as np

from avatar.gesture.graph import MotionGraph

STUCK = -1  # node id in a walk after it reached a node without successors


def walk_length(seconds: float, fps: float, node_frames: int) -> int:
    """Nodes in a walk covering ``seconds`` of video at ``fps``: at least one."""
    return max(1, round(seconds * fps / node_frames))


def random_walks(graph: MotionGraph, length: int, walks: int, seed: int = 0) -> np.ndarray:
    """(walks, length) node ids: uniform random start, uniform random successor each step;
    ``STUCK`` from the step after a node without successors. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    indptr, indices = graph.adjacency.indptr, graph.adjacency.indices
    degree = np.diff(indptr)  # (N,)
    path = np.full((walks, length), STUCK, np.int64)
    if graph.num_nodes == 0 or walks == 0:
        return path
    current = rng.integers(graph.num_nodes, size=walks)  # (W,)
    path[:, 0] = current
    for step in range(1, length):
        options = np.where(current == STUCK, 0, degree[np.maximum(current, 0)])  # (W,)
        choice = (rng.random(walks) * options).astype(np.int64)  # uniform in [0, options)
        moving = options > 0
        nxt = np.full(walks, STUCK, np.int64)
        nxt[moving] = indices[indptr[current[moving]] + choice[moving]]
        path[:, step] = current = nxt
    return path


def dead_end_probability(graph: MotionGraph, seconds: float, fps: float, walks: int = 1000,
                         seed: int = 0) -> float:
    """Fraction of random walks of ``seconds`` (at ``fps``) that hit a dead end before their
    length (TANGO §3.1). Deterministic for ``seed``."""
    length = walk_length(seconds, fps, graph.node_frames)
    path = random_walks(graph, length, walks, seed)
    return float(np.mean(path[:, -1] == STUCK)) if walks else 0.0
