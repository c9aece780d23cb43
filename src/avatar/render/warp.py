"""The warp renderer: deform the user's own photo by the face mesh (identity-exact pixels).

Per frame: move the controls (face landmarks from the motion, head-rigid anchors around the
face, partly-following neck anchors, a fixed image border), spread their displacement over a
source-space grid with fixed barycentric weights (a forward field f: s -> s + f(s)), invert
it on a target grid by fixed-point iteration s = t - f(s), upsample the backward map and
remap the photo. Two grids: a coarse one over the whole image and a fine one over the face,
so the lips and eyes get detail while the cost stays that of a small grid. Finally paint the
mouth interior where the lips part, and the lids over closing eyes.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar.config import RENDER, RenderConfig
from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.motion.types import MotionFrame
from avatar.render.eyelids import EyelidPainter
from avatar.render.mesh import ControlMesh, barycentric_weights, build_control_mesh
from avatar.render.mouth import MouthPainter, inpaint_mouth

INVERSION_STEPS = 3  # fixed-point iterations; the field's gradient is small outside the lips
NECK_FOLLOW = 0.25  # share of the head's motion the neck anchors follow
EXTERIOR_BLUR = 0.08  # smoothing (face widths) of the piecewise-linear exterior field
FACE_BOX_MARGIN = 0.45  # fine-grid box = face box grown by this share of the face width
BOX_FEATHER = 6  # px over which the fine map blends into the coarse map
SMOOTH_DOWNSAMPLE = 4  # the exterior blur runs on a grid this many times coarser
IRIS_BUMP_RADIUS = 1.3  # iris shift falls off over this many iris radii


def _pairs(a: np.ndarray) -> np.ndarray:
    """(h, w) -> (h, w, 2) with the value repeated for the x and y channels."""
    return np.repeat(a[..., None], 2, axis=-1)


def _fill(shape, poly: np.ndarray) -> np.ndarray:
    """Anti-aliased filled polygon (points in grid cells) as a float mask."""
    m = np.zeros(shape, np.float32)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    return m


class FieldGrid:
    """A regular grid over a pixel region on which the warp field is computed and inverted.

    Node (i, j) sits at pixel origin + ((j + 0.5) * step_x - 0.5, (i + 0.5) * step_y - 0.5):
    the sample positions cv2.resize assumes, so upsampling a node map to the region's pixels
    is one bilinear resize.
    """

    def __init__(self, mesh: ControlMesh, face: FaceModel, box, cell: float):
        x0, y0, x1, y1 = box
        self.box = box
        self.size = (x1 - x0, y1 - y0)
        gw, gh = (max(2, int(round(n / cell))) for n in self.size)
        self.shape = (gh, gw)
        self.cell = np.array([self.size[0] / gw, self.size[1] / gh], np.float32)  # (x, y) px
        self.origin = np.array([x0, y0], np.float32)
        gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        self.node_cells = np.stack([gx, gy], -1)  # (gh, gw, 2) node positions in cells
        self.nodes = self.to_pixels(self.node_cells)  # (gh, gw, 2) in pixels
        self._pixels = None  # (h, w, 2) pixel positions of the region, see upsample
        W = barycentric_weights(self.to_cells(mesh.source), mesh.triangles, self.shape, len(mesh.source))
        self.W = W.astype(np.float32)
        self.blur = max(EXTERIOR_BLUR * face.face_width / float(self.cell.mean()), 0.5)  # cells
        oval = self.to_cells(mesh.source[topo.as_index(topo.FACE_OVAL)])
        # Per-frame arithmetic uses full (gh, gw, 2) arrays: numpy broadcasting over a last
        # axis of 2 runs an inner loop of 2 elements and is ~20x slower.
        self.face_mask = _pairs(cv2.GaussianBlur(_fill(self.shape, oval), (0, 0), self.blur))
        self.inv_cell = np.broadcast_to(1 / self.cell, (gh, gw, 2)).copy()
        self.cell_to_px = np.broadcast_to(self.cell, (gh, gw, 2)).copy()
        self.px_offset = np.broadcast_to(self.origin + 0.5 * self.cell - 0.5, (gh, gw, 2)).copy()
        bump = self._iris_bump(face, topo.IRIS_L, topo.EYE_L_RING) + self._iris_bump(face, topo.IRIS_R, topo.EYE_R_RING)
        self.iris_x = np.stack([bump, 0 * bump], -1)  # (gh, gw, 2): shift per pixel of gaze x
        self.iris_y = np.stack([0 * bump, bump], -1)

    def to_pixels(self, cells: np.ndarray) -> np.ndarray:
        return self.origin + (cells + 0.5) * self.cell - 0.5

    def to_cells(self, pixels: np.ndarray) -> np.ndarray:
        return (pixels - self.origin + 0.5) / self.cell - 0.5

    def _iris_bump(self, face: FaceModel, iris, eye_ring) -> np.ndarray:
        """(gh, gw) weight of the iris shift: 1 on the iris, 0 outside the eye opening."""
        pts = face.source_points[topo.as_index(iris)]
        centre, radius = pts[0], max(np.linalg.norm(pts[1:] - pts[0], axis=1).mean(), 1.0)
        d = np.linalg.norm(self.nodes - centre, axis=-1)
        bump = np.exp(-(d / (IRIS_BUMP_RADIUS * radius)) ** 2)
        inside = _fill(self.shape, self.to_cells(face.source_points[topo.as_index(eye_ring)]))
        return (bump * inside).astype(np.float32)

    def forward(self, disp: np.ndarray, gaze_px: np.ndarray | None = None) -> np.ndarray:
        """(gh, gw, 2) forward displacement from control displacements ``disp`` (N, 2).

        Inside the face oval the exact piecewise-linear field; outside, the same field
        blurred (at 1/SMOOTH_DOWNSAMPLE resolution: the blur is wide, the result smooth).
        ``gaze_px`` shifts the irises."""
        exact = (self.W @ disp).reshape(*self.shape, 2)
        field = self._smooth(exact)
        field += self.face_mask * (exact - field)
        if gaze_px is not None and np.any(gaze_px):
            field += self.iris_x * gaze_px[0] + self.iris_y * gaze_px[1]
        return field

    def _smooth(self, field: np.ndarray) -> np.ndarray:
        gh, gw = self.shape
        k = SMOOTH_DOWNSAMPLE if min(gh, gw) >= 4 * SMOOTH_DOWNSAMPLE else 1
        small = cv2.resize(field, (gw // k, gh // k), interpolation=cv2.INTER_AREA) if k > 1 else field
        small = cv2.GaussianBlur(small, (0, 0), self.blur / k)
        return cv2.resize(small, (gw, gh), interpolation=cv2.INTER_LINEAR) if k > 1 else small

    def sample(self, field: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Bilinear samples of a field on this grid at ``cells`` (..., 2) grid coordinates."""
        return cv2.remap(field, cells, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def backward(self, field: np.ndarray) -> np.ndarray:
        """(gh, gw, 2) source pixel of every target node: solve s = t - f(s).

        Iterates in grid-cell units (the field divided by the cell size once) so each step
        is a single remap."""
        f = field * self.inv_cell  # (gh, gw, 2) in cells
        t = self.node_cells
        s = t - f
        for _ in range(INVERSION_STEPS):
            s = t - self.sample(f, s)
        return s * self.cell_to_px + self.px_offset  # to pixels

    def upsample(self, smap: np.ndarray) -> np.ndarray:
        """(h, w, 2) backward map at every pixel of this grid's region.

        The displacement (map minus node positions) is resized, not the map: within half a
        cell of the region's edges cv2.resize holds the outermost nodes' values, which for
        absolute positions smeared a strip along every edge on every frame."""
        if self._pixels is None:  # built on first use: (h, w, 2) pixel positions
            x0, y0, x1, y1 = self.box
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            self._pixels = np.stack([xs, ys], -1)
        disp = cv2.resize(smap - self.nodes, self.size, interpolation=cv2.INTER_LINEAR)
        return disp + self._pixels


class WarpRenderer:
    """Renders MotionFrames of one photo. Create once per photo; ``render`` per frame."""

    def __init__(self, image: np.ndarray, face: FaceModel, config: RenderConfig = RENDER):
        self.face = face
        self.image = inpaint_mouth(np.ascontiguousarray(image), face)
        h, w = image.shape[:2]
        self.size = (w, h)
        self.mesh = build_control_mesh(face.source_points, face.neutral, face.frame, self.size)
        fw = face.face_width
        self.coarse = FieldGrid(self.mesh, face, self.mesh.active_box, max(fw / config.coarse_cells_per_face, 2.0))
        self.fine = FieldGrid(self.mesh, face, self._face_box(fw), max(fw / config.fine_cells_per_face, 1.0))
        self.box_alpha = _pairs(self._box_feather())
        self.mouth = MouthPainter(self.image, face)
        self.eyelids = EyelidPainter(self.image, face)

    def _face_box(self, fw: float) -> tuple[int, int, int, int]:
        pts = self.mesh.source[: self.mesh.num_face]
        ax0, ay0, ax1, ay1 = self.mesh.active_box
        x0, y0 = np.floor(pts.min(0) - FACE_BOX_MARGIN * fw).astype(int)
        x1, y1 = np.ceil(pts.max(0) + FACE_BOX_MARGIN * fw).astype(int)
        return max(x0, ax0), max(y0, ay0), min(x1, ax1), min(y1, ay1)

    def _box_feather(self) -> np.ndarray:
        """(h, w) weight of the fine map inside its box, fading to the coarse map at the
        box edges (except where the box meets the active region's edge)."""
        x0, y0, x1, y1 = self.fine.box
        ax0, ay0, ax1, ay1 = self.coarse.box
        ys, xs = np.arange(y0, y1, dtype=np.float32), np.arange(x0, x1, dtype=np.float32)
        inf = np.float32(np.inf)
        dy = np.minimum(ys - y0 if y0 > ay0 else inf, (y1 - 1 - ys) if y1 < ay1 else inf) + 0 * ys
        dx = np.minimum(xs - x0 if x0 > ax0 else inf, (x1 - 1 - xs) if x1 < ax1 else inf) + 0 * xs
        a = np.clip(np.minimum(dy[:, None], dx[None, :]) / BOX_FEATHER, 0, 1)
        return a.astype(np.float32)

    # -- per frame ----------------------------------------------------------------------
    def control_targets(self, frame: MotionFrame) -> tuple[np.ndarray, np.ndarray]:
        """Target positions (N, 2) of every control, and the face landmarks (478, 2)."""
        face_pts = self.face.project(frame)
        head = self.face.head_transform(frame)
        target = self.mesh.source.copy()
        target[: self.mesh.num_face] = face_pts
        target[self.mesh.head] = head.to_image(self.mesh.head_anchor)[:, :2]
        # The neck follows the skull's motion a little, never the jaw's.
        chin = self.face.neutral[topo.CHIN][None]
        chin_motion = (head.to_image(chin) - self.face.frame.to_image(chin))[0, :2]
        target[self.mesh.neck] += NECK_FOLLOW * chin_motion
        return target, face_pts

    def _gaze_pixels(self, frame: MotionFrame) -> np.ndarray:
        shift = self.face.gaze_shift(frame)
        R = self.face.head_transform(frame).rotation
        return (self.face.frame.scale * (R[:2, :2] @ shift)).astype(np.float32)

    def backward_map(self, frame: MotionFrame) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 2) source pixel for every pixel of the active box, and the target face
        landmarks (478, 2). Outside the active box the map is the identity."""
        target, face_pts = self.control_targets(frame)
        disp = (target - self.mesh.source).astype(np.float32)  # (N, 2)
        gaze = self._gaze_pixels(frame)
        full = self.coarse.upsample(self.coarse.backward(self.coarse.forward(disp)))
        fine = self.fine.upsample(self.fine.backward(self.fine.forward(disp, gaze)))
        (ax0, ay0, _, _), (x0, y0, x1, y1) = self.coarse.box, self.fine.box
        region = full[y0 - ay0: y1 - ay0, x0 - ax0: x1 - ax0]
        region += self.box_alpha * (fine - region)
        return full, face_pts

    def render(self, frame: MotionFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame."""
        smap, face_pts = self.backward_map(frame)
        x0, y0, x1, y1 = self.coarse.box
        out = self.image.copy()
        out[y0:y1, x0:x1] = cv2.remap(self.image, smap[..., 0], smap[..., 1], cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT)
        self.mouth.paint(out, face_pts, frame)
        self.eyelids.paint(out, face_pts, frame)
        return out
