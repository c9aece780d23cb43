"""Body tracking (avatar.body.tracker) and the 15-D joint features (avatar.body.joints)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from avatar.body import joints as bj
from avatar.body import types as bt
from avatar.body.joints import JOINTS, Joint, fill_gaps, joint_features, joint_positions
from avatar.body.types import LEFT, RIGHT, BodyFrame, BodyTrack
from avatar.config import GESTURE
from avatar.errors import AvatarError

FPS = 30.0
# The bundled portrait (512x512): where the shoulders are, by eye (person's left on the
# image right), and spots that are surely person / background.
PORTRAIT_LEFT_SHOULDER = (300.0, 250.0)
PORTRAIT_RIGHT_SHOULDER = (105.0, 250.0)
SHOULDER_TOLERANCE = 40.0  # px
PORTRAIT_FACE_CENTRE = (225, 120)  # (x, y) on the face
PORTRAIT_BACKGROUND = (490, 20)  # (x, y) top-right backdrop


# -- synthetic skeletons ------------------------------------------------------------------
def rest_skeleton() -> np.ndarray:
    """(J, 3) a plausible upright pose in MediaPipe world axes (x right, y down, z away)."""
    p = np.zeros((len(Joint), 3))
    p[Joint.LEFT_HIP], p[Joint.RIGHT_HIP] = (0.12, 0, 0), (-0.12, 0, 0)
    p[Joint.NECK] = (0, -0.5, 0)
    p[Joint.NOSE] = (0, -0.7, -0.1)
    p[Joint.LEFT_EAR], p[Joint.RIGHT_EAR] = (0.07, -0.72, 0), (-0.07, -0.72, 0)
    for sign, (shoulder, elbow, wrist) in zip((1, -1), bj.ARM_CHAIN):
        p[shoulder] = (sign * 0.18, -0.5, 0)
        p[elbow] = (sign * 0.25, -0.25, -0.05)
        p[wrist] = (sign * 0.2, -0.05, -0.25)
    for sign, (index_mcp, pinky_mcp, thumb, index_tip), wrist in zip(
            (1, -1), bj.HAND_JOINTS, (Joint.LEFT_WRIST, Joint.RIGHT_WRIST)):
        w = p[wrist]
        p[index_mcp] = w + (-sign * 0.03, 0.0, -0.08)
        p[pinky_mcp] = w + (sign * 0.03, 0.0, -0.07)
        p[thumb] = w + (-sign * 0.06, -0.02, -0.05)
        p[index_tip] = w + (-sign * 0.03, 0.0, -0.15)
    return p


def rotation_about(axis, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def moving_skeleton(T: int, fps: float, seed: int = 0, max_hz: float = 2.0) -> np.ndarray:
    """(T, J, 3) the rest skeleton with smooth random wobbles (up to ``max_hz``) of every joint."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None, None] / fps
    freq, phase = rng.uniform(0.15, 1.0, (1, len(Joint), 3)) * max_hz, rng.uniform(0, 6, (1, len(Joint), 3))
    wobble = 0.03 * np.sin(2 * np.pi * freq * t + phase)  # (T, J, 3) metres
    for wrist, hand in zip((Joint.LEFT_WRIST, Joint.RIGHT_WRIST), bj.HAND_JOINTS):
        wobble[:, list(hand)] = wobble[:, [wrist]] + 0.1 * wobble[:, list(hand)]  # hands stay hand-shaped
    return rest_skeleton()[None] + wobble


# -- joint features -----------------------------------------------------------------------
def test_joint_names_are_unique_and_match_the_feature_layout():
    assert len(set(JOINTS)) == len(JOINTS) == len(Joint)
    assert JOINTS[bj.ROOT] == "pelvis" and JOINTS[Joint.LEFT_WRIST] == "left_wrist"
    assert joint_features(moving_skeleton(5, FPS), FPS).shape == (5, len(JOINTS), bj.FEATURES)


