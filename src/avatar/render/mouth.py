"""A synthesised mouth interior, painted inside the target inner-lip contour.

Dark cavity shaded by the opening, upper teeth fixed to the skull just below the resting
lip line, lower teeth carried by the jaw, and a tongue low in the mouth. Colours are taken
from the photo (lips, skin brightness) so the interior matches its lighting. Where the photo
showed its own upper teeth (a SealedFace from avatar.render.closed_mouth), those are painted,
in place on the skull, over the synthesised upper row, and the synthesised teeth take their
colour.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.generators.signals import smoothstep
from avatar.motion.types import MotionFrame, action_column
from avatar.render.closed_mouth import SealedFace

UPPER_TEETH_SHOW = 0.014  # face widths the upper incisors reach below the resting lip line
LOWER_TEETH_SHOW = 0.012  # how far the lower incisors rise above the jaw-carried lip line
TEETH_DEPTH = 0.06  # visible tooth height; the rest hides under the lips
TEETH_SPAN = 0.78  # fraction of the mouth width the front teeth cover
TEETH_COLOUR = np.array([232, 226, 212], np.float32)
CAVITY_DARKEN = 0.45  # cavity colour = lip colour filtered by itself * this (a dark red, never black)
TONGUE_LIGHTEN = 0.85  # tongue colour = lip colour * this
MIN_OPENING_PX = 0.6  # below this the lips touch: nothing to paint but the seam
# Face widths of mid-lip opening over which the interior fades in: lips that just part show
# a sliver, not a full-width dark strip (the 1-px grown outline alone reads as an open mouth).
OPENING_FADE = 0.02
SEAM_WIDTH = 0.012  # face widths: the shadow line where closed lips meet
LIP_EDGE_WIDTH = 0.012  # face widths: the shadow along the lips' inner edge when they part
SEAM_DARKEN = 0.45  # seam colour = lip colour * this
SEAM_OPACITY = 0.75
LIP_EDGE_OPACITY = 0.6
EDGE_GROW_PX = 2  # outline width added to the interior polygon (grows it by ~1 px)
SUPERSAMPLE_SHIFT = 3  # polygon vertices at 1/8 px for anti-aliased edges


INPAINT_RADIUS = 3  # px
TOOTH_WIDTH = 0.05  # face widths per front tooth
TOOTH_GAP_SHADE = 0.78  # brightness at the seam between two teeth
LOWER_TEETH_SPAN = 0.6  # the lower row shows less of its width
DEPTH_SHADE = 0.65  # cavity brightness deep inside vs. at the lips' edge
DEPTH_FALLOFF = 0.04  # face widths from the lips' edge to "deep inside"
SOFTEN = 0.005  # face widths of blur on the painted interior (it is seen out of focus)
TEETH_WARMTH = 0.2  # teeth colour leans this much toward the skin's hue (warm ambient light)
LIP_OCCLUSION = (0.8, 0.012)  # brightness at the lips' edge, face widths to full light:
# the lips shade whatever is just inside them, teeth included, which gives the mouth depth
SIDE_SHADE = (0.75, 0.35)  # teeth darken this much toward the mouth corners, to at least this
SMOOTH_RING_PASSES = 2  # corner cutting of the inner-lip polygon: rounded, not octagonal
ROOT_SHADE = 0.85  # brightness toward the gum (the biting edge is brightest)
# The photo's own teeth are lit as the painted ones are by the opening: this much at least.
OWN_TEETH_LIT = 0.8
OWN_TEETH_SHADE = 0.85  # mean of the painted teeth's shading, undone from the photo's teeth colour


def inpaint_mouth(image: np.ndarray, face: FaceModel) -> np.ndarray:
    """The photo with its own mouth opening (teeth, cavity) filled from the lips around it.

    The neutral face has closed lips; where a smiling photo shows teeth, the squeezed
    opening would otherwise leave a bright seam between the lips.
    """
    ring = face.source_points[topo.as_index(topo.LIPS_INNER_RING)]
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(ring).astype(np.int32)], 255)
    if not mask.any():
        return image
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    x, y, w, h = cv2.boundingRect(mask)
    pad = 2 * INPAINT_RADIUS + 2
    x0, y0 = max(x - pad, 0), max(y - pad, 0)
    x1, y1 = min(x + w + pad, image.shape[1]), min(y + h + pad, image.shape[0])
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(image[y0:y1, x0:x1], mask[y0:y1, x0:x1], INPAINT_RADIUS,
                                    cv2.INPAINT_TELEA)
    return out


class MouthInterior(Protocol):
    """A real mouth interior to paint instead of the synthesised one (avatar.render.mouth_bank)."""

    def warp_into(self, shape: tuple[int, int], ring: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 interior whose inner-lip ring lands on ``ring`` (K, 2) px."""
        ...


