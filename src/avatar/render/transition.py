"""In-between frames where a retrieved path jumps (TANGO §3.3, Fig. 6), without a network.

TANGO's ACInterp (a diffusion model on AnimateAnyone) generates the frames between the
last real frame ``a`` before a jump and the first real frame ``b`` after it from the
linearly blended 2D pose and a homography background offset. This is the non-learned core
of the same idea, on CPU:

1. background: the homography b -> a (SIFT + FLANN + RANSAC, person masked out,
   :mod:`avatar.render.homography`) aligns b's background onto a's; along the transition
   the camera moves from a's framing to b's, so the background glides rigidly;
2. person: dense optical flow (DIS) between a and the aligned b at reduced resolution,
   started from - and, where it fails the forward-backward check or contradicts nearby
   keypoints, replaced by - the displacement of the 2D pose keypoints (and points along
   the bones) spread over the person: keypoint k is at (1 - alpha) p_a + alpha p_b at
   time alpha. Pixels where a and b look alike and the background do not move;
3. time alpha: both flows are splatted forward to alpha (softmax splatting, the person and
   its fast parts in front), a and b are warped at full resolution and blended with
   weights (1 - alpha, alpha) where each side sees the pixel, sharpened towards the nearer
   frame where the two warps still disagree (less ghosting).

Cost (1080x1920, one core of the shared benchmark machine): ~100 ms per jump for the
homography and flows, then ~55-65 ms per in-between frame; only the moving parts are
warped at full resolution, the rest is the cross-fade of two identical backgrounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from avatar.errors import AvatarError
from avatar.render.homography import apply_homography, background_homography, scale_matrix

# Flow resolution and stillness
FLOW_LONG_SIDE = 320  # px: flow resolution (at most); measured on held-out transitions, 480 was
#                       no better (PSNR -0.04 dB) and 1.4x slower; full resolution is ~30x slower
STILL_SIGMA = 3.0  # flow px: neighbourhood over which a and b are compared for stillness
STILL_LOW = 1.5  # grey levels: mean difference up to which a neighbourhood is still (noise, coding) ...
STILL_HIGH = 4.5  # ... and from which it has changed
PERSON_LEVEL = 0.5  # mask value above which a pixel is the person
PERSON_MARGIN = 0.02  # the person region (where flow is allowed) reaches this share of the long side out
# Pose field (TANGO §3.3 "linearly blended 2D pose")
BONE_STEP = 0.02  # share of the long side between points added along a bone (~ half a forearm)
POSE_SPREAD = 0.5  # a keypoint's Gaussian sigma: this share of the gap to its nearest neighbour ...
POSE_SIGMA_MIN = 0.01  # ... but at least this share of the long side (~20 frame px at 1920: a finger) ...
POSE_SIGMA_MAX = 0.05  # ... and at most this (~100 frame px at 1920: a shoulder's reach)
POSE_GRID = 2  # flow px per pose-field px (the field is smooth; 4x fewer Gaussians to add)
POSE_REACH = 3.0  # sigmas: a keypoint's weight is ignored beyond (e^-4.5 ~ 1%)
POSE_FLOOR = 1e-2  # Shepard weight floor (a keypoint peaks at 1): ~3 sigmas from all keypoints -> 0
POSE_TRUST_HALF = 0.1  # summed keypoint weight at which the pose field is half trusted (~2 sigmas)
# Optical flow reliability
FB_TOLERANCE = 1.5  # flow px: forward-backward error at which the optical flow is half trusted
AGREE_PX = 2.0  # flow px: DIS may deviate this much from the pose field near keypoints ...
AGREE_SHARE = 0.3  # ... plus this share of the keypoints' displacement (pose jitter, deformation)
# Softmax splatting to time alpha
FRONT_PERSON = 6.0  # importance of the person over the background (e^6 ~ 400x)
FRONT_SPEED = 0.1  # ... plus this per flow px: faster parts (hands) pass in front of slower ones
MOVE_EPS = 1e-2  # flow px: a pixel moving less stays on its own grid point when splatted
HOLE_LEVEL = 0.05  # splat coverage below which a pixel is a pinhole to fill
SPLAT_FILL = 1.0  # flow px: Gaussian that fills pinholes of stretched splats from their neighbours
COVER_SIGMA = 2.0  # flow px: neighbourhood of the splat density that decides what a frame sees
COVER_MIN = 0.3  # density (source px per px) below which a frame does not see a pixel at time t:
COVER_FULL = 0.7  # stretched 3x+ = revealed; from this density on it sees it fully
# Blending
DISAGREE_SIGMA = 2.0  # flow px: smoothing of the disagreement of the two warped frames
DISAGREE_LOW = 6.0  # grey levels: below this the warped frames agree (noise, compression)
DISAGREE_HIGH = 30.0  # grey levels: above this they show different things
DISAGREE_GAIN = 2.0  # extra blend exponent where they disagree (0: plain (1 - alpha, alpha))
BLEND_FLOOR = 1e-4  # blend weight where neither side is reliable (keeps the division defined)
# Timing (TANGO Fig. 6: the frames around the jump)
MIN_JUMP_PX = 1.0  # frame px: keypoints moving less than this leave the blend linear
TIMING_MOVERS = 0.3  # keypoints travelling at least this share of the farthest one set the speed
MONOTONE_LIMIT = 3.0  # |(start, end)| <= 3 keeps the Hermite progress monotone in [0, 1]
# Full resolution
BAND_ROWS = 16  # flow rows per band: the warped area follows the moving parts band by band
STILL_PX = 0.02  # frame px: smaller warps leave a pixel as in the cross-fade
STILL_WEIGHT = 1e-3  # blend weights closer than this to (1 - alpha, alpha) are the cross-fade's

@dataclass(frozen=True)
class SplatSource:
    """The pixels of one frame ready to be splatted forward to any time t (flow resolution)."""

    size: tuple[int, int]  # (h, w)
    xy: np.ndarray  # (m, 2) float32 coordinates of the m pixels that move
    flow: np.ndarray  # (m, 2) float32 their flow to the other frame
    mass: np.ndarray  # (3, 4 m) float64 softmax weight exp(front), times flow x, times flow y;
    #                   repeated for the 4 bilinear corners
    still_weight: np.ndarray  # (h * w,) float64 weight of the pixels that stay (0 where moving)
    still: np.ndarray  # (h * w,) float64 1 where the pixel stays


@dataclass(frozen=True)
class JumpFlow:
    """Dense correspondence of one jump a -> b, computed once and rendered at any alpha."""

    frame_size: tuple[int, int]  # (H, W) of the frames
    factor: int  # frame px per flow px (an integer, so upsampling crops is exact)
    b_to_a: np.ndarray  # (3, 3) frame px homography b -> a (identity if none was trusted)
    homography_found: bool  # False: no background fit was trusted, identity used
    flow_ab: np.ndarray  # (h, w, 2) a -> aligned b, flow px, on a's grid
    flow_ba: np.ndarray  # (h, w, 2) aligned b -> a, flow px, on aligned b's grid
    conf_ab: np.ndarray  # (h, w) [0, 1] reliability of flow_ab
    conf_ba: np.ndarray  # (h, w) [0, 1] reliability of flow_ba
    source_a: SplatSource  # a's pixels, to splat forward by alpha * flow_ab
    source_b: SplatSource  # aligned b's pixels, to splat backward by (1 - alpha) * flow_ba
    gray_a: np.ndarray  # (h, w) float32 luma of a at flow resolution
    gray_b: np.ndarray  # (h, w) float32 luma of aligned b


@dataclass(frozen=True)
class Timing:
    """When the person gets where along the jump: progress s(alpha), a cubic Hermite curve.

    TANGO's ACInterp sees the frames before and after the jump (Fig. 6, t in (i - k, i] and
    [j, j + k)); here their poses give the speeds at which the motion leaves a and reaches
    b, in jump lengths per jump duration. (1, 1) is the linear blend s = alpha.
    """

    start: float = 1.0  # ds/dalpha at alpha = 0
    end: float = 1.0  # ds/dalpha at alpha = 1

    def at(self, alpha: float) -> float:
        """Progress s in [0, 1] at time alpha (monotone: the speeds are kept in the Fritsch-Carlson bound)."""
        t = float(alpha)
        return (t**3 - 2 * t**2 + t) * self.start + (3 * t**2 - 2 * t**3) + (t**3 - t**2) * self.end

    @staticmethod
    def from_poses(pose_a: np.ndarray, pose_b: np.ndarray, before: np.ndarray | None,
                   after: np.ndarray | None, n: int) -> Timing:
        """Speeds along the jump from the keypoint velocities at a (before -> a) and b (b -> after)."""
        if before is None or after is None:
            return Timing()
        pa, pb = _check_pose(pose_a, pose_b)
        pre, post = _check_pose(before, after)
        _check_pose(pa, pre)
        jump = pb - pa  # (K, 2)
        ok = np.isfinite(jump).all(1) & np.isfinite(pre).all(1) & np.isfinite(post).all(1)
        length2 = (jump[ok] ** 2).sum(1)
        if not ok.any() or length2.max() < MIN_JUMP_PX**2:
            return Timing()
        movers = np.flatnonzero(ok)[length2 >= (TIMING_MOVERS * np.sqrt(length2.max())) ** 2]
        speeds = [_along(step[movers], jump[movers]) for step in (pa - pre, post - pb)]  # per frame
        speeds = np.clip(speeds, 0.0, None) * (n + 1)  # per jump duration: n + 1 frame steps
        norm = np.hypot(*speeds)
        if norm > MONOTONE_LIMIT:
            speeds *= MONOTONE_LIMIT / norm
        return Timing(float(speeds[0]), float(speeds[1]))


def _along(step: np.ndarray, jump: np.ndarray) -> float:
    """Keypoint steps (M, 2) projected on their jumps (M, 2), in jump lengths (|jump|^2-weighted)."""
    return float((step * jump).sum() / (jump**2).sum())


# -- public API ---------------------------------------------------------------------------

def alphas(n: int) -> np.ndarray:
    """(n,) times k / (n + 1), k = 1..n, of the in-between frames."""
    return np.arange(1, n + 1) / (n + 1)


def crossfade(a: np.ndarray, b: np.ndarray, n: int) -> list[np.ndarray]:
    """The plain cross-fade baseline: n frames (1 - alpha) a + alpha b."""
    _check_frames(a, b)
    return [cv2.addWeighted(a, 1.0 - t, b, t, 0.0) for t in alphas(n)]


def in_between(a: np.ndarray, b: np.ndarray, n: int, pose_a: np.ndarray, pose_b: np.ndarray,
               person_a: np.ndarray, person_b: np.ndarray, *, bones: Sequence[tuple[int, int]] = (),
               pose_before: np.ndarray | None = None, pose_after: np.ndarray | None = None,
               b_to_a: np.ndarray | None = None) -> list[np.ndarray]:
    """n RGB uint8 frames at alpha = k / (n + 1) leading from frame a to frame b (TANGO §3.3).

    ``pose_*``: (K, 2) frame px of the same K keypoints (NaN rows are ignored);
    ``person_*``: (h, w) float [0, 1] person masks at any resolution of the frames' aspect;
    ``bones``: pairs of keypoint rows joined by a limb (the motion is spread along it, as
    TANGO's pose images draw limbs); ``pose_before`` / ``pose_after``: the poses one frame
    before a and one frame after b in their own footage - the motion then leaves a and
    reaches b at their speeds (see :class:`Timing`) instead of at a constant one;
    ``b_to_a``: a known background homography b -> a (default: fitted here).
    """
    jump = estimate_jump(a, b, pose_a, pose_b, person_a, person_b, bones=bones, b_to_a=b_to_a)
    timing = Timing.from_poses(pose_a, pose_b, pose_before, pose_after, n)
    return [render_in_between(jump, a, b, timing.at(t)) for t in alphas(n)]


def estimate_jump(a: np.ndarray, b: np.ndarray, pose_a: np.ndarray, pose_b: np.ndarray,
                  person_a: np.ndarray, person_b: np.ndarray, *, bones: Sequence[tuple[int, int]] = (),
                  b_to_a: np.ndarray | None = None) -> JumpFlow:
    """Background homography, person flows and their reliabilities of the jump a -> b."""
    _check_frames(a, b)
    pose_a, pose_b = along_bones(*_check_pose(pose_a, pose_b), bones, BONE_STEP * max(a.shape[:2]))
    fitted = b_to_a if b_to_a is not None else background_homography(a, b, person_a, person_b)
    homography = np.eye(3) if fitted is None else np.asarray(fitted, np.float64)
    factor = flow_factor(a.shape[:2])
    to_flow = scale_matrix(1.0 / factor)
    align = to_flow @ homography @ np.linalg.inv(to_flow)  # b -> a at flow resolution
    gray_a = _small_gray(a, factor)
    size = gray_a.shape  # (h, w)
    warp = dict(dsize=size[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gray_b = cv2.warpPerspective(_small_gray(b, factor), align, **warp)
    mask_a = _small_mask(person_a, size)
    mask_b = cv2.warpPerspective(_small_mask(person_b, size), align, **warp)
    pts_a = apply_homography(to_flow, pose_a)
    pts_b = apply_homography(to_flow @ homography, pose_b)
    flow_ab, flow_ba, conf_ab, conf_ba = _guided_flows(gray_a, gray_b, mask_a, mask_b, pts_a, pts_b)
    return JumpFlow(frame_size=a.shape[:2], factor=factor, b_to_a=homography, homography_found=fitted is not None,
                    flow_ab=flow_ab, flow_ba=flow_ba, conf_ab=conf_ab, conf_ba=conf_ba,
                    source_a=splat_source(flow_ab, _front(mask_a, flow_ab)),
                    source_b=splat_source(flow_ba, _front(mask_b, flow_ba)),
                    gray_a=gray_a.astype(np.float32), gray_b=gray_b.astype(np.float32))


def render_in_between(jump: JumpFlow, a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """The RGB uint8 frame at time ``alpha`` in (0, 1) of the jump a -> b."""
    back_a, seen_a = _splat(jump.source_a, alpha)  # (h, w, 2), (h, w) on a's grid
    back_b, seen_b = _splat(jump.source_b, 1.0 - alpha)  # on aligned b's grid
    weights = _blend_weights(jump, back_a, back_b, seen_a, seen_b, alpha)  # (h, w, 2)
    if np.array_equal(jump.b_to_a, np.eye(3)):  # still camera: the offsets are the splatted flows
        shift_a, shift_b = back_a * jump.factor, back_b * jump.factor
    else:
        shift_a, shift_b, weights = _camera_shifts(jump, back_a, back_b, weights, alpha)
    return _warp_blend(a, b, shift_a, shift_b, weights, jump.factor, alpha)


def along_bones(pose_a: np.ndarray, pose_b: np.ndarray, bones: Sequence[tuple[int, int]],
                step: float) -> tuple[np.ndarray, np.ndarray]:
    """Both poses (K, 2) with points added at most ``step`` px apart along each bone seen in both.

    Linear blending of the bone's end points moves its inner points too (TANGO §3.3).
    """
    extra_a, extra_b = [pose_a], [pose_b]
    for i, j in bones:
        ends = np.stack([pose_a[i], pose_a[j], pose_b[i], pose_b[j]])  # (4, 2)
        if not np.isfinite(ends).all():
            continue
        length = max(np.linalg.norm(ends[1] - ends[0]), np.linalg.norm(ends[3] - ends[2]))
        pieces = max(1, int(np.ceil(length / step)))  # pieces of at most ``step`` px
        inner = np.arange(1, pieces) / pieces  # (pieces - 1,) fractions along the bone
        extra_a.append(ends[0] + inner[:, None] * (ends[1] - ends[0]))
        extra_b.append(ends[2] + inner[:, None] * (ends[3] - ends[2]))
    return np.concatenate(extra_a), np.concatenate(extra_b)


def flow_factor(frame_size: tuple[int, int]) -> int:
    """Frame px per flow px: the smallest integer that brings the long side to FLOW_LONG_SIDE."""
    return max(1, int(np.ceil(max(frame_size) / FLOW_LONG_SIDE)))


# -- checks and inputs at flow resolution -------------------------------------------------

def _check_frames(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.dtype != np.uint8:
        raise AvatarError(f"transition frames must be two RGB uint8 images of one size "
                          f"(got {a.shape} {a.dtype} and {b.shape} {b.dtype})", "in_between",
                          "pass the last frame before the jump and the first frame after it")


def _check_pose(pose_a: np.ndarray, pose_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pa, pb = (np.asarray(p, np.float64).reshape(-1, 2) for p in (pose_a, pose_b))
    if pa.shape != pb.shape:
        raise AvatarError(f"the two poses have different keypoints ({pa.shape} vs {pb.shape})",
                          "in_between", "pass the same K keypoints for both frames (NaN if unseen)")
    return pa, pb


@lru_cache(maxsize=4)
def _flow_grid(size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y); cached, never modify it in place."""
    grid = np.empty((*size, 2), np.float32)
    grid[..., 0] = np.arange(size[1], dtype=np.float32)
    grid[..., 1] = np.arange(size[0], dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def _small_gray(img: np.ndarray, factor: int) -> np.ndarray:
    """uint8 (h, w) luma of ``img`` shrunk by ``factor`` (exactly: pixel centres stay aligned)."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)


def _small_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) [0, 1] person mask resized to ``size`` = (h, w)."""
    small = cv2.resize(np.asarray(mask, np.float32), size[::-1], interpolation=cv2.INTER_LINEAR)
    return np.clip(small, 0.0, 1.0)


def _person_region(mask: np.ndarray) -> np.ndarray:
    """(h, w) soft [0, 1] region where the person may move: the mask dilated and feathered."""
    radius = max(1, round(PERSON_MARGIN * max(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))  # separable: fast
    grown = cv2.dilate((mask > PERSON_LEVEL).astype(np.float32), kernel)
    return np.clip(cv2.GaussianBlur(grown, (0, 0), radius / 2), 0.0, 1.0)


def _changed(gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
    """(h, w) [0, 1]: 0 where a and aligned b look the same around a pixel (nothing to move).

    Keeps DIS noise off still parts (legs, torso) and the warped area small.
    """
    diff = np.abs(gray_a.astype(np.float32) - gray_b.astype(np.float32))
    diff = cv2.GaussianBlur(diff, (0, 0), STILL_SIGMA)
    ramp = np.clip((diff - STILL_LOW) / (STILL_HIGH - STILL_LOW), 0.0, 1.0)
    return ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep


def _length(v: np.ndarray) -> np.ndarray:
    """(h, w) length of (h, w, 2) vectors."""
    return np.hypot(v[..., 0], v[..., 1])


def _moves(shift: np.ndarray, least: float) -> np.ndarray:
    """(h, w) bool: offsets (h, w, 2) of at least ``least`` px."""
    return shift[..., 0] ** 2 + shift[..., 1] ** 2 >= least**2


def _transform(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(h, w, 2) float32 points mapped through the (3, 3) homography ``H``."""
    return apply_homography(H, points.reshape(-1, 2)).reshape(points.shape).astype(np.float32)


# -- pose field: the linearly blended 2D pose (TANGO §3.3) --------------------------------

def _keypoint_sigmas(points: np.ndarray, long_side: int) -> np.ndarray:
    """(K,) spread of each keypoint: a share of the distance to its nearest distinct neighbour.

    Finger tips get a few px, shoulders and hips a wide reach, without naming the joints.
    """
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)  # (K, K)
    gaps[gaps < 1e-6] = np.inf  # itself and duplicates (an unseen hand repeats its wrist)
    nearest = gaps.min(1) if len(points) > 1 else np.full(len(points), np.inf)
    lo, hi = POSE_SIGMA_MIN * long_side, POSE_SIGMA_MAX * long_side
    return np.clip(POSE_SPREAD * nearest, lo, hi)


def _pose_field(points: np.ndarray, moves: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint displacements spread over the frame: flow (h, w, 2) and trust (h, w) in [0, 1].

    TANGO §3.3 "linearly blended 2D pose": moving keypoint k by ``moves[k]`` puts it at
    (1 - alpha) p_a + alpha p_b at time alpha. Gaussian-weighted (Shepard) interpolation;
    far from every keypoint the flow fades to 0 and the trust to 0. NaN rows are ignored.
    """
    h, w = -(-size[0] // POSE_GRID), -(-size[1] // POSE_GRID)  # a smooth field: coarser grid
    num = np.zeros((h, w, 2), np.float32)  # sum of weight * displacement
    den = np.zeros((h, w), np.float32)  # sum of weights (each keypoint peaks at 1)
    ok = np.isfinite(points).all(1) & np.isfinite(moves).all(1)
    spots = (points[ok] + 0.5) / POSE_GRID - 0.5  # (M, 2) on the coarse grid (pixel centres)
    for (x, y), move, sigma in zip(spots, moves[ok], _keypoint_sigmas(spots, max(h, w))):
        reach = int(np.ceil(POSE_REACH * sigma))
        x0, x1 = max(0, int(x) - reach), min(w, int(x) + reach + 1)
        y0, y1 = max(0, int(y) - reach), min(h, int(y) + reach + 1)
        if x0 >= x1 or y0 >= y1:
            continue  # off the frame
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - x) / sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - y) / sigma) ** 2)
        weight = np.outer(gy, gx).astype(np.float32)  # (y1 - y0, x1 - x0)
        den[y0:y1, x0:x1] += weight
        num[y0:y1, x0:x1] += weight[..., None] * move.astype(np.float32)
    flow = cv2.resize(num / (den + POSE_FLOOR)[..., None], size[::-1], interpolation=cv2.INTER_LINEAR)
    den = cv2.resize(den, size[::-1], interpolation=cv2.INTER_LINEAR)
    return flow, den / (den + POSE_TRUST_HALF)


def _pose_guide(mask: np.ndarray, pts_from: np.ndarray, pts_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pose field (h, w, 2) and its trust (h, w), kept on the person's own pixels."""
    guide, trust = _pose_field(pts_from, pts_to - pts_from, mask.shape)
    body = np.clip(mask / PERSON_LEVEL, 0.0, 1.0)
    return guide * body[..., None], trust * body


# -- person flows -------------------------------------------------------------------------

def _guided_flows(gray_a: np.ndarray, gray_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray,
                  pts_a: np.ndarray, pts_b: np.ndarray):
    """Flows a -> b and b -> a (h, w, 2) and their reliabilities (h, w), background held at 0.

    The pose field starts DIS and replaces it where DIS fails the forward-backward check or
    contradicts nearby keypoints; only the (slightly grown) person region moves, and only
    where a and b differ (the homography already aligned the background).
    """
    changed = _changed(gray_a, gray_b)
    region_a, region_b = _person_region(mask_a) * changed, _person_region(mask_b) * changed
    guide_ab, trust_ab = _pose_guide(mask_a, pts_a, pts_b)
    guide_ba, trust_ba = _pose_guide(mask_b, pts_b, pts_a)
    dis_ab = _dis_flow(gray_a, gray_b, guide_ab)
    dis_ba = _dis_flow(gray_b, gray_a, guide_ba)
    grid = _flow_grid(gray_a.shape)
    conf_ab = _fb_confidence(dis_ab, dis_ba, grid) * _agreement(dis_ab, guide_ab, trust_ab)
    conf_ba = _fb_confidence(dis_ba, dis_ab, grid) * _agreement(dis_ba, guide_ba, trust_ba)
    flow_ab = region_a[..., None] * (conf_ab[..., None] * dis_ab + (1 - conf_ab[..., None]) * guide_ab)
    flow_ba = region_b[..., None] * (conf_ba[..., None] * dis_ba + (1 - conf_ba[..., None]) * guide_ba)
    return flow_ab, flow_ba, conf_ab, conf_ba


def _dis_flow(src: np.ndarray, dst: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """(h, w, 2) DIS optical flow src -> dst (preset medium), starting from ``guess``."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(src, dst, np.array(guess, np.float32))  # a copy: DIS writes into it


def _fb_confidence(fwd: np.ndarray, bwd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(h, w) [0, 1] forward-backward consistency: 1 where bwd(x + fwd(x)) undoes fwd(x)."""
    target = grid + fwd
    back = cv2.remap(bwd, target[..., 0], target[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = _length(fwd + back)
    h, w = fwd.shape[:2]
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    return np.exp(-np.log(2.0) * (err / FB_TOLERANCE) ** 2) * inside


def _agreement(dis: np.ndarray, guide: np.ndarray, trust: np.ndarray) -> np.ndarray:
    """(h, w) [0, 1]: 0 where DIS contradicts the keypoints' motion close to the keypoints.

    Large hand motions defeat DIS (it matches the hand to the shirt behind it); the tracked
    hand keypoints do not.
    """
    tolerance = AGREE_PX + AGREE_SHARE * _length(guide)
    off = _length(dis - guide) / tolerance
    return 1.0 - trust * (1.0 - np.exp(-(off**2)))


def _front(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(h, w) softmax-splatting importance: the person, and its faster parts, in front."""
    return FRONT_PERSON * mask + FRONT_SPEED * _length(flow)


# -- to time alpha: softmax splatting and blend weights -----------------------------------

def splat_source(flow: np.ndarray, front: np.ndarray) -> SplatSource:
    """Split a frame's pixels into moving and staying ones for :func:`_splat`."""
    h, w = flow.shape[:2]
    weight = np.exp(front - front.max()).ravel()  # (h * w,) float64, <= 1
    moving = np.flatnonzero(_moves(flow, MOVE_EPS).ravel())
    still = np.ones(h * w)
    still[moving] = 0.0
    xy = np.c_[moving % w, moving // w].astype(np.float32)
    moves = flow.reshape(-1, 2)[moving]  # (m, 2)
    mass = weight[moving] * np.stack([np.ones(len(moving)), moves[:, 0], moves[:, 1]])  # (3, m)
    return SplatSource(size=(h, w), xy=xy, flow=moves, mass=np.tile(mass, 4),
                       still_weight=weight * still, still=still)


def _splat(source: SplatSource, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Flow from time t back to the source frame (h, w, 2) and coverage (h, w) in [0, 1].

    Softmax splatting (Niklaus & Liu 2020): every source pixel moves by t * flow and is
    splatted bilinearly with weight exp(front); where several land, the front-most wins.
    Coverage 0 marks pixels at time t that the source frame does not see (disocclusions).
    """
    h, w = source.size
    pos = source.xy + np.float32(t) * source.flow  # (m, 2) where the moving pixels land
    corner = np.floor(pos)
    frac = pos - corner
    cx, cy = corner[:, 0].astype(np.int64), corner[:, 1].astype(np.int64)
    fx, fy = frac[:, 0], frac[:, 1]
    tx = np.concatenate([cx, cx + 1, cx, cx + 1])  # the 4 bilinear corners, (4 m,)
    ty = np.concatenate([cy, cy, cy + 1, cy + 1])
    shares = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    tgt = np.where(inside, ty * w + tx, h * w)  # off-frame corners go to a spare bin

    def total(weights: np.ndarray) -> np.ndarray:  # (h * w,) sums of what lands on each pixel
        return np.bincount(tgt, weights, h * w + 1)[:-1]

    sums = np.stack([total(shares * source.mass[0]) + source.still_weight,  # softmax weight
                     -t * total(shares * source.mass[1]),  # weight * back flow x
                     -t * total(shares * source.mass[2]),  # weight * back flow y
                     total(shares) + source.still], axis=-1)  # coverage
    sums = sums.reshape(h, w, 4).astype(np.float32)
    holes = sums[..., 3] < HOLE_LEVEL
    if holes.any():  # stretched areas leave pinholes between the splats: fill from around
        sums[holes] = cv2.GaussianBlur(sums, (0, 0), SPLAT_FILL)[holes]
    back = sums[..., 1:3] / np.maximum(sums[..., :1], np.finfo(np.float32).tiny)
    density = cv2.GaussianBlur(np.ascontiguousarray(sums[..., 3]), (0, 0), COVER_SIGMA)
    cover = np.clip((density - COVER_MIN) / (COVER_FULL - COVER_MIN), 0.0, 1.0)
    return back, cover


def _warp_gray(gray: np.ndarray, back: np.ndarray) -> np.ndarray:
    """(h, w) float32 ``gray`` sampled at grid + ``back`` (h, w, 2)."""
    where = _flow_grid(gray.shape) + back
    return cv2.remap(gray, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _blend_weights(jump: JumpFlow, back_a: np.ndarray, back_b: np.ndarray, seen_a: np.ndarray,
                   seen_b: np.ndarray, alpha: float) -> np.ndarray:
    """(h, w, 2) float32 blend weights of warped a and b at time alpha.

    (1 - alpha, alpha) where each side sees the pixel; where the two warped frames still
    disagree (the flow failed), the weights become (1 - alpha)^p, alpha^p with p up to
    1 + DISAGREE_GAIN: the nearer frame wins instead of a double image.
    """
    diff = np.abs(_warp_gray(jump.gray_a, back_a) - _warp_gray(jump.gray_b, back_b))
    diff = cv2.GaussianBlur(diff, (0, 0), DISAGREE_SIGMA)
    power = 1.0 + DISAGREE_GAIN * np.clip((diff - DISAGREE_LOW) / (DISAGREE_HIGH - DISAGREE_LOW), 0.0, 1.0)
    weights = np.dstack([(1.0 - alpha) ** power * seen_a, alpha**power * seen_b]) + BLEND_FLOOR
    return weights.astype(np.float32)


def _camera_shifts(jump: JumpFlow, back_a: np.ndarray, back_b: np.ndarray, weights: np.ndarray,
                   alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-px offsets (h, w, 2) into a and b of each output pixel, and its blend weights,
    when the camera moves: the homography is interpolated, so the background glides from
    a's framing to b's instead of floating (TANGO §3.3)."""
    to_flow = scale_matrix(1.0 / jump.factor)
    from_flow = np.linalg.inv(to_flow)
    align = to_flow @ jump.b_to_a @ from_flow  # aligned b -> a at flow resolution
    camera = (1.0 - alpha) * np.eye(3) + alpha * np.linalg.inv(align)  # a -> time alpha
    grid = _flow_grid(back_a.shape[:2])
    src = _transform(np.linalg.inv(camera), grid)  # output pixel -> a's grid (flow px)
    back_a, back_b, weights = (
        cv2.remap(f, src[..., 0], src[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for f in (back_a, back_b, weights))
    lattice = _transform(from_flow, grid)  # frame px of each flow pixel
    shift_a = _transform(from_flow, src + back_a) - lattice
    shift_b = _transform(from_flow @ np.linalg.inv(align), src + back_b) - lattice
    return shift_a, shift_b, weights


# -- full resolution: warp and blend where anything moves ---------------------------------

def _active_boxes(shift_a: np.ndarray, shift_b: np.ndarray, weights: np.ndarray,
                  alpha: float) -> list[tuple[slice, slice]]:
    """Flow-resolution boxes, one per band of BAND_ROWS rows, covering every pixel where the
    result differs from the cross-fade (columns with a 1 px margin)."""
    active = _moves(shift_a, STILL_PX) | _moves(shift_b, STILL_PX)
    active |= np.abs(weights[..., 0] - (1.0 - alpha) - BLEND_FLOOR) > STILL_WEIGHT
    active |= np.abs(weights[..., 1] - alpha - BLEND_FLOOR) > STILL_WEIGHT
    h, w = active.shape
    boxes = []
    for top in range(0, h, BAND_ROWS):
        band = active[top : top + BAND_ROWS]
        rows, cols = np.flatnonzero(band.any(1)), np.flatnonzero(band.any(0))
        if len(rows):
            boxes.append((slice(top + rows[0], top + rows[-1] + 1),
                          slice(max(0, cols[0] - 1), min(w, cols[-1] + 2))))
    return boxes


def _upsample(field: np.ndarray, factor: int, box: tuple[slice, slice], size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``field[box]`` to the frame pixels it covers (clipped to ``size``)."""
    up = cv2.resize(field[box], None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    rows, cols = _frame_box(box, factor, size)
    return up[: rows.stop - rows.start, : cols.stop - cols.start]


def _frame_box(box: tuple[slice, slice], factor: int, size: tuple[int, int]) -> tuple[slice, slice]:
    """Frame rows/cols covered by a flow-resolution box."""
    return tuple(slice(factor * s.start, min(n, factor * s.stop)) for s, n in zip(box, size))


def _warp_blend(a: np.ndarray, b: np.ndarray, shift_a: np.ndarray, shift_b: np.ndarray,
                weights: np.ndarray, factor: int, alpha: float) -> np.ndarray:
    """Cross-fade, then warp a and b at full resolution where anything moves and blend there.

    ``shift_*``: (h, w, 2) frame-px offsets at flow resolution; ``weights``: (h, w, 2).
    """
    out = cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0)
    size = a.shape[:2]
    for rows, cols in _active_boxes(shift_a, shift_b, weights, alpha):
        grown = slice(max(0, rows.start - 1), min(shift_a.shape[0], rows.stop + 1))  # rows to interpolate from
        box = (grown, cols)
        frame_box = _frame_box(box, factor, size)
        grid = _flow_grid(size)[frame_box]  # (H', W', 2) frame px of the box
        warped = []
        for img, shift in ((a, shift_a), (b, shift_b)):
            fixed = cv2.convertMaps(grid + _upsample(shift, factor, box, size), None, cv2.CV_16SC2)
            warped.append(cv2.remap(img, *fixed, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        up = _upsample(weights, factor, box, size)  # (H', W', 2)
        blended = cv2.blendLinear(*warped, np.ascontiguousarray(up[..., 0]), np.ascontiguousarray(up[..., 1]))
        core = _frame_box((rows, cols), factor, size)[0]  # paste only the band's own rows
        out[core, frame_box[1]] = blended[core.start - frame_box[0].start : core.stop - frame_box[0].start]
    return out
