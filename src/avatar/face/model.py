"""A person's face ready to animate: neutral shape, action basis and the source pose."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from avatar.face import geometry, topology as topo
from avatar.face.actions import FaceGeometry, build_basis
from avatar.face.tracker import FaceObservation
from avatar.motion.types import MotionFrame

EYE_RADIUS = 0.085  # eyeball radius in face widths: gaze angle -> iris shift
SEAL_SKIN_RADIUS = 0.03  # how far sealing the lips drags the skin around them
# A wide-open mouth is closed mostly by the jaw: lips stretched over the whole gap come out
# swollen (and the tongue and teeth they were tracked on read as an open mouth). The lips
# close this much of the gap (face widths) themselves; the lower face rises by the rest.
LIP_SEAL_FREE = 0.02
JAW_SEAL_RADIUS = 0.12  # face widths around the lower lip that rise with it (the chin less)


@lru_cache(maxsize=1)
def face_template() -> tuple[np.ndarray, np.ndarray]:
    """The shipped canonical face (478, 3) and mesh triangles (T, 3)."""
    with resources.files("avatar.assets").joinpath("face_model.npz").open("rb") as f:
        data = np.load(f)
        return data["canonical"].astype(np.float64), data["triangles"].astype(np.int64)


def close_jaw(shape: np.ndarray) -> np.ndarray:
    """Raise the lower lip and the skin below it by the mouth's gap beyond LIP_SEAL_FREE."""
    up, lo = topo.as_index(topo.LIPS_INNER_UPPER), topo.as_index(topo.LIPS_INNER_LOWER)
    lift = float(np.median(shape[lo, 1] - shape[up, 1])) - LIP_SEAL_FREE
    if lift <= 0:
        return shape
    g = FaceGeometry(shape)
    weight = g.lower_face * g.near(topo.LIPS_INNER_LOWER + topo.LIPS_OUTER_LOWER, JAW_SEAL_RADIUS)
    out = shape.copy()
    out[:, 1] -= lift * weight
    return out


def seal_lips(shape: np.ndarray, jaw: bool = False) -> np.ndarray:
    """Close a parted mouth: inner lips meet at their mid line, the skin around follows.

    A photo may show the mouth open; the neutral face (all actions 0) must have closed
    lips so that p/b/m close and silence rests closed. With ``jaw``, most of a wide gap is
    closed by raising the lower face first (close_jaw).
    """
    if jaw:
        shape = close_jaw(shape)
    out = shape.copy()
    up, lo = topo.as_index(topo.LIPS_INNER_UPPER), topo.as_index(topo.LIPS_INNER_LOWER)
    gap = shape[lo, 1] - shape[up, 1]  # (11,) lower below upper is positive
    half = np.maximum(gap, 0.0) / 2
    for ring, sign in ((up, 1.0), (lo, -1.0)):
        d = np.linalg.norm(shape[:, None, :2] - shape[ring][None, :, :2], axis=-1)  # (478, 11)
        nearest = d.argmin(1)
        w = np.exp(-((d.min(1) / SEAL_SKIN_RADIUS) ** 2))
        other = lo if sign > 0 else up
        # only drag points on this lip's side of the mouth
        side = sign * (shape[other][nearest, 1] - shape[:, 1]) > 0
        out[:, 1] += sign * half[nearest] * w * side
        out[ring, 1] = shape[ring, 1] + sign * half
    return out


@dataclass
class FaceModel:
    neutral: np.ndarray  # (478, 3) canonical, all actions 0, lips closed
    basis: np.ndarray  # (A, 478, 3)
    frame: geometry.HeadFrame  # source pose: canonical -> source pixels
    source_points: np.ndarray  # (478, 2) the tracked source landmarks in pixels

    @classmethod
    def from_observation(cls, face: FaceObservation, close_jaw: bool = False) -> "FaceModel":
        """``close_jaw``: a wide-open mouth is closed by the jaw more than by the lips (a
        photo to animate; see seal_lips)."""
        template, _ = face_template()
        pts = face.landmarks.astype(np.float64)
        frame = geometry.fit_frame(pts, template)
        canon = frame.to_canonical(pts)
        neutral = seal_lips(canon, jaw=close_jaw)
        return cls(neutral, build_basis(neutral), frame, pts[:, :2].copy())

    @property
    def face_width(self) -> float:
        return self.frame.scale

    def shape(self, actions: np.ndarray) -> np.ndarray:
        """(478, 3) canonical face with action coefficients ``actions`` (A,)."""
        return self.neutral + np.tensordot(actions, self.basis, axes=1)

    def head_transform(self, frame: MotionFrame) -> geometry.HeadFrame:
        """The source pose with the frame's relative rotation, translation and scale."""
        R_rel = geometry.euler_to_matrix(*frame.rotation)
        return geometry.HeadFrame(
            rotation=R_rel @ self.frame.rotation,
            scale=self.frame.scale * frame.scale,
            origin=self.frame.origin + np.r_[frame.translation * self.frame.scale, 0.0],
        )

    def gaze_shift(self, frame: MotionFrame) -> np.ndarray:
        """Iris displacement (x, y) in canonical units for the frame's gaze."""
        gx, gy = frame.gaze
        return EYE_RADIUS * np.array([np.sin(gx), -np.sin(gy)])

    def points(self, frame: MotionFrame) -> np.ndarray:
        """(478, 3) target landmarks: x, y in source-image pixels, z depth in pixels."""
        X = self.shape(frame.actions)
        X[topo.NUM_MESH_POINTS:, :2] += self.gaze_shift(frame)
        return self.head_transform(frame).to_image(X)

    def project(self, frame: MotionFrame) -> np.ndarray:
        """(478, 2) target landmarks in source-image pixels."""
        return self.points(frame)[:, :2]
