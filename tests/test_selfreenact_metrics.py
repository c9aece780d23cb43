"""Measures of the self-reenactment benchmark on tiny synthetic curves."""

from __future__ import annotations

import numpy as np

from avatar.metrics import blinks as bl
from avatar.metrics import lipsync as ls


def test_closed_runs_lie_between_openings():
    closed = np.zeros(30, bool)
    closed[[0, 1]] = True  # touches the start: not bounded by openings
    closed[5:8] = True
    closed[12] = True  # one frame: too short
    closed[20:22] = True
    assert ls.closed_runs(closed, 2).tolist() == [[5, 8], [20, 22]]


def test_closure_recall_counts_near_closures_only():
    real = np.array([[10, 12], [30, 33]])
    out = np.zeros(50, bool)
    out[13] = True  # 2 frames after the first closure's last frame: within tolerance
    out[40] = True  # far from the second
    recall, n = ls.closure_recall(real, out, tol=2)
    assert n == 2 and recall == 0.5
    assert ls.closure_recall(real, np.zeros(50, bool))[0] == 0.0


def test_false_closures_on_wide_open_frames():
    real = np.linspace(0.0, 1.0, 100)  # the top quarter is "wide open"
    out = np.zeros(100, bool)
    out[90:95] = True
    share, n = ls.false_closure_share(real, out)
    assert n == 25 and share == 5 / 25


def test_closed_threshold_follows_the_track_but_is_capped():
    rng = np.random.default_rng(0)
    touching = np.concatenate([0.01 + 0.005 * rng.random(50), 0.3 + 0.1 * rng.random(150)])
    assert 0.03 < ls.closed_threshold(touching) < 0.05
    assert ls.closed_threshold(np.full(100, 0.4)) == ls.CLOSED_RATIO_MAX


def test_shifted_floor_is_low_for_noise_and_high_for_slow_curves():
    rng = np.random.default_rng(1)
    assert abs(ls.shifted_floor(rng.standard_normal(2000), 25)) < 0.1
    assert ls.shifted_floor(np.sin(np.arange(2000) / 200.0), 5) > 0.9


def test_blink_events_from_an_ear_curve():
    ear = np.full(100, 0.3)
    ear[40:44] = [0.2, 0.08, 0.1, 0.2]
    events = bl.blink_events(ear)
    assert len(events) == 1 and events[0].start == 40 and events[0].frames == 4
    assert events[0].min_ear == 0.08
    assert bl.blink_rate(events, 100, 25.0) == 15.0


def test_eye_aspect_ratio_of_synthetic_landmarks():
    L = np.zeros((2, 478, 2))
    for idx in (bl.EAR_R, bl.EAR_L):
        p1, p2, p3, p4, p5, p6 = idx
        L[:, p1], L[:, p4] = (0, 0), (10, 0)
        L[0, p2], L[0, p3], L[0, p5], L[0, p6] = (3, -1.5), (7, -1.5), (7, 1.5), (3, 1.5)  # open
        L[1, p2], L[1, p3], L[1, p5], L[1, p6] = (3, -0.1), (7, -0.1), (7, 0.1), (3, 0.1)  # shut
    ear = bl.ear(L)
    np.testing.assert_allclose(ear, [0.3, 0.02], atol=1e-9)
