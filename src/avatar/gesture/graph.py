"""The motion graph of a person's reference footage (TANGO §3.1, "Graph Initialization").

Nodes are non-overlapping clips of ``GESTURE.node_frames`` frames inside one segment (a shot
or video: natural continuation never crosses a segment boundary). An edge i -> j says node
j may be played right after node i. The natural edges i -> i+1 of the source video are
always there; the other edges are transitions whose distance is below the adaptive
threshold of TANGO §3.1.

Distances between nodes (:func:`node_distances`) compare the nodes frame by frame (frame f
of node i with frame f of node j):

- ``d_pose``: mean over frames and joints of the Euclidean distance of each joint's
  (position, scaled velocity) 6-vector. Velocities (units/s) are scaled into position
  units by :func:`velocity_scale` (the positions' typical spread over the typical speed),
  so position and motion weigh alike whatever the units.
- ``d_iou``: 1 - IoU of what is visible, where the person mask and each seen hand box
  count as one region each: per frame ``1 - (IoU_mask + sum_h w_h IoU_h) / (1 + sum_h w_h)``
  with ``w_h = 1`` when hand h is seen in either frame (an unseen-unseen hand says
  nothing; a seen-unseen hand has IoU 0). Hands get their own terms because their
  placement is what a gesture is, and a small hand box barely moves a whole-body IoU.

:func:`balanced_distance` adds the two after scaling each by its typical natural step (the
paper adds them unscaled; see there why).

Which distance decides an edge (:func:`build_graph`): playing j right after i looks
continuous when j resembles i's natural successor i+1, or when i resembles j's natural
predecessor j-1 (either makes the pair (i, j) look like a pair of the source video). So
i -> j is an edge when ``D[i+1, j] < t_{i+1}`` or ``D[i, j-1] < t_i`` with the threshold
``t_i = (d_{i,i-1} + d_{i,i} + d_{i,i+1}) / 3`` (the terms whose neighbour exists in the
segment; ``d_{i,i} = 0`` here), times ``threshold_scale`` (1 = the paper; enrolment raises
it for videos with little motion, whose graphs would otherwise prune to almost nothing).
The second test gives the last node of a segment, which has no i+1, a chance of out-edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial.distance import cdist

from avatar.config import GESTURE
from avatar.errors import AvatarError
from avatar.fileio import prefixed, prefixed_reader

MASK_HALF = 127  # uint8 masks are 0..255 person probability (BodyTrack): above this is the person
NO_SEGMENT = -1  # segment id for unusable frames (no person tracked); any negative id gets no node
ARRAY_PREFIX = "graph_"
ARRAY_KEYS = ("starts", "segment", "ids", "src", "dst", "num_nodes", "node_frames")


@dataclass(eq=False)
class MotionGraph:
    """Directed graph over clips of the source video; node ids are 0..N-1 in time order."""

    starts: np.ndarray  # (N,) int64 first source frame of each node
    segment: np.ndarray  # (N,) int64 segment (shot / video) of each node
    adjacency: sparse.csr_matrix  # (N, N) bool: i -> j means j may play right after i
    ids: np.ndarray | None = None  # (N,) int64 node index in the unpruned graph (None: 0..N-1)
    node_frames: int = GESTURE.node_frames

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, np.int64)
        self.segment = np.asarray(self.segment, np.int64)
        self.ids = np.arange(len(self.starts)) if self.ids is None else np.asarray(self.ids, np.int64)
        adjacency = sparse.csr_matrix(self.adjacency, dtype=bool)
        adjacency.eliminate_zeros()
        adjacency.sort_indices()
        self.adjacency = adjacency

    @property
    def num_nodes(self) -> int:
        return len(self.starts)

    @property
    def num_edges(self) -> int:
        return int(self.adjacency.nnz)

    def successors(self, i: int) -> np.ndarray:
        """Nodes that may follow node ``i``, ascending."""
        a = self.adjacency
        return a.indices[a.indptr[i]: a.indptr[i + 1]]

    def out_degree(self) -> np.ndarray:
        """(N,) number of successors of each node."""
        return np.diff(self.adjacency.indptr)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(E,) sources and (E,) destinations of every edge, grouped by source."""
        a = self.adjacency
        return np.repeat(np.arange(self.num_nodes), np.diff(a.indptr)), a.indices.astype(np.int64)

    def are_natural(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Element-wise: is dst the clip right after src in the source video?"""
        src, dst = np.asarray(src), np.asarray(dst)
        same_segment = self.segment[src] == self.segment[dst]
        return same_segment & (self.starts[dst] - self.starts[src] == self.node_frames)

    def is_natural(self, i: int, j: int) -> bool:
        return bool(self.are_natural(i, j))

    def frames(self, i: int) -> range:
        """Source frames of node ``i``."""
        return range(int(self.starts[i]), int(self.starts[i]) + self.node_frames)

    def subgraph(self, keep: np.ndarray) -> MotionGraph:
        """The graph on the kept nodes (bool mask (N,) or ascending indices); ``ids`` still name
        the nodes of the unpruned graph."""
        keep = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, np.int64)
        adjacency = self.adjacency[keep][:, keep]
        return MotionGraph(self.starts[keep], self.segment[keep], adjacency, self.ids[keep],
                           self.node_frames)

    # -- flat arrays (for .npz bundles) ------------------------------------------------
    def save_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays, keys prefixed "graph_": starts, segment, ids (N,) int64;
        src, dst (E,) int64 edges; num_nodes, node_frames () int64."""
        src, dst = self.edges()
        values = {"starts": self.starts, "segment": self.segment, "ids": self.ids, "src": src,
                  "dst": dst, "num_nodes": np.int64(self.num_nodes),
                  "node_frames": np.int64(self.node_frames)}
        return prefixed(ARRAY_PREFIX, {key: values[key] for key in ARRAY_KEYS})

    @staticmethod
    def from_arrays(arrays, where: str = "motion graph") -> MotionGraph:
        """Inverse of :meth:`save_arrays` (a dict or an open ``np.load`` archive)."""
        get = prefixed_reader(arrays, ARRAY_PREFIX, ARRAY_KEYS, "motion graph", where)
        n = int(get("num_nodes"))
        src, dst = get("src").astype(np.int64), get("dst").astype(np.int64)
        adjacency = sparse.csr_matrix((np.ones(len(src), bool), (src, dst)), shape=(n, n))
        return MotionGraph(get("starts"), get("segment"), adjacency, get("ids"), int(get("node_frames")))


# -- nodes ------------------------------------------------------------------------------------
def node_starts(segment: np.ndarray,
                node_frames: int = GESTURE.node_frames) -> tuple[np.ndarray, np.ndarray]:
    """(T,) segment id per frame -> node starts (N,), node segments (N,) (TANGO §3.1).

    Nodes tile each run of equal ids from its first frame; a run's incomplete tail and
    frames with a negative id (``NO_SEGMENT``) get no node.
    """
    segment = np.asarray(segment, np.int64)
    t = np.arange(len(segment))
    new_run = np.ones(len(segment), bool)
    new_run[1:] = segment[1:] != segment[:-1]
    run_id = np.cumsum(new_run) - 1  # (T,)
    run_first = t[new_run]  # (R,)
    run_end = np.append(run_first[1:], len(segment))  # (R,) one past each run's last frame
    offset = t - run_first[run_id]
    is_start = (offset % node_frames == 0) & (t + node_frames <= run_end[run_id]) & (segment >= 0)
    return t[is_start], segment[is_start]


def node_frame_index(starts: np.ndarray, node_frames: int = GESTURE.node_frames) -> np.ndarray:
    """(N, node_frames) source frame of each node's frames."""
    return np.asarray(starts, np.int64)[:, None] + np.arange(node_frames)[None]


# -- distances (TANGO §3.1) -------------------------------------------------------------------
def velocity_scale(positions: np.ndarray, velocities: np.ndarray) -> float:
    """Position units per velocity unit: the joints' mean distance from their mean position
    over their mean speed, so scaled velocities spread like positions (0 if nothing moves)."""
    spread = np.linalg.norm(positions - positions.mean(axis=0), axis=-1).mean()
    speed = np.linalg.norm(velocities, axis=-1).mean()
    return float(spread / speed) if speed > 0 else 0.0


def pose_distances(positions: np.ndarray, velocities: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(N, N) d_pose: mean over aligned frames and joints of the (position, scaled velocity)
    Euclidean distance. ``frames`` (N, F) source frames of each node."""
    scale = velocity_scale(positions[frames.ravel()], velocities[frames.ravel()])
    features = np.concatenate([positions[frames], scale * velocities[frames]], axis=-1)  # (N, F, J, 6)
    features = features.reshape(len(frames), -1, features.shape[-1]).astype(np.float64)  # (N, F*J, 6)
    total = np.zeros((len(frames), len(frames)))
    buffer = np.empty_like(total)
    for k in range(features.shape[1]):  # one (N, N) distance matrix per frame and joint
        column = np.ascontiguousarray(features[:, k])
        total += cdist(column, column, out=buffer)
    return total / features.shape[1]


def mask_iou(masks: np.ndarray) -> np.ndarray:
    """(N, P) bool -> (N, N) IoU of every pair (two empty masks: 1).

    Pixels the same in every mask are constants (always on: +1 to intersection and union;
    always off: nothing), so only the varying pixels go through the matrix product.
    """
    always = masks.all(axis=0)
    varying = masks.any(axis=0) & ~always
    x = masks[:, varying].astype(np.float32)  # (N, V) counts stay exact in float32
    inter = (x @ x.T).astype(np.float64) + always.sum()  # (N, N)
    area = x.sum(axis=1, dtype=np.float64) + always.sum()  # (N,)
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 1.0)


def box_iou(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) x0, y0, x1, y1 boxes (NaN: unseen) -> (N, N) IoU, (N, N) weight.

    Weight 1 where either box is seen (a seen-unseen pair has IoU 0), 0 where neither is.
    """
    seen = np.isfinite(boxes).all(axis=1)  # (N,)
    b = np.where(seen[:, None], boxes, 0.0).astype(np.float32)  # unseen: an empty box at 0
    x0, y0, x1, y1 = (b[:, k] for k in range(4))
    inter = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])  # (N, N) overlap width
    np.clip(inter, 0, None, out=inter)
    height = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])  # (N, N)
    inter *= np.clip(height, 0, None, out=height)
    area = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)  # (N,)
    union = area[:, None] + area[None]
    union -= inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    degenerate = (union <= 0) & seen[:, None] & seen[None]  # two zero-area boxes: same point or not
    if degenerate.any():
        iou[degenerate] = (b[:, None] == b[None]).all(axis=-1)[degenerate]
    return iou, (seen[:, None] | seen[None]).astype(np.float32)


