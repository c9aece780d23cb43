"""Re-render the mouth of real video frames to new speech (TANGO §2: lip sync as a post-process).

The gesture path's output is made of the person's real frames; each one gets its jaw, lips
and mouth interior redone to the new speech while its head pose, eyes and brows stay:

1. The frame's face in the canonical head frame of the person's rest face (pose by the
   skull-rigid landmarks), its facial actions by non-negative least squares against the rest
   face's action basis (the objective of avatar.face.fit, without its upper bound).
2. Its mouth put at rest: where mouth actions act (lips, jaw, chin) the landmarks take the
   rest face's positions, carrying the frame's own fitted non-mouth actions (smile, frown);
   elsewhere they stay the frame's. This leaves a closed-jaw, sealed-lips face with the
   frame's own pose, eyes, brows and expression. The target mouth actions go on top.
3. Only landmarks that mouth actions can move are displaced. The warp is piecewise affine
   over the face-mesh triangles touching them, plus triangles from the jaw line to fixed
   anchors around the lower face; it is solved directly as a backward map by rasterising
   the triangles at their target positions, on a small box around the lower face. Outside
   the box (and at its feathered edge) the frame is untouched.
4. The frame's own mouth interior is inpainted away; the new one comes from the person's
   mouth bank (avatar.render.mouth_bank) or, failing that, the synthetic MouthPainter.

Temporal consistency: the per-frame computation has no state except the bank entry, which
is kept while it stays close (hysteresis). Tracker jitter passes straight into the warp, so
callers should smooth the landmarks of consecutive source frames along time (a Gaussian of
~1 frame, as avatar.gesture.speak does) and give smooth mouth actions (every generator does).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import nnls
from scipy.spatial import Delaunay

from avatar.config import RENDER, RenderConfig
from avatar.face import geometry, topology as topo
from avatar.face.actions import build_basis
from avatar.face.fit import DEPTH_WEIGHT, RIDGE
from avatar.face.model import FaceModel, face_template, seal_lips
from avatar.generators.motion_vector import MOUTH_ACTIONS
from avatar.motion.types import ACTIONS, MotionFrame, action_column
from avatar.render.mesh import hole_triangles
from avatar.render.mouth import MouthPainter, inpaint_mouth
from avatar.render.mouth_bank import BankInterior, MouthBank, mid_opening, mouth_shape, triangle_map

MOUTH_COLUMNS = np.array([action_column(a) for a in MOUTH_ACTIONS])
MOVE_EPS = 1e-3  # face widths a landmark must move at action 1 to count as moved (~0.2 px)
REST_FULL = 0.03  # face widths of mouth-action motion from which a landmark takes the rest face fully
TOP_MARGIN = 0.05  # face widths above the highest moving triangle (room for the painter's skin sample)
SIDE_MARGIN = 0.12  # face widths beside the face oval
NECK_MARGIN = 0.45  # face widths below the chin over which the jaw's motion fades out
ANCHOR_SPACING = 0.15  # face widths between the fixed anchors on the box edge
FEATHER_PX = 4  # the re-rendered box blends into the frame over this many pixels
MIN_BOX_PX = 2 * FEATHER_PX + 2  # a smaller visible lower face is left as it is
MIN_OPEN_FOR_BANK = 0.01  # face widths: below this the lips (nearly) touch, no interior to pick
FADE_FRAMES = 2  # a new bank entry cross-fades in over this many frames (~70 ms at 30 fps)


@dataclass
class FrameFace:
    """One frame's face, ready to take new mouth actions."""

    head: geometry.HeadFrame  # canonical -> frame pixels
    closed: np.ndarray  # (478, 3) canonical: the frame's face with its mouth at rest, lips sealed
    source: np.ndarray  # (478, 2) tracked landmarks in frame pixels
    actions: np.ndarray  # (A,) the frame's own fitted actions


class ActionProjector:
    """Facial actions of one canonical face against a neutral face and basis: the least
    squares of avatar.face.fit with only its lower bound, solved exactly by NNLS on the
    Cholesky factor of the (A, A) normal equations (~1 ms per frame, no iterations).

    No upper bound: the actions are used to remove the frame's mouth, not to describe it,
    and a real open mouth can need more of an action than the basis' unit (a wide-open
    mouth fits with lowerLipDown ~7); capped, the mouth would stay half open."""

    def __init__(self, neutral: np.ndarray, basis: np.ndarray):
        mesh = slice(0, topo.NUM_MESH_POINTS)
        self._weights = np.array([1.0, 1.0, DEPTH_WEIGHT])
        design = (basis[:, mesh] * self._weights).reshape(len(basis), -1).astype(np.float64)  # (A, 468*3)
        self._design = np.ascontiguousarray(design)
        self._neutral = neutral[mesh]
        gram = design @ design.T
        gram += RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
        self._chol = np.linalg.cholesky(gram)  # (A, A) lower: gram = L L^T

    def actions(self, canonical: np.ndarray) -> np.ndarray:
        """(478, 3) canonical face -> (A,) actions >= 0."""
        target = ((canonical[: len(self._neutral)] - self._neutral) * self._weights).ravel()
        # min x G x / 2 - x . r  ==  min |L^T x - L^-1 r|^2 / 2 (up to a constant)
        y = solve_triangular(self._chol, self._design @ target, lower=True)
        return nnls(self._chol.T, y)[0]


