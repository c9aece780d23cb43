"""AuMoCLIP retrieval accuracy on real videos, on held-out time (TANGO §4.3, Table 3).

    python benchmarks/bench_retrieval.py [videos ...] [--tracks DIR] [--folds 5] [--minutes 2]

Per video: the saved body track (<tracks>/<stem>.npz, avatar.body's tracker) -> joint
features (T, J, 15); the audio track -> features + recognised phones -> audio_inputs. All
videos are resampled to GESTURE.reference_fps, so one model covers them all.

K-fold over time: fold f holds out the f-th 1/K of every video; the model trained on the
rest of all videos is tested on the held-out pieces only, each embedded on its own (no
training frame is even inside the receptive field). Low level: every held-out frame whose
whole search range is held out, plus the GVR-style onset baseline on the same queries.
High level: held-out audio windows (hop GESTURE.node_frames) against the paired motion
window and up to 255 other held-out motion windows of the same fold; windows of one piece
starting less than half a window apart are never each other's negatives. With 5 folds of
a 20 s video a held-out piece is a single 4 s window, so the high level gets its own run
with fewer, longer folds (--high-folds, default 2). Paper: low 65.7 %, high 19.5 %.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.config import GESTURE
from avatar.training.aumoclip import AuMoCLIPSettings

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "upper_body"
DEFAULT_TRACKS = Path(tempfile.gettempdir()) / "tango" / "tracks"  # body-track cache
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
VELOCITY = slice(3, 6)  # joint-feature channels of the velocity (TANGO App. A.3 layout)


@dataclass
class VideoData:
    """One video's paired per-frame inputs at the common frame rate."""

    name: str
    audio: np.ndarray  # (T, Fa) audio_inputs
    motion: np.ndarray  # (T, J, 15) joint features
    onset: np.ndarray  # (T,) audio onset strength (for the baseline)

    @property
    def speed(self) -> np.ndarray:
        """(T,) mean joint speed."""
        return np.linalg.norm(self.motion[:, :, VELOCITY], axis=-1).mean(1)


@dataclass(frozen=True)
class Piece:
    """Frames [start, end) of one video, held out or used for training in a fold."""

    video: int
    start: int
    end: int
    held_out: bool


@dataclass
class FoldResult:
    low: object  # RetrievalResult
    onset: object
    high: object  # candidates from every video's held-out piece
    high_same: object  # candidates from the query's own video only (what retrieval faces)
    embed_seconds: float
    embedded_frames: int
    train_seconds: float


# -- inputs -------------------------------------------------------------------------------
def resample_frames(x: np.ndarray, fps_from: float, fps_to: float) -> np.ndarray:
    """(T, ...) per-frame values linearly interpolated to ``fps_to``."""
    if fps_from == fps_to:
        return x
    T_new = int(round(len(x) * fps_to / fps_from))
    t_old, t_new = np.arange(len(x)) / fps_from, np.arange(T_new) / fps_to
    flat = x.reshape(len(x), -1)
    out = np.stack([np.interp(t_new, t_old, flat[:, c]) for c in range(flat.shape[1])], axis=1)
    return out.reshape((T_new,) + x.shape[1:]).astype(x.dtype)


def load_video(path: Path, tracks: Path, fps: float) -> VideoData:
    """Joint features from the saved body track and audio inputs with recognised phones."""
    from avatar.audio.align import default_aligner
    from avatar.audio.features import extract_features
    from avatar.audio.io import resample
    from avatar.audio.speech import cover_timeline
    from avatar.audio.types import Speech
    from avatar.audio.vad import voice_activity
    from avatar.body.joints import joint_features, joint_positions
    from avatar.body.types import BodyTrack
    from avatar.config import AUDIO
    from avatar.gesture.aumoclip import audio_inputs
    from avatar.video.reader import read_audio_track

    track = BodyTrack.from_arrays(np.load(tracks / f"{path.stem}.npz"), str(path))
    positions = resample_frames(joint_positions(track), track.fps, fps)  # (T, J, 3)
    motion = joint_features(positions, fps)  # (T, J, 15)
    T = len(motion)
    audio16 = resample(read_audio_track(path), AUDIO.sample_rate)
    features = extract_features(audio16, fps, num_frames=T, vad=voice_activity(audio16, fps, T))
    phones = cover_timeline(default_aligner().recognize(audio16), T / fps)
    speech = Speech(audio16, phones, phones_source="phone-recognition")
    return VideoData(path.stem, audio_inputs(features, speech), motion, features.onset)


