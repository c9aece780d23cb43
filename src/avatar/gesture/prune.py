"""Graph pruning (TANGO §3.1, Algorithm 1, Fig. 4): a graph where no walk can get stuck.

1. Dead ends: a node without successors ends every walk that reaches it. Remove such nodes
   and the edges into them, repeatedly, until every node has a successor (this also removes
   every path that can only lead into a dead end).
2. Strong connectivity: of the strongly connected components (SCCs) left, keep the
   largest, so every node reaches every other and a walk of any length can start anywhere.

On "merging" SCCs (Fig. 4): with the graph's own edges two SCCs that reach each other are
already one SCC, so merging needs new edges - e.g. for each smaller component, the
lowest-distance transition back into the largest one and from it into the component
(relaxing the §3.1 threshold for those two pairs only). That needs the node distances; it
is not done here, the largest component is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components

from avatar.errors import AvatarError
from avatar.gesture.graph import MotionGraph

MIN_COMPONENT = 2  # with no self loops, a one-node component has no edge to walk


@dataclass(frozen=True)
class PruneReport:
    """What pruning removed."""

    nodes_before: int
    nodes_after: int
    edges_before: int
    edges_after: int
    dead_ends: int  # nodes removed because every walk from them gets stuck (step 1)
    components: int  # strongly connected components after step 1 (the largest is kept)


def live_nodes(graph: MotionGraph) -> np.ndarray:
    """(N,) bool: nodes from which some walk never gets stuck (Algorithm 1, first loop)."""
    out_edges = graph.adjacency.astype(np.int32)
    alive = np.ones(graph.num_nodes, bool)
    while True:
        successors = out_edges @ alive.astype(np.int32)  # (N,) live successors per node
        stuck = alive & (successors == 0)
        if not stuck.any():
            return alive
        alive &= ~stuck


def largest_component(graph: MotionGraph) -> tuple[np.ndarray, int]:
    """(N,) bool mask of the largest strongly connected component (the earliest nodes on a
    tie), and the number of components."""
    if graph.num_nodes == 0:
        return np.zeros(0, bool), 0
    count, labels = connected_components(graph.adjacency, directed=True, connection="strong")
    return labels == np.argmax(np.bincount(labels)), int(count)


def prune(graph: MotionGraph) -> tuple[MotionGraph, PruneReport]:
    """Algorithm 1: drop dead ends, keep the largest SCC (``ids`` keep the original nodes).

    In the result every node has a successor and reaches every other node.
    """
    alive = graph.subgraph(live_nodes(graph))
    keep, components = largest_component(alive)
    pruned = alive.subgraph(keep)
    if pruned.num_nodes < MIN_COMPONENT:
        raise AvatarError("the motion graph has no loop of transitions to play", "reference video",
                          "use a longer video with more varied, repeated gestures")
    report = PruneReport(graph.num_nodes, pruned.num_nodes, graph.num_edges, pruned.num_edges,
                         graph.num_nodes - alive.num_nodes, components)
    return pruned, report
