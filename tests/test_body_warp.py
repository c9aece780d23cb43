"""Body motion in the photo path (avatar.render.body_warp): a partial warp guided by the joints.

The warp is built from hand-made joints and a hand-made person mask on a textured image
with the bundled portrait's face geometry; only the last test runs MediaPipe pose.
"""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from avatar.face import topology as topo
from avatar.motion.types import BODY_JOINTS, MotionSeq
from avatar.render import body_warp
from avatar.render.body_warp import BodyPose, BodyWarp, shows_body

SIZE = 512
# Hand-made upper body for a 512x512 frame around the bundled portrait's face: shoulders
# seen, elbows seen, wrists and hips below the frame (x, y px; person's left = image right).
JOINTS = np.array([(307, 261), (112, 243), (321, 392), (68, 418), (332, 560), (131, 560),
                   (247, 640), (127, 640)], np.float64)
VIS = np.array([1.0, 1.0, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
LS = BODY_JOINTS.index("leftShoulder")


def _texture(seed=0) -> np.ndarray:
    """Smooth colour noise: every small patch is distinct, so shifts are measurable."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (SIZE // 4, SIZE // 4, 3)).astype(np.float32)
    img = cv2.resize(noise, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.5), 0, 255).astype(np.uint8)


def _person_mask(face) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.float32)
    body = np.array([(40, 300), (80, 240), (180, 215), (260, 215), (340, 250), (390, 300),
                     (420, SIZE), (20, SIZE)], np.int32)
    cv2.fillPoly(mask, [body], 1.0)
    oval = face.source_points[topo.as_index(topo.FACE_OVAL)]
    centre = oval.mean(0)
    cv2.fillPoly(mask, [np.round(centre + 1.3 * (oval - centre)).astype(np.int32)], 1.0)
    return mask


@pytest.fixture(scope="module")
def scene(face_model):
    mask = _person_mask(face_model)
    pose = BodyPose(JOINTS.copy(), VIS.copy(), mask, nose=face_model.source_points[topo.NOSE_TIP])
    return SimpleNamespace(image=_texture(), mask=mask, pose=pose, face=face_model,
                           warp=BodyWarp(pose, face_model, (SIZE, SIZE)))


def _head(face) -> np.ndarray:
    """(SIZE, SIZE) bool: the face oval and every row above the nose tip."""
    head = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(head, [np.round(face.source_points[topo.as_index(topo.FACE_OVAL)]).astype(np.int32)], 1)
    head[: int(face.source_points[topo.NOSE_TIP, 1])] = 1
    return head > 0


def _delta(**joints) -> np.ndarray:
    d = np.zeros((len(BODY_JOINTS), 2), np.float32)
    for name, v in joints.items():
        d[BODY_JOINTS.index(name)] = v
    return d


def _best_shift(a: np.ndarray, b: np.ndarray, centre, half: int, reach: int) -> np.ndarray:
    """(dx, dy) that best moves the patch of ``a`` around ``centre`` onto ``b`` (SSD search)."""
    x, y = np.round(centre).astype(int)
    patch = a[y - half: y + half, x - half: x + half].astype(np.float32)
    area = b[y - half - reach: y + half + reach, x - half - reach: x + half + reach].astype(np.float32)
    score = cv2.matchTemplate(area, patch, cv2.TM_SQDIFF)
    dy, dx = np.unravel_index(np.argmin(score), score.shape)
    return np.array([dx - reach, dy - reach], float)


def test_a_photo_shows_a_body_only_with_both_shoulders_seen_inside_it(scene):
    assert shows_body(scene.pose, scene.face, (SIZE, SIZE))
    hidden = BodyPose(JOINTS.copy(), VIS.copy(), scene.mask)
    hidden.visibility[LS] = 0.2
    assert not shows_body(hidden, scene.face, (SIZE, SIZE))
    outside = BodyPose(JOINTS.copy(), VIS.copy(), scene.mask)
    outside.joints[LS, 0] = SIZE + 20  # a close-up: the shoulder is beyond the frame
    assert not shows_body(outside, scene.face, (SIZE, SIZE))
    other = BodyPose(JOINTS.copy(), VIS.copy(), scene.mask, nose=np.array([20.0, 20.0]))
    assert not shows_body(other, scene.face, (SIZE, SIZE))  # the pose found someone else


def test_zero_displacement_leaves_the_frame_unchanged(scene):
    frame = scene.image.copy()
    out = scene.warp.apply(frame, np.zeros((len(BODY_JOINTS), 2), np.float32))
    assert np.array_equal(out, scene.image)
    assert np.array_equal(scene.warp.apply(frame, None), scene.image)
    # the map itself is the identity, edges of the warped box included
    x0, y0, x1, y1 = scene.warp.box
    ys, xs = np.mgrid[y0:y1, x0:x1]
    assert np.abs(scene.warp.backward_map(np.zeros((8, 2))) - np.stack([xs, ys], -1)).max() < 1e-3


def test_a_shoulder_moves_its_pixels_and_the_background_stays(scene):
    fw = scene.face.face_width
    d = _delta(leftShoulder=(0.03, -0.08))  # face widths: up and a little outwards
    out = scene.warp.apply(scene.image.copy(), d)
    expected = d[LS] * fw
    shift = _best_shift(scene.image, out, JOINTS[LS], half=10, reach=int(np.abs(expected).max()) + 4)
    assert np.abs(shift - expected).max() <= max(2.0, 0.25 * np.abs(expected).max())
    # the other shoulder, far away, barely moves
    other = _best_shift(scene.image, out, JOINTS[1], half=10, reach=4)
    assert np.abs(other).max() <= 1
    changed = np.abs(out.astype(int) - scene.image.astype(int)).max(-1) > 0
    assert changed.sum() > 1000
    # background far from the person, and everything above the chin, is untouched
    outside = (scene.mask < 0.5).astype(np.uint8)
    far = cv2.distanceTransform(outside, cv2.DIST_L2, 5) > 0.6 * fw
    assert not changed[far].any()
    assert not changed[_head(scene.face)].any()


def test_the_body_field_is_smooth_and_fold_free(scene):
    d = _delta(leftShoulder=(0.1, -0.1), rightShoulder=(0.1, 0.05), leftElbow=(0.1, 0.0))
    smap = scene.warp.backward_map(d)
    jx = np.gradient(smap[..., 0], axis=1), np.gradient(smap[..., 0], axis=0)
    jy = np.gradient(smap[..., 1], axis=1), np.gradient(smap[..., 1], axis=0)
    det = jx[0] * jy[1] - jx[1] * jy[0]
    assert det.min() > 0.5  # no tearing or folding anywhere, silhouette included
    x0, y0, x1, y1 = scene.warp.box
    ys, xs = np.mgrid[y0:y1, x0:x1]
    dx, dy = np.abs(smap - np.stack([xs, ys], -1)).transpose(2, 0, 1)
    # The warped box joins the untouched frame without a step; where it ends at the image
    # edge only the motion along that edge remains (nothing is pulled in from outside).
    rows = {"top": (y0 == 0, 0), "bottom": (y1 == SIZE, -1)}
    cols = {"left": (x0 == 0, 0), "right": (x1 == SIZE, -1)}
    for at_image_edge, i in rows.values():
        assert (dy[i] if at_image_edge else np.maximum(dx[i], dy[i])).max() < 0.05
    for at_image_edge, j in cols.values():
        assert (dx[:, j] if at_image_edge else np.maximum(dx[:, j], dy[:, j])).max() < 0.05


def test_motion_frames_carry_their_upper_body_row():
    seq = MotionSeq.neutral(3, 25)
    assert seq[1].upper_body is None
    seq.upper_body = np.arange(3 * 8 * 2, dtype=np.float32).reshape(3, 8, 2)
    assert np.array_equal(seq[2].upper_body, seq.upper_body[2])
    assert seq.slice(1, 3)[0].upper_body is not None


class _Frames:
    """Stands in for VideoWriter: keeps the frames."""

    def __init__(self, *_, **__):
        self.frames = []

    def __enter__(self):
        _Frames.last = self
        return self

    def __exit__(self, *exc):
        return False

    def write(self, frame):
        self.frames.append(frame.copy())


def _render(portrait, motion, monkeypatch):
    from avatar.pipeline import render_video

    monkeypatch.setattr("avatar.video.writer.VideoWriter", _Frames)
    render_video(portrait, motion, SimpleNamespace(audio=None), "unused.mp4", progress=False)
    return np.stack(_Frames.last.frames)


def _motion(with_body: bool) -> MotionSeq:
    seq = MotionSeq.neutral(4, 25)
    seq.rotation[:, 0] = np.linspace(0, 0.15, 4)
    seq.set_action("jawOpen", np.linspace(0, 0.4, 4))
    if with_body:
        seq.upper_body = np.zeros((4, 8, 2), np.float32)
        seq.upper_body[:, :2, 1] = -np.linspace(0, 0.05, 4)[:, None]
    return seq


def test_photo_path_moves_the_body_only_when_the_motion_has_one_and_the_photo_shows_one(
        portrait_image, face_model, scene, monkeypatch):
    from avatar.pipeline import Portrait

    portrait = Portrait(portrait_image, face_model)

    def no_pose(_):
        raise AssertionError("pose detection ran for motion without upper_body")

    monkeypatch.setattr(body_warp, "detect_body", no_pose)
    today = _render(portrait, _motion(False), monkeypatch)

    close_up = BodyPose(JOINTS.copy(), VIS.copy(), scene.mask)
    close_up.joints[LS, 0] = SIZE + 40  # no body in the photo
    monkeypatch.setattr(body_warp, "detect_body", lambda _: close_up)
    assert np.array_equal(_render(portrait, _motion(True), monkeypatch), today)
    monkeypatch.setattr(body_warp, "detect_body", lambda _: None)  # no person found at all
    assert np.array_equal(_render(portrait, _motion(True), monkeypatch), today)

    monkeypatch.setattr(body_warp, "detect_body", lambda _: scene.pose)
    moved = _render(portrait, _motion(True), monkeypatch)
    assert np.array_equal(moved[0], today[0])  # zero displacement in the first frame
    changed = np.abs(moved[-1].astype(int) - today[-1].astype(int)).max(-1) > 0
    assert changed.sum() > 1000
    assert not changed[_head(face_model)].any()  # the head is the face warp's


def test_pose_detection_finds_the_bundled_portraits_shoulders(portrait_image, face_model):
    pose = body_warp.detect_body(portrait_image)
    assert pose is not None and pose.mask.shape == portrait_image.shape[:2]
    assert shows_body(pose, face_model, (SIZE, SIZE))
    assert np.abs(pose.joints[:2] - JOINTS[:2]).max() < 25  # near the hand-made ones
    chest = pose.joints[:2].mean(0).astype(int) + (0, 40)
    assert pose.mask[chest[1], chest[0]] > 0.5
