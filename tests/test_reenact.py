"""Re-rendering the mouth of (engine-rendered) frames, and the mouth bank."""

import numpy as np
import pytest

from avatar.errors import AvatarError
from avatar.face import topology as topo
from avatar.metrics.lipsync import mouth_opening
from avatar.motion.types import MotionSeq
from avatar.render.mouth_bank import (MouthBank, MouthBankBuilder, canonical_face, mid_opening, mouth_shape,
                                      triangle_map)
from avatar.render.reenact import FaceReRenderer

JAWS = (0.0, 0.3, 0.6)  # the enrolled "video": the portrait rendered with these jaw openings


def _frame(**actions):
    seq = MotionSeq.neutral(1, 25)
    for name, value in actions.items():
        seq.set_action(name, value)
    return seq[0]


@pytest.fixture(scope="module")
def tracker():
    from avatar.face.tracker import FaceTracker

    with FaceTracker(static=True, max_faces=1) as t:
        yield t


def _track(tracker, image) -> np.ndarray:
    return tracker.detect(image)[0].landmarks


def _opening(tracker, image) -> float:
    return float(mouth_opening(_track(tracker, image)[None])[0])


@pytest.fixture(scope="module")
def enrolled(renderer, tracker):
    """[(frame, tracked landmarks)] for each jaw opening in JAWS."""
    frames = [renderer.render(_frame(jawOpen=j)) for j in JAWS]
    return [(f, _track(tracker, f)) for f in frames]


@pytest.fixture(scope="module")
def bank(enrolled):
    return MouthBank.from_frames(enrolled)


@pytest.fixture(scope="module")
def lips(bank):
    return FaceReRenderer(bank)


def test_closing_an_open_mouth(lips, enrolled, tracker):
    frame, landmarks = enrolled[-1]
    assert _opening(tracker, frame) > 0.1
    closed = lips.render(frame, landmarks, _frame())
    assert _opening(tracker, closed) < 0.03


def test_opening_a_closed_mouth(lips, enrolled, tracker):
    frame, landmarks = enrolled[0]
    assert _opening(tracker, frame) < 0.03
    opened = lips.render(frame, landmarks, _frame(jawOpen=0.6))
    assert _opening(tracker, opened) > 0.08


def test_only_the_lower_face_changes(lips, enrolled, face_obs):
    frame, landmarks = enrolled[1]
    out = lips.render(frame, landmarks, _frame(jawOpen=0.6))
    changed = np.abs(out.astype(int) - frame.astype(int)).max(-1) > 0
    assert changed.sum() > 200
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = face_obs.box
    fw = face_obs.face_width
    eyes = landmarks[topo.EYE_L_RING + topo.EYE_R_RING, 1].max()
    assert ys.min() > eyes  # eyes, brows and everything above are untouched
    assert xs.min() > x0 - 0.3 * fw and xs.max() < x1 + 0.3 * fw
    assert ys.max() < y1 + 0.6 * fw
    keep = np.ones(changed.shape, bool)
    keep[int(eyes):int(y1 + 0.6 * fw), int(x0 - 0.3 * fw):int(x1 + 0.3 * fw)] = False
    assert np.array_equal(out[keep], frame[keep])  # exactly, not nearly


def test_a_frame_without_a_face_is_returned_unchanged(lips, enrolled):
    frame, _ = enrolled[0]
    out = lips.render(frame, np.full((478, 3), np.nan), _frame(jawOpen=0.5))
    assert np.array_equal(out, frame) and out is not frame


def test_a_face_cut_by_the_frame_edge(lips, enrolled):
    frame, landmarks = enrolled[0]
    chin = int(landmarks[topo.CHIN, 1])
    cut = np.ascontiguousarray(frame[: chin - 5])  # the frame ends just above the chin
    out = lips.render(cut, landmarks, _frame(jawOpen=0.5))
    assert out.shape == cut.shape and not np.array_equal(out, cut)
    eyes = int(landmarks[topo.EYE_L_RING + topo.EYE_R_RING, 1].max())
    gone = np.ascontiguousarray(frame[:eyes])  # nothing below the eyes in view
    assert np.array_equal(lips.render(gone, landmarks, _frame(jawOpen=0.5)), gone)


def test_the_bank_keeps_open_mouths_and_the_rest_face(bank, enrolled):
    assert len(bank) == 2  # the two open frames; the closed one has no interior
    rest_gap = mid_opening(mouth_shape(bank.rest))
    assert rest_gap < 0.02  # the rest face is the closed frame
    closed_canonical = canonical_face(enrolled[0][1])[0]
    assert np.abs(bank.rest - closed_canonical).max() < 1e-4


def test_lookup_picks_the_entry_with_the_nearest_opening(bank, enrolled):
    for _, landmarks in enrolled[1:]:
        key = mouth_shape(canonical_face(landmarks)[0])
        found = bank.lookup(key)
        assert found is not None and abs(mid_opening(bank.keys[found]) - mid_opening(key)) < 1e-6


