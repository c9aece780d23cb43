"""Transition frames at a jump (TANGO §3.3): background homography, in-between frames,
frame-quality measures. Synthetic frames only: a textured background, a moving "person"."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatar.errors import AvatarError
from avatar.metrics.frames import psnr, ssim
from avatar.render.homography import (apply_homography, background_homography, homography_flow,
                                      match_background)
from avatar.render.transition import Timing, alphas, along_bones, crossfade, estimate_jump, in_between

SIZE = (240, 320)  # (H, W) of the synthetic frames
SQUARE = 60  # px side of the textured "person" square


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


def texture(size: tuple[int, int], seed: int, cell: int = 8) -> np.ndarray:
    """RGB uint8 random blocks with a few circles and lines: plenty of corners for SIFT."""
    rng = np.random.default_rng(seed)
    h, w = size
    blocks = rng.integers(0, 256, (h // cell + 1, w // cell + 1, 3)).astype(np.uint8)
    img = cv2.resize(blocks, (w // cell * cell + cell, h // cell * cell + cell), interpolation=cv2.INTER_NEAREST)
    img = np.ascontiguousarray(img[:h, :w])
    for _ in range(12):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, centre, int(rng.integers(5, 25)), rng.integers(0, 256, 3).tolist(), 2)
        end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, centre, end, rng.integers(0, 256, 3).tolist(), 2)
    return cv2.GaussianBlur(img, (3, 3), 0.7)


def with_square(background: np.ndarray, x: float, y: float, patch: np.ndarray):
    """The background with ``patch`` at (x, y) (sub-pixel), its mask and its corner keypoints."""
    h, w = background.shape[:2]
    move = np.float32([[1, 0, x], [0, 1, y]])
    frame = background.copy()
    placed = cv2.warpAffine(patch, move, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones(patch.shape[:2], np.float32), move, (w, h), flags=cv2.INTER_LINEAR)
    frame = (frame * (1 - mask[..., None]) + placed * mask[..., None]).round().astype(np.uint8)
    s = patch.shape[0]
    pose = np.array([[x, y], [x + s, y], [x, y + s], [x + s, y + s], [x + s / 2, y + s / 2]])
    return frame, mask, pose


def known_homography() -> np.ndarray:
    """b -> a: 2 degree rotation, 3 % zoom and a shift about the image centre."""
    h, w = SIZE
    c, s = 1.03 * np.cos(np.radians(2)), 1.03 * np.sin(np.radians(2))
    centre = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
    turn = np.array([[c, -s, 5.0], [s, c, -3.0], [0, 0, 1]])
    return centre @ turn @ np.linalg.inv(centre)


def scaled(H: np.ndarray, k: float) -> np.ndarray:
    S = np.diag([k, k, 1.0])
    return S @ H @ np.linalg.inv(S)


# -- homography ---------------------------------------------------------------------------

@pytest.mark.parametrize("zoom", [1, 3])  # 3: 720x960 frames, matched on a downscaled copy
def test_background_homography_recovers_a_known_warp(zoom):
    size = (SIZE[0] * zoom, SIZE[1] * zoom)
    H = scaled(known_homography(), zoom)
    scene = texture(size, seed=1)
    b_bg = cv2.warpPerspective(scene, H, size[::-1], flags=cv2.WARP_INVERSE_MAP)  # b(x) = a(H x)
    person = texture((SQUARE * zoom, SQUARE * zoom), seed=2)
    a, mask_a, _ = with_square(scene, 40 * zoom, 60 * zoom, person)
    b, mask_b, _ = with_square(b_bg, 150 * zoom, 90 * zoom, person)  # the person moved
    fit = match_background(a, b, mask_a, mask_b)
    assert fit.matrix is not None and not fit.static and fit.inliers >= 20
    inner = np.array([[x, y] for x in np.linspace(40, 280, 5) for y in np.linspace(40, 200, 5)]) * zoom
    err = np.linalg.norm(apply_homography(fit.matrix, inner) - apply_homography(H, inner), axis=1)
    assert err.max() < 1.0 * zoom, err.max()  # within a pixel of the matching resolution


def test_background_homography_is_identity_for_equal_frames():
    a, mask, _ = with_square(texture(SIZE, seed=3), 100, 80, texture((SQUARE, SQUARE), seed=4))
    H = background_homography(a, a.copy(), mask, mask)
    np.testing.assert_allclose(H, np.eye(3), atol=1e-9)


def test_background_homography_none_without_texture():
    flat = np.full((*SIZE, 3), 128, np.uint8)
    assert background_homography(flat, flat.copy()) is None


def test_homography_flow_is_the_offset_of_every_pixel():
    H = known_homography()
    flow = homography_flow(H, SIZE)  # (h, w, 2)
    assert flow.shape == (*SIZE, 2)
    for x, y in [(0, 0), (319, 0), (160, 120), (17, 203)]:
        np.testing.assert_allclose(flow[y, x], apply_homography(H, [[x, y]])[0] - [x, y], atol=1e-4)
    shift = np.array([[1, 0, 4.5], [0, 1, -2.0], [0, 0, 1]])
    np.testing.assert_allclose(homography_flow(shift, SIZE), np.broadcast_to([4.5, -2.0], (*SIZE, 2)), atol=1e-5)


# -- in-between frames ----------------------------------------------------------------------

def moving_square(n: int, zoom: int = 1):
    """Frames a, b and the true in-betweens of a textured square sliding over a background."""
    size = (SIZE[0] * zoom, SIZE[1] * zoom)
    scene, patch = texture(size, seed=5, cell=8 * zoom), texture((SQUARE * zoom,) * 2, seed=6, cell=6 * zoom)
    start, end = np.array([40.0, 60.0]) * zoom, np.array([150.0, 100.0]) * zoom

    def at(t: float):
        return with_square(scene, *(start + t * (end - start)), patch)

    return at(0.0), at(1.0), [at(t)[0] for t in alphas(n)]


def test_alphas_are_evenly_spaced_inside():
    np.testing.assert_allclose(alphas(3), [0.25, 0.5, 0.75])
    assert len(alphas(0)) == 0


def test_in_between_of_equal_frames_is_that_frame():
    (a, mask, pose), _, _ = moving_square(1)
    frames = in_between(a, a.copy(), 4, pose, pose, mask, mask)
    assert len(frames) == 4
    for f in frames:
        assert f.dtype == np.uint8 and f.shape == a.shape
        assert np.abs(f.astype(int) - a).max() <= 1


@pytest.mark.parametrize("zoom", [1, 2])  # 2: 480x640 frames, flow at half resolution
def test_in_between_puts_a_moving_square_at_the_interpolated_place(zoom):
    n = 3
    (a, mask_a, pose_a), (b, mask_b, pose_b), truth = moving_square(n, zoom)
    made = in_between(a, b, n, pose_a, pose_b, mask_a, mask_b)
    faded = crossfade(a, b, n)
    for m, f, t in zip(made, faded, truth):
        assert psnr(m, t) > psnr(f, t) + 8.0, (psnr(m, t), psnr(f, t))
        assert ssim(m, t) > 0.97 > ssim(f, t)


def test_in_between_follows_the_pose_where_the_flow_cannot():
    """A flat-coloured square has nothing for optical flow to lock on inside: the keypoints carry it."""
    n = 1
    scene = texture(SIZE, seed=7)
    patch = np.full((SQUARE, SQUARE, 3), (200, 40, 40), np.uint8)
    a, mask_a, pose_a = with_square(scene, 40, 60, patch)
    b, mask_b, pose_b = with_square(scene, 140, 100, patch)
    truth, _, _ = with_square(scene, 90, 80, patch)
    made = in_between(a, b, n, pose_a, pose_b, mask_a, mask_b)[0]
    inside = slice(80 + 10, 80 + SQUARE - 10), slice(90 + 10, 90 + SQUARE - 10)
    assert np.abs(made[inside].astype(int) - (200, 40, 40)).max() < 30  # the square is there, solid
    assert psnr(made, truth) > psnr(crossfade(a, b, n)[0], truth) + 5.0


def test_in_between_keeps_the_background_still_under_a_camera_move():
    """b's camera is shifted; the background must glide rigidly (homography), not cross-fade."""
    n = 3
    scene = texture((SIZE[0], SIZE[1] + 40), seed=8)

    def view(dx: int) -> np.ndarray:  # the camera panned by dx px
        return np.ascontiguousarray(scene[:, 20 + dx : 20 + dx + SIZE[1]])

    patch = texture((SQUARE, SQUARE), seed=9)
    a, mask_a, pose_a = with_square(view(0), 60, 60, patch)
    b, mask_b, pose_b = with_square(view(12), 60, 60, patch)  # camera panned 12 px, person still
    jump = estimate_jump(a, b, pose_a, pose_b, mask_a, mask_b)
    assert jump.homography_found
    np.testing.assert_allclose(jump.b_to_a[:2, 2], [12, 0], atol=0.3)
    made = in_between(a, b, n, pose_a, pose_b, mask_a, mask_b, b_to_a=jump.b_to_a)
    for m, f, t in zip(made, crossfade(a, b, n), alphas(n)):
        true_bg = cv2.warpAffine(view(0), np.float32([[1, 0, -12 * t], [0, 1, 0]]), SIZE[::-1], flags=cv2.INTER_LINEAR)
        away = (slice(20, 220), slice(200, 290))  # background, clear of the person and the borders
        assert psnr(m[away], true_bg[away]) > psnr(f[away], true_bg[away]) + 6.0


