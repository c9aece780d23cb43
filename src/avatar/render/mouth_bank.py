"""Mouth interiors (teeth, tongue, cavity) cut from the person's own enrolled frames.

TANGO re-uses a person's real frames and redoes the lips afterwards (TANGO §2, lip sync as
a post-process); the re-rendered mouth looks most real with the person's own teeth, which
are sharper than the synthesised ones of :mod:`avatar.render.mouth`. Every open mouth of
the enrollment video is a candidate: its interior (inside the inner-lip ring, plus a thin
band of lip) is warped piecewise-affinely onto a fixed canonical "lens" of PATCH_SIZE
pixels and keyed by its shape (inner-lip gaps and width, in face widths, head pose
removed). At render time the entry with the most similar shape is warped from the lens
into the target inner-lip ring; the current entry is kept while it stays close
(hysteresis), so the teeth do not flicker between entries.

The builder also keeps the person's face at rest (median canonical shape of the most
closed, frontal mouths): the re-renderer measures each frame's mouth against it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from avatar.errors import AvatarError
from avatar.face import geometry, topology as topo
from avatar.face.model import face_template
from avatar.render.mesh import ladder

PATCH_SIZE = (64, 32)  # (w, h) px of a stored interior: the inner mouth of a ~200 px wide face
PATCH_MARGIN = 3  # px between the lens and the patch edge, room for the lip band
FILL_RADIUS = 2  # px: inpainting radius that fills the patch beyond the band
BAND_PX = 2.0  # px of lip kept outside the inner-lip ring (the painter blends ~1 px of it)
LENS_ROUNDNESS = 0.7  # lens half-height ~ sin(pi u) ** this: rounder than a sine, like a mouth
MIN_OPENING = 0.02  # face widths (~3 mm): the lips are apart, there is an interior to store
MAX_YAW = 0.35  # rad: more turned heads show a foreshortened, lopsided interior
MAX_ENTRIES = 200  # entries kept: 200 x 64 x 32 x 3 bytes = 1.2 MB
OFFER_EVERY = 2  # callers offer every n-th video frame (neighbours look alike)
CANDIDATE_FACTOR = 4  # candidates are thinned to MAX_ENTRIES once there are this many times more
REST_FRAMES = 16  # the rest face is the median of up to this many most-closed frames ...
REST_TOLERANCE = 0.01  # ... opening at most this much (face widths) more than the most closed
MAX_DISTANCE = 0.025  # RMS face widths: no entry this close -> the synthetic interior is used
# An interior as bright as the lips, as red and without texture is lip or tongue filling
# the ring (often the tracker's inner lip slipping onto the lip): warped open it reads as
# a swollen lip, not a mouth. Luminance and texture relative to the lip band around it.
LIPLIKE_MIN_LUMA = 0.7  # interior / lip luminance above this ...
LIPLIKE_MAX_TEXTURE = 0.13  # ... its standard deviation / lip luminance below this ...
LIPLIKE_MIN_REDNESS = 1.15  # ... and (R - G) / (R + G + B) at least this times the lips'
MAX_EXTRAPOLATION = 0.3  # barycentric: nodes this far outside their triangle are clamped onto it
HYSTERESIS = 0.015  # RMS face widths: the current entry stays while within this of the best

# Ring positions (in LIPS_INNER_RING order, lower lip corner to corner then the upper lip
# back) of the upper and lower inner lip, each from the right corner to the left corner.
_RING = topo.LIPS_INNER_RING
RING_UPPER = [_RING.index(p) for p in topo.LIPS_INNER_UPPER]
RING_LOWER = [_RING.index(p) for p in topo.LIPS_INNER_LOWER]
KEY_COLUMNS = slice(1, -1)  # the inner lip pairs between the corners (the corners meet)
KEY_SIZE = len(topo.LIPS_INNER_UPPER) - 2 + 1  # those gaps and the mouth width
# Lookup weights: the middle of the opening counts most. Toward the corners the gaps of a
# modelled mouth (the target) and a tracked one (the entries) differ by design, the model's
# opening being flatter; and the width only stretches the interior sideways.
KEY_WEIGHTS = np.r_[np.sin(np.linspace(0, np.pi, KEY_SIZE + 1)[1:-1]) ** 2, 0.35].astype(np.float32)


# -- geometry shared by storing and painting ------------------------------------------------
def _ring_triangles() -> np.ndarray:
    """(M, 3) triangles over the ring (K points) and its outer band (K more points)."""
    k = len(_RING)
    inner = ladder(RING_UPPER, RING_LOWER)
    band = []
    for i in range(k):
        j = (i + 1) % k
        band += [(i, j, k + j), (i, k + j, k + i)]
    return np.array(inner + band, np.int64)


RING_TRIANGLES = _ring_triangles()


def with_band(ring: np.ndarray, band: float = BAND_PX) -> np.ndarray:
    """(2K, 2): the ring (K, 2) and the same ring pushed ``band`` px away from its centre."""
    out = ring - ring.mean(0)
    norm = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
    return np.concatenate([ring, ring + band * out / norm])


@lru_cache(maxsize=1)
def lens() -> np.ndarray:
    """(K, 2) the canonical inner-lip ring in patch pixels: an open lens filling the patch,
    its points spaced along x like the template face's inner lips."""
    w, h = PATCH_SIZE
    x = face_template()[0][topo.as_index(_RING), 0]
    u = (x - x.min()) / np.ptp(x)  # (K,) 0 at the right corner .. 1 at the left
    half = (h / 2 - PATCH_MARGIN) * np.sin(np.pi * u) ** LENS_ROUNDNESS
    side = np.zeros(len(_RING))
    side[RING_UPPER], side[RING_LOWER] = -1.0, 1.0  # upper lip above the mid line
    side[[RING_UPPER[0], RING_UPPER[-1]]] = 0.0  # the corners, shared by both lips, on it
    px = PATCH_MARGIN + u * (w - 1 - 2 * PATCH_MARGIN)
    return np.stack([px, (h - 1) / 2 + side * half], 1)


