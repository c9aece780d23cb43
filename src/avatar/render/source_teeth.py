"""The person's own upper teeth, cut once from a photo whose mouth is open.

Before the photo's mouth is sealed (avatar.render.closed_mouth), the teeth seen in the upper
part of the opening are resampled onto a grid on the canonical face's teeth plane (canonical
x, y at the inner upper lip's depth; one cell per source pixel) with a soft alpha. Sealing
moves the upper lip down by half the gap, so each grid column is shifted by as much: the
teeth hang from the sealed lip as they hung from the open one. The upper teeth are on the
skull, so the patch follows the head pose only, never jawOpen: per frame one affine map
takes the grid into the image (avatar.render.mouth.MouthPainter paints it in place of its
synthesised upper row).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import median_filter

from avatar.face import topology as topo
from avatar.face.geometry import HeadFrame
from avatar.face.model import FaceModel
from avatar.generators.signals import smoothstep

# A pixel is teeth when it is brighter than the lips and has less of their redness; each
# is a ramp (not teeth -> teeth) in units of the lips' median luminance and redness. Lips
# hold 0.9-1.0 of their own luminance and 0.8-1.2 of their redness; teeth 1.0-1.5 and
# 0.2-0.8, a shadowed or bluish-lit row (a news studio) at the low end of both.
TEETH_LUM = (0.85, 1.05)
TEETH_REDNESS = (0.95, 0.75)
TEETH_SCORE = 0.5  # pixels at least this teeth-like make up the row
# The lip's inner edge pixels are half lip, and toward the corners the lip's shadow is
# wider: a column's teeth must begin within this many face widths below the tracked edge, or
# pixels (a small face's edge is still a pixel or two of mix), or share of the column's
# opening, or the column shows none (what begins further down is the lower row).
START_TOLERANCE, START_TOLERANCE_PX, START_SHARE = 0.012, 2.0, 0.35
UPPER_SHARE = 0.7  # below this share of the opening's height teeth are the lower jaw's
MAX_LENGTH = 0.07  # face widths: the longest visible upper incisor
ROOT_EXTEND = 0.03  # face widths the texture continues up under the lip, for a lip that rises
CONTINUE_INSET = 1  # rows below a column's first teeth row the continued colour is taken from
RUN_SMOOTH = 3  # columns: median of the row's biting edge (a dark seam column is not a gap)
MIN_RUN = 0.006  # face widths: shorter column runs are specks, not teeth
MIN_SPAN = 0.3  # share of the opening's width: a narrower row is left to the painted teeth
SIDE_FADE = 0.06  # face widths over which the row fades out toward each mouth corner
ALPHA_SOFTEN = 0.6  # px of blur on the alpha: the row's outline is not a cut edge
GRID_PAD = 2  # cells of zero alpha around the patch, so resampling fades out at its border
MIN_FACING = 0.5  # a head turned further (cosine to the camera) shows no row to cut out


@dataclass
class SourceTeeth:
    """Upper teeth on the canonical teeth plane: ``rgba`` cell (col, row) sits at canonical
    (x, y) = ``grid`` @ (col, row, 1), z = ``depth``."""

    rgba: np.ndarray  # (h, w, 4) float32: colour 0-255 and alpha 0-1
    grid: np.ndarray  # (2, 3) grid cell -> canonical x, y
    depth: float  # canonical z of the plane
    colour: np.ndarray  # (3,) float32 mean colour of the teeth, as the photo shows them

    def warp_into(self, head: HeadFrame, shape: tuple[int, int], origin: np.ndarray) -> np.ndarray:
        """(h, w, 4) the patch as seen in head pose ``head``, in the image region of ``shape``
        whose top-left pixel is ``origin`` (x, y)."""
        to_image = plane_to_image(head, self.depth) @ np.vstack([self.grid, [0.0, 0.0, 1.0]])
        to_image[:, 2] -= origin
        return cv2.warpAffine(self.rgba, to_image, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def plane_to_image(head: HeadFrame, depth: float) -> np.ndarray:
    """(2, 3) affine: canonical (x, y) at canonical z = ``depth`` -> image pixels."""
    A = head.scale * head.rotation[:2]  # (2, 3)
    return np.column_stack([A[:, :2], A[:, 2] * depth + head.origin[:2]])


def lum_and_redness(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel luminance and redness (red over the other two, per unit of luminance)."""
    rgb = rgb.astype(np.float32)
    lum = rgb.mean(-1)
    return lum, (rgb[..., 0] - 0.5 * (rgb[..., 1] + rgb[..., 2])) / np.maximum(lum, 1.0)


