"""The control mesh of the warp: face triangles, filled mouth/eye holes, and exterior anchors.

Controls are points with a source position; the renderer moves them each frame. A field
defined at the controls is spread over a pixel grid by fixed barycentric weights (the
triangulation lives in source space, so the weights are computed once per photo).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay

from avatar.face import topology as topo

# Exterior anchors, in face widths from the head origin (canonical frame, y down).
HEAD_RING_SCALE = 1.45  # ring around the face oval carried rigidly with the head (hair)
HEAD_TOP_SCALE = 2.0  # a second, looser ring over the top of the head
NECK_DROP = 0.6  # neck anchors this far below the chin follow the head only partly
STILL_RING_SCALE = 2.6  # beyond this ring (face oval scaled about its centre) nothing moves
BORDER_POINTS_PER_SIDE = 8
SUBPIXEL_SHIFT = 4  # triangles are rasterised with 1/16-cell vertex precision


def ladder(upper, lower) -> list[tuple[int, int, int]]:
    """Triangles filling the gap between two curves that share their end points."""
    tris = []
    for i in range(len(upper) - 1):
        a, b, c, d = upper[i], upper[i + 1], lower[i + 1], lower[i]
        tris += [(a, b, c), (a, c, d)]
    return [t for t in tris if len(set(t)) == 3]


def hole_triangles() -> np.ndarray:
    """Triangles for the holes MediaPipe's tesselation leaves at the mouth and eyes."""
    tris = (ladder(topo.LIPS_INNER_UPPER, topo.LIPS_INNER_LOWER)
            + ladder(topo.EYE_R_UPPER, topo.EYE_R_LOWER)
            + ladder(topo.EYE_L_UPPER, topo.EYE_L_LOWER))
    return np.array(tris, np.int64)


@dataclass
class ControlMesh:
    source: np.ndarray  # (N, 2) control positions in source pixels
    triangles: np.ndarray  # (M, 3) indices into source
    num_face: int  # the first num_face controls are the 478 face landmarks
    head_anchor: np.ndarray  # (H, 3) canonical positions of the head-rigid exterior anchors
    neck: np.ndarray  # (K,) control indices of the neck anchors
    still: np.ndarray  # (S,) control indices that never move: the still ring and the border
    active_box: tuple[int, int, int, int]  # (x0, y0, x1, y1): outside it pixels never change

    @property
    def head(self) -> np.ndarray:
        return np.arange(self.num_face, self.num_face + len(self.head_anchor))


def _exterior_anchors(neutral: np.ndarray) -> np.ndarray:
    """(H, 3) canonical points around the face that move rigidly with the skull."""
    oval = neutral[topo.as_index(topo.FACE_OVAL)]
    centre = oval.mean(0)
    rings = []
    for k in (HEAD_RING_SCALE, HEAD_TOP_SCALE):
        ring = centre + (oval - centre) * k
        ring[:, 2] = oval[:, 2]  # at the depth of the oval point it extends: turning the head
        # then moves ring and oval alike, so the band between them never folds over
        if k == HEAD_TOP_SCALE:
            ring = ring[ring[:, 1] < centre[1]]  # only over the top: the chin side is the neck
        rings.append(ring)
    return np.concatenate(rings)


def build_control_mesh(face_points: np.ndarray, neutral: np.ndarray, frame, size) -> ControlMesh:
    """Controls: face landmarks, head-rigid anchors, neck anchors, a still ring and the
    image border. The background beyond the still ring stays exactly where it is."""
    w, h = size
    head_anchor = _exterior_anchors(neutral)
    head_src = frame.to_image(head_anchor)[:, :2]
    chin = face_points[topo.CHIN]
    down, right = frame.rotation[:2, 1] * frame.scale, frame.rotation[:2, 0] * frame.scale
    neck_src = np.array([chin + down * NECK_DROP + right * dx for dx in (-0.5, -0.25, 0.0, 0.25, 0.5)])
    oval = face_points[topo.as_index(topo.FACE_OVAL)]
    centre = oval.mean(0)
    still_src = centre + (oval - centre) * STILL_RING_SCALE
    still_src = still_src[(still_src[:, 0] > 0) & (still_src[:, 0] < w - 1)
                          & (still_src[:, 1] > 0) & (still_src[:, 1] < h - 1)]
    border = _border_points(w, h)
    parts = [face_points, head_src, neck_src, still_src, border]
    source = np.concatenate(parts).astype(np.float64)
    starts = np.cumsum([0] + [len(p) for p in parts])
    idx = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:])]
    tris = np.concatenate([_face_triangles(), _exterior_triangles(source, len(face_points))])
    ring = centre + (oval - centre) * STILL_RING_SCALE  # unclipped: the box may leave the image
    x0, y0 = np.floor(ring.min(0)).astype(int)
    x1, y1 = np.ceil(ring.max(0)).astype(int) + 1
    box = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
    return ControlMesh(source, tris, len(face_points), head_anchor, idx[2],
                       np.concatenate([idx[3], idx[4]]), box)


