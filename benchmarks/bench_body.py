"""Body tracking speed: ms per frame per model, and how often each part is found.

    python benchmarks/bench_body.py VIDEO [VIDEO ...] [--frames 300] [--save DIR]

Streams each video through :class:`avatar.body.tracker.BodyTracker` (video mode) with
OpenCV on one thread, and prints decode / pose+mask / hands / face / total ms per frame
(CPU time of all threads; the elapsed "total wall" as well),
plus the share of frames with a person, each hand and a face. ``--save DIR`` also writes
each track as ``DIR/<stem>.npz`` (BodyTrack.save_arrays keys).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import cv2
import numpy as np

from avatar.body.tracker import BodyTracker
from avatar.body.types import LEFT, RIGHT, BodyTrack
from avatar.video.reader import iter_frames, probe


def bench(path: Path, max_frames: int | None) -> tuple[BodyTrack, dict[str, float]]:
    """Track up to ``max_frames`` frames; return the track and ms/frame per stage (CPU time of
    all threads, so a busy machine does not inflate it; "total wall" is the elapsed time)."""
    info = probe(path)
    frames, decode = [], 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    with BodyTracker(static=False) as tracker:
        stream = itertools.islice(iter_frames(path), max_frames)
        while True:
            t0 = time.process_time()
            frame = next(stream, None)
            decode += time.process_time() - t0
            if frame is None:
                break
            frames.append(tracker.process(frame))
        mask_shape = tracker.mask_shape((info.width, info.height))
        stages = {"decode": decode, **tracker.timings}
    stages["total CPU"] = time.process_time() - cpu_start
    stages["total wall"] = time.perf_counter() - start
    track = BodyTrack.from_frames(frames, info.fps, (info.width, info.height), mask_shape)
    return track, {k: 1000 * v / max(len(frames), 1) for k, v in stages.items()}


def _share(values: np.ndarray) -> float:
    """Share of finite entries."""
    return float(np.isfinite(values).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--frames", type=int, default=None, help="frames per video (default: all)")
    ap.add_argument("--save", default=None, help="folder to write <stem>.npz tracks into")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    for video in map(Path, args.videos):
        track, ms = bench(video, args.frames)
        print(f"{video.stem}: {track.num_frames} frames {track.size[0]}x{track.size[1]} | "
              + " ".join(f"{k} {v:.1f}" for k, v in ms.items()) + " ms/frame | "
              f"person {_share(track.world[:, 0, 0]):.0%} left hand {_share(track.hands[:, LEFT, 0, 0]):.0%} "
              f"right hand {_share(track.hands[:, RIGHT, 0, 0]):.0%} face {_share(track.face[:, 0, 0]):.0%}")
        if args.save:
            np.savez(Path(args.save) / f"{video.stem}.npz", **track.save_arrays())


if __name__ == "__main__":
    main()
