"""Render speed of the warp renderer: frames per second on one core.

    python benchmarks/bench_render.py [--image PHOTO] [--frames 300]

Renders a varied motion (speech-like mouth, blinks, head turns, gaze) at 512x512 and
1024x1024 (the photo resized) with OpenCV limited to one thread.
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
from avatar.render.warp import WarpRenderer


def varied_motion(n: int, fps: float = 25.0) -> MotionSeq:
    t = np.arange(n) / fps
    seq = MotionSeq.neutral(n, fps)
    seq.set_action("jawOpen", 0.3 * (1 + np.sin(2 * np.pi * 3.1 * t)) / 2)
    seq.set_action("mouthClose", 0.05 * (np.sin(2 * np.pi * 1.3 * t) > 0.8))
    seq.set_action("eyeBlinkL", (np.sin(2 * np.pi * 0.3 * t) > 0.95).astype(float))
    seq.set_action("eyeBlinkR", seq.action("eyeBlinkL"))
    seq.rotation[:] = np.c_[0.08 * np.sin(t), 0.05 * np.sin(1.7 * t), 0.03 * np.sin(0.9 * t)]
    seq.gaze[:] = np.c_[0.1 * np.sign(np.sin(0.5 * t)), 0 * t]
    return seq


def bench(image: np.ndarray, frames: int) -> tuple[float, float]:
    face = FaceModel.from_observation(largest_face(image, "bench"))
    t0 = time.perf_counter()
    renderer = WarpRenderer(image, face)
    setup = time.perf_counter() - t0
    motion = varied_motion(frames)
    renderer.render(motion[0])  # warm-up
    t0 = time.perf_counter()
    for i in range(len(motion)):
        renderer.render(motion[i])
    return frames / (time.perf_counter() - t0), setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(bundled_portrait()))
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    threadpool_limits(limits=1, user_api="blas")  # one core really means one core
    photo = load_image(args.image)
    for side in (512, 1024):
        img = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < photo.shape[0] else cv2.INTER_CUBIC)
        fps, setup = bench(img, args.frames)
        print(f"render {side}x{side}: {fps:7.1f} fps on one core (renderer setup {setup * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
