"""The gesture path (TANGO) on real upper-body videos, with held-out time.

    python benchmarks/bench_gesture.py [VIDEO ...] [--holdout 0.2] [--work DIR]
    python benchmarks/bench_gesture.py VIDEO --long-minutes 3   # enrolment time of a long video

Per video: enroll the first (1 - holdout) of it, then speak the held-out soundtrack with
the avatar and compare the result with what the person really did in that time:
beat consistency (audio onsets vs. the slowest moments of the body) and diversity of the
generated vs. the real motion, with a random walk through the same graph as a baseline;
lip sync on the output video (the face mesh run on every output frame; p/b/m closure
against TTS phones, which are exact); time to enrol and to generate per second of speech.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from avatar.audio.io import save_wav
from avatar.audio.types import Audio
from avatar.body.joints import joint_positions
from avatar.body.tracker import BodyTracker
from avatar.body.types import BodyTrack
from avatar.config import GESTURE
from avatar.face.tracker import FaceTracker
from avatar.gesture.enroll import EnrollOptions, enroll
from avatar.gesture.speak import Plan, plan_video, speak_avatar
from avatar.metrics.gesture import audio_beats, beat_consistency, diversity, motion_beats
from avatar.metrics.lipsync import bilabial_closure, mouth_opening, opening_energy_correlation
from avatar.video.reader import iter_frames, probe, read_audio_track
from avatar.video.writer import VideoWriter

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "upper_body"
LIP_TEXT = ("Maybe my mom bought a big blue umbrella. Bob and Pam met him by the pump. "
            "Please move the map above the bed, then open both windows for me.")


def held_out_track(path: Path, start: int, stop: int) -> BodyTrack:
    """Body tracking of frames [start, stop) (what the person really did then)."""
    frames = []
    info = probe(path)
    with BodyTracker() as tracker:
        for i, frame in enumerate(iter_frames(path)):
            if i >= stop:
                break
            if i >= start:
                frames.append(tracker.process(frame))
        shape = tracker.mask_shape((info.width, info.height))
    return BodyTrack.from_frames(frames, info.fps, (info.width, info.height), shape)


def plan_positions(positions: np.ndarray, plan: Plan) -> np.ndarray:
    """(T, J, 3) joint positions of the output: real frames' joints, blended in transitions."""
    out = positions[plan.source].copy()
    for t in plan.transitions:
        w = (np.arange(1, t.stop - t.start + 1) / (t.stop - t.start + 1))[:, None, None]
        out[t.start:t.stop] = (1 - w) * positions[t.before] + w * positions[t.after]
    return out


def gesture_figures(positions: np.ndarray, onset: np.ndarray, fps: float) -> dict:
    beats = audio_beats(onset, fps)
    return {"BC": beat_consistency(beats, motion_beats(positions, fps)),
            "diversity": diversity(positions, fps)}


def face_openings(path: Path) -> np.ndarray:
    """(T,) mouth opening of every output frame, each tracked on its own."""
    rows = []
    with FaceTracker(static=True, max_faces=1) as tracker:
        for frame in iter_frames(path):
            faces = tracker.detect(frame)
            rows.append(faces[0].landmarks if faces else np.full((478, 3), np.nan, np.float32))
    return mouth_opening(np.stack(rows))


def lip_sync(bundle, work: Path) -> dict:
    out = work / f"{bundle.name}_lips.mp4"
    result = speak_avatar(bundle.folder, out, text=LIP_TEXT, seed=0, progress=False)
    opening = face_openings(out)
    ok = np.isfinite(opening)
    closure, n = bilabial_closure(np.where(ok, opening, np.inf), result.speech.phones, bundle.fps)
    r = opening_energy_correlation(opening[ok], result.features.energy[ok])
    return {"bilabial_closed": closure, "bilabials": n, "open_loud_r": r, "face_tracked": float(ok.mean())}


