"""The body track of prepared clips (avatar.data.body): the file format, the upper-body
deltas, the "shows a body" decision and the pose sampling, on hand-made arrays (no MediaPipe)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from avatar.audio.types import AudioFeatures, Phone
from avatar.body.types import VISIBLE
from avatar.data import body as db
from avatar.data.clip import Clip, ReferenceFace, _arrays, load_clip, save_clip
from avatar.fileio import atomic_write
from avatar.motion.types import BODY_JOINTS, MotionSeq

FPS = 25.0
T = 40
SIZE = (640, 480)  # video width, height
FACE_WIDTH = 80.0  # px: clip.reference.scale
REFERENCE_FRAME = 5
# Where the joints are (px) in a typical upper-body framing, BODY_JOINTS order
POSE = np.array([[400, 250], [240, 250], [430, 350], [210, 350], [420, 430], [220, 430],
                 [380, 470], [260, 470]], np.float32)
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HIP, R_HIP = range(len(BODY_JOINTS))


def body_track(T: int = T, seed: int = 0) -> np.ndarray:
    """(T, 8, 3) POSE with the left wrist swinging and small noise; all joints visible."""
    rng = np.random.default_rng(seed)
    xy = np.repeat(POSE[None], T, axis=0) + rng.normal(0, 0.5, (T, len(BODY_JOINTS), 2))
    xy[:, L_WRIST, 0] += 40 * np.sin(np.arange(T) / 4)
    return np.concatenate([xy, np.full((T, len(BODY_JOINTS), 1), 0.95)], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def make_clip(face_model):
    reference = replace(ReferenceFace.from_model(face_model, REFERENCE_FRAME), scale=FACE_WIDTH)

    def make(body_points=None, num_frames: int = T) -> Clip:
        zeros = np.zeros(num_frames, np.float32)
        features = AudioFeatures(fps=FPS, energy=zeros, pitch=zeros, onset=zeros, vad=zeros,
                                 mel=np.zeros((num_frames, 4), np.float32))
        return Clip(name="body", fps=FPS, motion=MotionSeq.neutral(num_frames, FPS),
                    landmarks=np.zeros((num_frames, 478, 3), np.float32), tracked=np.ones(num_frames, bool),
                    fit_residual=zeros, features=features, phones=[Phone("SIL", 0.0, num_frames / FPS)],
                    validation=[(num_frames - 10, num_frames)], reference=reference, source="body.mp4",
                    video_size=SIZE, body_points=body_points)

    return make


# -- file format --------------------------------------------------------------------------
def test_body_points_round_trip_through_the_clip_file_and_slices(make_clip, tmp_path):
    points = body_track()
    points[7] = np.nan  # no person in frame 7
    clip = make_clip(points)
    save_clip(clip, tmp_path / "c.npz")
    assert "body_points" in np.load(tmp_path / "c.npz").files
    again = load_clip(tmp_path / "c.npz")
    assert again.body_points.dtype == np.float32 and again.body_points.shape == (T, len(BODY_JOINTS), 3)
    np.testing.assert_array_equal(again.body_points, points)
    assert again.body_reference is None
    # loading derives the vlogger's body motion from the track
    np.testing.assert_array_equal(again.motion.upper_body, db.upper_body_deltas(again))
    assert np.isnan(again.motion.upper_body[7]).all()
    piece = again.slice(10, 25)
    np.testing.assert_array_equal(piece.motion.upper_body, again.motion.upper_body[10:25])
    np.testing.assert_array_equal(piece.body_points, points[10:25])
    # a slice keeps its whole clip's reference pose (the reference frame 5 is not in it)
    np.testing.assert_array_equal(piece.body_reference, db.reference_pose(again))
    np.testing.assert_allclose(db.upper_body_deltas(piece), db.upper_body_deltas(again)[10:25])
    save_clip(piece, tmp_path / "piece.npz")
    np.testing.assert_array_equal(load_clip(tmp_path / "piece.npz").body_reference, piece.body_reference)
    assert [p.body_points.shape[0] for p in again.split("val")] == [10]


def test_clips_without_a_body_track_and_old_files_load_with_none(make_clip, tmp_path):
    clip = make_clip(None)
    save_clip(clip, tmp_path / "none.npz")
    assert "body_points" not in np.load(tmp_path / "none.npz").files
    assert load_clip(tmp_path / "none.npz").body_points is None
    # a file written before body tracking existed: exactly the arrays it had then
    arrays = {k: v for k, v in _arrays(make_clip(body_track())).items()
              if k not in ("body_points", "body_reference")}
    atomic_write(tmp_path / "old.npz", lambda f: np.savez_compressed(f, **arrays))
    old = load_clip(tmp_path / "old.npz")
    assert old.body_points is None and old.body_reference is None and db.upper_body_deltas(old) is None
    assert old.motion.upper_body is None
    assert old.slice(0, 10).body_points is None


# -- deltas -------------------------------------------------------------------------------
def test_upper_body_deltas_are_zero_at_the_reference_frame_and_in_face_widths(make_clip):
    points = body_track()
    clip = make_clip(points)
    deltas = db.upper_body_deltas(clip)
    assert deltas.dtype == np.float32 and deltas.shape == (T, len(BODY_JOINTS), 2)
    np.testing.assert_array_equal(deltas[REFERENCE_FRAME], 0.0)
    want = (points[:, :, :2] - points[REFERENCE_FRAME, :, :2]) / FACE_WIDTH
    np.testing.assert_allclose(deltas, want, atol=1e-6)
    # twice the face width in pixels: half the deltas
    wider = replace(clip, reference=replace(clip.reference, scale=2 * FACE_WIDTH))
    np.testing.assert_allclose(db.upper_body_deltas(wider), deltas / 2, atol=1e-6)
    # the swinging wrist moves ~half a face width, the still shoulders by noise only
    assert np.abs(deltas[:, L_WRIST, 0]).max() > 0.4 and np.abs(deltas[:, L_SHOULDER]).max() < 0.05


def test_unseen_joints_are_nan_and_an_unseen_reference_falls_back_to_the_median(make_clip):
    points = body_track()
    points[:, R_HIP, 2] = 0.2  # never visible
    points[REFERENCE_FRAME, R_WRIST, 2] = VISIBLE - 0.01  # hidden at the reference frame only
    points[12, L_ELBOW, 2] = 0.1  # hidden once
    points[13] = np.nan  # no person
    points[14, L_HIP, 1] = SIZE[1] + 30  # guessed below the frame, visibility still high
    deltas = db.upper_body_deltas(make_clip(points))
    assert np.isnan(deltas[:, R_HIP]).all()
    assert np.isnan(deltas[REFERENCE_FRAME, R_WRIST]).all() and np.isnan(deltas[12, L_ELBOW]).all()
    assert np.isnan(deltas[13]).all() and np.isnan(deltas[14, L_HIP]).all()
    seen = np.ones((T, len(BODY_JOINTS)), bool)
    seen[:, R_HIP] = seen[13] = False
    seen[REFERENCE_FRAME, R_WRIST] = seen[12, L_ELBOW] = seen[14, L_HIP] = False
    assert (np.isfinite(deltas).all(axis=-1) == seen).all()
    # the right wrist's reference: its median position over the frames where it is seen
    median = np.median(points[seen[:, R_WRIST], R_WRIST, :2], axis=0)
    np.testing.assert_allclose(db.reference_pose(make_clip(points))[R_WRIST], median, atol=1e-4)
    assert np.nanmedian(deltas[:, R_WRIST], axis=0) == pytest.approx([0.0, 0.0], abs=1e-6)


# -- does the video show a body? ----------------------------------------------------------
def test_shoulders_at_or_beyond_the_frame_edge_are_not_a_body():
    size = (224, 224)
    upper_body = np.repeat(body_track(1), 20, axis=0) * [224 / 640, 224 / 480, 1.0]
    assert db.shoulder_share(upper_body, size) == 1.0 and db.shows_body(upper_body, size)
    # a face-only crop: MediaPipe places the shoulders at the bottom corners or beyond, confidently
    face_only = upper_body.copy()
    face_only[:, db.SHOULDERS[0], :2] = (230.0, 200.0)  # beyond the right edge
    face_only[:, db.SHOULDERS[1], :2] = (40.0, 218.0)  # inside, but within the margin of the bottom
    assert db.shoulder_share(face_only, size) == 0.0 and not db.shows_body(face_only, size)
    # most frames are needed, not a few; missing people count as no shoulders
    mixed = upper_body.copy()
    mixed[:8] = face_only[:8]
    mixed[8:12] = np.nan
    assert db.shoulder_share(mixed, size) == pytest.approx(0.4) and not db.shows_body(mixed, size)
    mixed[8:12] = upper_body[8:12]
    assert db.shows_body(mixed, size)
    assert db.shoulder_share(db.missing_rows(0), size) == 0.0


class FakePose:
    """A pose tracker that sees a body in frames whose first pixel is 255, else a face crop."""

    def __init__(self):
        self.calls = 0

    def process(self, frame):
        self.calls += 1
        pose = np.full((33, 3), np.nan, np.float32)
        rows = body_track(1)[0] if frame[0, 0, 0] == 255 else db.missing_rows()[0]
        pose[list(db.BODY_JOINT_IDS)] = rows
        return pose


def frames(body: list[bool]):
    for seen in body:
        yield np.full((SIZE[1], SIZE[0], 3), 255 if seen else 0, np.uint8)


def test_auto_sampling_probes_sparsely_without_a_body_and_yes_runs_every_frame():
    look, probe = round(db.LOOK_SECONDS * FPS), round(db.PROBE_SECONDS * FPS)
    pattern = [True] * 30 + [False] * 200 + [True] * 100
    pose = FakePose()
    sampler = db.BodySampler(pose, FPS, db.AUTO)
    rows = np.stack([sampler(f) for f in frames(pattern)])
    assert rows.shape == (len(pattern), len(BODY_JOINTS), 3)
    seen = db.shoulders_seen(rows, SIZE)
    assert seen[:30].all() and not seen[30:230].any()
    # after `look` frames without shoulders, one frame in `probe`; back to every frame once seen
    processed_without = look + (200 - look) // probe + 1
    assert pose.calls <= 30 + processed_without + 100 and pose.calls >= 30 + look + 100 - probe
    assert seen[230 + probe:].all()  # the body is found again within one probe interval
    assert sampler.processed == pose.calls and sampler.processed + sampler.skipped == len(pattern)
    every = FakePose()
    always = db.BodySampler(every, FPS, db.YES)
    for f in frames(pattern):
        always(f)
    assert every.calls == len(pattern) and always.skipped == 0
    # frames shown twice (resampled to a higher rate) count twice
    twice = db.BodySampler(FakePose(), FPS, db.AUTO)
    for f in frames([False] * 100):
        twice(f, 2)
    assert twice.processed + twice.skipped == 200 and twice.tracker.calls < look
