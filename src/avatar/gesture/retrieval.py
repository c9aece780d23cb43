"""Audio-driven path retrieval by dynamic programming over the motion graph (TANGO §3.2).

Given per-slot similarities ``scores[s, i]`` (slot s of the new speech against node i; the
caller mixes AuMoCLIP's low- and high-level cosines), :func:`best_path` finds the walk
``n_0 .. n_{S-1}`` along graph edges maximising

    sum_s scores[s, n_s] - jump_penalty * #{s : n_{s-1} -> n_s is not a natural edge}

so long runs of consecutive real frames win unless a jump buys more similarity.

Runs: a jump lands on a run of length 1; natural steps lengthen the run. With ``min_run``
R, a jump may only leave a run of at least R nodes, so transitions (TANGO §3.3) have real
frames on both sides. The path's start counts as a full run (no transition precedes it);
its last run may be shorter. Exact: the DP state is (node, run length capped at R).

Per slot, the best jump into each node is a max over its incoming non-natural edges,
vectorised with ``np.maximum.reduceat`` over the transposed (CSR by destination) edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from avatar.gesture.graph import MotionGraph

DEFAULT_MIN_RUN = 2  # nodes between two jumps: room for in-between frames on both sides
NONE = -1  # no natural predecessor


@dataclass(frozen=True)
class Moves:
    """The graph's edges split for the DP: one natural predecessor, many jump predecessors."""

    natural_prev: np.ndarray  # (N,) int64 natural predecessor of each node in the graph, NONE
    jump_ptr: np.ndarray  # (N+1,) int64 CSR row pointer: jump predecessors of node j ...
    jump_pred: np.ndarray  # (E_jump,) int64 ... are jump_pred[jump_ptr[j]:jump_ptr[j+1]]

    @staticmethod
    def of(graph: MotionGraph) -> Moves:
        src, dst = graph.edges()
        natural = graph.are_natural(src, dst)
        natural_prev = np.full(graph.num_nodes, NONE, np.int64)
        natural_prev[dst[natural]] = src[natural]
        n = graph.num_nodes
        jump = ~natural
        ones = np.ones(int(jump.sum()), bool)
        by_dst = sparse.csr_matrix((ones, (dst[jump], src[jump])), shape=(n, n))
        by_dst.sort_indices()
        return Moves(natural_prev, by_dst.indptr.astype(np.int64), by_dst.indices.astype(np.int64))

    def best_jump(self, values: np.ndarray) -> np.ndarray:
        """(N,) max of ``values`` (N,) over each node's jump predecessors; -inf if none."""
        gathered = np.append(values[self.jump_pred], -np.inf)  # sentinel: reduceat of a last empty row
        best = np.maximum.reduceat(gathered, self.jump_ptr[:-1])
        best[self.jump_ptr[1:] == self.jump_ptr[:-1]] = -np.inf
        return best


def count_jumps(graph: MotionGraph, nodes: np.ndarray) -> int:
    """Non-natural steps of a path."""
    nodes = np.asarray(nodes, np.int64)
    return int((~graph.are_natural(nodes[:-1], nodes[1:])).sum()) if len(nodes) > 1 else 0


def path_score(graph: MotionGraph, nodes: np.ndarray, scores: np.ndarray, jump_penalty: float) -> float:
    """The objective :func:`best_path` maximises, for any path."""
    nodes = np.asarray(nodes, np.int64)
    return float(scores[np.arange(len(nodes)), nodes].sum() - jump_penalty * count_jumps(graph, nodes))


def forward(moves: Moves, scores: np.ndarray, jump_penalty: float, start: int | None,
            min_run: int) -> np.ndarray:
    """(S, N, R) best objective of a path ending at slot s in node i with run state k
    (run length k+1, the last state meaning >= R)."""
    num_slots, n = scores.shape
    value = np.full((num_slots, n, min_run), -np.inf)
    value[0, :, -1] = scores[0]  # the start is a full run: a jump may follow at once
    if start is not None:
        value[0, np.arange(n) != start] = -np.inf
    has_prev = moves.natural_prev != NONE
    prev_of = moves.natural_prev[has_prev]
    for s in range(1, num_slots):
        before = value[s - 1][prev_of]  # (n_natural, R) state of each natural predecessor
        step = np.full((n, min_run), -np.inf)
        step[has_prev, 1:] = before[:, :-1]  # a natural step lengthens the run ...
        step[has_prev, -1] = np.maximum(step[has_prev, -1], before[:, -1])  # ... up to the cap
        jump = moves.best_jump(value[s - 1, :, -1]) - jump_penalty  # only from full runs
        step[:, 0] = np.maximum(step[:, 0], jump)
        value[s] = step + scores[s][:, None]
    return value


def backtrack(moves: Moves, value: np.ndarray, jump_penalty: float) -> np.ndarray:
    """(S,) nodes of the best path, read back from the forward values."""
    num_slots, _, min_run = value.shape
    node, state = np.unravel_index(int(np.argmax(value[-1])), value.shape[1:])
    path = np.empty(num_slots, np.int64)
    path[-1] = node
    for s in range(num_slots - 1, 0, -1):
        options: list[tuple[float, int, int]] = []  # (value, node, state) of possible predecessors
        prev = moves.natural_prev[node]
        if prev != NONE:
            sources = [state - 1] if state > 0 else []
            sources += [min_run - 1] if state == min_run - 1 else []
            options += [(value[s - 1, prev, k], int(prev), k) for k in sources]
        if state == 0:
            preds = moves.jump_pred[moves.jump_ptr[node]: moves.jump_ptr[node + 1]]
            if len(preds):
                best = int(preds[np.argmax(value[s - 1, preds, -1])])
                options.append((value[s - 1, best, -1] - jump_penalty, best, min_run - 1))
        _, node, state = max(options, key=lambda option: option[0])
        path[s - 1] = node
    return path


def best_path(graph: MotionGraph, scores: np.ndarray, jump_penalty: float, start: int | None = None,
              min_run: int = DEFAULT_MIN_RUN) -> np.ndarray:
    """(S,) nodes of the best walk for ``scores`` (S, N) (TANGO §3.2; module docstring).

    ``start``: force the first node. If no walk satisfies ``min_run``, the run constraint is
    dropped (``min_run=1``); ValueError if the graph has no walk of S nodes at all (prune it).
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[1] != graph.num_nodes:
        raise ValueError(f"scores {scores.shape} do not match a graph of {graph.num_nodes} nodes")
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    moves = Moves.of(graph)
    value = forward(moves, scores, jump_penalty, start, max(1, min_run))
    if not np.isfinite(value[-1]).any():
        if min_run > 1:
            return best_path(graph, scores, jump_penalty, start, min_run=1)
        raise ValueError(f"the graph has no walk of {len(scores)} nodes; prune it first")
    return backtrack(moves, value, jump_penalty)
