"""Lip sync measured on the OUTPUT video: the face mesh is run on every rendered frame.

    python benchmarks/bench_lipsync.py [--image PHOTO ...] [--seed 0]

Speech is synthesised by the built-in TTS, so its phone timings are exact. Prints, per
portrait: the share of p/b/m phones during which the mouth is closed (goal >= 90%) and the
correlation of mouth opening with loudness.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import avatar
from avatar.image import bundled_portrait
from avatar.face.tracker import FaceTracker
from avatar.metrics.lipsync import bilabial_closure, mouth_opening, opening_energy_correlation
from avatar.video.reader import iter_frames

TEXT = ("Maybe my mom bought a big blue umbrella. Bob and Pam met him by the pump. "
        "Please move the map above the bed, then open both windows for me.")


def track_video(path) -> np.ndarray:
    """(T, 478, 3) landmarks of every frame (NaN where no face was found).

    Every frame is tracked on its own (static mode): MediaPipe's video mode smooths
    landmarks over time and would blur one-frame closures that are in the video."""
    rows = []
    with FaceTracker(static=True, max_faces=1) as tracker:
        for frame in iter_frames(path):
            faces = tracker.detect(frame)
            rows.append(faces[0].landmarks if faces else np.full((478, 3), np.nan, np.float32))
    return np.stack(rows)


def measure(image, seed: int, workdir: Path) -> dict:
    out = workdir / "lipsync.mp4"
    result = avatar.speak(image, out, text=TEXT, seed=seed)
    opening = mouth_opening(track_video(out))
    assert len(opening) == result.num_frames == result.features.num_frames
    ok = ~np.isnan(opening)
    closure, n = bilabial_closure(np.where(ok, opening, np.inf), result.speech.phones, result.motion.fps)
    corr = opening_energy_correlation(opening[ok], result.features.energy[ok])
    return dict(closure=closure, bilabials=n, corr=corr, tracked=ok.mean(), frames=len(opening))


def reference(video) -> float:
    """The same opening~loudness correlation on a real talking-face video, for scale."""
    from avatar.audio.features import extract_features
    from avatar.video.reader import probe, read_audio_track

    info = probe(video)
    opening = mouth_opening(track_video(video))
    features = extract_features(read_audio_track(video, 16000), info.fps, num_frames=len(opening))
    ok = ~np.isnan(opening)
    return opening_energy_correlation(opening[ok], features.energy[ok])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", nargs="*", default=[str(bundled_portrait())])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", nargs="*", default=[], metavar="VIDEO",
                    help="real talking-face videos: their opening~loudness correlation, for scale")
    args = ap.parse_args()
    for video in args.reference:
        print(f"reference {Path(video).name}: opening~loudness r = {reference(video):.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for image in args.image:
            m = measure(image, args.seed, Path(tmp))
            print(f"{Path(image).name}: p/b/m closed {100 * m['closure']:.1f}% of {m['bilabials']} phones; "
                  f"opening~loudness r = {m['corr']:.2f}; face tracked in {100 * m['tracked']:.0f}% "
                  f"of {m['frames']} frames")


if __name__ == "__main__":
    main()
