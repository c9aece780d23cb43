"""Closed eyelids, painted over the warped eye opening during a blink.

The warp alone squeezes the eyeball's pixels into a thin band as the lid comes down: the
iris and the white still show at the peak of a blink, and a face tracker (or a viewer) reads
the eye as half open. In a real blink the lid slides over the eyeball. So, past a
threshold of closure, the upper part of the remaining opening is covered with the person's
own lid skin (its colour spread down from the band of skin above the open eye), edged by a
lash line, until at full closure the lid meets the lower lid. The painted lid spans from
where the upper lid would be with the eye open: the squeezed eyeball pixels the warp leaves
above the moving lid line are covered too.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.generators.signals import smoothstep
from avatar.motion.types import MotionFrame, action_column

PAINT_FROM = 0.3  # closure at which the lid starts to cover the opening
SKIN_BAND = (0.7, 1.4)  # lid skin sampled this far above the upper lid (open-eye heights)
LOWER_BAND = (0.4, 0.9)  # and this far below the lower lid
LASH_WIDTH = 0.12  # lash line thickness (open-eye heights)
LASH_OPACITY = 0.8
LASH_PERCENTILE = 15  # lash colour: this percentile of the brightness along the upper lid
LID_SHADE = 0.95  # lid skin brightness at the lash line relative to the skin band
EDGE_FEATHER = 0.08  # blur of the painted lid's edge (open-eye heights, at least 0.6 px)
TOP_FEATHER = (0.25, 0.1)  # the lid fades in from this far above to this far below the open lid line
OPACITY_GAIN = 3.0  # the painted lid's opacity = min(1, this * cover): no jump at PAINT_FROM
LOWER_GROW = 0.2  # at full cover the lid reaches this far below the lower lid line (heights)

EYES = (("eyeBlinkL", topo.EYE_L_UPPER, topo.EYE_L_LOWER),
        ("eyeBlinkR", topo.EYE_R_UPPER, topo.EYE_R_LOWER))


class EyelidPainter:
    """Paints closing lids into rendered frames of one photo."""

    def __init__(self, image: np.ndarray, face: FaceModel):
        self.face = face
        src = face.source_points
        self.open_height = []  # (per eye) open-eye height in source pixels
        self.lash = []  # (per eye) (3,) lash colour
        for _, upper, lower in EYES:
            up, lo = src[topo.as_index(upper)], src[topo.as_index(lower)]
            height = max(float(np.linalg.norm(lo - up, axis=1).max()), 2.0)
            self.open_height.append(height)
            self.lash.append(self._lash_colour(image, up, height))

    @staticmethod
    def _lash_colour(image: np.ndarray, upper: np.ndarray, height: float) -> np.ndarray:
        """The dark of the lashes along the photo's upper lid."""
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.polylines(mask, [np.round(upper).astype(np.int32)], False, 1,
                      thickness=max(1, int(round(0.3 * height))))
        px = image[mask > 0].astype(np.float32)
        if len(px) == 0:
            return np.zeros(3, np.float32)
        lum = px.mean(1)
        return px[lum <= np.percentile(lum, LASH_PERCENTILE)].mean(0)

    def paint(self, out: np.ndarray, face_pts: np.ndarray, frame: MotionFrame) -> None:
        """Cover the closing eyes of ``out`` (H, W, 3) in place."""
        covers = [float(smoothstep(frame.action(name), PAINT_FROM, 1.0)) for name, _, _ in EYES]
        if max(covers) <= 0.0:
            return
        scale = self.face.head_transform(frame).scale / self.face.frame.scale
        opened = self._open_eyes(frame)
        for (name, upper, lower), cover, height, lash in zip(EYES, covers, self.open_height, self.lash):
            if cover <= 0.0:
                continue
            up = face_pts[topo.as_index(upper)].astype(np.float64)  # (9, 2) corner..corner
            lo = face_pts[topo.as_index(lower)].astype(np.float64)
            up_open = opened[topo.as_index(upper)].astype(np.float64)
            self._paint_eye(out, up_open, up, lo, cover, height * scale, lash)

    def _open_eyes(self, frame: MotionFrame) -> np.ndarray:
        """(478, 2) target landmarks of this frame with both eyes open."""
        actions = frame.actions.copy()
        for name, _, _ in EYES:
            actions[action_column(name)] = 0.0
        return self.face.project(MotionFrame(frame.rotation, frame.translation, frame.scale, actions, frame.gaze))

    def _paint_eye(self, out, up_open, up, lo, cover: float, height: float, lash: np.ndarray) -> None:
        """Paint one eye's lid. Curves are (9, 2) corner to corner; ``height`` in pixels."""
        h, w = out.shape[:2]
        pad = int(np.ceil(0.5 * height)) + 3
        x0 = max(int(np.floor(min(up[:, 0].min(), lo[:, 0].min()))) - pad, 0)
        x1 = min(int(np.ceil(max(up[:, 0].max(), lo[:, 0].max()))) + pad, w)
        y0 = max(int(np.floor(up_open[:, 1].min() - SKIN_BAND[1] * height)) - pad, 0)
        y1 = min(int(np.ceil(lo[:, 1].max() + LOWER_BAND[1] * height)) + pad, h)
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        # Per column: the lid lines as heights, so the lid's edge is a smooth curve (the
        # upper and lower landmarks do not share x positions).
        xs = np.arange(x0, x1, dtype=np.float64)
        a, b = sorted((float(up[0, 0]), float(up[-1, 0])))
        t = np.clip((xs - a) / max(b - a, 1.0), 0.0, 1.0)  # (w,) across the eye
        top = _curve(up_open, xs) - y0  # (w,) row of the open upper lid
        upper, lower = _curve(up, xs) - y0, _curve(lo, xs) - y0  # (w,) this frame's lid rows
        edge = upper + cover * (lower - upper)
        edge += cover * LOWER_GROW * height * np.sin(np.pi * t)
        inside = np.clip(np.minimum(xs - a, b - xs) + 0.5, 0.0, 1.0)  # (w,) between corners
        rows = np.arange(y1 - y0, dtype=np.float64)[:, None]  # (h, 1)
        patch = out[y0:y1, x0:x1].astype(np.float32)
        # Skin colour spread in from bands above the lashes and below the lower lid
        # (normalised convolution): a lid over a deep-set eye is lit like the skin around
        # the socket, not like the shadow under the brow.
        above = top[None] - rows  # (h, w) pixels above the open lid line
        below = rows - lower[None]  # (h, w) pixels below the lower lid line
        band = ((above > SKIN_BAND[0] * height) & (above < SKIN_BAND[1] * height)) \
            | ((below > LOWER_BAND[0] * height) & (below < LOWER_BAND[1] * height))
        band = band.astype(np.float32)
        band *= inside[None].astype(np.float32)
        sigma = max(0.5 * height, 1.0)
        weight = cv2.GaussianBlur(band, (0, 0), sigma)[..., None] + 1e-6
        skin = cv2.GaussianBlur(patch * band[..., None], (0, 0), sigma) / weight
        # The lid darkens a little toward its edge (it curves away from the light).
        depth = np.clip(-above / max(height, 1.0), 0, 1)[..., None]
        skin *= 1.0 - (1.0 - LID_SHADE) * depth
        # The lid: fading in from a little above the open lid line (hiding the squeezed
        # lashes and eye corners there) down to its edge.
        fade = np.clip((TOP_FEATHER[0] * height - above) / (sum(TOP_FEATHER) * height), 0, 1)
        lid = fade * np.clip(edge[None] - rows + 0.5, 0, 1) * inside[None]
        feather = max(EDGE_FEATHER * height, 0.6)
        lid = cv2.GaussianBlur(lid.astype(np.float32), (0, 0), feather)[..., None]
        patch += min(1.0, OPACITY_GAIN * cover) * lid * (skin - patch)
        # Lash line along the lid's edge, thinning toward the corners.
        thick = max(LASH_WIDTH * height, 1.0) * (0.4 + 0.6 * np.sin(np.pi * t))
        lashes = np.clip(1.0 - np.abs(rows - edge[None]) / thick[None], 0, 1) * inside[None]
        lashes = cv2.GaussianBlur(lashes.astype(np.float32), (0, 0), feather)[..., None]
        patch += (LASH_OPACITY * cover) * lashes * (lash - patch)
        out[y0:y1, x0:x1] = np.clip(patch, 0, 255).astype(np.uint8)


def _curve(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(W,) heights of a lid line (K, 2) at columns ``xs``."""
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])