def test_positions_are_root_relative_and_velocity_is_the_finite_difference_per_second():
    P = moving_skeleton(40, FPS) + np.array([0.3, -0.1, 2.0])  # shifted: features are root-relative
    F = joint_features(P, FPS)
    relative = P - P[:, bj.ROOT:bj.ROOT + 1]
    np.testing.assert_allclose(F[..., 0:3], relative, atol=1e-6)
    central = (relative[2:] - relative[:-2]) / 2 * FPS
    np.testing.assert_allclose(F[1:-1, :, 3:6], central, atol=1e-5)
    np.testing.assert_allclose(F[0, :, 3:6], (relative[1] - relative[0]) * FPS, atol=1e-5)


def test_velocity_units_do_not_depend_on_the_frame_rate():
    hz = 0.5  # slow motion: finite differences at both rates are close to the true velocity
    slow = joint_features(moving_skeleton(30, 15.0, max_hz=hz), 15.0)
    fast = joint_features(moving_skeleton(60, 30.0, max_hz=hz), 30.0)
    # frame i at 15 fps is frame 2i at 30 fps
    speed = np.abs(fast[..., 3:6]).max()
    assert speed > 0.05  # m/s: the joints do move
    np.testing.assert_allclose(slow[1:-1, :, 3:6], fast[2:-2:2, :, 3:6], atol=0.02 * speed)
    np.testing.assert_allclose(slow[1:-1, :, 12:15], fast[2:-2:2, :, 12:15],
                               atol=0.02 * np.abs(fast[..., 12:15]).max())


def test_6d_rotation_columns_are_orthonormal():
    F = joint_features(moving_skeleton(50, FPS, seed=3), FPS)
    a, b = F[..., 6:9].astype(np.float64), F[..., 9:12].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(b, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(a * b, -1), 0.0, atol=1e-5)


def test_upright_person_facing_the_camera_has_the_documented_pelvis_frame():
    R = bj.local_rotations(rest_skeleton()[None])[0]
    np.testing.assert_allclose(R[bj.ROOT], np.diag([1.0, -1.0, -1.0]), atol=1e-9)
    np.testing.assert_allclose(R[Joint.NECK], np.eye(3), atol=1e-9)  # shoulders parallel to hips
    np.testing.assert_allclose(R[Joint.LEFT_HIP], np.eye(3))  # leaves carry no rotation


def test_head_turning_at_a_constant_rate_gives_that_angular_velocity():
    rate, T = 1.5, 30  # rad/s, frames
    P = np.repeat(rest_skeleton()[None], T, axis=0)
    neck = P[0, Joint.NECK]
    up = np.array([0.0, -1.0, 0.0])  # MediaPipe y points down
    for t in range(T):
        R = rotation_about(up, rate * t / FPS)
        for j in (Joint.NOSE, Joint.LEFT_EAR, Joint.RIGHT_EAR):
            P[t, j] = neck + R @ (P[0, j] - neck)
    omega = joint_features(P, FPS)[:, Joint.NOSE, 12:15]
    # expressed in the chest frame (left, up, forward): a turn about "up"
    np.testing.assert_allclose(omega, np.tile([0.0, rate, 0.0], (T, 1)), atol=1e-4)
    assert np.abs(joint_features(P, FPS)[:, Joint.LEFT_ELBOW, 12:15]).max() < 1e-6  # arms still


def test_forearm_swinging_at_a_constant_rate_gives_that_angular_speed():
    rate, T = 2.0, 25
    P = np.repeat(rest_skeleton()[None], T, axis=0)
    elbow = P[0, Joint.LEFT_ELBOW]
    axis = np.cross(P[0, Joint.LEFT_ELBOW] - P[0, Joint.LEFT_SHOULDER], P[0, Joint.LEFT_WRIST] - elbow)
    hand = [Joint.LEFT_WRIST, *bj.HAND_JOINTS[LEFT]]
    for t in range(T):
        R = rotation_about(axis, rate * t / FPS)
        P[t, hand] = elbow + (R @ (P[0, hand] - elbow).T).T
    omega = joint_features(P, FPS)[:, Joint.LEFT_ELBOW, 12:15]
    np.testing.assert_allclose(np.linalg.norm(omega, axis=-1), rate, atol=1e-4)
    wrist_omega = joint_features(P, FPS)[:, Joint.LEFT_WRIST, 12:15]
    assert np.abs(wrist_omega).max() < 1e-4  # the hand moves rigidly with the forearm