class MouthPainter:
    def __init__(self, image: np.ndarray, face: FaceModel):
        self.face = face
        # The person's own upper teeth, if the photo showed them: painted over the synthesised
        # upper row, which then shows only where the photo showed none (toward the corners).
        self.source_teeth = face.teeth if isinstance(face, SealedFace) else None
        lips = face.source_points[topo.as_index(topo.LIPS_OUTER_UPPER + topo.LIPS_OUTER_LOWER)]
        lip_mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(lip_mask, [np.round(lips[topo.LIPS_OUTER_UPPER.__len__():]).astype(np.int32)], 1)
        lip_colour = np.median(image[lip_mask > 0], axis=0) if lip_mask.any() else np.array([150, 80, 80])
        cheek = face.source_points[[topo.CHEEK_L, topo.CHEEK_R, topo.NOSE_TIP]].mean(0)
        y, x = int(np.clip(cheek[1], 0, image.shape[0] - 1)), int(np.clip(cheek[0], 0, image.shape[1] - 1))
        skin = image[max(0, y - 3): y + 4, max(0, x - 3): x + 4].reshape(-1, 3).mean(0)
        brightness = np.clip(skin.mean() / 170.0, 0.45, 1.1)  # teeth as lit as the skin
        # Light inside the mouth has bounced off red tissue more than once: the cavity is the
        # lip colour filtered by itself (more saturated), never a neutral grey or black.
        lip = np.asarray(lip_colour, np.float32)
        self.cavity = lip * (lip / max(float(lip.max()), 1.0)) * CAVITY_DARKEN
        self.tongue = lip * TONGUE_LIGHTEN
        warm = skin / max(float(skin.mean()), 1.0) * float(TEETH_COLOUR.mean())
        self.teeth = ((1 - TEETH_WARMTH) * TEETH_COLOUR + TEETH_WARMTH * warm) * brightness
        if self.source_teeth is not None:  # the painted rows take the person's teeth colour
            self.teeth = np.minimum(self.source_teeth.colour / np.float32(OWN_TEETH_SHADE), 255)
        self.jaw = face.basis[action_column("jawOpen")]

    def _teeth_lines(self, frame: MotionFrame):
        """Image-space edges of the upper and lower incisors (each (11, 2))."""
        head = self.face.head_transform(frame)
        up = self.face.neutral[topo.as_index(topo.LIPS_INNER_UPPER)].copy()
        lo = self.face.neutral[topo.as_index(topo.LIPS_INNER_LOWER)]
        lo = lo + frame.action("jawOpen") * self.jaw[topo.as_index(topo.LIPS_INNER_LOWER)]
        up[:, 1] += UPPER_TEETH_SHOW
        lo = lo.copy()
        lo[:, 1] -= LOWER_TEETH_SHOW
        return head.to_image(up)[:, :2], head.to_image(lo)[:, :2], head.scale

    def paint(self, out: np.ndarray, face_pts: np.ndarray, frame: MotionFrame,
              interior: MouthInterior | None = None) -> None:
        """Paint the interior into ``out`` (H, W, 3) in place: ``interior`` if given, else
        the synthesised cavity and teeth."""
        self._seam(out, face_pts)
        # The warp moves the lips' inner edge piecewise-linearly between landmarks, so the
        # interior is cut by the same polygon, grown by a pixel to cover the stretched seam
        # pixels along it; a painted interior gets its corners rounded (an octagonal mouth
        # reads as drawn), a real one keeps the polygon its pixels were mapped onto.
        ring = face_pts[topo.as_index(topo.LIPS_INNER_RING)]
        if interior is None:
            ring = _round_corners(ring, SMOOTH_RING_PASSES)
        up, lo = face_pts[topo.UPPER_LIP_BOTTOM], face_pts[topo.LOWER_LIP_TOP]
        opening = float(np.linalg.norm(lo - up))
        if opening < MIN_OPENING_PX:
            return
        h, w = out.shape[:2]
        x0, y0 = np.floor(ring.min(0)).astype(int) - 2
        x1, y1 = np.ceil(ring.max(0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        origin = np.array([x0, y0], np.float64)
        mask = self._polygon_mask((y1 - y0, x1 - x0), ring - origin)
        if interior is None:
            img = self._interior((y1 - y0, x1 - x0), origin, frame, opening, mask)
        else:
            img = interior.warp_into((y1 - y0, x1 - x0), ring - origin)
        fade = smoothstep(np.array(opening), MIN_OPENING_PX, max(OPENING_FADE * self.face.face_width,
                                                                  2 * MIN_OPENING_PX))
        mask *= np.float32(fade)
        # The lips' inner edge is in shadow; it also hides the stretched pixels along it.
        # Drawn first, so the interior covers its inner half and the teeth stay bright.
        self._shadow(out, ring, LIP_EDGE_WIDTH, closed=True, opacity=LIP_EDGE_OPACITY * float(fade))
        patch = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = cv2.blendLinear(img, patch, mask, 1 - mask).astype(np.uint8)

    def _seam(self, out: np.ndarray, face_pts: np.ndarray) -> None:
        """Shadow line between the lips (where they meet, or at the edge of the opening):
        a closed mouth reads as closed only with it, to viewers and face trackers alike."""
        mid = 0.5 * (face_pts[topo.as_index(topo.LIPS_INNER_UPPER)] + face_pts[topo.as_index(topo.LIPS_INNER_LOWER)])
        self._shadow(out, mid, SEAM_WIDTH, closed=False, opacity=SEAM_OPACITY)

    def _shadow(self, out: np.ndarray, line: np.ndarray, width: float, closed: bool,
                opacity: float) -> None:
        """Darken a soft band ``width`` face widths wide along a polyline (N, 2) in image
        pixels, in place."""
        width = max(width * self.face.face_width, 1.0)
        x0, y0 = np.floor(line.min(0) - 2 * width).astype(int)
        x1, y1 = np.ceil(line.max(0) + 2 * width).astype(int)
        h, w = out.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        m = np.zeros((y1 - y0, x1 - x0), np.float32)
        pts = np.round((line - [x0, y0]) * (1 << SUPERSAMPLE_SHIFT)).astype(np.int32)
        cv2.polylines(m, [pts], closed, 1.0, max(1, int(round(width))), cv2.LINE_AA, SUPERSAMPLE_SHIFT)
        m = cv2.GaussianBlur(m, (0, 0), 0.5 * width)  # a soft shadow, not a drawn line
        shade = 1 - (opacity * (1 - SEAM_DARKEN) / max(m.max(), 1e-6)) * m
        patch = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = cv2.multiply(patch, cv2.merge([shade] * 3)).astype(np.uint8)

    @staticmethod
    def _polygon_mask(shape, poly: np.ndarray) -> np.ndarray:
        m = np.zeros(shape, np.float32)
        pts = np.round(poly * (1 << SUPERSAMPLE_SHIFT)).astype(np.int32)
        cv2.fillPoly(m, [pts], 1.0, lineType=cv2.LINE_AA, shift=SUPERSAMPLE_SHIFT)
        cv2.polylines(m, [pts], True, 1.0, EDGE_GROW_PX, cv2.LINE_AA, SUPERSAMPLE_SHIFT)
        return m

    def _interior(self, shape, origin, frame: MotionFrame, opening: float,
                  mask: np.ndarray) -> np.ndarray:
        hh, ww = shape
        up_edge, lo_edge, scale = self._teeth_lines(frame)
        up_edge, lo_edge = up_edge - origin, lo_edge - origin
        # Cavity: darker when the mouth is barely open (less light gets in) and deeper
        # inside, away from the lips' edge.
        light = np.clip(opening / (0.12 * scale), 0.35, 1.0)
        inside = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        depth = np.clip(inside / (DEPTH_FALLOFF * scale), 0, 1)
        shade = (light * (1 - (1 - DEPTH_SHADE) * depth)).astype(np.float32)
        img = cv2.merge([shade * c for c in self.cavity])
        # Tongue: an ellipse resting behind the lower teeth.
        mid = lo_edge[len(lo_edge) // 2]
        width = np.linalg.norm(lo_edge[-1] - lo_edge[0])
        cv2.ellipse(img, (int(mid[0]), int(mid[1] + 0.01 * scale)),
                    (max(1, int(0.3 * width)), max(1, int(0.045 * scale))), 0, 180, 360,
                    (self.tongue * light).tolist(), -1, cv2.LINE_AA)
        # Upper incisors overlap the lower ones from the front (overbite): drawn last.
        self._teeth(img, lo_edge, -1, scale, light, LOWER_TEETH_SPAN)
        self._teeth(img, up_edge, +1, scale, light, TEETH_SPAN)
        # The photo's own upper teeth last: in front of the lower row, as upper incisors are.
        if self.source_teeth is not None:
            self._own_teeth(img, origin, frame, light)
        lit, reach = LIP_OCCLUSION
        occlusion = (lit + (1 - lit) * np.clip(inside / (reach * scale), 0, 1)).astype(np.float32)
        img = cv2.multiply(img, cv2.merge([occlusion] * 3))
        return cv2.GaussianBlur(img, (0, 0), max(SOFTEN * scale, 0.3))

    def _own_teeth(self, img: np.ndarray, origin: np.ndarray, frame: MotionFrame, light: float) -> None:
        """The photo's own upper teeth over ``img`` (the region at ``origin``), in the
        frame's head pose, lit like the painted teeth."""
        rgba = self.source_teeth.warp_into(self.face.head_transform(frame), img.shape[:2], origin)
        alpha = np.ascontiguousarray(rgba[..., 3])
        colour = rgba[..., :3] * np.float32(OWN_TEETH_LIT + (1 - OWN_TEETH_LIT) * light)
        img[:] = cv2.blendLinear(colour, img, alpha, 1 - alpha)

    def _teeth(self, img, edge: np.ndarray, direction: int, scale: float, light: float,
               span: float) -> None:
        """A band of teeth hanging from ``edge`` away from the opening (up for the upper
        row: direction +1 means the band extends upward from the biting edge)."""
        n = len(edge)
        keep = int(round((1 - span) / 2 * (n - 1)))
        biting = edge[keep: n - keep]
        root = biting.copy()
        root[:, 1] -= direction * TEETH_DEPTH * scale
        poly = np.concatenate([biting, root[::-1]])
        band = np.zeros(img.shape[:2], np.float32)
        cv2.fillPoly(band, [np.round(poly * (1 << SUPERSAMPLE_SHIFT)).astype(np.int32)], 1.0,
                     lineType=cv2.LINE_AA, shift=SUPERSAMPLE_SHIFT)
        # Shade toward the corners (side teeth sit deeper), toward the gum, and at the
        # seams between teeth, so the row reads as teeth rather than a white strip.
        hh, ww = img.shape[:2]
        xs = np.arange(ww, dtype=np.float32)[None, :]
        ys = np.arange(hh, dtype=np.float32)[:, None]
        cx, half = biting[:, 0].mean(), max(np.ptp(biting[:, 0]) / 2, 1.0)
        side = np.clip(1 - SIDE_SHADE[0] * ((xs - cx) / half) ** 2, SIDE_SHADE[1], 1)
        edge_y = np.interp(xs[0], biting[:, 0], biting[:, 1])[None, :]
        depth = np.clip(direction * (edge_y - ys) / (TEETH_DEPTH * scale), 0, 1)
        root = 1 - (1 - ROOT_SHADE) * depth
        phase = np.abs(((xs - cx) / (TOOTH_WIDTH * scale)) % 1.0 - 0.5) * 2  # 1 at seams
        seam = 1 - (1 - TOOTH_GAP_SHADE) * np.clip(phase * 4 - 3, 0, 1)
        shade = side * root * seam * (0.8 + 0.2 * light)
        shade = shade.astype(np.float32)
        colour = cv2.merge([shade * c for c in self.teeth])
        img[:] = cv2.blendLinear(colour, img, band, 1 - band)


def _round_corners(ring: np.ndarray, passes: int) -> np.ndarray:
    """Chaikin corner cutting of a closed polygon (N, 2): each pass doubles the points."""
    for _ in range(passes):
        nxt = np.roll(ring, -1, axis=0)
        ring = np.stack([0.75 * ring + 0.25 * nxt, 0.25 * ring + 0.75 * nxt], 1).reshape(-1, 2)
    return ring
