"""A photo showing its own upper teeth is animated with them (not painted ones) when the
lips part; any other photo renders exactly as the synthesised interior alone would."""

from __future__ import annotations

from dataclasses import fields, replace

import cv2
import numpy as np
import pytest

from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.motion.types import MotionSeq
from avatar.pipeline import load_portrait
from avatar.render.closed_mouth import SealedFace
from avatar.render.warp import WarpRenderer

PHOTO_JAW = 0.6  # the open-mouth photo: the bundled portrait rendered with the jaw this open
# The photo's teeth are painted a cool white no painter makes (its teeth lean warm), so the
# rendered teeth can be told apart from painted ones by colour alone: blue above red.
OWN_TEETH = np.array([205, 215, 235], np.float32)
# The top of the opening, where the upper teeth hang: this share of its height, at most
# TEETH_BAND face widths (the teeth do not grow with the jaw's drop).
UPPER_SHARE, TEETH_BAND = 0.35, 0.03
CENTRE_SHARE = 0.5  # the middle of the mouth's width (the corners are in shadow)
COLOUR_TOLERANCE = 20  # RGB distance of the rendered teeth's mean from the photo's
JAWS = (0.3, 0.5, 0.7)


def frame(jaw: float):
    seq = MotionSeq.neutral(1, 25.0)
    seq.set_action("jawOpen", np.array([jaw]))
    return seq[0]


def photo_with_teeth(portrait_image, face_model, teeth: np.ndarray) -> np.ndarray:
    """The bundled portrait with its mouth open, its painted teeth coloured ``teeth``."""
    renderer = WarpRenderer(portrait_image, face_model)
    renderer.mouth.teeth = teeth
    return renderer.render(frame(PHOTO_JAW))


def without_own_teeth(face: FaceModel) -> FaceModel:
    """The same face as a plain FaceModel: what the painter gets without the feature."""
    return FaceModel(**{f.name: getattr(face, f.name) for f in fields(FaceModel)})


def opening_part(points: np.ndarray, shape, face_width: float, upper: bool) -> np.ndarray:
    """(H, W) bool: the top (``upper``, see UPPER_SHARE) or the rest of the inner-lip
    opening of landmarks ``points`` (478, 2), within the middle CENTRE_SHARE of its width."""
    ring = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(ring, [np.round(points[topo.as_index(topo.LIPS_INNER_RING)]).astype(np.int32)], 1)
    up = points[topo.as_index(topo.LIPS_INNER_UPPER)]
    lo = points[topo.as_index(topo.LIPS_INNER_LOWER)]
    ys, xs = np.mgrid[0: shape[0], 0: shape[1]].astype(np.float64)
    top = np.interp(xs, *up[np.argsort(up[:, 0])].T)
    bottom = np.interp(xs, *lo[np.argsort(lo[:, 0])].T)
    band = np.minimum(UPPER_SHARE * (bottom - top), TEETH_BAND * face_width)
    centre, half = up[:, 0].mean(), CENTRE_SHARE * np.ptp(up[:, 0]) / 2
    part = ys - top < band if upper else ys - top >= band
    return (ring > 0) & part & (np.abs(xs - centre) < half)


@pytest.fixture(scope="module")
def open_photo(portrait_image, face_model) -> np.ndarray:
    return photo_with_teeth(portrait_image, face_model, OWN_TEETH)


@pytest.fixture(scope="module")
def portrait(open_photo):
    return load_portrait(open_photo)


@pytest.fixture(scope="module")
def source_teeth_colour(open_photo, face_model) -> np.ndarray:
    """Mean colour of the photo's teeth: its only pixels between the lips bluer than red."""
    pts = face_model.project(frame(PHOTO_JAW))
    mask = np.zeros(open_photo.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts[topo.as_index(topo.LIPS_INNER_RING)]).astype(np.int32)], 1)
    pixels = open_photo[mask > 0].astype(np.float32)
    teeth = pixels[pixels[:, 2] > pixels[:, 0] + 10]
    assert len(teeth) > 50  # the photo does show its teeth
    return teeth.mean(0)