# -- gap filling --------------------------------------------------------------------------
def test_fill_gaps_interpolates_short_gaps_holds_ends_and_leaves_long_gaps():
    values = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)  # (T, 2, 3)
    values[[0, 1]] = np.nan  # start: held
    values[5:7] = np.nan  # short gap: linear
    values[10:16] = np.nan  # long gap
    values[19] = np.nan  # end: held
    values[8, 1, 2] = np.nan  # one NaN marks the whole frame as missing
    out = fill_gaps(values, max_gap=3)
    np.testing.assert_allclose(out[[0, 1], 0, 0], 2.0)
    np.testing.assert_allclose(out[5:7, 0, 0], [5.0, 6.0])
    np.testing.assert_allclose(out[8, 1, 2], 8.0)
    assert np.isnan(out[10:16]).all()
    np.testing.assert_allclose(out[19], 18.0)
    assert np.isfinite(fill_gaps(values)).all()  # no limit: everything filled
    assert np.isnan(values[5]).all()  # the input is not modified


def synthetic_track(T: int = 12, seen_hand: bool = True) -> BodyTrack:
    """A BodyTrack with a skeleton in world and image arrays; hands seen in some frames."""
    mask_shape = (8, 6)
    frames = []
    for t in range(T):
        f = BodyFrame.empty(mask_shape)
        f.world[:] = 0.0
        f.world[[bt.LEFT_HIP, bt.RIGHT_HIP]] = (0.1, 0, 0), (-0.1, 0, 0)
        f.world[[bt.LEFT_SHOULDER, bt.RIGHT_SHOULDER]] = (0.2, -0.5, 0), (-0.2, -0.5, 0)
        f.world[[bt.LEFT_ELBOW, bt.RIGHT_ELBOW]] = (0.25, -0.25, 0), (-0.25, -0.25, 0)
        f.world[[bt.LEFT_WRIST, bt.RIGHT_WRIST]] = (0.2 + 0.01 * t, 0, -0.2), (-0.2, 0, -0.2)
        f.world[[bt.LEFT_EAR, bt.RIGHT_EAR, bt.NOSE]] = (0.07, -0.7, 0), (-0.07, -0.7, 0), (0, -0.68, -0.1)
        f.world[[19, 17, 21]] = f.world[bt.LEFT_WRIST] + [(-0.02, 0.05, 0), (0.02, 0.05, 0), (-0.04, 0.02, 0)]
        f.world[[20, 18, 22]] = f.world[bt.RIGHT_WRIST] + [(0.02, 0.05, 0), (-0.02, 0.05, 0), (0.04, 0.02, 0)]
        f.image[:, :2] = f.world[:, :2] * 100 + 200
        f.image[:, 2] = 0.9
        if seen_hand and t % 4 != 3:  # the left hand is lost every 4th frame
            f.hand_world[LEFT] = np.linspace(-0.05, 0.05, bt.NUM_HAND)[:, None] * [1, 2, 0.5]
            f.hands[LEFT] = np.linspace(100, 140, bt.NUM_HAND)[:, None] * [1, 1.5, 0]
        f.mask[2:6, 1:5] = 255
        frames.append(f)
    return BodyTrack.from_frames(frames, FPS, (400, 500), mask_shape)


def test_fill_gaps_on_a_track_fills_short_hand_gaps():
    track = synthetic_track()
    assert np.isnan(track.hands[3, LEFT]).all()
    filled = fill_gaps(track)
    np.testing.assert_allclose(filled.hands[3, LEFT], track.hands[2, LEFT])
    assert np.isnan(filled.hands[:, RIGHT]).all()  # never seen: nothing to fill from
    np.testing.assert_array_equal(filled.masks, track.masks)


