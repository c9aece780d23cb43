import numpy as np
import pytest
from PIL import Image

from avatar.errors import AvatarError
from avatar.face import geometry, topology as topo
from avatar.face.model import FaceModel
from avatar.face.tracker import largest_face
from avatar.image import fit_max_size, load_image
from avatar.motion.types import ACTIONS, MotionSeq


def _gap(points, upper, lower):
    return float(np.mean(points[lower, 1] - points[upper, 1]))


def test_face_mesh_on_bundled_portrait(face_obs, portrait_image):
    h, w = portrait_image.shape[:2]
    assert face_obs.landmarks.shape == (478, 3)
    x0, y0, x1, y1 = face_obs.box
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert 60 < face_obs.face_width < 200  # the astronaut's face is ~90 px wide
    # eyes above the mouth, subject's left eye on the image's right
    assert face_obs.landmarks[topo.IRIS_L[0], 0] > face_obs.landmarks[topo.IRIS_R[0], 0]
    assert face_obs.landmarks[topo.IRIS_L[0], 1] < face_obs.landmarks[topo.UPPER_LIP_TOP, 1]


def test_no_face_is_a_clear_error():
    blank = np.full((300, 300, 3), 127, np.uint8)
    with pytest.raises(AvatarError, match="no face found"):
        largest_face(blank, "blank.png")


def test_largest_of_several_faces_is_chosen_and_reported(portrait_image):
    small = fit_max_size(portrait_image, 400)
    canvas = np.full((512, 912, 3), 200, np.uint8)
    canvas[:, :512] = portrait_image
    canvas[56:456, 512:] = small
    warnings = []
    face = largest_face(canvas, "two.png", warn=warnings.append)
    assert face.landmarks[:, 0].max() < 512  # the big face, on the left
    assert warnings and "2 faces" in warnings[0]


def test_image_formats(tmp_path, portrait_image):
    rgba = np.dstack([portrait_image, np.full(portrait_image.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == portrait_image.shape
    Image.fromarray(portrait_image).convert("L").save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").shape == portrait_image.shape
    # EXIF orientation 6 = stored rotated; the loader must turn it upright.
    im = Image.fromarray(portrait_image[:, :400])
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape[:2] == (400, 512)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(AvatarError, match="cannot read the image"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(AvatarError, match="file not found"):
        load_image(tmp_path / "missing.jpg")


def test_euler_roundtrip_and_conventions():
    for ypr in [(0.3, -0.2, 0.1), (-0.5, 0.4, -0.3), (0, 0, 0)]:
        R = geometry.euler_to_matrix(*ypr)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(geometry.matrix_to_euler(R), ypr, atol=1e-9)
    nose_forward = np.array([0.0, 0.0, -1.0])  # toward the camera
    assert (geometry.euler_to_matrix(0.3, 0, 0) @ nose_forward)[0] > 0  # yaw > 0: image right
    assert (geometry.euler_to_matrix(0, 0.3, 0) @ nose_forward)[1] < 0  # pitch > 0: up


def test_fit_frame_recovers_a_similarity(face_model):
    R = geometry.euler_to_matrix(0.2, -0.1, 0.15)
    X = face_model.neutral
    P = 123.0 * X @ R.T + np.array([300.0, 200.0, 5.0])
    frame = geometry.fit_frame(P, X)
    np.testing.assert_allclose(frame.rotation, R, atol=1e-9)
    assert frame.scale == pytest.approx(123.0)


def test_neutral_face_has_closed_lips(face_model):
    n = face_model.neutral
    gap = n[topo.LIPS_INNER_LOWER, 1] - n[topo.LIPS_INNER_UPPER, 1]
    assert np.abs(gap).max() < 1e-3  # face widths


def test_action_fields_do_what_they_say(face_model):
    def shape(**coef):
        c = np.zeros(len(ACTIONS))
        for k, v in coef.items():
            c[ACTIONS.index(k)] = v
        return face_model.shape(c)

    rest = shape()
    lips = (topo.LIPS_INNER_UPPER[1:-1], topo.LIPS_INNER_LOWER[1:-1])
    assert _gap(shape(jawOpen=0.5), *lips) > 0.075  # face widths (less beside the middle: a lens)
    assert abs(_gap(shape(jawOpen=0.5, mouthClose=0.5), *lips)) < 0.01
    eye = (topo.EYE_L_UPPER[2:-2], topo.EYE_L_LOWER[2:-2])
    assert _gap(shape(eyeBlinkL=1), *eye) < 0.15 * _gap(rest, *eye)
    assert _gap(shape(eyeBlinkL=1), *(topo.EYE_R_UPPER[2:-2], topo.EYE_R_LOWER[2:-2])) == pytest.approx(
        _gap(rest, *(topo.EYE_R_UPPER[2:-2], topo.EYE_R_LOWER[2:-2])))
    assert shape(mouthSmileL=1)[topo.MOUTH_CORNER_L, 1] < rest[topo.MOUTH_CORNER_L, 1] - 0.02
    width = lambda s: s[topo.MOUTH_CORNER_L, 0] - s[topo.MOUTH_CORNER_R, 0]
    assert width(shape(mouthPucker=1)) < 0.8 * width(rest)
    assert shape(browInnerUp=1)[topo.BROW_L_UPPER[-1], 1] < rest[topo.BROW_L_UPPER[-1], 1] - 0.03
    # local: opening the jaw leaves the forehead and eyes where they were
    np.testing.assert_allclose(shape(jawOpen=1)[[topo.FOREHEAD_TOP, *topo.EYE_L_UPPER]],
                               rest[[topo.FOREHEAD_TOP, *topo.EYE_L_UPPER]], atol=1e-6)


def test_projection_at_rest_matches_the_photo(face_model, face_obs):
    pts = face_model.project(MotionSeq.neutral(1, 25)[0])
    lips = face_obs.landmarks[topo.LIPS_ALL, :2]
    d = np.linalg.norm(face_obs.landmarks[:, None, :2] - lips[None], axis=-1).min(1)
    keep = d > 0.1 * face_obs.face_width  # the lips were sealed, dragging the skin near them
    np.testing.assert_allclose(pts[keep], face_obs.landmarks[keep, :2], atol=1e-3)


def test_a_wide_open_mouth_is_closed_by_the_jaw_not_by_swollen_lips(face_model):
    """Sealing a wide gap with the lips alone stretches each lip over half of it."""
    from avatar.face.model import seal_lips

    c = np.zeros(len(ACTIONS))
    c[ACTIONS.index("jawOpen")] = 0.8
    opened = face_model.shape(c)  # (478, 3) wide open
    inner, outer = topo.LOWER_LIP_TOP, topo.LIPS_OUTER_LOWER[len(topo.LIPS_OUTER_LOWER) // 2]
    thickness = opened[outer, 1] - opened[inner, 1]
    grown = {}
    for jaw in (False, True):
        sealed = seal_lips(opened, jaw=jaw)
        assert abs(sealed[topo.LOWER_LIP_TOP, 1] - sealed[topo.UPPER_LIP_BOTTOM, 1]) < 1e-3  # closed
        grown[jaw] = sealed[outer, 1] - sealed[inner, 1] - thickness  # how much the lower lip swelled
    assert grown[True] < 0.5 * grown[False]
