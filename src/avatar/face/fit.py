"""Tracked landmarks -> motion space: the inverse of FaceModel.points.

Per frame: the head pose by a similarity fit of skull-rigid landmarks (Umeyama), then the
facial-action coefficients by bounded least squares of the canonicalised mesh against the
person's neutral face and action basis, then the gaze from the iris centres. This is how
tracked video enters the motion space that generators learn and metrics measure.

The actions of many frames are solved together: the problem reduces to its normal
equations (one (A, A) Gram matrix shared by every frame), solved by accelerated projected
gradient (FISTA, Beck & Teboulle 2009) over a (T, A) array. The action basis is not
linearly independent (eyeWide cancels part of eyeBlink; smile, stretch and frown share a
direction), so a tiny ridge picks the smallest of the equally good solutions: cancelling
pairs stay at 0 instead of taking arbitrary values.
"""

from __future__ import annotations

import numpy as np

from avatar.face import geometry, topology as topo
from avatar.face.model import EYE_RADIUS, FaceModel
from avatar.motion.types import ACTIONS, BLINK_ACTIONS, MotionFrame, MotionSeq

DEPTH_WEIGHT = 0.3  # MediaPipe's z is less reliable than x, y
ACTION_BOUNDS = (0.0, 1.5)  # coefficients below 0 have no meaning for most actions
IRIS_CENTRES = [topo.IRIS_L[0], topo.IRIS_R[0]]
RIDGE = 1e-6  # relative to the mean diagonal of the Gram matrix: makes the solution unique
MAX_ITERATIONS = 2000
CHECK_EVERY = 25  # iterations between convergence checks
TOLERANCE = 1e-5  # largest coefficient change per iteration at convergence
# MediaPipe never brings a shut eye's lid landmarks together: real blinks (eye aspect ratio
# 0.13-0.33 of open at the peak) fit to eyeBlink 0.65 at the median on our tuning clips,
# while the renderer shuts the eye at 1. Tracked video is read with this as "shut".
TRACKED_SHUT_BLINK = 0.7


def bounded_least_squares(gram: np.ndarray, rhs: np.ndarray, bounds=ACTION_BOUNDS) -> np.ndarray:
    """Minimise ``x G x^T / 2 - x . rhs`` per row with ``bounds[0] <= x <= bounds[1]``.

    ``gram`` (A, A) symmetric positive definite, ``rhs`` (T, A); returns x (T, A). FISTA
    with a fixed step 1 / L (L = largest eigenvalue), from x = 0.
    """
    lower, upper = bounds
    step = 1.0 / np.linalg.eigvalsh(gram)[-1]
    x = np.zeros_like(rhs)
    y, momentum = x.copy(), 1.0
    for iteration in range(1, MAX_ITERATIONS + 1):
        x_next = np.clip(y - step * (y @ gram - rhs), lower, upper)
        momentum_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum**2))
        y = x_next + ((momentum - 1.0) / momentum_next) * (x_next - x)
        change = np.abs(x_next - x).max(initial=0.0) if iteration % CHECK_EVERY == 0 else np.inf
        x, momentum = x_next, momentum_next
        if change < TOLERANCE:
            break
    return x


class ActionFitter:
    """Fits frames of one person; the design and Gram matrices are built once."""

    def __init__(self, face: FaceModel):
        self.face = face
        mesh = slice(0, topo.NUM_MESH_POINTS)
        self._weights = np.array([1.0, 1.0, DEPTH_WEIGHT])
        self._design = (face.basis[:, mesh, :] * self._weights).reshape(len(ACTIONS), -1).T  # (468*3, A)
        self._neutral = face.neutral[mesh]
        gram = self._design.T @ self._design  # (A, A)
        self._gram = gram + RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))

    def pose(self, points: np.ndarray) -> geometry.HeadFrame:
        return geometry.fit_frame(points, self.face.neutral)

    def solve_actions(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, 478, 3) canonical meshes -> actions (T, A) float32, RMS residuals (T,) float32
        in face widths."""
        mesh = canonical[:, : topo.NUM_MESH_POINTS]  # (T, 468, 3)
        targets = ((mesh - self._neutral) * self._weights).reshape(len(canonical), -1)  # (T, 468*3)
        actions = bounded_least_squares(self._gram, targets @ self._design)  # (T, A)
        residual = np.sqrt(np.mean((actions @ self._design.T - targets) ** 2, axis=1))  # (T,)
        return actions.astype(np.float32), residual.astype(np.float32)

    def gaze(self, canonical: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(2,) gaze angles from the iris centres' offset against the fitted face."""
        expected = self.face.shape(actions)[IRIS_CENTRES, :2]
        shift = (canonical[IRIS_CENTRES, :2] - expected).mean(0) / EYE_RADIUS
        shift = np.clip(shift, -1.0, 1.0)
        return np.array([np.arcsin(shift[0]), -np.arcsin(shift[1])], np.float32)

    def fit_all(self, landmarks: np.ndarray, fps: float) -> tuple[MotionSeq, np.ndarray]:
        """(T, 478, 3) tracked landmarks in pixels -> (MotionSeq relative to the face's source
        pose, RMS action-fit residual (T,) in face widths)."""
        points = np.asarray(landmarks, np.float64)
        heads = [self.pose(p) for p in points]
        canonical = np.stack([h.to_canonical(p) for h, p in zip(heads, points)])  # (T, 478, 3)
        actions, residual = self.solve_actions(canonical)
        gaze = np.stack([self.gaze(c, a) for c, a in zip(canonical, actions)])  # (T, 2)
        src = self.face.frame
        rotation = [geometry.matrix_to_euler(h.rotation @ src.rotation.T) for h in heads]  # (T, 3)
        translation = np.stack([(h.origin - src.origin)[:2] for h in heads]) / src.scale  # (T, 2)
        scale = np.array([h.scale for h in heads]) / src.scale  # (T,)
        motion = MotionSeq(fps=fps, rotation=rotation, translation=translation, scale=scale,
                           actions=actions, gaze=gaze)
        return motion, residual

    def fit(self, points: np.ndarray) -> tuple[MotionFrame, float]:
        """One frame of tracked landmarks (478, 3) in source-image pixels -> MotionFrame."""
        motion, residual = self.fit_all(np.asarray(points)[None], fps=1.0)
        return motion[0], float(residual[0])


def tracked_lid_closure(motion: MotionSeq) -> MotionSeq:
    """Blink coefficients fitted to tracked landmarks, rescaled so a shut eye reads 1 (in place)."""
    for name in BLINK_ACTIONS:
        motion.set_action(name, np.clip(motion.action(name) / TRACKED_SHUT_BLINK, *ACTION_BOUNDS))
    return motion


def fit_sequence(landmarks: np.ndarray, face: FaceModel, fps: float) -> MotionSeq:
    """(T, 478, 3) tracked landmarks -> MotionSeq relative to ``face``'s source pose."""
    return ActionFitter(face).fit_all(landmarks, fps)[0]