def test_the_photo_s_own_upper_teeth_are_kept(portrait):
    assert isinstance(portrait.face, SealedFace) and portrait.face.teeth is not None


@pytest.mark.parametrize("jaw", JAWS)
def test_an_open_mouth_shows_the_photo_s_own_teeth(portrait, source_teeth_colour, jaw):
    f = frame(jaw)
    upper = opening_part(portrait.face.project(f), portrait.image.shape, portrait.face.face_width, upper=True)
    assert upper.sum() > 20
    own = WarpRenderer(portrait.image, portrait.face).render(f)[upper].astype(np.float32).mean(0)
    painted = WarpRenderer(portrait.image, without_own_teeth(portrait.face)).render(f)[upper]
    painted = painted.astype(np.float32).mean(0)
    assert np.linalg.norm(own - source_teeth_colour) < COLOUR_TOLERANCE
    assert own[2] > own[0]  # the photo's cool white
    assert painted[2] < painted[0]  # the painted teeth, warm


def test_the_own_teeth_are_the_upper_row_only(portrait):
    """Without their pixels (alpha 0) the upper opening changes; the lower part, where the
    painted lower teeth and tongue are, does not."""
    f = frame(0.7)
    teeth = portrait.face.teeth
    hidden = replace(teeth, rgba=np.dstack([teeth.rgba[..., :3], 0 * teeth.rgba[..., 3]]))
    own = WarpRenderer(portrait.image, portrait.face).render(f).astype(np.float32)
    rest = WarpRenderer(portrait.image, replace(portrait.face, teeth=hidden)).render(f).astype(np.float32)
    pts = portrait.face.project(f)
    shape, fw = portrait.image.shape, portrait.face.face_width
    diff = np.abs(own - rest).max(-1)
    upper = opening_part(pts, shape, fw, upper=True)
    near = cv2.dilate(upper.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # the soft biting edge
    lower = opening_part(pts, shape, fw, upper=False) & ~near
    assert upper.sum() > 20 and lower.sum() > 20
    assert diff[upper].mean() > 20
    assert diff[lower].max() < 4


def test_closed_lips_are_unchanged(portrait):
    """At rest the lips are closed: no teeth, and the frame is the painter's without them."""
    f = frame(0.0)
    own = WarpRenderer(portrait.image, portrait.face).render(f)
    plain = WarpRenderer(portrait.image, without_own_teeth(portrait.face)).render(f)
    assert np.array_equal(own, plain)
    mask = np.zeros(own.shape[:2], np.uint8)
    pts = portrait.face.project(f)
    outer = topo.LIPS_OUTER_UPPER + topo.LIPS_OUTER_LOWER[::-1]
    cv2.fillPoly(mask, [np.round(pts[topo.as_index(outer)]).astype(np.int32)], 1)
    lips = own[mask > 0].astype(np.int32)
    assert (lips[:, 2] > lips[:, 0] + 10).mean() < 0.01  # none of the photo's teeth show
    assert (lips.mean(1) < 60).mean() < 0.02  # nor a dark interior


@pytest.mark.parametrize("photo", ["closed", "dark_opening"])
def test_a_photo_without_teeth_renders_as_before(portrait_image, face_model, renderer, photo):
    """A closed mouth, or an opening showing only its dark cavity: bit-identical frames."""
    if photo == "closed":
        image = renderer.render(frame(0.0))
    else:
        image = photo_with_teeth(portrait_image, face_model, renderer.mouth.cavity)
    loaded = load_portrait(image)
    assert getattr(loaded.face, "teeth", None) is None
    own = WarpRenderer(loaded.image, loaded.face)
    plain = WarpRenderer(loaded.image, without_own_teeth(loaded.face))
    for jaw in (0.0,) + JAWS:
        assert np.array_equal(own.render(frame(jaw)), plain.render(frame(jaw)))