def bench_video(path: Path, holdout: float, work: Path, minutes: float | None) -> dict:
    info = probe(path)
    k = GESTURE.node_frames
    split = int(info.num_frames * (1 - holdout)) // k * k
    name = path.stem.split("_")[0]
    t0 = time.perf_counter()
    bundle = enroll(path, EnrollOptions(name=name, folder=work / name, force=True, train_minutes=minutes,
                                        frame_range=(0, split), progress=False), log=print)
    enroll_seconds = time.perf_counter() - t0
    audio = read_audio_track(path)
    rate = audio.sample_rate
    held = Audio(audio.samples[round(split / info.fps * rate): round(info.num_frames / info.fps * rate)], rate)
    wav = work / f"{name}_heldout.wav"
    save_wav(held, wav)
    result = speak_avatar(bundle.folder, work / f"{name}_heldout.mp4", audio=wav, seed=0, progress=False)
    positions = joint_positions(bundle.body)
    onset = result.features.onset
    generated = gesture_figures(plan_positions(positions, result.plan), onset, info.fps)
    rng = np.random.default_rng(0)
    random_plan = plan_video(bundle, rng.standard_normal((len(result.plan.nodes), bundle.graph.num_nodes)),
                             result.plan.num_frames, jump_penalty=0.0)
    baseline = gesture_figures(plan_positions(positions, random_plan), onset, info.fps)
    real_positions = joint_positions(held_out_track(path, split, info.num_frames))
    real = gesture_figures(real_positions[: len(onset)], onset[: len(real_positions)], info.fps)
    speech_seconds = held.duration
    return {"video": name, "enrolled_s": split / info.fps, "heldout_s": speech_seconds,
            "enroll_s": enroll_seconds, "stages": bundle.report.seconds, "graph": bundle.report.graph,
            "dead_ends": bundle.report.dead_ends, "training": bundle.report.training,
            "generate_s_per_s": result.timings["total"] / speech_seconds, "timings": result.timings,
            "jumps_per_s": result.plan.jumps / speech_seconds,
            "generated": generated, "random_walk": baseline, "real": real, **lip_sync(bundle, work)}


def long_video(path: Path, minutes: float, work: Path) -> Path:
    """``minutes`` of video made by playing ``path`` forwards and backwards (timing only)."""
    info = probe(path)
    frames = list(iter_frames(path))
    audio = read_audio_track(path)
    loop = frames + frames[::-1]
    total = int(minutes * 60 * info.fps)
    samples = np.resize(np.concatenate([audio.samples, audio.samples[::-1]]),
                        round(total / info.fps * audio.sample_rate))
    out = work / "long.mp4"
    with VideoWriter(out, info.width, info.height, fps=info.fps,
                     audio=Audio(samples.astype(np.float32), audio.sample_rate)) as writer:
        for i in range(total):
            writer.write(loop[i % len(loop)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out share at each video's end")
    parser.add_argument("--minutes", type=float, help="AuMoCLIP training budget (default: enroll's)")
    parser.add_argument("--long-minutes", type=float, help="only time enrolling a video this long")
    parser.add_argument("--work", type=Path, help="folder for bundles and outputs (default: temporary)")
    args = parser.parse_args()
    videos = args.videos or sorted(DEFAULT_VIDEOS.glob("*.mp4"))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_gesture_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.long_minutes:
        long = long_video(videos[0], args.long_minutes, work)
        t0 = time.perf_counter()
        bundle = enroll(long, EnrollOptions(name="long", folder=work / "long", force=True, progress=True), log=print)
        print(f"enrolled {bundle.num_frames / bundle.fps / 60:.1f} min of {bundle.size[0]}x{bundle.size[1]} "
              f"video in {(time.perf_counter() - t0) / 60:.1f} min; stages (s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in bundle.report.seconds.items()))
        return
    for video in videos:
        r = bench_video(video, args.holdout, work, args.minutes)
        print(f"\n== {r['video']}: enrolled {r['enrolled_s']:.1f} s in {r['enroll_s']:.0f} s ("
              + ", ".join(f"{k} {v:.0f}" for k, v in r["stages"].items()) + ")")
        print(f"graph {r['graph']}; dead ends {r['dead_ends']}")
        print(f"AuMoCLIP {r['training']}")
        print(f"held-out speech {r['heldout_s']:.1f} s: generation {r['generate_s_per_s']:.2f} s per s of speech "
              f"({', '.join(f'{k} {v:.1f}' for k, v in r['timings'].items())}); {r['jumps_per_s']:.2f} jumps/s")
        for label in ("generated", "random_walk", "real"):
            f = r[label]
            print(f"  {label:12s} BC {f['BC']:.3f}  diversity {f['diversity']:.3f} m")
        print(f"lip sync (TTS text, output tracked): p/b/m closed {r['bilabial_closed']:.0%} of {r['bilabials']}, "
              f"opening~loudness r {r['open_loud_r']:.2f}, face found in {r['face_tracked']:.0%} of frames")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
