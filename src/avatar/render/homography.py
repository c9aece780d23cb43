"""Background offset between two frames of one video (TANGO §3.3, "homography offset").

Where the retrieved path jumps, the camera of frame ``b`` may sit slightly differently
from frame ``a`` (zoom, pan, hand-held drift). TANGO masks the person out, detects SIFT
keypoints, matches them with FLANN and fits a homography with RANSAC; the per-pixel
offset (dx, dy) of that homography is the "background flow" that keeps the background
still in the generated in-between frames. Matching runs on a downscaled copy for speed;
the matrix is rescaled to full-resolution pixels. A fit that does not explain the
background better than "nothing moved" (few keypoints on a plain wall, a static overlay)
is replaced by the identity, so a still camera is not given a spurious drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatar.errors import AvatarError

WORK_LONG_SIDE = 320  # px: matching resolution (SIFT doubles it internally); ~20 ms per image
MAX_FEATURES = 500  # strongest SIFT keypoints kept per image (speed; plenty for 8 dof)
LOWE_RATIO = 0.75  # Lowe's ratio test: best match clearly better than the second best
FLANN_INDEX_KDTREE = 1  # FLANN algorithm id of the randomised kd-tree forest
FLANN_TREES = 4  # kd-trees in the forest
FLANN_CHECKS = 32  # leaves visited per query (speed / recall trade-off)
RANSAC_REPROJ_PX = 2.0  # inlier tolerance at the matching resolution
MIN_INLIERS = 20  # fewer RANSAC inliers than this: the fit is not trusted (caller uses identity)
PERSON_THRESHOLD = 0.5  # mask value above which a pixel belongs to the person
PERSON_MARGIN = 0.03  # dilate the person by this share of the long side (hair, shadow, blur)


@dataclass(frozen=True)
class BackgroundMatch:
    """A background homography fit: ``matrix`` maps b's pixels onto a's (None if untrusted)."""

    matrix: np.ndarray | None  # (3, 3) full-resolution px, b -> a; None: too few inliers
    matches: int  # matches that passed the ratio test
    inliers: int  # RANSAC inliers among them
    static: bool = False  # the fit aligned the background no better than identity: identity kept


def scale_matrix(scale: float) -> np.ndarray:
    """(3, 3) map from full-resolution px to px of a copy resized by ``scale`` (pixel centres)."""
    shift = 0.5 * scale - 0.5  # cv2.resize aligns pixel centres, not corners
    return np.array([[scale, 0.0, shift], [0.0, scale, shift], [0.0, 0.0, 1.0]])


def _check_pair(img_a: np.ndarray, img_b: np.ndarray) -> None:
    if img_a.shape != img_b.shape or img_a.ndim != 3:
        raise AvatarError(f"frames differ in size or are not RGB ({img_a.shape} vs {img_b.shape})",
                          "background homography", "pass two RGB frames of the same video")


def _scale_for(shape: tuple[int, ...]) -> float:
    """Downscale factor (<= 1) that brings the long side to WORK_LONG_SIDE."""
    return min(1.0, WORK_LONG_SIDE / max(shape[:2]))


def _background_mask(person: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """uint8 (h, w) 255 on the background at ``size`` = (h, w): the dilated person removed."""
    if person is None:
        return None
    h, w = size
    small = cv2.resize(np.asarray(person, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    fg = (small > PERSON_THRESHOLD).astype(np.uint8)
    radius = max(1, round(PERSON_MARGIN * max(h, w)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.where(cv2.dilate(fg, kernel) > 0, 0, 255).astype(np.uint8)


def _features(gray: np.ndarray, mask: np.ndarray | None, sift: cv2.SIFT):
    """SIFT keypoints (N, 2) px and descriptors (N, 128) float32 on the background."""
    keypoints, desc = sift.detectAndCompute(gray, mask)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    return points, desc


def _ratio_matches(desc_b: np.ndarray, desc_a: np.ndarray) -> list[tuple[int, int]]:
    """(index in b, index in a) pairs passing Lowe's ratio test, via FLANN kd-trees."""
    flann = cv2.FlannBasedMatcher({"algorithm": FLANN_INDEX_KDTREE, "trees": FLANN_TREES},
                                  {"checks": FLANN_CHECKS})
    pairs = flann.knnMatch(desc_b, desc_a, k=2)
    return [(m.queryIdx, m.trainIdx) for m, *rest in pairs
            if rest and m.distance < LOWE_RATIO * rest[0].distance]