def test_lookup_keeps_the_current_entry_while_it_is_close():
    def key(gap):  # a uniform opening of ``gap`` face widths, mouth 0.45 wide
        return np.r_[np.full(9, gap), 0.45].astype(np.float32)

    gaps = (0.04, 0.08, 0.12)
    bank = MouthBank(np.zeros((3, 32, 64, 3), np.uint8), np.stack([key(g) for g in gaps]))
    assert bank.lookup(key(0.075)) == 1 and bank.lookup(key(0.11)) == 2
    assert bank.lookup(key(0.062)) == 1  # nearer the second entry ...
    assert bank.lookup(key(0.062), current=0) == 0  # ... but the first one is still close
    assert bank.lookup(key(0.07), current=0) == 1  # not any more
    assert bank.lookup(key(0.25)) is None  # nothing like it: the synthetic interior is used


def test_the_bank_interior_replaces_the_synthetic_one(bank, enrolled):
    frame, landmarks = enrolled[0]
    target = _frame(jawOpen=0.6)
    lips = FaceReRenderer(bank)
    real = lips.render(frame, landmarks, target)
    synthetic = FaceReRenderer(rest=bank.rest).render(frame, landmarks, target)
    differs = np.abs(real.astype(int) - synthetic.astype(int)).max(-1)
    assert (differs > 30).sum() > 50  # another interior ...
    ring = lips.target(lips.face(landmarks), target.actions)[1][topo.LIPS_INNER_RING]
    ys, xs = np.nonzero(differs)
    assert xs.min() >= ring[:, 0].min() - 3 and xs.max() <= ring[:, 0].max() + 3  # ... and only it
    assert ys.min() >= ring[:, 1].min() - 3 and ys.max() <= ring[:, 1].max() + 3


def test_a_new_bank_entry_fades_in(bank, enrolled):
    frame, landmarks = enrolled[0]
    probe = FaceReRenderer(rest=bank.rest)
    face = probe.face(landmarks)
    targets = [_frame(jawOpen=0.3), _frame(jawOpen=0.6)]
    keys = np.stack([mouth_shape(probe.target(face, t.actions)[0]) for t in targets])
    dark, light = 40, 220
    patches = np.stack([np.full(bank.patches.shape[1:], v, np.uint8) for v in (dark, light)])
    lips = FaceReRenderer(MouthBank(patches, keys, bank.rest))

    def centre(target):
        out = lips.render(frame, landmarks, target)
        x, y = lips.target(face, target.actions)[1][[13, 14]].mean(0).round().astype(int)
        return out[y - 1: y + 2, x - 1: x + 2].mean()

    values = [centre(targets[0])] + [centre(targets[1]) for _ in range(4)]
    assert abs(values[0] - dark) < 3 and abs(values[-1] - light) < 3
    assert values[0] < values[1] < values[2] < values[3] == values[4]  # a cross-fade, then steady


def test_lip_coloured_interiors_are_not_stored():
    import cv2

    from avatar.render.mouth_bank import PATCH_SIZE, lens, looks_like_lips

    w, h = PATCH_SIZE
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(lens()).astype(np.int32)], 1)

    def patch(interior):
        out = np.empty((h, w, 3), np.uint8)
        out[:] = (180, 90, 90)  # the lips around
        out[inside > 0] = interior
        return out

    assert looks_like_lips(patch((170, 70, 80)))  # lip or tongue filling the ring
    assert not looks_like_lips(patch((40, 20, 20)))  # a dark cavity
    assert not looks_like_lips(patch((220, 215, 210)))  # teeth


def test_bank_round_trip_and_malformed_arrays(bank):
    arrays = bank.save_arrays()
    again = MouthBank.from_arrays({k: np.array(v) for k, v in arrays.items()})
    assert np.array_equal(again.patches, bank.patches) and np.array_equal(again.keys, bank.keys)
    assert np.array_equal(again.rest, bank.rest)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    with pytest.raises(AvatarError):
        MouthBank.from_arrays({"patches": arrays["patches"][:, :5], "keys": arrays["keys"]})
    with pytest.raises(AvatarError):
        MouthBank.from_arrays({"keys": arrays["keys"]})
    empty = MouthBankBuilder().build()
    assert len(empty) == 0 and empty.rest is None and empty.lookup(np.zeros(10)) is None


def test_triangle_map_inverts_an_affine_warp_exactly():
    rng = np.random.default_rng(0)
    dst = np.r_[rng.uniform(5, 55, (20, 2)), [[0, 0], [59, 0], [0, 39], [59, 39]]]
    from scipy.spatial import Delaunay

    tris = Delaunay(dst).simplices
    A = np.array([[1.05, 0.1], [-0.05, 0.95]])
    src = dst @ A.T + 3.0
    smap, covered = triangle_map(src, dst, tris, (40, 60))
    grid = np.stack(np.meshgrid(np.arange(60), np.arange(40)), -1)
    err = np.linalg.norm(smap - (grid @ A.T + 3.0), axis=-1)
    assert covered.all() and np.percentile(err, 99) < 1e-3 and err.max() < 0.1