# -- folds ----------------------------------------------------------------------------------
def fold_pieces(videos: list[VideoData], folds: int, fold: int) -> list[Piece]:
    """Held-out piece (the fold-th 1/folds of time) and training pieces of every video."""
    pieces = []
    for v, video in enumerate(videos):
        T = len(video.audio)
        lo, hi = round(fold * T / folds), round((fold + 1) * T / folds)
        pieces.append(Piece(v, lo, hi, True))
        pieces += [Piece(v, s, e, False) for s, e in ((0, lo), (hi, T)) if e > s]
    return pieces


def train_fold(videos, pieces, args):
    """AuMoCLIP trained on the training pieces of one fold."""
    from avatar.training.aumoclip import train_aumoclip

    settings = AuMoCLIPSettings(steps=args.steps, minutes=args.minutes, batch=args.batch, width=args.width,
                                embed_dim=args.width, stop_gradient=not args.no_stop_gradient,
                                global_weight=args.global_weight, dropout=args.dropout, noise=args.noise,
                                seed=args.seed, eval_every=250)
    train = [(videos[p.video].audio[p.start:p.end], videos[p.video].motion[p.start:p.end])
             for p in pieces if not p.held_out]
    return train_aumoclip(train, GESTURE.reference_fps, settings, log=print, progress=False)