def _beats_identity(H: np.ndarray, grays: list[np.ndarray], backgrounds: list[np.ndarray | None]) -> bool:
    """True if warping b by ``H`` matches a's background better than leaving b as it is.

    Guards against a fit to few, badly spread keypoints (plain walls, curtains) adding a
    drift that a static camera does not have.
    """
    gray_a, gray_b = (g.astype(np.float32) for g in grays)
    h, w = gray_a.shape
    ones = np.ones((h, w), np.uint8)
    both = ones.copy() if backgrounds[0] is None else (backgrounds[0] > 0).astype(np.uint8)
    if backgrounds[1] is not None:
        both &= (backgrounds[1] > 0).astype(np.uint8)
    covered = cv2.warpPerspective(ones, H, (w, h), flags=cv2.INTER_NEAREST)  # b's footprint in a
    sel = (both & covered) > 0
    if not sel.any():
        return False
    moved = np.abs(gray_a - cv2.warpPerspective(gray_b, H, (w, h)))[sel].mean()
    still = np.abs(gray_a - gray_b)[sel].mean()
    return bool(moved < still)


def match_background(img_a: np.ndarray, img_b: np.ndarray, person_a: np.ndarray | None = None,
                     person_b: np.ndarray | None = None) -> BackgroundMatch:
    """Fit the homography taking b's background onto a's (TANGO §3.3), with match counts.

    ``person_*``: (h, w) float [0, 1] person masks at any resolution (resized here); the
    person is masked out so only the background votes.
    """
    _check_pair(img_a, img_b)
    scale = _scale_for(img_a.shape)
    grays = [cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), None, fx=scale, fy=scale,
                        interpolation=cv2.INTER_AREA) for img in (img_a, img_b)]  # exactly x scale
    size = grays[0].shape  # (h, w)
    sift = cv2.SIFT_create(nfeatures=MAX_FEATURES)
    backgrounds = [_background_mask(person, size) for person in (person_a, person_b)]
    feats = [_features(g, m, sift) for g, m in zip(grays, backgrounds)]
    (pts_a, desc_a), (pts_b, desc_b) = feats
    if desc_a is None or desc_b is None or len(desc_a) < 2 or len(desc_b) < 2:
        return BackgroundMatch(None, 0, 0)
    pairs = _ratio_matches(desc_b, desc_a)
    if len(pairs) < MIN_INLIERS:
        return BackgroundMatch(None, len(pairs), 0)
    idx_b, idx_a = np.array(pairs).T
    H, inlier = cv2.findHomography(pts_b[idx_b], pts_a[idx_a], cv2.RANSAC, RANSAC_REPROJ_PX)
    inliers = int(inlier.sum()) if inlier is not None else 0
    if H is None or inliers < MIN_INLIERS:
        return BackgroundMatch(None, len(pairs), inliers)
    if not _beats_identity(H, grays, backgrounds):
        return BackgroundMatch(np.eye(3), len(pairs), inliers, static=True)
    to_work = scale_matrix(scale)
    full = np.linalg.inv(to_work) @ H @ to_work
    return BackgroundMatch(full / full[2, 2], len(pairs), inliers)


def background_homography(img_a: np.ndarray, img_b: np.ndarray, person_a: np.ndarray | None = None,
                          person_b: np.ndarray | None = None) -> np.ndarray | None:
    """(3, 3) homography mapping b's background pixels onto a's, or None if too few inliers."""
    return match_background(img_a, img_b, person_a, person_b).matrix


def apply_homography(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) px points through the (3, 3) homography ``H``; NaN points stay NaN."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    mapped = np.c_[pts, np.ones(len(pts))] @ np.asarray(H, np.float64).T  # (N, 3)
    return mapped[:, :2] / mapped[:, 2:3]


def homography_flow(H: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) float32 offset (dx, dy) = H(p) - p of every pixel p; ``size`` = (h, w)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    Hm = np.asarray(H, np.float64)
    den = Hm[2, 0] * xs + Hm[2, 1] * ys + Hm[2, 2]
    dx = (Hm[0, 0] * xs + Hm[0, 1] * ys + Hm[0, 2]) / den - xs
    dy = (Hm[1, 0] * xs + Hm[1, 1] * ys + Hm[1, 2]) / den - ys
    return np.stack([dx, dy], axis=-1).astype(np.float32)
