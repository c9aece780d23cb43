"""Tracked landmarks -> motion space: the inverse of FaceModel.points.

Per frame: the head pose by a similarity fit of skull-rigid landmarks (Umeyama), then the
facial-action coefficients by bounded least squares of the canonicalised mesh against the
person's neutral face and action basis, then the gaze from the iris centres. This is how
tracked video enters the motion space that generators learn and metrics measure.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

from avatar.face import geometry, topology as topo
from avatar.face.model import EYE_RADIUS, FaceModel
from avatar.motion.types import ACTIONS, MotionFrame, MotionSeq

DEPTH_WEIGHT = 0.3  # MediaPipe's z is less reliable than x, y
ACTION_BOUNDS = (0.0, 1.5)  # coefficients below 0 have no meaning for most actions
IRIS_CENTRES = [topo.IRIS_L[0], topo.IRIS_R[0]]


class ActionFitter:
    """Fits frames of one person; the design matrix is built once."""

    def __init__(self, face: FaceModel):
        self.face = face
        mesh = slice(0, topo.NUM_MESH_POINTS)
        w = np.array([1.0, 1.0, DEPTH_WEIGHT])
        self._weights = w
        self._design = (face.basis[:, mesh, :] * w).reshape(len(ACTIONS), -1).T  # (468*3, A)
        self._neutral = face.neutral[mesh]

    def pose(self, points: np.ndarray) -> geometry.HeadFrame:
        return geometry.fit_frame(points, self.face.neutral)

    def actions(self, canonical: np.ndarray) -> tuple[np.ndarray, float]:
        """(A,) coefficients and the RMS residual (face widths) for a canonical mesh."""
        target = ((canonical[: topo.NUM_MESH_POINTS] - self._neutral) * self._weights).ravel()
        sol = lsq_linear(self._design, target, bounds=ACTION_BOUNDS, method="bvls")
        residual = float(np.sqrt(np.mean((self._design @ sol.x - target) ** 2)))
        return sol.x.astype(np.float32), residual

    def gaze(self, canonical: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(2,) gaze angles from the iris centres' offset against the fitted face."""
        expected = self.face.shape(actions)[IRIS_CENTRES, :2]
        shift = (canonical[IRIS_CENTRES, :2] - expected).mean(0) / EYE_RADIUS
        shift = np.clip(shift, -1.0, 1.0)
        return np.array([np.arcsin(shift[0]), -np.arcsin(shift[1])], np.float32)

    def fit(self, points: np.ndarray) -> tuple[MotionFrame, float]:
        """One frame of tracked landmarks (478, 3) in source-image pixels -> MotionFrame."""
        points = np.asarray(points, np.float64)
        head = self.pose(points)
        canonical = head.to_canonical(points)
        actions, residual = self.actions(canonical)
        src = self.face.frame
        R_rel = head.rotation @ src.rotation.T
        frame = MotionFrame(
            rotation=np.array(geometry.matrix_to_euler(R_rel), np.float32),
            translation=((head.origin - src.origin)[:2] / src.scale).astype(np.float32),
            scale=float(head.scale / src.scale),
            actions=actions,
            gaze=self.gaze(canonical, actions),
        )
        return frame, residual


def fit_sequence(landmarks: np.ndarray, face: FaceModel, fps: float) -> MotionSeq:
    """(T, 478, 3) tracked landmarks -> MotionSeq relative to ``face``'s source pose."""
    fitter = ActionFitter(face)
    frames = [fitter.fit(p)[0] for p in landmarks]
    return MotionSeq(fps=fps, rotation=[f.rotation for f in frames],
                     translation=[f.translation for f in frames], scale=[f.scale for f in frames],
                     actions=[f.actions for f in frames], gaze=[f.gaze for f in frames])