def test_timing_is_linear_by_default_and_follows_the_boundary_speeds():
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose([Timing().at(x) for x in t], t, atol=1e-12)
    pose_a, pose_b = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[90.0, 0.0], [100.0, 0.0]])
    step = (pose_b - pose_a) / 9  # n = 8: the jump spans 9 frame steps
    assert Timing.from_poses(pose_a, pose_b, None, pose_b, 8) == Timing()
    steady = Timing.from_poses(pose_a, pose_b, pose_a - step, pose_b + step, 8)
    assert steady.start == pytest.approx(1.0) and steady.end == pytest.approx(1.0)
    braking = Timing.from_poses(pose_a, pose_b, pose_a - 2 * step, pose_b, 8)  # fast out of a, still at b
    assert braking.start == pytest.approx(2.0) and braking.end == pytest.approx(0.0)
    s = [braking.at(x) for x in t]
    assert s[0] == 0.0 and s[-1] == pytest.approx(1.0) and s[5] > 0.6 and np.all(np.diff(s) >= 0)
    wild = Timing.from_poses(pose_a, pose_b, pose_a - 9 * step, pose_b + 9 * step, 8)  # capped: monotone
    assert np.hypot(wild.start, wild.end) == pytest.approx(3.0)
    assert np.all(np.diff([wild.at(x) for x in np.linspace(0, 1, 101)]) >= -1e-12)