def test_joint_positions_attach_hands_at_the_pose_wrist():
    track = synthetic_track()
    P = joint_positions(track)
    assert P.shape == (track.num_frames, len(JOINTS), 3) and np.isfinite(P).all()
    np.testing.assert_allclose(P[:, bj.ROOT], 0.0, atol=1e-7)
    hand = track.hand_world[0, LEFT]
    offset = hand[bj.HAND_POINTS[0]] - hand[bj.HAND_WRIST]
    np.testing.assert_allclose(P[:, Joint.LEFT_INDEX_MCP] - P[:, Joint.LEFT_WRIST], np.tile(offset, (12, 1)),
                               atol=1e-6)  # seen frames and the filled short gaps alike
    # the right hand is never seen: the pose's own index point stands in for the knuckle
    right_knuckle = P[0, Joint.RIGHT_INDEX_MCP] - P[0, Joint.RIGHT_WRIST]
    np.testing.assert_allclose(right_knuckle, (0.02, 0.05, 0), atol=1e-6)


def test_frames_without_a_person_are_filled_and_no_person_at_all_is_an_error():
    track = synthetic_track()
    track.world[4:6] = np.nan
    P = joint_positions(track)
    assert np.isfinite(P).all()
    step = P[4:6, Joint.LEFT_WRIST, 0] - P[3, Joint.LEFT_WRIST, 0]
    np.testing.assert_allclose(step, [0.01, 0.02], atol=1e-6)  # the wrist's motion, interpolated
    track.world[:] = np.nan
    with pytest.raises(AvatarError):
        joint_positions(track)


# -- BodyTrack ----------------------------------------------------------------------------
def test_track_arrays_round_trip_through_npz():
    track = synthetic_track()
    buffer = io.BytesIO()
    np.savez(buffer, **track.save_arrays())
    buffer.seek(0)
    with np.load(buffer) as archive:
        assert sorted(archive.files) == sorted(bt.ARRAY_PREFIX + k for k in bt.ARRAY_KEYS)
        back = BodyTrack.from_arrays(archive)
    assert back.fps == track.fps and back.size == track.size
    for name in ("world", "image", "hands", "hand_world", "masks", "face"):
        np.testing.assert_array_equal(getattr(back, name), getattr(track, name))
    with pytest.raises(AvatarError):
        BodyTrack.from_arrays({"body_fps": np.float64(30)})


def test_hand_boxes_person_mask_and_pose_2d():
    track = synthetic_track()
    boxes = track.hand_boxes()  # (T, 2, 4)
    np.testing.assert_allclose(boxes[0, LEFT], (100, 150, 140, 210))
    assert np.isnan(boxes[3, LEFT]).all() and np.isnan(boxes[:, RIGHT]).all()
    mask = track.person_mask(0, (60, 80))
    assert mask.shape == (80, 60) and mask.dtype == np.float32
    assert mask[40, 30] == pytest.approx(1.0) and mask[2, 2] == pytest.approx(0.0)
    keypoints = track.pose_2d(0)
    assert keypoints.shape == (bt.NUM_POSE_2D, 2)
    np.testing.assert_allclose(keypoints[len(bt.UPPER_BODY)], track.hands[0, LEFT, bt.HAND_2D[0], :2])
    right_wrist = track.image[0, bt.RIGHT_WRIST, :2]  # unseen right hand: its pose wrist
    np.testing.assert_allclose(keypoints[-1], right_wrist)