def iou_distances(masks: np.ndarray, hand_boxes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(N, N) d_iou: mean over aligned frames of 1 - IoU of person mask and hand boxes
    (the combination is in the module docstring)."""
    person = masks if masks.dtype == bool else masks > MASK_HALF
    total = np.zeros((len(frames), len(frames)))
    for f in range(frames.shape[1]):
        agree = mask_iou(person[frames[:, f]].reshape(len(frames), -1))  # (N, N)
        weight = np.ones_like(agree)
        for hand in range(hand_boxes.shape[1]):
            iou, seen = box_iou(hand_boxes[frames[:, f], hand])
            agree += seen * iou
            weight += seen
        total += 1.0 - agree / weight
    return total / frames.shape[1]


def node_distances(positions: np.ndarray, velocities: np.ndarray, masks: np.ndarray,
                   hand_boxes: np.ndarray, starts: np.ndarray,
                   node_frames: int = GESTURE.node_frames) -> tuple[np.ndarray, np.ndarray]:
    """(D_pose (N, N), D_iou (N, N)) between the nodes starting at ``starts`` (TANGO §3.1).

    positions (T, J, 3) root-relative, velocities (T, J, 3) per second, masks (T, mh, mw)
    bool (or uint8 0..255), hand_boxes (T, H, 4) x0, y0, x1, y1 px with NaN where unseen.
    """
    frames = node_frame_index(starts, node_frames)  # (N, F)
    used = frames.ravel()
    if not (np.isfinite(positions[used]).all() and np.isfinite(velocities[used]).all()):
        raise AvatarError("the body is not tracked in some frames of the motion graph",
                          "reference video",
                          f"give frames without a tracked person the segment id {NO_SEGMENT}")
    return pose_distances(positions, velocities, frames), iou_distances(masks, hand_boxes, frames)


def balanced_distance(d_pose: np.ndarray, d_iou: np.ndarray, starts: np.ndarray, segment: np.ndarray,
                      node_frames: int = GESTURE.node_frames) -> np.ndarray:
    """(N, N) d_pose / m_pose + d_iou / m_iou, m the median distance of the natural steps.

    TANGO §3.1 adds the two as they are, but their units differ: on real footage d_pose (m)
    is ~10x smaller than d_iou (ub01 natural steps: 0.05 vs 0.41), so the plain sum is
    d_iou alone. Scaled by their typical natural step, both count alike; the adaptive
    thresholds of :func:`build_graph` do not depend on the overall scale.
    """
    i = np.flatnonzero(natural_pairs(np.asarray(starts), np.asarray(segment), node_frames))
    total = np.zeros_like(d_pose, dtype=np.float64)
    for d in (d_pose, d_iou):
        typical = float(np.median(d[i, i + 1])) if len(i) else 0.0
        total += d / typical if typical > 0 else d
    return total


# -- edges (TANGO §3.1) -----------------------------------------------------------------------
def natural_pairs(starts: np.ndarray, segment: np.ndarray,
                  node_frames: int = GESTURE.node_frames) -> np.ndarray:
    """(N-1,) bool: is node i+1 the natural continuation of node i?"""
    return (segment[1:] == segment[:-1]) & (np.diff(starts) == node_frames)


def adaptive_thresholds(distances: np.ndarray, has_prev: np.ndarray, has_next: np.ndarray) -> np.ndarray:
    """(N,) t_i = mean of d_{i,i-1}, d_{i,i}, d_{i,i+1} over the neighbours that exist (§3.1)."""
    n = len(distances)
    i = np.arange(n)
    prev, nxt = np.maximum(i - 1, 0), np.minimum(i + 1, n - 1)
    total = distances[i, i] + has_prev * distances[i, prev] + has_next * distances[i, nxt]
    return total / (1.0 + has_prev + has_next)


def build_graph(distances: np.ndarray, starts: np.ndarray, segment: np.ndarray,
                node_frames: int = GESTURE.node_frames, threshold_scale: float = 1.0) -> MotionGraph:
    """Motion graph from node distances D (N, N) (e.g. d_pose + d_iou); nodes in time order.

    Edge i -> j when ``D[i+1, j] < t_{i+1}`` or ``D[i, j-1] < t_i`` (module docstring), plus
    every natural edge i -> i+1; never i -> i.
    """
    starts, segment = np.asarray(starts, np.int64), np.asarray(segment, np.int64)
    d = np.asarray(distances, np.float64)
    n = len(starts)
    if d.shape != (n, n):
        raise ValueError(f"distances {d.shape} do not match {n} nodes")
    if n == 0:
        return MotionGraph(starts, segment, sparse.csr_matrix((0, 0), dtype=bool), None, node_frames)
    natural = natural_pairs(starts, segment, node_frames)  # (N-1,)
    has_next, has_prev = np.append(natural, False), np.insert(natural, 0, False)  # (N,)
    t = threshold_scale * adaptive_thresholds(d, has_prev, has_next)
    i = np.arange(n)
    nxt, prev = np.minimum(i + 1, n - 1), np.maximum(i - 1, 0)
    like_next = has_next[:, None] & (d[nxt] < t[nxt][:, None])  # [i, j]: j resembles i+1
    like_prev = has_prev[None, :] & (d[:, prev] < t[:, None])  # [i, j]: i resembles j-1
    edges = like_next | like_prev
    edges[i[:-1][natural], i[1:][natural]] = True
    edges[i, i] = False
    return MotionGraph(starts, segment, sparse.csr_matrix(edges), None, node_frames)
