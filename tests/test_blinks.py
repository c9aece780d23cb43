"""A blink closes the rendered eye: tracked, the lids meet; seen, the lid covers the iris."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatar.face import topology as topo
from avatar.face.tracker import FaceTracker
from avatar.metrics.blinks import BLINK_RATIO, ear
from avatar.motion.types import MotionSeq


def blink_frame(renderer, closure: float) -> np.ndarray:
    seq = MotionSeq.neutral(1, 25.0)
    seq.set_action("eyeBlinkL", np.array([closure]))
    seq.set_action("eyeBlinkR", np.array([closure]))
    return renderer.render(seq[0])


@pytest.fixture(scope="module")
def tracked(renderer):
    frames = {c: blink_frame(renderer, c) for c in (0.0, 0.5, 1.0)}
    with FaceTracker(static=True, max_faces=1) as tracker:
        marks = {c: tracker.detect(f)[0].landmarks for c, f in frames.items()}
    return frames, marks


def test_a_full_blink_is_tracked_as_closed(tracked):
    _, marks = tracked
    e = {c: float(ear(m[None])[0]) for c, m in marks.items()}
    assert e[1.0] < 0.5 * e[0.0]  # well past the blink detector's threshold
    assert e[1.0] < BLINK_RATIO * e[0.0] and e[0.5] < e[0.0]


def test_the_lid_covers_the_iris_at_the_peak(tracked, face_model):
    frames, _ = tracked
    src = face_model.source_points
    for ring, iris in ((topo.EYE_L_RING, topo.IRIS_L), (topo.EYE_R_RING, topo.IRIS_R)):
        mask = np.zeros(frames[0.0].shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(src[topo.as_index(ring)]).astype(np.int32)], 1)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
        lum = {c: f[mask > 0].astype(float).mean(1) for c, f in frames.items()}
        skin = np.median(lum[1.0])
        dark = 0.6 * skin  # the iris and pupil of the open eye are far darker than skin
        assert (lum[0.0] < dark).mean() > 0.1  # the open eye shows its iris here
        assert (lum[1.0] < dark).mean() < 0.03  # the closed lid hides it
        assert lum[1.0].std() < 0.5 * lum[0.0].std()  # an even lid, not iris and sclera


def test_learned_flicks_are_redrawn_as_full_blinks_at_the_same_times():
    from avatar.generators.eyes import reshape_blinks

    fps, T = 25.0, 250
    rng = np.random.default_rng(0)
    lids = 0.08 + 0.02 * rng.standard_normal((T, 2))  # (T, 2) a model's resting lids
    flicks = [40, 120, 124, 200]  # one-frame flicks; 120 and 124 are one blink drawn twice
    lids[flicks] = [[0.45, 0.5], [0.7, 0.7], [0.4, 0.45], [0.6, 0.55]]
    out = reshape_blinks(np.random.default_rng(1), lids, fps)
    closed = out.mean(axis=1) > 0.5
    starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    assert len(starts) == 3 and all(abs(s - f) <= 3 for s, f in zip(starts, (40, 120, 200)))
    for f in (40, 120, 200):
        assert out[f].min() >= 0.9  # the lid covers the eye at the model's peak
        assert closed[f - 4:f + 6].sum() >= 3  # 3+ frames shut at 25 fps, not a flick
    far = np.abs(np.arange(T)[:, None] - np.array(flicks)[None]).min(axis=1) > 10
    np.testing.assert_array_equal(out[far], lids[far])  # the model's lids elsewhere are untouched
    assert out[124].mean() < 0.9 and out[150].mean() < 0.2
    np.testing.assert_array_equal(reshape_blinks(np.random.default_rng(1), lids[:30], fps), lids[:30])