def moving_landmarks(basis: np.ndarray) -> np.ndarray:
    """(478,) bool: landmarks any mouth action (or sealing the lips) moves."""
    motion = np.abs(basis[MOUTH_COLUMNS]).max(axis=(0, 2))  # (478,) largest move at action 1
    moved = motion > MOVE_EPS
    moved[topo.as_index(topo.LIPS_ALL)] = True
    return moved


def mouth_weight(basis: np.ndarray) -> np.ndarray:
    """(478,) how much of each landmark the mouth owns: 1 where mouth actions move it by
    REST_FULL or more (lips, chin), easing to 0 where they barely act (cheeks, nose)."""
    motion = np.abs(basis[MOUTH_COLUMNS]).max(axis=(0, 2))  # (478,) largest move at action 1
    x = np.clip(motion / REST_FULL, 0.0, 1.0)
    return x * x * (3 - 2 * x)  # smoothstep: no kink where the weight saturates


class FaceReRenderer:
    """Re-renders the mouth of real frames of one person. Create once per video; ``render``
    per frame (frames of a run in order: the bank entry is kept between frames)."""

    def __init__(self, bank: MouthBank | None = None, rest: np.ndarray | None = None,
                 config: RenderConfig = RENDER):
        """``rest``: the person's canonical face at rest (478, 3); default the bank's, else
        the template face (the frame's jaw opening is then measured less exactly).
        ``config.fine_cells_per_face``: resolution of the warp map, as in the WarpRenderer."""
        self.config = config
        if rest is None:
            rest = bank.rest if bank is not None and bank.rest is not None else face_template()[0]
        self.neutral = seal_lips(np.asarray(rest, np.float64))  # (478, 3)
        self.basis = build_basis(self.neutral)  # (A, 478, 3)
        self.projector = ActionProjector(self.neutral, self.basis)
        self._mouth_basis = self.basis[MOUTH_COLUMNS].astype(np.float64)  # (M, 478, 3)
        self.moved = moving_landmarks(self.basis)
        self.mouth_weight = mouth_weight(self.basis)  # (478,)
        tris = np.concatenate([face_template()[1], hole_triangles()])
        self.triangles = tris[self.moved[tris].any(1)]  # (M, 3) face triangles that can move
        self.triangle_points = np.unique(self.triangles)
        self.bank = bank if bank is not None and len(bank) else None
        self._entry: int | None = None  # the bank entry painted last
        self._fade_from: int | None = None  # the entry being faded out, if any
        self._fade_step = 0

    @property
    def bank_entry(self) -> int | None:
        """The bank entry painted last (kept while the target shape stays close)."""
        return self._entry

    def reset(self) -> None:
        """Forget the current bank entry (before frames that do not follow the last one)."""
        self._entry, self._fade_from, self._fade_step = None, None, 0

    # -- the face ------------------------------------------------------------------------------
    def face(self, landmarks: np.ndarray) -> FrameFace:
        """The frame's face (landmarks (478, 3) px) with its mouth at rest."""
        pts = np.asarray(landmarks, np.float64)
        head = geometry.fit_frame(pts, self.neutral)
        canonical = head.to_canonical(pts)
        actions = self.projector.actions(canonical)
        return FrameFace(head, self._closed(canonical, actions), pts[:, :2], actions)

    def _closed(self, canonical: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(478, 3) the frame's face with its mouth at rest: where mouth actions act, the
        rest face carrying the frame's other fitted actions (its smile, frown); elsewhere
        the frame itself. Subtracting the fitted mouth actions instead would leave their
        fitting errors in the lips (a real wide-open mouth fits with odd mixtures), which
        show as swollen or creased lips once closed."""
        kept = actions.copy()
        kept[MOUTH_COLUMNS] = 0.0
        rest = self.neutral + np.tensordot(kept, self.basis, axes=1)  # (478, 3)
        return seal_lips(canonical + self.mouth_weight[:, None] * (rest - canonical))

    def _mouth(self, actions: np.ndarray) -> np.ndarray:
        """(478, 3) canonical displacement of the mouth actions in ``actions`` (A,)."""
        return np.tensordot(actions[MOUTH_COLUMNS], self._mouth_basis, axes=1)

    def target(self, face: FrameFace, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical face (478, 3) and image landmarks (478, 2) px with the mouth ``actions``
        (A,) (only the MOUTH_ACTIONS columns are read). Unmoved landmarks stay exactly."""
        canonical = face.closed + self._mouth(actions)
        points = face.head.to_image(canonical)[:, :2]
        points[~self.moved] = face.source[~self.moved]
        _unfold_lips(points, face.head.rotation[:2, 1])
        return canonical, points

    # -- rendering -----------------------------------------------------------------------------
    def render(self, image: np.ndarray, landmarks: np.ndarray, mouth: MotionFrame | np.ndarray) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with its mouth re-rendered to ``mouth`` (a MotionFrame or
        (A,) actions; only the mouth actions are used). Landmarks (478, 3) px; a frame
        without a face (NaN landmarks) comes back unchanged."""
        out = image.copy()
        if not np.isfinite(landmarks).all():
            return out
        actions = mouth_actions(mouth)
        face = self.face(landmarks)
        canonical, target = self.target(face, actions)
        box = self.box(face.source, target, face.head.scale, image.shape[:2])
        x0, y0, x1, y1 = box
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            return out  # the lower face is outside the frame
        smap = self.backward_map(face.source, target, face.head.scale, box)
        region = np.ascontiguousarray(image[y0:y1, x0:x1])
        origin = np.array([x0, y0], np.float64)
        model = FaceModel(face.closed, self.basis, _shifted(face.head, origin), face.source - origin)
        clean = inpaint_mouth(region, model)  # the frame's own teeth must not be squeezed in
        warped = cv2.remap(clean, smap, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frame = MotionFrame(np.zeros(3), np.zeros(2), 1.0, actions, np.zeros(2))
        MouthPainter(clean, model).paint(warped, target - origin, frame, self._interior(canonical))
        alpha = _feather(warped.shape[:2])
        out[y0:y1, x0:x1] = cv2.blendLinear(warped.astype(np.float32), region.astype(np.float32),
                                            alpha, 1 - alpha).astype(np.uint8)
        return out

    def _interior(self, canonical: np.ndarray) -> BankInterior | None:
        """The bank entry for the target mouth shape (None: the synthetic interior). A new
        entry cross-fades in from the previous one (both live on the same canonical lens)."""
        if self.bank is None:
            return None
        key = mouth_shape(canonical)
        if mid_opening(key) < MIN_OPEN_FOR_BANK:
            return None  # closed: nothing to paint, keep the current entry for the next opening
        entry = self.bank.lookup(key, self._entry)
        if entry is not None and self._entry is not None and entry != self._entry:
            self._fade_from, self._fade_step = self._entry, 0
        self._entry = entry
        if entry is None:
            self._fade_from = None
            return None
        patch = self.bank.patches[entry]
        if self._fade_from is not None:
            self._fade_step += 1
            share = self._fade_step / (FADE_FRAMES + 1)  # of the new entry
            old = self.bank.patches[self._fade_from]
            patch = cv2.addWeighted(patch, share, old, 1 - share, 0.0)
            if self._fade_step >= FADE_FRAMES:
                self._fade_from = None
        return BankInterior(patch)

    def backward_map(self, source: np.ndarray, target: np.ndarray, face_width: float,
                     box: tuple[int, int, int, int]) -> np.ndarray:
        """For every pixel of ``box`` (x0, y0, x1, y1), its source pixel (h, w, 2) float32
        relative to the box origin: the warp taking ``source`` landmarks (478, 2) px to
        ``target``."""
        x0, y0, x1, y1 = box
        anchors = _edge_anchors(box, ANCHOR_SPACING * face_width)  # (K, 2) fixed
        src = np.concatenate([source, anchors])
        dst = np.concatenate([target, anchors])
        tris = np.concatenate([self.triangles, self._exterior_triangles(dst)])
        cell = max(1, int(round(face_width / self.config.fine_cells_per_face)))  # px per map node
        smap, _ = triangle_map(src, dst, tris, (y1 - y0, x1 - x0), (x0, y0), cell)
        if cell > 1:
            gh, gw = smap.shape[:2]
            smap = cv2.resize(smap, (gw * cell, gh * cell), interpolation=cv2.INTER_LINEAR)
        smap = smap[: y1 - y0, : x1 - x0] - np.array([x0, y0], np.float32)
        return np.ascontiguousarray(smap)

    def box(self, source: np.ndarray, target: np.ndarray, face_width: float,
            size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) within an image of ``size`` (h, w): the lower-face box that can
        change: every triangle that can move (source and target), the face oval's width
        and room under the chin."""
        h, w = size
        moving = np.concatenate([source[self.triangle_points], target[self.triangle_points]])
        oval = np.concatenate([source[topo.FACE_OVAL], target[topo.FACE_OVAL]])
        chin = max(source[topo.CHIN, 1], target[topo.CHIN, 1])
        x0 = min(moving[:, 0].min(), oval[:, 0].min()) - SIDE_MARGIN * face_width
        x1 = max(moving[:, 0].max(), oval[:, 0].max()) + SIDE_MARGIN * face_width
        y0 = moving[:, 1].min() - TOP_MARGIN * face_width
        y1 = max(moving[:, 1].max(), chin + NECK_MARGIN * face_width)
        x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        return x0, y0, min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)

    def _exterior_triangles(self, dst: np.ndarray) -> np.ndarray:
        """Triangles between the face oval and the anchors (controls from 478 on) that
        touch a moving oval landmark: they carry the jaw's motion into the neck."""
        oval = topo.as_index(topo.FACE_OVAL)
        ids = np.concatenate([oval, np.arange(topo.NUM_LANDMARKS, len(dst))])
        tri = ids[Delaunay(dst[ids]).simplices]  # (M, 3)
        moving = np.r_[self.moved, np.zeros(len(dst) - topo.NUM_LANDMARKS, bool)]
        tri = tri[moving[tri].any(1)]
        return tri[~_inside(dst[oval], dst[tri].mean(1))]