def _border_points(w: int, h: int) -> np.ndarray:
    t = np.linspace(0, 1, BORDER_POINTS_PER_SIDE + 1)[:-1]
    return np.concatenate([np.c_[t * (w - 1), 0 * t], np.c_[(w - 1) + 0 * t, t * (h - 1)],
                           np.c_[(1 - t) * (w - 1), (h - 1) + 0 * t], np.c_[0 * t, (1 - t) * (h - 1)]])


def _face_triangles() -> np.ndarray:
    from avatar.face.model import face_template

    return np.concatenate([face_template()[1], hole_triangles()])


def _exterior_triangles(source: np.ndarray, n_face: int) -> np.ndarray:
    """Delaunay over the oval and every exterior control, minus triangles inside the oval."""
    oval = topo.as_index(topo.FACE_OVAL)
    ids = np.concatenate([oval, np.arange(n_face, len(source))])
    tri = ids[Delaunay(source[ids]).simplices]
    centroids = source[tri].mean(1).astype(np.float32)
    poly = source[oval].astype(np.float32)
    inside = np.array([cv2.pointPolygonTest(poly, tuple(map(float, c)), False) > 0 for c in centroids])
    return tri[~inside]


def barycentric_weights(cells: np.ndarray, triangles: np.ndarray, shape: tuple[int, int],
                        n_controls: int) -> sp.csr_matrix:
    """Sparse (gh*gw, N) weights interpolating control values at the nodes of a regular
    grid. ``cells`` (N, 2) are the controls' positions in grid-cell units (node (i, j) sits
    at (j, i)). Each node's triangle is found by rasterising triangle ids; nodes outside
    every triangle get weight 0."""
    owner = np.full(shape, -1, np.int32)
    scale = 1 << SUBPIXEL_SHIFT
    polys = np.round(cells[triangles] * scale).astype(np.int32)  # (M, 3, 2)
    # Earlier triangles win where triangles overlap (the face's come first): paint in reverse.
    for k in range(len(polys) - 1, -1, -1):
        cv2.fillPoly(owner, [polys[k]], int(k), lineType=cv2.LINE_8, shift=SUBPIXEL_SHIFT)
    rows = np.flatnonzero(owner >= 0)
    gy, gx = np.divmod(rows, shape[1])
    tri = triangles[owner.ravel()[rows]]
    p = np.stack([gx, gy], -1).astype(np.float64)
    lam = _bary(p, cells[tri[:, 0]], cells[tri[:, 1]], cells[tri[:, 2]])
    # Rasterised edges may claim nodes up to a cell outside a triangle: clamp to its border
    # rather than extrapolate (extrapolating a thin triangle can throw a node far away).
    lam = np.clip(lam, 0.0, None)
    lam /= np.maximum(lam.sum(1, keepdims=True), 1e-12)
    return sp.csr_matrix((lam.ravel(), (np.repeat(rows, 3), tri.ravel())),
                         shape=(shape[0] * shape[1], n_controls))


def _bary(p, A, B, C) -> np.ndarray:
    """(n, 3) barycentric coordinates of points p (n, 2) in triangle(s) A, B, C."""
    v0, v1, v2 = B - A, C - A, p - A
    d00 = (v0 * v0).sum(-1)
    d01 = (v0 * v1).sum(-1)
    d11 = (v1 * v1).sum(-1)
    d20 = (v2 * v0).sum(-1)
    d21 = (v2 * v1).sum(-1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return np.stack([1 - v - w, v, w], -1)
