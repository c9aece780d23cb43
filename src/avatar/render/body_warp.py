"""Upper-body motion in the photo path: a partial warp of the photo guided by the body joints.

VLOGGER (§3.2) guides its renderer with 2D body controls and a partial warp of the reference
image; here the warp is the renderer. :class:`BodyWarp` moves the shoulders, chest and arms
of the rendered frame by ``MotionFrame.upper_body`` (displacements of BODY_JOINTS from the
photo's own pose, in face widths) and leaves the head to the face warp.

Once per photo (:meth:`BodyWarp.from_photo`): MediaPipe pose in static image mode finds the
joints and the person mask. The photo shows a body when both shoulders are seen
(visibility >= VISIBLE) inside the image and the pose's nose lies on the animated face.

The field, on a coarse grid (CELLS_PER_FACE cells per face width), linear in the joint
displacements and so precomputed as one weight map B_k per joint:

- body parts are painted with per-joint weights: a band between the shoulders, a cap on each
  shoulder, the torso quad (shoulders to hips, bilinear), upper arms, forearms and hands
  (strokes, linear along the bone). The face oval is painted as a part that never moves;
- a normalised convolution (Gaussian of BLUR face widths) turns the paint into smooth
  weights: on a part the field is that part's displacement, between parts a blend, between
  the shoulders and the chin a fade to the face's zero, far from every part (EPS) zero;
- times the person support: 1 on the person and over a band outside the silhouette, 0 from
  OUTSIDE_BAND beyond it, so the background near the body is stretched a little instead of
  the silhouette tearing, and the rest of the background stays exactly still;
- times a gate that is 0 on the face (its oval, and as far below the chin as the jaw opens)
  and 1 from GATE face widths away from it: head, chin and jaw are the face warp's, however
  close the shoulders come (a hunched pose puts them at chin height);
- and per axis an image-border fade: the component across an image edge goes to 0 at that
  edge, so nothing is pulled in from outside the photo.

Composition with the face warp: the body warp remaps the face warp's rendered frame, only
inside the box where some B_k is non-zero. On the face (and on the mouth and lids painted
there) its field is 0; between the chin and the shoulders the two fields add (the face warp's
neck anchors follow the head a little, the body warp fades in towards the shoulders).

Per frame: field = sum_k delta_k B_k on the coarse grid, inverted there (s = t - f(s),
fixed point), upsampled over the box; cv2.remap of the bands of the box where the field
moves a pixel by 1/64 px or more (elsewhere remapping would return the same pixels).
Measured on one core: ~1 ms at 512x512, 3-4 ms for a waist-up 1920x1080 photo
(benchmarks/bench_body_warp.py); the cost grows with the body's area in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatar.body.types import BODY_JOINT_IDS, NOSE, VISIBLE
from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.motion.types import BODY_JOINTS, MotionFrame

LS, RS, LE, RE, LW, RW, LH, RH = range(len(BODY_JOINTS))  # columns of MotionSeq.upper_body
CELLS_PER_FACE = 16  # coarse-grid cells per face width
BLUR = 0.25  # face widths: sigma of the normalised convolution of the painted parts
EPS = 0.03  # background weight of the normalisation (painted parts weigh 1): reach ~2 BLUR
FACE_WEIGHT = 1.0  # weight of the painted face (displacement 0) against the body parts
SHOULDER_BAND = 0.22  # half-widths, face widths: the band between the shoulders ...
SHOULDER_CAP = 0.3  # ... the disc on each shoulder (its rounded top is the silhouette) ...
UPPER_ARM, FOREARM, HAND = 0.22, 0.18, 0.2  # ... and the limbs
HAND_REACH = 0.5  # the hand extends this share of the forearm beyond the wrist
OUTSIDE_BAND = (0.05, 0.45)  # face widths outside the silhouette: full support up to the
#                              first, none from the second (smoothstep between)
GATE = 0.3  # face widths from the face (oval + JAW_ROOM) over which the body field fades in
JAW_ROOM = 0.12  # face widths below the source chin that an open jaw reaches
BORDER_BAND = 0.15  # face widths over which the component across an image edge fades to 0
INVERSION_STEPS = 2  # fixed-point iterations; the field is smooth and small
NEGLIGIBLE = 1.0 / 64  # px: remap resolution is 1/32 px, smaller fields change nothing
BAND_NODES = 4  # the frame is remapped in bands of this many grid rows, each only as wide as it moves
WEIGHT_FLOOR = 0.01  # joint weights under this are cut to 0 (smoothly, from twice this): the
#                     faint tails, worth a hundredth of a joint's motion, are not remapped
SUPPORT_FLOOR = 1e-6  # weight under which a node is outside the warped box
SUPPORT_OVERSAMPLE = 4  # the person support is computed this many times finer than the grid
ARM_GAIN = 0.25  # share of the generated elbow and wrist motion a photo's arms follow
JOINT_GAIN = np.array([1.0, 1.0, ARM_GAIN, ARM_GAIN, ARM_GAIN, ARM_GAIN, 1.0, 1.0], np.float32)  # BODY_JOINTS
POSE_SIDE = 960  # px: the pose sees a copy with at most this long side (as avatar.body.tracker)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class BodyPose:
    """The photo's upper body: BODY_JOINTS positions (8, 2) px, their visibility (8,) and
    the person mask (H, W) float32 in [0, 1] at the photo's resolution."""

    joints: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray
    nose: np.ndarray | None = None  # (2,) px, the pose's nose (which person it found)