def mouth_actions(mouth: MotionFrame | np.ndarray) -> np.ndarray:
    """(A,) actions with only the mouth actions of ``mouth`` (others 0)."""
    given = np.asarray(mouth.actions if isinstance(mouth, MotionFrame) else mouth, np.float64)
    actions = np.zeros(len(ACTIONS))
    actions[MOUTH_COLUMNS] = given[MOUTH_COLUMNS]
    return actions


def _unfold_lips(points: np.ndarray, down: np.ndarray) -> None:
    """Sealed lips meet in the canonical frame; seen with the head pitched, the lower inner
    lip can land a fraction of a pixel above the upper one. Such pairs meet in the image
    (in place on ``points`` (478, 2)), so the mouth reads as closed, not inverted."""
    up, lo = topo.as_index(topo.LIPS_INNER_UPPER), topo.as_index(topo.LIPS_INNER_LOWER)
    folded = (points[lo] - points[up]) @ down < 0  # (11,)
    mid = 0.5 * (points[up[folded]] + points[lo[folded]])
    points[up[folded]] = mid
    points[lo[folded]] = mid


def _inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P,) bool: points (P, 2) inside the closed polygon (V, 2), by the crossing number."""
    a, b = polygon, np.roll(polygon, -1, axis=0)  # (V, 2) edges a -> b
    x, y = points[:, :1], points[:, 1:]  # (P, 1)
    spans = (a[:, 1] > y) != (b[:, 1] > y)  # (P, V) edge crosses the point's row
    dy = np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1])
    x_cross = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
    return (spans & (x < x_cross)).sum(1) % 2 == 1


def _shifted(head: geometry.HeadFrame, origin: np.ndarray) -> geometry.HeadFrame:
    """The same pose in the coordinates of a box starting at ``origin`` (x, y)."""
    return geometry.HeadFrame(head.rotation, head.scale, head.origin - np.r_[origin, 0.0])


def _edge_anchors(box, spacing: float) -> np.ndarray:
    """(K, 2) points along the box's left, bottom and right edges (and its top corners)."""
    x0, y0, x1, y1 = box
    xa, ya, xb, yb = x0, y0, x1 - 1, y1 - 1
    ny = max(2, int(np.ceil((yb - ya) / spacing)) + 1)
    nx = max(2, int(np.ceil((xb - xa) / spacing)) + 1)
    ys, xs = np.linspace(ya, yb, ny), np.linspace(xa, xb, nx)[1:-1]
    return np.concatenate([np.c_[xa + 0 * ys, ys], np.c_[xb + 0 * ys, ys], np.c_[xs, yb + 0 * xs]])


def _feather(shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32: 1 inside, falling to 0 over FEATHER_PX at the edges."""
    h, w = shape
    ys = np.minimum(np.arange(h), np.arange(h)[::-1]).astype(np.float32)
    xs = np.minimum(np.arange(w), np.arange(w)[::-1]).astype(np.float32)
    ramp = np.minimum(ys[:, None], xs[None, :]) / FEATHER_PX
    return np.clip(ramp, 0.0, 1.0)
