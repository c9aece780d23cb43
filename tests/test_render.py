import numpy as np

from avatar.face import topology as topo
from avatar.motion.types import MotionSeq


def _frame(**kw):
    seq = MotionSeq.neutral(1, 25)
    for k, v in kw.items():
        if k in ("rotation", "gaze", "translation"):
            getattr(seq, k)[0] = v
        else:
            seq.set_action(k, v)
    return seq[0]


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-9))


def _changed(a, b, thresh=12):
    return np.abs(a.astype(int) - b.astype(int)).max(-1) > thresh


def test_rest_frame_reproduces_the_photo(renderer, portrait_image, face_obs):
    out = renderer.render(_frame())
    assert out.shape == portrait_image.shape and out.dtype == np.uint8
    mouth = np.zeros(out.shape[:2], bool)
    x0, y0 = face_obs.landmarks[topo.LIPS_ALL, :2].min(0).astype(int) - 6
    x1, y1 = face_obs.landmarks[topo.LIPS_ALL, :2].max(0).astype(int) + 6
    mouth[y0:y1, x0:x1] = True
    assert _psnr(out[~mouth], portrait_image[~mouth]) > 35


def test_mouth_motion_changes_pixels_only_around_the_face(renderer, face_obs):
    rest = renderer.render(_frame())
    talk = renderer.render(_frame(jawOpen=0.5))
    changed = _changed(rest, talk)
    assert changed.sum() > 100  # the mouth did open
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = face_obs.box
    fw = face_obs.face_width
    assert xs.min() > x0 - 0.2 * fw and xs.max() < x1 + 0.2 * fw
    assert ys.min() > (y0 + y1) / 2 and ys.max() < y1 + 0.5 * fw  # below the eyes, near the chin


def test_open_mouth_shows_a_dark_cavity_and_teeth(renderer, face_model):
    frame = _frame(jawOpen=0.6)
    out = renderer.render(frame).astype(float)
    pts = face_model.project(frame)
    up, lo = pts[topo.UPPER_LIP_BOTTOM], pts[topo.LOWER_LIP_TOP]
    column = out[int(up[1]) + 1: int(lo[1]), int((up[0] + lo[0]) / 2)].mean(-1)
    assert column.min() < 60  # dark mouth interior
    assert column.max() > 150  # bright teeth under the upper lip


def test_painted_interior_is_a_lit_red_mouth_with_shaded_teeth(renderer, face_model):
    import cv2

    frame = _frame(jawOpen=0.7)
    out = renderer.render(frame).astype(float)
    ring = face_model.project(frame)[topo.as_index(topo.LIPS_INNER_RING)]
    mask = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(ring).astype(np.int32)], 1)
    inside = out[cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0]  # (K, 3) RGB
    lum = inside.mean(1)
    cavity = inside[lum < np.percentile(lum, 30)]
    assert 25 < cavity.mean() < 80  # dark, but a lit mouth rather than a black hole
    assert cavity[:, 0].mean() > 1.2 * cavity[:, 2].mean()  # and the dark of a mouth is red,
    # more saturated than the lips (the light has bounced off red tissue): cavity = lip^2 / max
    lip_red_blue = np.sqrt(renderer.mouth.cavity[0] / renderer.mouth.cavity[2])
    assert cavity[:, 0].mean() / cavity[:, 2].mean() > lip_red_blue > 1
    assert np.percentile(lum, 90) > 150  # teeth are there ...
    assert (lum > 0.8 * lum.max()).mean() < 0.2  # ... shaded, not one white band


def test_head_turn_keeps_the_background_anchored(renderer, portrait_image):
    out = renderer.render(_frame(rotation=(0.25, 0.1, 0.05)))
    border = np.ones(out.shape[:2], bool)
    border[8:-8, 8:-8] = False
    assert _psnr(out[border], portrait_image[border]) > 40
    assert _changed(out, portrait_image).sum() > 2000  # but the head did turn


def test_blink_closes_the_eyes_and_gaze_moves_the_iris(renderer, face_model):
    rest = renderer.render(_frame())
    eye = face_model.source_points[topo.EYE_L_RING]
    x0, y0 = eye.min(0).astype(int) - 2
    x1, y1 = eye.max(0).astype(int) + 3
    closed = renderer.render(_frame(eyeBlinkL=1.0, eyeBlinkR=1.0))
    assert _changed(rest[y0:y1, x0:x1], closed[y0:y1, x0:x1]).mean() > 0.2

    def dark_centroid(img):
        patch = img[y0:y1, x0:x1].mean(-1)
        w = (patch < np.percentile(patch, 25)).astype(float)
        return (w * np.arange(x1 - x0)[None, :]).sum() / w.sum()

    right = renderer.render(_frame(gaze=(0.35, 0.0)))
    left = renderer.render(_frame(gaze=(-0.35, 0.0)))
    assert dark_centroid(right) > dark_centroid(rest) > dark_centroid(left)


def test_the_jaw_opens_a_lens_not_a_slot(face_model):
    """Lips are joined at the corners: beside them the lower lip drops less than mid-mouth."""
    from avatar.face import topology as topo
    from avatar.motion.types import action_column

    lower = topo.as_index(topo.LIPS_INNER_LOWER)
    drop = face_model.basis[action_column("jawOpen")][lower, 1]  # (11,) from corner to corner
    assert drop[1] < 0.8 * drop[len(drop) // 2] and drop[-2] < 0.8 * drop[len(drop) // 2]