def detect_body(image: np.ndarray) -> BodyPose | None:
    """MediaPipe pose (static image mode, with its person segmentation) on an RGB photo;
    None when no person is found. MediaPipe is imported here, on first use."""
    from avatar.body.tracker import MIN_CONFIDENCE, POSE_COMPLEXITY
    from avatar.native import quiet_stderr

    h, w = image.shape[:2]
    k = POSE_SIDE / max(h, w)
    small = image if k >= 1 else cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    with quiet_stderr():
        import mediapipe as mp  # heavy import, deferred

        with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=POSE_COMPLEXITY,
                                    enable_segmentation=True,
                                    min_detection_confidence=MIN_CONFIDENCE) as pose:
            found = pose.process(np.ascontiguousarray(small))
    if found.pose_landmarks is None or found.segmentation_mask is None:
        return None
    lm = found.pose_landmarks.landmark
    joints = np.array([(lm[i].x * w, lm[i].y * h) for i in BODY_JOINT_IDS], np.float64)
    vis = np.array([lm[i].visibility for i in BODY_JOINT_IDS], np.float64)
    mask = cv2.resize(found.segmentation_mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return BodyPose(joints, vis, np.clip(mask, 0, 1), np.array([lm[NOSE].x * w, lm[NOSE].y * h]))


def shows_body(pose: BodyPose, face: FaceModel, size: tuple[int, int]) -> bool:
    """Both shoulders seen inside the image and below the nose (a hunched pose may bring them
    up to the chin), and the pose is this face's (its nose on the face)."""
    w, h = size
    sh = pose.joints[[LS, RS]]
    if not (np.all(pose.visibility[[LS, RS]] >= VISIBLE) and np.all(np.isfinite(sh))):
        return False
    if not (np.all(sh[:, 0] >= 0) and np.all(sh[:, 0] <= w - 1) and np.all(sh[:, 1] >= 0)
            and np.all(sh[:, 1] <= h - 1)):
        return False
    if not np.all(sh[:, 1] > face.source_points[topo.NOSE_TIP, 1]):
        return False
    if pose.nose is not None:
        x0, y0 = face.source_points.min(0)
        x1, y1 = face.source_points.max(0)
        if not (x0 <= pose.nose[0] <= x1 and y0 <= pose.nose[1] <= y1):
            return False
    return True


class BodyWarp:
    """Moves the body in rendered frames of one photo. Create once per photo."""

    def __init__(self, pose: BodyPose, face: FaceModel, size: tuple[int, int]):
        w, h = size
        self.scale = float(face.frame.scale)  # px per face width
        fw = self.scale
        c = max(2, int(round(fw / CELLS_PER_FACE)))
        self.cell = c
        gw, gh = -(-w // c), -(-h // c)  # nodes over the image (the last may overhang)
        pad = int(np.ceil(3 * BLUR * fw / c))  # parts beyond the image still weigh in
        jj = np.arange(-pad, gw + pad, dtype=np.float64)
        ii = np.arange(-pad, gh + pad, dtype=np.float64)
        nodes = np.stack(np.meshgrid((jj + 0.5) * c - 0.5, (ii + 0.5) * c - 0.5), -1)  # (GH, GW, 2) px

        usable = (pose.visibility >= VISIBLE) | ~_inside(pose.joints, w, h)
        usable &= np.all(np.isfinite(pose.joints), axis=1)
        paint, total = _paint_parts(nodes, pose.joints, usable, fw)  # (8, GH, GW), (GH, GW)
        face_paint = _polygon(nodes, face.source_points[topo.as_index(topo.FACE_OVAL)])
        sigma = BLUR * fw / c

        def blur(a: np.ndarray) -> np.ndarray:
            return cv2.GaussianBlur(a.astype(np.float32), (0, 0), sigma)

        den = blur(total) + FACE_WEIGHT * blur(face_paint) + EPS
        crop = (slice(pad, pad + gh), slice(pad, pad + gw))
        inner = nodes[crop]
        common = _person_support(pose.mask, (gw, gh), c, fw) * _face_gate(inner, face, fw)
        fade_x = _smoothstep((np.minimum(inner[..., 0], w - 1 - inner[..., 0]) - 0.5 * c) / (BORDER_BAND * fw))
        fade_y = _smoothstep((np.minimum(inner[..., 1], h - 1 - inner[..., 1]) - 0.5 * c) / (BORDER_BAND * fw))
        self.joints = np.flatnonzero(usable)  # columns of upper_body that move anything
        B = np.stack([(blur(paint[k]) / den)[crop] * common for k in self.joints]) if len(self.joints) \
            else np.zeros((0, gh, gw))
        B *= _smoothstep((B - WEIGHT_FLOOR) / WEIGHT_FLOOR)  # the faint tails to exactly 0
        Bx, By = B * fade_x, B * fade_y
        # The box of nodes where anything moves, grown by a node of (almost) zero field so
        # that the warped box joins the rest of the frame without a step.
        moving = np.any(np.abs(B) > SUPPORT_FLOOR, axis=0)
        rows, cols = np.flatnonzero(moving.any(1)), np.flatnonzero(moving.any(0))
        if len(rows) == 0:
            i0 = i1 = j0 = j1 = 0
        else:
            i0, i1 = max(rows[0] - 1, 0), min(rows[-1] + 2, gh)
            j0, j1 = max(cols[0] - 1, 0), min(cols[-1] + 2, gw)
        self.box = (j0 * c, i0 * c, min(j1 * c, w), min(i1 * c, h))  # (x0, y0, x1, y1) px
        self.Bx = np.ascontiguousarray(Bx[:, i0:i1, j0:j1], np.float32)  # (K, bh, bw)
        self.By = np.ascontiguousarray(By[:, i0:i1, j0:j1], np.float32)
        by, bx = np.mgrid[0:i1 - i0, 0:j1 - j0].astype(np.float32)
        self._node_cells = np.stack([bx, by], -1)  # (bh, bw, 2) box node positions in cells
        ry, rx = np.mgrid[i0 - 1:i1 + 1, j0 - 1:j1 + 1].astype(np.float32)
        self._ring_pixels = (np.stack([rx, ry], -1) + np.float32(0.5)) * np.float32(c) - np.float32(0.5)

    @classmethod
    def from_photo(cls, image: np.ndarray, face: FaceModel) -> BodyWarp | None:
        """The body warp of a photo, or None when it shows no body (or MediaPipe finds no
        person): then frames stay exactly as the face warp renders them."""
        h, w = image.shape[:2]
        pose = detect_body(image)
        if pose is None or not shows_body(pose, face, (w, h)):
            return None
        return cls(pose, face, (w, h))

    @property
    def active(self) -> bool:
        x0, y0, x1, y1 = self.box
        return len(self.joints) > 0 and x1 > x0 and y1 > y0

    def field(self, delta: np.ndarray) -> np.ndarray:
        """(bh, bw, 2) forward displacement in px at the box's grid nodes for upper-body
        displacements ``delta`` (8, 2) in face widths."""
        d = np.asarray(delta, np.float32)[self.joints] * self.scale  # (K, 2) px
        fx = np.tensordot(d[:, 0], self.Bx, 1)
        fy = np.tensordot(d[:, 1], self.By, 1)
        return np.stack([fx, fy], -1).astype(np.float32)

    def backward_map(self, delta: np.ndarray) -> np.ndarray:
        """(y1 - y0, x1 - x0, 2) float32 source pixel of every pixel of the box."""
        return self._source_map(self.field(delta), (0, 0))

    def _source_map(self, field: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        """Backward map of the box for a node ``field`` (px), in pixels of an image whose
        top-left pixel is ``origin`` of the frame."""
        f = field / np.float32(self.cell)  # in cells
        t = self._node_cells
        s = t - f
        for _ in range(INVERSION_STEPS):
            s = t - cv2.remap(f, s, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # Source positions in px on the box's nodes and a ring of nodes around them that
        # hold the edge nodes' displacement: cv2.resize then interpolates positions over the
        # box's outer half cells too, where it would otherwise hold the edge nodes' positions
        # (a smear). The edge displacement is ~0 inside the image, the motion along the
        # image's edge where the box meets it.
        c = self.cell
        disp = cv2.copyMakeBorder((s - t) * np.float32(c), 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        ring = self._ring_pixels - np.array(origin, np.float32) + disp
        full = cv2.resize(ring, (ring.shape[1] * c, ring.shape[0] * c), interpolation=cv2.INTER_LINEAR)
        x0, y0, x1, y1 = self.box
        return full[c: c + y1 - y0, c: c + x1 - x0]

    def apply(self, frame: np.ndarray, delta: np.ndarray | None) -> np.ndarray:
        """The rendered ``frame`` (H, W, 3) with the body moved by ``delta`` (8, 2) face
        widths; returned as is when nothing moves, else warped in place and returned.

        Only bands of the box where the field moves a pixel by NEGLIGIBLE or more are
        remapped: elsewhere remapping would give back the same pixels."""
        if delta is None or not self.active:
            return frame
        d = np.asarray(delta, np.float32)[self.joints]
        if not np.all(np.isfinite(d)) or np.abs(d).max() * self.scale < NEGLIGIBLE:
            return frame
        field = self.field(delta)
        size = np.abs(field).max(-1)
        if size.max() < NEGLIGIBLE:
            return frame
        # A pixel's displacement interpolates its 2x2 nearest nodes: it is negligible where
        # the 3x3 nodes around its own are.
        needed = cv2.dilate((size >= NEGLIGIBLE / 2).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        x0, y0, x1, y1 = self.box
        h, w = frame.shape[:2]
        reach = int(np.ceil(size.max())) + 2  # sources lie this close to their pixels
        sx0, sy0, sx1, sy1 = max(x0 - reach, 0), max(y0 - reach, 0), min(x1 + reach, w), min(y1 + reach, h)
        source = frame[sy0:sy1, sx0:sx1].copy()  # the bands below overwrite the frame
        smap = self._source_map(field, (sx0, sy0))
        c = self.cell
        for i in range(0, needed.shape[0], BAND_NODES):
            cols = np.flatnonzero(needed[i:i + BAND_NODES].any(0))
            if len(cols) == 0:
                continue
            ya, yb = i * c, min((i + BAND_NODES) * c, y1 - y0)
            xa, xb = cols[0] * c, min((cols[-1] + 1) * c, x1 - x0)
            frame[y0 + ya: y0 + yb, x0 + xa: x0 + xb] = cv2.remap(
                source, smap[ya:yb, xa:xb], None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return frame


class BodyMotionRenderer:
    """A face-warp renderer whose frames also get the body warp of ``frame.upper_body``.

    The torso (shoulders, hips) moves as generated; the arms by ARM_GAIN of it: a photo's
    arms often cross the body or rest on a desk, and a warp cannot move a hand across what
    it covers (generated wrist motion of ~0.25 face widths tore crossed arms and pulled
    the photo's border in), while breathing and shoulder shifts warp cleanly."""

    def __init__(self, renderer, body: BodyWarp):
        self.renderer = renderer
        self.body = body

    def render(self, frame: MotionFrame) -> np.ndarray:
        delta = None if frame.upper_body is None else frame.upper_body * JOINT_GAIN[:, None]
        return self.body.apply(self.renderer.render(frame), delta)


def with_body_motion(renderer, image: np.ndarray, face: FaceModel):
    """``renderer`` wrapped to move the body too, or ``renderer`` itself when the photo shows
    no body. Runs MediaPipe pose once on the photo: call it only for motion with upper_body."""
    body = BodyWarp.from_photo(image, face)
    return renderer if body is None or not body.active else BodyMotionRenderer(renderer, body)


# -- painting the parts ----------------------------------------------------------------------
def _inside(points: np.ndarray, w: int, h: int) -> np.ndarray:
    return (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)


def _paint_parts(nodes: np.ndarray, joints: np.ndarray, usable: np.ndarray, fw: float):
    """Per-joint paint (8, GH, GW) and its sum over joints (GH, GW): every part a node lies
    in adds its per-joint weights (which sum to 1 per part)."""
    paint = np.zeros((len(BODY_JOINTS), *nodes.shape[:2]), np.float64)

    def stroke(a: int, b: int, half_width: float, end=None):
        if not (usable[a] and usable[b]):
            return
        p, q = joints[a], joints[b] if end is None else end
        t, dist = _segment(nodes, p, q)
        inside = _smoothstep((half_width * fw - dist) / (0.1 * fw) + 0.5)
        if a == b:
            paint[a] += inside
        else:
            paint[a] += (1 - t) * inside
            paint[b] += t * inside

    stroke(LS, RS, SHOULDER_BAND)
    stroke(LS, LS, SHOULDER_CAP, end=joints[LS])
    stroke(RS, RS, SHOULDER_CAP, end=joints[RS])
    for s, e, wr in ((LS, LE, LW), (RS, RE, RW)):
        stroke(s, e, UPPER_ARM)
        stroke(e, wr, FOREARM)
        if usable[e] and usable[wr]:
            stroke(wr, wr, HAND, end=joints[wr] + HAND_REACH * (joints[wr] - joints[e]))
    if usable[[LS, RS, LH, RH]].all():
        u, v, inside = _inverse_bilinear(nodes, joints[LS], joints[RS], joints[LH], joints[RH])
        paint[LS] += (1 - u) * (1 - v) * inside
        paint[RS] += u * (1 - v) * inside
        paint[LH] += (1 - u) * v * inside
        paint[RH] += u * v * inside
    return paint, paint.sum(0)


def _segment(nodes: np.ndarray, p: np.ndarray, q: np.ndarray):
    """Parameter t in [0, 1] of the nearest point of segment p-q, and the distance to it."""
    v = q - p
    n2 = float(v @ v)
    t = np.zeros(nodes.shape[:2]) if n2 < 1e-9 else np.clip(((nodes - p) @ v) / n2, 0, 1)
    dist = np.linalg.norm(nodes - (p + t[..., None] * v), axis=-1)
    return t, dist


def _inverse_bilinear(nodes, a, b, c, d, steps: int = 6):
    """(u, v) with nodes = (1-v)((1-u) a + u b) + v((1-u) c + u d) (Newton), and a 0/1 mask
    of nodes inside the quad (a, b top; c, d bottom)."""
    u = np.full(nodes.shape[:2], 0.5)
    v = np.full(nodes.shape[:2], 0.5)
    for _ in range(steps):
        top, bottom = a + u[..., None] * (b - a), c + u[..., None] * (d - c)
        r = (1 - v)[..., None] * top + v[..., None] * bottom - nodes
        du = (1 - v)[..., None] * (b - a) + v[..., None] * (d - c)  # d/du
        dv = bottom - top  # d/dv
        det = du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]
        det = np.where(np.abs(det) < 1e-9, 1e-9, det)
        u = u - (r[..., 0] * dv[..., 1] - r[..., 1] * dv[..., 0]) / det
        v = v - (du[..., 0] * r[..., 1] - du[..., 1] * r[..., 0]) / det
        u, v = np.clip(u, -1, 2), np.clip(v, -1, 2)
    inside = ((u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)).astype(np.float64)
    return np.clip(u, 0, 1), np.clip(v, 0, 1), inside


def _polygon(nodes: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """0/1 map of the nodes inside a polygon given in px."""
    gh, gw = nodes.shape[:2]
    origin, step = nodes[0, 0], nodes[1, 1] - nodes[0, 0]
    cells = (poly - origin) / step
    m = np.zeros((gh, gw), np.float32)
    cv2.fillPoly(m, [np.round(cells * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    return m


def _face_gate(nodes: np.ndarray, face: FaceModel, fw: float) -> np.ndarray:
    """(gh, gw): 0 on the face oval and the room an opening jaw takes below it, rising
    smoothly to 1 at GATE face widths from there (exact distances: no grid staircase)."""
    oval = face.source_points[topo.as_index(topo.FACE_OVAL)].astype(np.float64)
    inside = np.maximum(_polygon(nodes, oval), _polygon(nodes, oval + (0.0, JAW_ROOM * fw))) >= 0.5
    dist = np.minimum(_polyline_distance(nodes, oval), _polyline_distance(nodes, oval + (0.0, JAW_ROOM * fw)))
    return _smoothstep(np.where(inside, 0.0, dist / fw) / GATE)


def _polyline_distance(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance (px) of each of ``points`` (..., 2) to the closed polygon outline ``poly``."""
    a, b = poly, np.roll(poly, -1, axis=0)  # (M, 2) segment ends
    p = points.reshape(-1, 1, 2)
    v = b - a
    t = np.clip(((p - a) * v).sum(-1) / np.maximum((v * v).sum(-1), 1e-9), 0, 1)
    d = np.linalg.norm(p - (a + t[..., None] * v), axis=-1).min(1)
    return d.reshape(points.shape[:-1])


def _person_support(mask: np.ndarray, grid: tuple[int, int], c: int, fw: float) -> np.ndarray:
    """(gh, gw) support: 1 on the person and up to OUTSIDE_BAND[0] outside it, smoothly 0 by
    OUTSIDE_BAND[1] (distance to the person, face widths). Computed at SUPPORT_OVERSAMPLE
    times the grid's resolution, then averaged down, so the silhouette leaves no staircase."""
    gw, gh = grid
    k = SUPPORT_OVERSAMPLE
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask.astype(np.float32), 0, gh * c - h, 0, gw * c - w, cv2.BORDER_REPLICATE)
    fine = cv2.resize(padded, (gw * k, gh * k), interpolation=cv2.INTER_AREA)
    dist = cv2.distanceTransform((fine < 0.5).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * (c / k / fw)
    lo, hi = OUTSIDE_BAND
    support = (1 - _smoothstep((dist - lo) / (hi - lo))).astype(np.float32)
    return cv2.resize(support, (gw, gh), interpolation=cv2.INTER_AREA)
