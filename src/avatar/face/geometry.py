"""Head frames, rotations and the weak-perspective camera.

Canonical head frame: x to the image's right, y down, z away from the camera (the same
handedness as MediaPipe's image coordinates); origin between the widest points of the
face oval (near the ears: the head turns about a point behind the face); unit = face width.
An image point is ``p = scale * R @ X + origin`` (x, y kept; weak perspective).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.face import topology as topo

# Symmetric landmark pairs (subject's right, left) that define the head's x axis.
SYMMETRIC_PAIRS = [(topo.CHEEK_R, topo.CHEEK_L), (33, 263), (133, 362), (127, 356), (93, 323)]


def euler_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation for MotionSeq angles: yaw > 0 faces image-right, pitch > 0 chin up,
    roll > 0 clockwise on screen. R = Rz(roll) Rx(-pitch) Ry(-yaw)."""
    cy, sy = np.cos(-yaw), np.sin(-yaw)
    cp, sp = np.cos(-pitch), np.sin(-pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def matrix_to_euler(R: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`euler_to_matrix` (yaw, pitch, roll)."""
    # R = Rz(r) Rx(p') Ry(y') with p' = -pitch, y' = -yaw: R[2,1] = sin(p').
    p_ = np.arcsin(np.clip(R[2, 1], -1.0, 1.0))
    y_ = np.arctan2(-R[2, 0], R[2, 2])
    r = np.arctan2(-R[0, 1], R[1, 1])
    return float(-y_), float(-p_), float(r)


@dataclass
class HeadFrame:
    """Similarity transform between the canonical head frame and image pixels."""

    rotation: np.ndarray  # (3, 3)
    scale: float  # pixels per face width
    origin: np.ndarray  # (3,) pixels

    def to_image(self, X: np.ndarray) -> np.ndarray:
        """(N, 3) canonical -> (N, 3) image coordinates (x, y pixels, z depth)."""
        return self.scale * X @ self.rotation.T + self.origin

    def to_canonical(self, P: np.ndarray) -> np.ndarray:
        return (P - self.origin) @ self.rotation / self.scale


def face_frame(points: np.ndarray) -> HeadFrame:
    """The head frame of one face mesh from its own symmetry (no template needed)."""
    P = np.asarray(points, np.float64)
    x_axis = sum(P[l] - P[r] for r, l in SYMMETRIC_PAIRS)
    x_axis /= np.linalg.norm(x_axis)
    up = P[topo.CHIN] - P[topo.FOREHEAD_TOP]  # points down the face (image y)
    y_axis = up - x_axis * (up @ x_axis)
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    R = np.stack([x_axis, y_axis, z_axis], axis=1)
    origin = 0.5 * (P[topo.CHEEK_R] + P[topo.CHEEK_L])
    scale = float(np.linalg.norm(P[topo.CHEEK_L] - P[topo.CHEEK_R]))
    return HeadFrame(R, scale, origin)


def fit_frame(points: np.ndarray, template: np.ndarray, index=None) -> HeadFrame:
    """Least-squares similarity (Umeyama 1991) mapping ``template`` onto ``points``.

    Uses ``index`` (default: skull-rigid landmarks) so expressions do not move the pose.
    """
    idx = topo.as_index(topo.RIGID_POINTS if index is None else index)
    P, X = np.asarray(points, np.float64)[idx], np.asarray(template, np.float64)[idx]
    mp_, mx = P.mean(0), X.mean(0)
    Pc, Xc = P - mp_, X - mx
    U, S, Vt = np.linalg.svd(Pc.T @ Xc)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    scale = float((S * np.diag(D)).sum() / (Xc ** 2).sum())
    origin = mp_ - scale * R @ mx
    return HeadFrame(R, scale, origin)