def triangle_map(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, shape: tuple[int, int],
                 origin=(0.0, 0.0), cell: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Backward map of the piecewise-affine warp taking triangles at ``src`` (N, 2) onto
    ``dst`` (N, 2): the source position (gh, gw, 2) float32 of every node of a grid over
    ``shape`` (h, w) pixels starting at ``origin``, and which nodes a triangle covers
    (gh, gw) bool (uncovered nodes map to themselves).

    Node (i, j) sits at origin + ((j + 0.5) cell - 0.5, (i + 0.5) cell - 0.5): the samples
    cv2.resize assumes, so ``cell`` > 1 maps upsample to pixels with one resize.
    Triangles are rasterised at their ``dst`` position; where they overlap, earlier ones win.
    """
    h, w = shape
    gh, gw = -(-h // cell), -(-w // cell)
    org = np.asarray(origin, np.float64) + 0.5 * cell - 0.5  # pixel position of node (0, 0)
    owner = np.full((gh, gw), -1, np.int32)
    polys = np.round((dst - org) / cell * 16)[triangles].astype(np.int32)  # 1/16-node precision
    for k in range(len(polys) - 1, -1, -1):
        cv2.fillPoly(owner, [polys[k]], int(k), lineType=cv2.LINE_8, shift=4)
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    smap = np.stack([gx, gy], -1) * cell + org.astype(np.float32)  # (gh, gw, 2) identity
    covered = owner >= 0
    rows = np.flatnonzero(covered)
    if len(rows):
        k = owner.ravel()[rows]  # (P,) the triangle of every covered node
        p = smap.reshape(-1, 2)[rows].astype(np.float64)
        # The displacement, not the position, is interpolated: it is continuous across
        # triangles, so a node evaluated at a nearby point of a neighbouring triangle errs
        # by its distance times the displacement's gradient only.
        lam = _barycentric(p, dst[triangles], k)  # (P, 3)
        disp = (src - dst)[triangles]  # (M, 3, 2)
        moved = p + lam[:, :1] * disp[k, 0] + lam[:, 1:2] * disp[k, 1] + lam[:, 2:] * disp[k, 2]
        smap.reshape(-1, 2)[rows] = moved
    return smap, covered


def _barycentric(p: np.ndarray, tri: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(P, 3) barycentric coordinates of points p (P, 2) in triangles tri[k] (tri (M, 3, 2)).
    A rasterised edge claims nodes up to a cell outside the triangle. Slightly outside,
    the triangle's affine map extends (the neighbour's would give nearly the same); far
    outside in barycentric terms (thin triangles), extrapolation would throw the node far
    away, so it takes the triangle's nearest point instead."""
    a, v0, v1 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # (M, 2) each
    den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    # s, t are affine in p per triangle: s = S . (x, y, 1), t = T . (x, y, 1).
    S = np.stack([v1[:, 1], -v1[:, 0], a[:, 1] * v1[:, 0] - a[:, 0] * v1[:, 1]], 1) / den[:, None]
    T = np.stack([-v0[:, 1], v0[:, 0], a[:, 0] * v0[:, 1] - a[:, 1] * v0[:, 0]], 1) / den[:, None]
    x, y = p[:, 0], p[:, 1]
    Sk, Tk = S[k], T[k]
    s = Sk[:, 0] * x + Sk[:, 1] * y + Sk[:, 2]
    t = Tk[:, 0] * x + Tk[:, 1] * y + Tk[:, 2]
    lam = np.stack([1 - s - t, s, t], 1)
    far = np.flatnonzero(lam.min(1) < -MAX_EXTRAPOLATION)
    if len(far):
        lam[far] = _nearest_on_edges(p[far], tri[k[far]])
    return lam


def _nearest_on_edges(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(P, 3) barycentric coordinates of the nearest point on each triangle's boundary."""
    best_d = np.full(len(p), np.inf)
    best = np.zeros((len(p), 3))
    rows = np.arange(len(p))
    for i, j in ((0, 1), (1, 2), (2, 0)):
        a, e = tri[:, i], tri[:, j] - tri[:, i]
        t = np.clip(((p - a) * e).sum(1) / np.maximum((e * e).sum(1), 1e-12), 0.0, 1.0)
        d = np.linalg.norm(a + t[:, None] * e - p, axis=1)
        closer = d < best_d
        lam = np.zeros((len(p), 3))
        lam[rows, i], lam[rows, j] = 1 - t, t
        best[closer], best_d[closer] = lam[closer], d[closer]
    return best


# -- shape keys -----------------------------------------------------------------------------
def canonical_face(landmarks: np.ndarray) -> tuple[np.ndarray, geometry.HeadFrame]:
    """(478, 3) landmarks in pixels -> the face in the template's canonical frame (face
    widths, head pose removed), and that pose."""
    head = geometry.fit_frame(landmarks, face_template()[0])
    return head.to_canonical(np.asarray(landmarks, np.float64)), head


def mouth_shape(canonical: np.ndarray) -> np.ndarray:
    """(D,) shape key of a canonical face (478, 3): the inner-lip gap at every pair between
    the corners and the corner-to-corner width, in face widths."""
    up = canonical[topo.as_index(topo.LIPS_INNER_UPPER)[KEY_COLUMNS], 1]
    lo = canonical[topo.as_index(topo.LIPS_INNER_LOWER)[KEY_COLUMNS], 1]
    width = np.linalg.norm(canonical[topo.INNER_CORNER_L, :2] - canonical[topo.INNER_CORNER_R, :2])
    return np.r_[lo - up, width].astype(np.float32)


def key_distance(keys: np.ndarray, key: np.ndarray) -> np.ndarray:
    """(N,) weighted RMS difference (face widths) between keys (N, D) and one key (D,)."""
    w2 = KEY_WEIGHTS ** 2
    return np.sqrt(((keys - key) ** 2 * w2).sum(-1) / w2.sum())


def mid_opening(key: np.ndarray) -> float:
    """The gap at the middle of the mouth (face widths) from a shape key."""
    gaps = key[:-1]
    return float(gaps[len(gaps) // 2])


# -- the bank ---------------------------------------------------------------------------------
@dataclass
class BankInterior:
    """One stored interior, ready to be painted (avatar.render.mouth.MouthInterior)."""

    patch: np.ndarray  # (PH, PW, 3) uint8 on the canonical lens

    def warp_into(self, shape: tuple[int, int], ring: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 interior whose inner-lip ring lands on ``ring`` (K, 2) px."""
        smap, _ = triangle_map(with_band(lens()), with_band(ring), RING_TRIANGLES, shape)
        return cv2.remap(self.patch, smap, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


@dataclass
class MouthBank:
    """Stored interiors with their shape keys, and the person's rest face."""

    patches: np.ndarray  # (N, PH, PW, 3) uint8
    keys: np.ndarray  # (N, D) float32, see mouth_shape
    rest: np.ndarray | None = None  # (478, 3) float32 canonical face at rest, lips closed

    def __len__(self) -> int:
        return len(self.patches)

    @classmethod
    def from_frames(cls, frames: Iterable[tuple[np.ndarray, np.ndarray]]) -> "MouthBank":
        """A bank from (frame (H, W, 3) uint8, landmarks (478, 3) px) pairs."""
        builder = MouthBankBuilder()
        for frame, landmarks in frames:
            builder.add(frame, landmarks)
        return builder.build()

    def lookup(self, key: np.ndarray, current: int | None = None) -> int | None:
        """Index of the entry whose shape is nearest ``key`` (D,), or None when none is
        within MAX_DISTANCE. ``current`` (the previous frame's entry) is kept while it is
        within HYSTERESIS of the best."""
        if not len(self):
            return None
        dist = key_distance(self.keys, key)  # (N,)
        best = int(dist.argmin())
        if current is not None and 0 <= current < len(self) and dist[current] <= min(
                dist[best] + HYSTERESIS, MAX_DISTANCE):
            return current
        return best if dist[best] <= MAX_DISTANCE else None

    def interior(self, index: int) -> BankInterior:
        return BankInterior(self.patches[index])

    # -- storage ------------------------------------------------------------------------------
    def save_arrays(self) -> dict[str, np.ndarray]:
        """A flat dict of arrays (for an .npz); :meth:`from_arrays` reads it back."""
        arrays = {"patches": self.patches, "keys": self.keys}
        if self.rest is not None:
            arrays["rest"] = self.rest
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "MouthBank":
        """The bank saved by :meth:`save_arrays` (AvatarError if the arrays do not fit)."""
        try:
            patches = np.asarray(arrays["patches"], np.uint8)
            keys = np.asarray(arrays["keys"], np.float32)
            rest = arrays.get("rest")
        except KeyError as err:
            raise AvatarError(f"the mouth bank lacks its {err.args[0]!r} array", "mouth bank",
                              "enroll the avatar again") from None
        w, h = PATCH_SIZE
        if patches.shape[1:] != (h, w, 3) or keys.shape != (len(patches), KEY_SIZE) or (
                rest is not None and np.shape(rest) != (topo.NUM_LANDMARKS, 3)):
            raise AvatarError("the mouth bank's arrays have the wrong shapes", "mouth bank",
                              "enroll the avatar again with this version")
        return cls(patches, keys, None if rest is None else np.asarray(rest, np.float32))


class MouthBankBuilder:
    """Collects open-mouth interiors and the rest face from enrolled frames (``add`` each
    frame, then ``build``)."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._patches: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._rest: list[tuple[float, int, np.ndarray]] = []  # max-heap on the opening
        self._count = 0

    def add(self, frame: np.ndarray, landmarks: np.ndarray) -> None:
        """Offer one frame (H, W, 3) uint8 with its landmarks (478, 3) px."""
        pts = np.asarray(landmarks, np.float64)
        if not np.isfinite(pts).all():
            return
        canonical, head = canonical_face(pts)
        if abs(geometry.matrix_to_euler(head.rotation)[0]) > MAX_YAW:
            return
        key = mouth_shape(canonical)
        self._keep_rest(mid_opening(key), canonical)
        if mid_opening(key) < MIN_OPENING:
            return
        patch = normalise_interior(frame, pts[:, :2])
        if not looks_like_lips(patch):
            self._patches.append(patch)
            self._keys.append(key)
            if len(self._keys) >= CANDIDATE_FACTOR * self.max_entries:
                self._thin(2 * self.max_entries)

    def _keep_rest(self, opening: float, canonical: np.ndarray) -> None:
        self._count += 1
        item = (-opening, self._count, canonical.astype(np.float32))
        if len(self._rest) < REST_FRAMES:
            heapq.heappush(self._rest, item)
        else:
            heapq.heappushpop(self._rest, item)

    def _thin(self, n: int) -> None:
        keep = farthest_points(np.stack(self._keys), n)
        self._patches = [self._patches[i] for i in keep]
        self._keys = [self._keys[i] for i in keep]

    def build(self) -> MouthBank:
        w, h = PATCH_SIZE
        if len(self._keys) > self.max_entries:
            self._thin(self.max_entries)
        patches = np.stack(self._patches) if self._patches else np.zeros((0, h, w, 3), np.uint8)
        keys = np.stack(self._keys) if self._keys else np.zeros((0, KEY_SIZE), np.float32)
        return MouthBank(patches, keys, self._rest_face())

    def _rest_face(self) -> np.ndarray | None:
        """(478, 3) float32 median of the most closed frames, or None without frames."""
        if not self._rest:
            return None
        closest = min(-negated for negated, _, _ in self._rest)
        shapes = [c for negated, _, c in self._rest if -negated <= closest + REST_TOLERANCE]
        return np.median(np.stack(shapes), 0).astype(np.float32)


def normalise_interior(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(PH, PW, 3) uint8: the frame's mouth interior (points (478, 2) px) on the lens.
    Patch pixels beyond the lip band are filled from it, so painting never blends in
    anything but this mouth."""
    ring = points[topo.as_index(_RING)]
    w, h = PATCH_SIZE
    smap, covered = triangle_map(with_band(ring), with_band(lens()), RING_TRIANGLES, (h, w))
    patch = cv2.remap(frame, smap, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.inpaint(patch, (~covered).astype(np.uint8), FILL_RADIUS, cv2.INPAINT_TELEA)


@lru_cache(maxsize=1)
def _lens_masks() -> tuple[np.ndarray, np.ndarray]:
    """(PH, PW) bool: the lens' inside (a pixel in from its edge) and the lip band around it."""
    w, h = PATCH_SIZE
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(lens()).astype(np.int32)], 1)
    core = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)
    grown = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(bool)
    band = cv2.dilate(inside, np.ones((2 * PATCH_MARGIN + 1,) * 2, np.uint8)).astype(bool) & ~grown
    return core, band


def looks_like_lips(patch: np.ndarray) -> bool:
    """Whether a normalised interior (PH, PW, 3) uint8 is lip-like rather than a mouth
    (see LIPLIKE_MIN_LUMA)."""
    core, band = _lens_masks()
    rgb = patch.astype(np.float32)
    luma = rgb.mean(-1)
    redness = (rgb[..., 0] - rgb[..., 1]) / (rgb.sum(-1) + 1.0)
    lip_luma, lip_red = max(luma[band].mean(), 1.0), redness[band].mean()
    return bool(luma[core].mean() > LIPLIKE_MIN_LUMA * lip_luma
                and luma[core].std() < LIPLIKE_MAX_TEXTURE * lip_luma
                and lip_red > 0 and redness[core].mean() > LIPLIKE_MIN_REDNESS * lip_red)


def farthest_points(keys: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` rows of ``keys`` (N, D) spread over the shape space (greedy
    farthest-point sampling from the most open mouth)."""
    if len(keys) <= n:
        return np.arange(len(keys))
    chosen = [int(keys[:, :-1].max(1).argmax())]
    dist = key_distance(keys, keys[chosen[0]])
    for _ in range(n - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, key_distance(keys, keys[nxt]))
    return np.sort(np.array(chosen))
