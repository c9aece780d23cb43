"""The warp renderer: deform the user's own photo by the face mesh (identity-exact pixels).

Per frame: move the controls (face landmarks from the motion, head-rigid anchors around the
face, partly-following neck anchors, a fixed image border), spread their displacement over a
source-space grid with fixed barycentric weights (a forward field f: s -> s + f(s)), invert
it on a target grid by fixed-point iteration s = t - f(s), upsample the backward map and
remap the photo. Then paint the mouth interior where the lips part.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar.config import RENDER, RenderConfig
from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.motion.types import MotionFrame
from avatar.render.mesh import barycentric_weights, build_control_mesh
from avatar.render.mouth import MouthPainter

INVERSION_STEPS = 4  # fixed-point iterations; the field's gradient is small outside the lips
NECK_FOLLOW = 0.25  # share of the head's motion the neck anchors follow
EXTERIOR_BLUR = 2.0  # smoothing (in grid cells) of the piecewise-linear exterior field
GRID_CELLS_PER_FACE = 64  # grid resolution relative to face width
IRIS_BUMP_RADIUS = 1.3  # iris shift falls off over this many iris radii


class WarpRenderer:
    """Renders MotionFrames of one photo. Create once per photo; ``render`` per frame."""

    def __init__(self, image: np.ndarray, face: FaceModel, config: RenderConfig = RENDER):
        self.image = np.ascontiguousarray(image)
        self.face = face
        h, w = image.shape[:2]
        self.size = (w, h)
        self.step = float(np.clip(face.face_width / GRID_CELLS_PER_FACE, 1.0, config.grid_step * max(w, h) / 512))
        self.mesh = build_control_mesh(face.source_points, face.neutral, face.frame, self.size)
        gw, gh = int(np.ceil((w - 1) / self.step)) + 1, int(np.ceil((h - 1) / self.step)) + 1
        self.grid_shape = (gh, gw)
        gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float64) * self.step
        self.grid = np.stack([gx, gy], -1)  # (gh, gw, 2) pixel positions of grid nodes
        self.W, covered = barycentric_weights(self.mesh.source, self.mesh.triangles,
                                              self.grid.reshape(-1, 2), len(self.mesh.source))
        self.face_mask = self._face_mask(covered)
        self.iris = [self._iris_bump(topo.IRIS_L), self._iris_bump(topo.IRIS_R)]
        self.mouth = MouthPainter(image, face)

    # -- setup --------------------------------------------------------------------------
    def _face_mask(self, covered: np.ndarray) -> np.ndarray:
        """(gh, gw, 1) 1 inside the face oval, fading to 0 outside: where the exact
        piecewise-linear field is kept instead of its smoothed version."""
        gh, gw = self.grid_shape
        mask = np.zeros((gh, gw), np.float32)
        oval = self.mesh.source[topo.as_index(topo.FACE_OVAL)] / self.step
        cv2.fillPoly(mask, [np.round(oval * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
        mask = cv2.GaussianBlur(mask, (0, 0), EXTERIOR_BLUR)
        return mask[..., None]

    def _iris_bump(self, iris) -> np.ndarray:
        """(gh*gw,) weight of the iris shift: 1 on the iris, 0 outside the eye opening."""
        pts = self.face.source_points[topo.as_index(iris)]
        centre, radius = pts[0], max(np.linalg.norm(pts[1:] - pts[0], axis=1).mean(), 1.0)
        d = np.linalg.norm(self.grid.reshape(-1, 2) - centre, axis=1)
        bump = np.exp(-(d / (IRIS_BUMP_RADIUS * radius)) ** 2)
        eye_ring = topo.EYE_L_RING if iris is topo.IRIS_L else topo.EYE_R_RING
        inside = np.zeros(self.grid_shape, np.float32)
        poly = self.face.source_points[topo.as_index(eye_ring)] / self.step
        cv2.fillPoly(inside, [np.round(poly * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
        return (bump * inside.ravel()).astype(np.float32)

    # -- per frame ----------------------------------------------------------------------
    def control_targets(self, frame: MotionFrame) -> tuple[np.ndarray, np.ndarray]:
        """Target positions (N, 2) of every control, and the face landmarks (478, 2)."""
        face_pts = self.face.project(frame)
        head = self.face.head_transform(frame).to_image(self.mesh.head_anchor)[:, :2]
        target = self.mesh.source.copy()
        target[: self.mesh.num_face] = face_pts
        target[self.mesh.head] = head
        chin_motion = face_pts[topo.CHIN] - self.face.source_points[topo.CHIN]
        target[self.mesh.neck] += NECK_FOLLOW * chin_motion
        return target, face_pts

    def forward_field(self, frame: MotionFrame) -> tuple[np.ndarray, np.ndarray]:
        """(gh, gw, 2) displacement f on the source grid, and the target face landmarks."""
        target, face_pts = self.control_targets(frame)
        disp = (target - self.mesh.source).astype(np.float32)  # (N, 2)
        field = (self.W @ disp).reshape(*self.grid_shape, 2).astype(np.float32)
        smooth = cv2.GaussianBlur(field, (0, 0), EXTERIOR_BLUR)
        field = self.face_mask * field + (1 - self.face_mask) * smooth
        gaze_px = self._gaze_pixels(frame)
        if np.any(gaze_px):
            for bump in self.iris:
                field += (bump[:, None] * gaze_px).reshape(*self.grid_shape, 2)
        return field, face_pts

    def _gaze_pixels(self, frame: MotionFrame) -> np.ndarray:
        shift = self.face.gaze_shift(frame)
        R = self.face.head_transform(frame).rotation
        return (self.face.frame.scale * (R[:2, :2] @ shift)).astype(np.float32)

    def backward_map(self, field: np.ndarray) -> np.ndarray:
        """(gh, gw, 2) source position of every target grid node: solve s = t - f(s)."""
        t = self.grid.astype(np.float32)
        s = t - field
        for _ in range(INVERSION_STEPS):
            gx, gy = s[..., 0] / self.step, s[..., 1] / self.step
            f_at_s = cv2.remap(field, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            s = t - f_at_s
        return s

    def render(self, frame: MotionFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame."""
        field, face_pts = self.forward_field(frame)
        s = self.backward_map(field)
        w, h = self.size
        gh, gw = self.grid_shape
        # Grid node (i, j) sits at pixel (j*step, i*step); resize aligns node 0 with pixel 0
        # when the map is scaled about the corner: use an affine warp of the small map.
        full = cv2.warpAffine(s, np.float32([[1 / self.step, 0, 0], [0, 1 / self.step, 0]]),
                              (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        out = cv2.remap(self.image, full[..., 0], full[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
        self.mouth.paint(out, face_pts, frame)
        return out