def extract_teeth(image: np.ndarray, face: FaceModel) -> SourceTeeth | None:
    """The upper teeth ``image`` shows between the lips of ``face`` (its tracked, open
    ``source_points``; ``neutral`` is sealed), or None if it shows none."""
    src = face.source_points
    up, lo = topo.as_index(topo.LIPS_INNER_UPPER), topo.as_index(topo.LIPS_INNER_LOWER)
    lip_lum, lip_red = _lip_colour(image, src)
    if lip_lum <= 0 or lip_red <= 0:  # no lips to compare with (grey photo): no teeth found
        return None
    if face.frame.rotation[2, 2] < MIN_FACING:
        return None
    depth = float(face.neutral[up, 2].mean())
    to_image = plane_to_image(face.frame, depth)
    to_plane = np.linalg.inv(np.vstack([to_image, [0.0, 0.0, 1.0]]))[:2]

    def uv(p: np.ndarray) -> np.ndarray:  # image pixels (N, 2) -> the plane's (x, y)
        return p @ to_plane[:, :2].T + to_plane[:, 2]

    up_uv, lo_uv = uv(src[up]), uv(src[lo])
    # Sealing moved the upper lip down (canonical y) by ``drop`` at each of its landmarks.
    sealed_uv = uv(face.frame.to_image(face.neutral[up])[:, :2])
    order = np.argsort(up_uv[:, 0])
    u_up, v_up, drop = up_uv[order, 0], up_uv[order, 1], (sealed_uv[:, 1] - up_uv[:, 1])[order]
    lo_order = np.argsort(lo_uv[:, 0])
    u_lo, v_lo = lo_uv[lo_order, 0], lo_uv[lo_order, 1]

    step = 1.0 / face.frame.scale  # one cell per source pixel
    u0, u1 = min(u_up[0], u_lo[0]), max(u_up[-1], u_lo[-1])
    v0 = float((v_up + drop).min()) - ROOT_EXTEND - GRID_PAD * step
    v1 = float((v_up + drop).max()) + MAX_LENGTH + GRID_PAD * step
    u0 -= GRID_PAD * step
    w, h = int(np.ceil((u1 - u0) / step)) + GRID_PAD + 1, int(np.ceil((v1 - v0) / step)) + 1
    u = u0 + step * np.arange(w)
    shift = np.interp(u, u_up, drop)  # (w,) per column
    top = (np.interp(u, u_up, v_up) + shift - v0) / step  # (w,) sealed lip edge, in rows
    bottom = (np.interp(u, u_lo, v_lo) + shift - v0) / step  # (w,) lower lip edge, in rows
    inside = (u > u0 + GRID_PAD * step) & (u < u1)
    # Sample the photo: cell (c, r) shows the source at canonical (u, v - shift(u)).
    v = v0 + step * np.arange(h)
    U, V = np.meshgrid(u, v)
    V = V - shift[None, :]
    maps = U[..., None] * to_image[:, 0] + V[..., None] * to_image[:, 1] + to_image[:, 2]
    (x0, y0), (x1, y1) = np.floor(maps.min((0, 1))).astype(int) - 1, np.ceil(maps.max((0, 1))).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, image.shape[1]), min(y1, image.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:  # the mouth is outside the photo
        return None
    maps = (maps - [x0, y0]).astype(np.float32)
    rgb = cv2.remap(image[y0:y1, x0:x1].astype(np.float32), maps[..., 0], maps[..., 1],
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lum, red = lum_and_redness(rgb)
    score = smoothstep(lum / lip_lum, *TEETH_LUM) * smoothstep(red / lip_red, *TEETH_REDNESS)
    start, end = _column_runs(score >= TEETH_SCORE, top, bottom, inside, face.frame.scale)
    if (end > start).sum() * step < MIN_SPAN * (u1 - u0):
        return None
    rows = np.arange(h)[:, None]
    seen = (rows >= start[None, :]) & (rows < end[None, :])  # (h, w) the teeth the photo shows
    return SourceTeeth(_with_alpha(rgb, start, end, face.frame.scale),
                       np.array([[step, 0.0, u0], [0.0, step, v0]]), depth,
                       rgb[seen].mean(0).astype(np.float32))


def _lip_colour(image: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """Median luminance and redness of the lips (between the outer and inner lip rings)."""
    lips = np.zeros(image.shape[:2], np.uint8)
    outer = topo.LIPS_OUTER_UPPER + topo.LIPS_OUTER_LOWER[::-1]
    cv2.fillPoly(lips, [np.round(points[topo.as_index(outer)]).astype(np.int32)], 1)
    cv2.fillPoly(lips, [np.round(points[topo.as_index(topo.LIPS_INNER_RING)]).astype(np.int32)], 0)
    if not lips.any():
        return 0.0, 0.0
    x, y, bw, bh = cv2.boundingRect(lips)
    lum, red = lum_and_redness(image[y: y + bh, x: x + bw])
    keep = lips[y: y + bh, x: x + bw] > 0
    return float(np.median(lum[keep])), float(np.median(red[keep]))


def _column_runs(teeth: np.ndarray, top: np.ndarray, bottom: np.ndarray, inside: np.ndarray,
                 scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(w,) first row and end row (exclusive) of the teeth hanging from the upper lip in
    each column (equal: none): a run of ``teeth`` cells (h, w) that starts just below
    ``top`` and stops before the lower jaw's share of the opening (``bottom``: lower lip)."""
    h, w = teeth.shape
    start, end = np.zeros(w), np.zeros(w)
    for c in np.flatnonzero(inside & (bottom > top)):
        tolerance = max(START_TOLERANCE * scale, START_TOLERANCE_PX, START_SHARE * (bottom[c] - top[c]))
        limit = min(top[c] + UPPER_SHARE * (bottom[c] - top[c]), top[c] + MAX_LENGTH * scale, h - 1)
        rows = np.arange(int(np.ceil(top[c])), int(np.floor(limit)) + 1)
        if len(rows) == 0:
            continue
        col = teeth[rows, c]
        first = int(np.argmax(col))
        if not col[first] or rows[first] - top[c] > tolerance:
            continue
        run = col[first:]
        start[c] = rows[first]
        end[c] = rows[first] + (int(np.argmin(run)) if not run.all() else len(run))
    found = end > start
    start[~found] = np.ceil(top[~found])
    length = median_filter(end - start, RUN_SMOOTH, mode="nearest")
    length[length < MIN_RUN * scale] = 0
    # A dark seam between two teeth, or a shadowed tooth, is no gap in the row: columns
    # between teeth columns take their neighbours' length (and keep their own colour).
    cols = np.flatnonzero(length > 0)
    if len(cols):
        span = np.arange(cols[0], cols[-1] + 1)
        length[span] = np.interp(span, cols, length[cols])
    return start, start + length


def _with_alpha(rgb: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float) -> np.ndarray:
    """(h, w, 4): colour with each column's first tooth row continued up under the lip, and
    a soft alpha over the column from the grid's top down to its biting edge ``end``."""
    h, w = rgb.shape[:2]
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.flatnonzero(end > start)
    if len(cols) == 0:
        return np.dstack([rgb, np.zeros((h, w), np.float32)]).astype(np.float32)
    # The row darkens into the mouth's corners (the side teeth sit deeper, in shadow).
    c = np.arange(w)
    side = smoothstep(np.minimum(c - cols[0], cols[-1] - c) + 1.0, 0.0, SIDE_FADE * scale)
    alpha = np.clip(end[None, :] - rows, 0, 1) * side[None, :]
    alpha[:GRID_PAD] = 0
    alpha[-GRID_PAD:] = 0
    # Above the first tooth row the photo shows lip (and that row half of it): continue the
    # teeth up from the row below it instead.
    first = np.clip(np.minimum(start + CONTINUE_INSET, end - 1).astype(int), 0, h - 1)  # (w,)
    above = rows < first[None, :]
    out = rgb.copy()
    out[above] = np.broadcast_to(rgb[first, np.arange(w)][None], (h, w, 3))[above]
    alpha = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), ALPHA_SOFTEN)
    return np.dstack([out, alpha]).astype(np.float32)
