"""Cost of the body warp (avatar.render.body_warp) on top of the face warp, one core.

    python benchmarks/bench_body_warp.py [--image PHOTO ...] [--frames 200]

For the bundled portrait at 512x512 and 1080x1080, and for each ``--image`` at its own
resolution: the one-off setup (MediaPipe pose + the per-joint weight maps) and the ms per
frame of the face warp alone and of the body warp added to it (breathing plus a sideways
sway of the shoulders, arms following), with OpenCV and BLAS limited to one thread.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from avatar.image import bundled_portrait
from avatar.face.model import FaceModel
from avatar.face.tracker import largest_face
from avatar.image import load_image
from avatar.motion.types import MotionSeq
from avatar.render.body_warp import BodyWarp, detect_body, shows_body
from avatar.render.warp import WarpRenderer


def body_motion(n: int, fps: float = 25.0) -> np.ndarray:
    """(n, 8, 2) face widths: breathing at 0.25 Hz and a slow sway; elbows and wrists follow."""
    t = np.arange(n) / fps
    ub = np.zeros((n, 8, 2), np.float32)
    ub[:, 0:2, 1] = -0.015 * np.sin(2 * np.pi * 0.25 * t)[:, None]
    ub[:, 0:2, 0] = 0.02 * np.sin(2 * np.pi * 0.13 * t)[:, None]
    ub[:, 2:4] = 0.5 * ub[:, 0:2]
    ub[:, 4:6] = 0.25 * ub[:, 0:2]
    return ub


def _ms_per_frame(render, frames: int, blocks: int = 5) -> float:
    """Milliseconds per frame: the fastest of ``blocks`` passes over the frames (the least
    disturbed by other work on a shared machine)."""
    best = np.inf
    for _ in range(blocks):
        start = time.perf_counter()
        for i in range(frames):
            render(i)
        best = min(best, (time.perf_counter() - start) / frames)
    return 1000 * best


def bench(image: np.ndarray, frames: int, name: str) -> None:
    h, w = image.shape[:2]
    face = FaceModel.from_observation(largest_face(image, "bench"))
    renderer = WarpRenderer(image, face)
    motion = MotionSeq.neutral(frames, 25.0)
    motion.rotation[:, 0] = 0.08 * np.sin(np.arange(frames) / 25.0)
    motion.upper_body = body_motion(frames)
    t0 = time.perf_counter()
    pose = detect_body(image)
    t1 = time.perf_counter()
    if pose is None or not shows_body(pose, face, (w, h)):
        print(f"{name} {w}x{h}: no body in the photo (pose {1000 * (t1 - t0):.0f} ms): the body warp is off")
        return
    body = BodyWarp(pose, face, (w, h))
    t2 = time.perf_counter()
    rendered = [renderer.render(motion[i]) for i in range(min(frames, 20))]
    t_head = _ms_per_frame(lambda i: renderer.render(motion[i]), frames)
    body.apply(rendered[0].copy(), motion.upper_body[0])  # warm-up
    copies = [f.copy() for f in rendered]
    t_body = _ms_per_frame(lambda i: body.apply(copies[i % len(copies)], motion.upper_body[i]), frames)
    x0, y0, x1, y1 = body.box
    print(f"{name} {w}x{h}: setup pose {1000 * (t1 - t0):.0f} ms + weights {1000 * (t2 - t1):.0f} ms; "
          f"face warp {t_head:.1f} ms/frame, body warp +{t_body:.2f} ms/frame "
          f"(box {x1 - x0}x{y1 - y0}, {body.Bx.shape[2]}x{body.Bx.shape[1]} nodes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    threadpool_limits(limits=1, user_api="blas")
    photo = load_image(bundled_portrait())
    for side in (512, 1080):
        img = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < photo.shape[0] else cv2.INTER_CUBIC)
        bench(img, args.frames, f"bundled@{side}")
    for path in args.image:
        bench(load_image(path), args.frames, path.rsplit("/", 1)[-1])


if __name__ == "__main__":
    main()