def test_hands_are_assigned_to_the_nearest_pose_wrist_else_by_mirrored_handedness():
    from avatar.body.tracker import assign_hands

    pose = np.full((bt.NUM_POSE, 3), np.nan, np.float32)
    pose[bt.LEFT_WRIST, :2], pose[bt.RIGHT_WRIST, :2] = (300, 400), (100, 400)  # facing the camera
    wrists = [np.array([110.0, 390.0]), np.array([290.0, 410.0])]
    assert assign_hands(wrists, ["Right", "Right"], pose) == [RIGHT, LEFT]
    assert assign_hands(wrists[1:], ["Right"], pose) == [LEFT]
    no_pose = np.full_like(pose, np.nan)
    # MediaPipe labels as if mirrored: its "Left" is the person's right hand in a camera image
    assert assign_hands(wrists, ["Left", "Right"], no_pose) == [RIGHT, LEFT]


# -- tracking real pixels -----------------------------------------------------------------
@pytest.fixture(scope="module")
def portrait_frames(portrait_image) -> list[BodyFrame]:
    from avatar.body.tracker import BodyTracker

    with BodyTracker(static=False) as tracker:
        return [tracker.process(portrait_image) for _ in range(2)]


def test_tracking_the_portrait_finds_shoulders_face_and_person_but_no_hands(portrait_frames):
    frame = portrait_frames[-1]
    assert frame.has_person
    shoulders = ((bt.LEFT_SHOULDER, PORTRAIT_LEFT_SHOULDER), (bt.RIGHT_SHOULDER, PORTRAIT_RIGHT_SHOULDER))
    for landmark, where in shoulders:
        assert np.linalg.norm(frame.image[landmark, :2] - where) < SHOULDER_TOLERANCE
    assert frame.image[bt.LEFT_SHOULDER, 2] > bt.VISIBLE
    hips = frame.world[[bt.LEFT_HIP, bt.RIGHT_HIP]].mean(axis=0)
    assert np.abs(hips).max() < 0.02  # world landmarks are hip-centred (metres)
    shoulder_width = np.linalg.norm(frame.world[bt.LEFT_SHOULDER] - frame.world[bt.RIGHT_SHOULDER])
    assert 0.2 < shoulder_width < 0.6
    assert np.isfinite(frame.face).all()
    x0, y0 = np.nanmin(frame.face[:, :2], axis=0)
    x1, y1 = np.nanmax(frame.face[:, :2], axis=0)
    assert x0 < PORTRAIT_FACE_CENTRE[0] < x1 and y0 < PORTRAIT_FACE_CENTRE[1] < y1
    assert np.isnan(frame.hands).all() and np.isnan(frame.hand_world).all()
    track = BodyTrack.from_frames(portrait_frames, FPS, (512, 512), frame.mask.shape)
    mask = track.person_mask(1)
    assert mask[PORTRAIT_FACE_CENTRE[1], PORTRAIT_FACE_CENTRE[0]] > 0.8
    assert mask[PORTRAIT_BACKGROUND[1], PORTRAIT_BACKGROUND[0]] < 0.2


def test_track_video_streams_a_file_and_blank_frames_give_nan(tmp_path, portrait_image):
    from avatar.body.tracker import track_video
    from avatar.video.writer import VideoWriter

    path = tmp_path / "clip.mp4"
    blank = np.full_like(portrait_image, 128)
    frames = [portrait_image] * 3 + [blank]
    with VideoWriter(path, portrait_image.shape[1], portrait_image.shape[0], fps=FPS) as writer:
        for frame in frames:
            writer.write(frame)
    lines: list[str] = []
    track = track_video(path, progress=False, log=lines.append)
    assert track.num_frames == len(frames) and track.fps == pytest.approx(FPS) and track.size == (512, 512)
    assert track.masks.shape == (len(frames), GESTURE.mask_width, GESTURE.mask_width)  # square video
    assert np.isfinite(track.world[:3]).all() and np.isnan(track.world[3]).all()
    assert np.isfinite(track.face[:3]).all() and np.isnan(track.face[3]).all()
    assert np.linalg.norm(track.image[2, bt.LEFT_SHOULDER, :2] - PORTRAIT_LEFT_SHOULDER) < SHOULDER_TOLERANCE
    assert lines and "4 frames" in lines[0]
    assert np.isfinite(joint_features(joint_positions(track), track.fps)).all()