def _high_level(model, pieces, embedded):
    """High-level accuracy of the held-out windows among each other: (candidates from every
    held-out piece, candidates from the query's own video only)."""
    from avatar.metrics.retrieval import high_level_accuracy, overlap_exclusion

    rows = [(k, s) for k, (ea, _) in enumerate(embedded) for s in range(len(ea.window_starts))]
    audio = np.stack([embedded[k][0].window_high[s] for k, s in rows])  # (N, D)
    motion = np.stack([embedded[k][1].window_high[s] for k, s in rows])  # (N, D)
    video = np.array([pieces[k].video for k, _ in rows])
    start = np.array([embedded[k][0].window_starts[s] + pieces[k].start for k, s in rows])
    near = overlap_exclusion(video, start, model.config.window // 2)
    other_video = video[:, None] != video[None]
    return high_level_accuracy(audio, motion, near), high_level_accuracy(audio, motion, near | other_video)


def evaluate_fold(model, videos, pieces) -> tuple[object, object, object, object, float, int]:
    """(low, onset baseline, high, high within each video, embedding seconds, embedded
    frames) on the held-out pieces."""
    from avatar.gesture.aumoclip import audio_embeddings, motion_embeddings
    from avatar.metrics.retrieval import RetrievalResult, low_level_accuracy, onset_baseline_accuracy

    hop = GESTURE.node_frames / GESTURE.reference_fps
    held = [p for p in pieces if p.held_out]
    t0, embedded = time.perf_counter(), []
    for p in held:
        video = videos[p.video]
        embedded.append((audio_embeddings(model, video.audio[p.start:p.end], hop_seconds=hop),
                         motion_embeddings(model, video.motion[p.start:p.end], hop_seconds=hop)))
    embed_seconds = time.perf_counter() - t0
    fps = model.config.fps
    low = RetrievalResult.combine([low_level_accuracy(ea.low, em.low, fps, queries=None) for ea, em in embedded])
    onset = RetrievalResult.combine([
        onset_baseline_accuracy(videos[p.video].onset[p.start:p.end], videos[p.video].speed[p.start:p.end], fps,
                                queries=None) for p in held])
    high, high_same = _high_level(model, held, embedded)
    return low, onset, high, high_same, embed_seconds, sum(p.end - p.start for p in held)


# -- report ---------------------------------------------------------------------------------
def _line(name: str, r) -> str:
    return (f"{name:<28} {100 * r.accuracy:6.2f} %  (chance {100 * r.chance:5.2f} %, "
            f"x{r.accuracy / r.chance:5.2f}, {r.queries} queries)")


def report(results: list[FoldResult], folds: int, seconds_of_video: float) -> None:
    from avatar.metrics.retrieval import RetrievalResult

    pool = {k: RetrievalResult.combine([getattr(r, k) for r in results])
            for k in ("low", "onset", "high", "high_same")}
    print(f"\n== {folds}-fold held-out retrieval accuracy ==")
    print(_line("low level (AuMoCLIP)", pool["low"]) + "   paper 65.68 % (random 25 %)")
    print(_line("low level (onset baseline)", pool["onset"]) + "   paper 35.38 %")
    print(_line("high level (AuMoCLIP)", pool["high"]) + "   paper 19.54 % (random 0.39 %)")
    print(_line("high level, same video only", pool["high_same"]))
    train = np.mean([r.train_seconds for r in results])
    embed = sum(r.embed_seconds for r in results) / sum(r.embedded_frames for r in results)
    print(f"training: {train:.1f} s per fold on {seconds_of_video * (1 - 1 / folds):.1f} s of video")
    print(f"embedding (audio + motion, both levels): {1000 * embed:.2f} ms per frame, "
          f"{1 / (embed * GESTURE.reference_fps):.0f}x real time")


def run_folds(videos: list[VideoData], folds: int, args) -> None:
    """Train and test every fold of one K-fold split; print per fold and pooled."""
    results = []
    for fold in ([args.only_fold] if args.only_fold is not None else range(folds)):
        pieces = fold_pieces(videos, folds, fold)
        t0 = time.perf_counter()
        model = train_fold(videos, pieces, args)
        train_seconds = time.perf_counter() - t0
        result = FoldResult(*evaluate_fold(model, videos, pieces), train_seconds)
        results.append(result)
        print(f"fold {fold + 1}/{folds}: low {100 * result.low.accuracy:.1f} % of {result.low.queries}, onset "
              f"{100 * result.onset.accuracy:.1f} %, high {100 * result.high.accuracy:.1f} % "
              f"(chance {100 * result.high.chance:.1f} %), trained in {train_seconds:.0f} s")
    report(results, folds, sum(len(v.audio) for v in videos) / GESTURE.reference_fps)


def _video_paths(given: list[str]) -> list[Path]:
    if given:
        return [Path(p) for p in given]
    if not DEFAULT_VIDEOS.is_dir():
        raise SystemExit(f"no videos given and {DEFAULT_VIDEOS} does not exist")
    return sorted(p for p in DEFAULT_VIDEOS.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", help=f"video files (default: {DEFAULT_VIDEOS})")
    ap.add_argument("--tracks", type=Path, default=DEFAULT_TRACKS, help="folder of <stem>.npz body tracks")
    ap.add_argument("--folds", type=int, default=5, help="K of the K-fold split over time")
    ap.add_argument("--high-folds", type=int, default=2, help="a second split with longer held-out pieces "
                    "for the high level (0: none)")
    ap.add_argument("--only-fold", type=int, help="run just this fold of each split (quick look)")
    defaults = AuMoCLIPSettings()
    ap.add_argument("--minutes", type=float, default=defaults.minutes, help="training budget per fold")
    ap.add_argument("--steps", type=int, default=defaults.steps)
    ap.add_argument("--batch", type=int, default=defaults.batch)
    ap.add_argument("--width", type=int, default=defaults.width, help="also the embedding size")
    ap.add_argument("--global-weight", type=float, default=defaults.global_weight)
    ap.add_argument("--dropout", type=float, default=defaults.dropout)
    ap.add_argument("--noise", type=float, default=defaults.noise)
    ap.add_argument("--no-stop-gradient", action="store_true", help="Table 3 'split low + high' ablation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fps = GESTURE.reference_fps
    t0 = time.perf_counter()
    videos = [load_video(p, args.tracks, fps) for p in _video_paths(args.videos)]
    total = sum(len(v.audio) for v in videos)
    print(f"inputs of {len(videos)} videos ({total / fps:.1f} s at {fps:g} fps) in {time.perf_counter() - t0:.0f} s; "
          f"audio {videos[0].audio.shape[1]} channels, motion {videos[0].motion.shape[1]} joints x 15")
    for folds in dict.fromkeys(k for k in (args.folds, args.high_folds) if k > 1):
        run_folds(videos, folds, args)


if __name__ == "__main__":
    main()