def test_in_between_times_the_motion_by_the_neighbouring_poses():
    """A square that leaves a fast and stops at b: the timed frames beat the linear ones."""
    n = 3
    scene, patch = texture(SIZE, seed=11), texture((SQUARE, SQUARE), seed=12, cell=6)
    start, end = np.array([40.0, 60.0]), np.array([150.0, 100.0])
    timing = Timing(2.0, 0.0)

    def at(s: float):
        return with_square(scene, *(start + s * (end - start)), patch)

    (a, mask_a, pose_a), (b, mask_b, pose_b) = at(0.0), at(1.0)
    step = (pose_b - pose_a) / (n + 1)
    timed = in_between(a, b, n, pose_a, pose_b, mask_a, mask_b, pose_before=pose_a - 2 * step, pose_after=pose_b)
    linear = in_between(a, b, n, pose_a, pose_b, mask_a, mask_b)
    for k, t in enumerate(alphas(n)):
        truth = at(timing.at(t))[0]
        assert psnr(timed[k], truth) > psnr(linear[k], truth) + 3.0


def test_along_bones_adds_points_that_blend_with_the_ends():
    pose_a = np.array([[0.0, 0.0], [100.0, 0.0], [np.nan, np.nan]])
    pose_b = np.array([[0.0, 50.0], [100.0, 50.0], [5.0, 5.0]])
    more_a, more_b = along_bones(pose_a, pose_b, [(0, 1), (1, 2)], step=25.0)
    assert len(more_a) == 3 + 3  # bone (1, 2) has an unseen end: skipped
    np.testing.assert_allclose(more_a[3:], [[25, 0], [50, 0], [75, 0]])
    np.testing.assert_allclose(more_b[3:] - more_a[3:], np.broadcast_to([0, 50], (3, 2)))


def test_in_between_rejects_mismatched_inputs():
    (a, mask, pose), _, _ = moving_square(1)
    with pytest.raises(AvatarError):
        in_between(a, a[:100], 2, pose, pose, mask, mask)
    with pytest.raises(AvatarError):
        in_between(a, a, 2, pose, pose[:3], mask, mask)


# -- frame metrics --------------------------------------------------------------------------

def test_psnr_known_values():
    a = np.zeros((20, 30, 3), np.uint8)
    assert psnr(a, a.copy()) == float("inf")
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255**2 / 100))


def test_ssim_known_values():
    img = texture((64, 64), seed=10)
    assert ssim(img, img.copy()) == pytest.approx(1.0)
    x, y = np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2  # flat frames: only the luminance term is left
    assert ssim(x, y) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-6)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(img, noisy) < 0.9
    assert ssim(img, noisy) == pytest.approx(ssim(noisy, img))
    with pytest.raises(AvatarError):
        ssim(img, img[:10])
