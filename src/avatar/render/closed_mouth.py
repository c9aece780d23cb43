"""A closed-mouth source from a photo whose mouth is open (a smile with teeth, a still taken
mid-speech).

The face model's neutral shape has its lips sealed (avatar.face.model.seal_lips). If the
renderer warped the open photo toward it, the pixels between the lips (teeth, tongue,
cavity) would be squeezed and smeared over the mouth in every frame. Instead, once per
photo, every face-mesh triangle is mapped exactly (one affine map per triangle) from its
place in the photo to its place in the sealed face: the lips' own triangles stretch until
the inner lip edges meet, and the mouth opening, which belongs to no triangle, is never
sampled. The result, with the sealed landmarks as its source points, is what the renderer
animates; any interior it later shows comes from its own painter, which paints the
person's own upper teeth where the photo shows them (avatar.render.source_teeth: cut from the
open photo here, before sealing, and carried by the returned SealedFace).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from avatar.face import topology as topo
from avatar.face.model import FaceModel, face_template
from avatar.render.source_teeth import SourceTeeth, extract_teeth, lum_and_redness

# Inner-lip gap / mouth width above which the mouth counts as open. Below it the renderer's
# own sealing squeezes the few interior pixels away; above it (a still taken mid-speech with
# a slit of lower teeth: 0.11) squeezing smears a dark band with teeth specks between the
# lips, which viewers and face trackers read as parted lips.
OPEN_RATIO = 0.05
MOVED_PX = 0.05  # triangles whose corners all move less than this are left as they are
# The tracked inner-lip ring of an open mouth falls short of the true corners, so the lip
# triangles there carry bits of cavity and teeth; inside the sealed lips, pixels this much
# darker or brighter than the lips' median are such remnants and are filled from the lips.
REMNANT_DARK, REMNANT_BRIGHT = 0.6, 1.4
# ... and teeth: brighter than the lips (this factor) with less of their redness (this share);
# a tracker often puts the inner lower lip on the teeth's top, so they sit inside the lip.
REMNANT_TEETH = (1.05, 0.75)
REMNANT_INPAINT_PX = 3
REMNANT_CORNER_GROW = 0.08  # mouth widths the lip mask is grown by to catch corner remnants


@dataclass
class SealedFace(FaceModel):
    """The face of a photo whose open mouth was sealed by :func:`close_mouth`."""

    teeth: SourceTeeth | None = None  # the upper teeth the open photo showed (None: none)


def mouth_open_ratio(points: np.ndarray) -> float:
    """Inner-lip gap at the middle of the mouth over the mouth's width (landmarks (478, 2))."""
    gap = np.linalg.norm(points[topo.LOWER_LIP_TOP] - points[topo.UPPER_LIP_BOTTOM])
    width = np.linalg.norm(points[topo.MOUTH_CORNER_L] - points[topo.MOUTH_CORNER_R])
    return float(gap / max(width, 1e-6))


def close_mouth(image: np.ndarray, face: FaceModel) -> tuple[np.ndarray, FaceModel]:
    """(image, face) with the lips closed if the photo's mouth is open (the face then a
    SealedFace with the photo's own upper teeth, if it shows any), else unchanged."""
    if mouth_open_ratio(face.source_points) <= OPEN_RATIO:
        return image, face
    sealed = face.frame.to_image(face.neutral)[:, :2]  # (478, 2) where the landmarks go
    sealed[topo.NUM_MESH_POINTS:] = face.source_points[topo.NUM_MESH_POINTS:]  # irises stay
    src = face.source_points
    _, triangles = face_template()  # (M, 3): the mesh, without the mouth and eye holes
    moved = np.abs(sealed - src).max(1) > MOVED_PX  # (478,)
    out = image.copy()
    h, w = image.shape[:2]
    for tri in triangles[moved[triangles].any(1)]:
        dst = sealed[tri].astype(np.float32)  # (3, 2)
        x0, y0 = np.maximum(np.floor(dst.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(dst.max(0)).astype(int) + 2, (w, h))
        if x1 <= x0 or y1 <= y0:
            continue
        local = dst - np.float32([x0, y0])
        e1, e2 = local[1] - local[0], local[2] - local[0]
        if abs(e1[0] * e2[1] - e1[1] * e2[0]) < 1e-3:  # collapsed: covers no pixel
            continue
        to_src = cv2.getAffineTransform(local, src[tri].astype(np.float32))  # local -> photo
        patch = cv2.warpAffine(image, to_src, (x1 - x0, y1 - y0),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(local * 16).astype(np.int32), 1, cv2.LINE_8, 4)
        region = out[y0:y1, x0:x1]
        region[mask > 0] = patch[mask > 0]
    kept = {f.name: getattr(face, f.name) for f in fields(FaceModel)}
    sealed_face = SealedFace(**{**kept, "source_points": sealed}, teeth=extract_teeth(image, face))
    return _fill_remnants(out, sealed), sealed_face


def _fill_remnants(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Cavity and teeth pixels left inside the closed lips, inpainted from the lips."""
    lips = np.zeros(image.shape[:2], np.uint8)
    outer = topo.LIPS_OUTER_UPPER + topo.LIPS_OUTER_LOWER[::-1]
    cv2.fillPoly(lips, [np.round(points[topo.as_index(outer)]).astype(np.int32)], 1)
    if not lips.any():
        return image
    # grown a little: the stretched corner triangles carry cavity just outside the lips
    width = np.linalg.norm(points[topo.MOUTH_CORNER_L] - points[topo.MOUTH_CORNER_R])
    grow = max(3, int(round(REMNANT_CORNER_GROW * width)) | 1)
    reach = cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    lum, redness = lum_and_redness(image)
    lip_lum = float(np.median(lum[lips > 0]))
    lip_red = float(np.median(redness[lips > 0]))
    teeth = (lum > REMNANT_BRIGHT * lip_lum) | ((lum > REMNANT_TEETH[0] * lip_lum)
                                               & (redness < REMNANT_TEETH[1] * lip_red))
    # cavity may sit just outside the lips; skin there is bright and pale too, so teeth only inside
    odd = ((reach > 0) & (lum < REMNANT_DARK * lip_lum)) | ((lips > 0) & teeth)
    if not odd.any():
        return image
    odd = cv2.dilate(odd.astype(np.uint8), np.ones((3, 3), np.uint8))
    return cv2.inpaint(image, odd, REMNANT_INPAINT_PX, cv2.INPAINT_TELEA)
