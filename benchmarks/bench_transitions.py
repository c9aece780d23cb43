"""Transition frames on real footage (TANGO §3.3, Table 4): held-out real transitions.

    python benchmarks/bench_transitions.py [VIDEO_OR_FOLDER ...] [--tracks DIR] [--pairs 50]
        [--n 8] [--jumps 3] [--out DIR]

For every video, ``--pairs`` evenly spaced windows (i, i + n + 1) are taken (windows that
contain a shot cut are skipped); the n in-between frames are generated from frames i and
i + n + 1 (with their 2D poses and person masks) and compared with the real frames
i + 1 .. i + n: mean PSNR / SSIM of ``in_between`` (timed by the poses of frames i - 1 and
i + n + 2, see ``Timing``), of the same with linear timing, of the cross-fade and of holding
frame i; also per group of windows with growing pose motion, and the CPU time (homography,
flows, per frame; one thread). Then a few jumps between DIFFERENT
moments with a similar pose (the real use: a jump in the motion graph) are rendered and
saved as PNG strips (``--out``/transitions_<stem>.png: top in_between, bottom cross-fade).

Poses and masks come from ``--tracks``/<stem>.npz (BodyTrack arrays) if present, else the
video is tracked here (slow). Default input: ../shared/data/upper_body (next to the repository) if it exists.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from avatar.body.types import POSE_2D_BONES, BodyTrack
from avatar.config import GESTURE
from avatar.errors import AvatarError
from avatar.metrics.frames import psnr, ssim
from avatar.render.homography import background_homography
from avatar.render.transition import Timing, alphas, crossfade, estimate_jump, in_between, render_in_between
from avatar.video.reader import iter_frames, probe

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "upper_body"
DEFAULT_TRACKS = Path(tempfile.gettempdir()) / "tango" / "tracks"  # body-track cache
DEFAULT_OUT = Path(tempfile.gettempdir()) / "tango"
CUT_LEVEL = 12.0  # mean abs luma step between consecutive frames above which a shot cut is assumed
CUT_SIDE = 160  # px: long side of the copy used for cut detection
JUMP_MIN_SECONDS = 2.0  # a "jump" joins frames at least this far apart
JUMP_CANDIDATES = 40  # anchor frames searched for similar-pose partners
STRIP_HEIGHT = 384  # px height of each frame in the PNG strips
STRIP_FRAMES = 4  # in-between frames shown per strip (evenly picked)
METHODS = ("in_between", "linear_time", "crossfade", "hold")  # linear_time: in_between, s = alpha
SHOULDERS = (5, 6)  # rows of the shoulders in BodyTrack.pose_2d (motion is measured in their width)
MOTION_GROUPS = 3  # held-out windows are also reported in this many groups of growing pose motion

@dataclass
class Scores:
    """PSNR / SSIM of every generated frame per method, and in_between's CPU time."""

    psnr: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    ssim: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    motion: list[float] = field(default_factory=list)  # per generated frame: its window's pose motion
    homography_s: list[float] = field(default_factory=list)  # per pair: background homography
    estimate_s: list[float] = field(default_factory=list)  # per pair: person flows
    render_s: list[float] = field(default_factory=list)  # per generated frame
    skipped: int = 0  # windows with a shot cut
    no_background_fit: int = 0  # pairs whose homography fit failed (identity used)

    def add(self, method: str, made: np.ndarray, real: np.ndarray) -> None:
        self.psnr[method].append(psnr(made, real))
        self.ssim[method].append(ssim(made, real))

    def merge(self, other: Scores) -> None:
        for m in METHODS:
            self.psnr[m] += other.psnr[m]
            self.ssim[m] += other.ssim[m]
        self.motion += other.motion
        self.homography_s += other.homography_s
        self.estimate_s += other.estimate_s
        self.render_s += other.render_s
        self.skipped += other.skipped
        self.no_background_fit += other.no_background_fit


@dataclass(frozen=True)
class Keyframe:
    """What in_between needs of one real frame besides its pixels."""

    pose: np.ndarray  # (K, 2) px
    mask: np.ndarray  # (mh, mw) float [0, 1]
    beside: np.ndarray | None  # (K, 2) px pose one frame further out of the jump (None: off the video)


def keyframe(track: BodyTrack, i: int, outward: int) -> Keyframe:
    """Frame i's pose and mask, and the pose at i + outward (-1 before a jump's a, +1 after its b)."""
    j = i + outward
    beside = track.pose_2d(j) if 0 <= j < track.num_frames else None
    return Keyframe(track.pose_2d(i), track.masks[i].astype(np.float32) / 255.0, beside)


def load_track(video: Path, tracks: Path) -> BodyTrack:
    path = tracks / f"{video.stem}.npz"
    if path.is_file():
        return BodyTrack.from_arrays(np.load(path), str(path))
    from avatar.body.tracker import track_video

    print(f"{video.stem}: no track in {tracks}, tracking the video (slow)")
    return track_video(video)


def window_starts(num_frames: int, n: int, count: int) -> list[int]:
    """``count`` evenly spaced, distinct window starts i with i + n + 1 < num_frames."""
    last = num_frames - n - 2
    return sorted(set(np.linspace(0, last, count).round().astype(int).tolist())) if last >= 0 else []


def has_cut(frames: list[np.ndarray]) -> bool:
    """True if consecutive frames differ like a shot cut (mean abs luma step > CUT_LEVEL)."""
    def small(f: np.ndarray) -> np.ndarray:
        scale = CUT_SIDE / max(f.shape[:2])
        return cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_AREA).astype(np.float32)
    lumas = [small(f) for f in frames]
    return any(float(np.abs(x - y).mean()) > CUT_LEVEL for x, y in zip(lumas, lumas[1:]))


def timed_in_between(a: np.ndarray, b: np.ndarray, n: int, ka: Keyframe, kb: Keyframe,
                     scores: Scores) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """in_between's frames with the boundary timing (CPU time split into per-pair and
    per-frame parts) and, for comparison, with the linear one."""
    t0 = time.process_time()
    fitted = background_homography(a, b, ka.mask, kb.mask)
    scores.homography_s.append(time.process_time() - t0)
    scores.no_background_fit += fitted is None
    t0 = time.process_time()
    jump = estimate_jump(a, b, ka.pose, kb.pose, ka.mask, kb.mask, bones=POSE_2D_BONES,
                         b_to_a=np.eye(3) if fitted is None else fitted)
    timing = Timing.from_poses(ka.pose, kb.pose, ka.beside, kb.beside, n)
    scores.estimate_s.append(time.process_time() - t0)
    frames = []
    for t in alphas(n):
        t0 = time.process_time()
        frames.append(render_in_between(jump, a, b, timing.at(t)))
        scores.render_s.append(time.process_time() - t0)
    return frames, [render_in_between(jump, a, b, t) for t in alphas(n)]


def score_window(window: list[np.ndarray], n: int, ka: Keyframe, kb: Keyframe, scores: Scores) -> None:
    """Generate the n frames between window[0] and window[-1] and compare with the real ones."""
    a, b, real = window[0], window[-1], window[1:-1]
    timed, linear = timed_in_between(a, b, n, ka, kb, scores)
    made = {"in_between": timed, "linear_time": linear, "crossfade": crossfade(a, b, n), "hold": [a] * n}
    for method, frames in made.items():
        for f, r in zip(frames, real):
            scores.add(method, f, r)
    scores.motion += [relative_motion(ka.pose, kb.pose)] * n


def relative_motion(p: np.ndarray, q: np.ndarray) -> float:
    """Mean keypoint displacement between two poses in shoulder widths (NaN if unknown)."""
    shoulders = np.linalg.norm(p[SHOULDERS[0]] - p[SHOULDERS[1]])
    return pose_distance(p, q) / shoulders if shoulders > 0 else float("nan")


def pose_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Mean distance of the keypoints seen in both poses, px; inf if none."""
    both = np.isfinite(p).all(1) & np.isfinite(q).all(1)
    return float(np.linalg.norm(p[both] - q[both], axis=1).mean()) if both.any() else float("inf")


def similar_jumps(track: BodyTrack, count: int) -> list[tuple[int, int]]:
    """``count`` (i, j) pairs of distant frames (>= JUMP_MIN_SECONDS) with the closest poses."""
    gap = round(JUMP_MIN_SECONDS * track.fps)
    anchors = np.linspace(0, track.num_frames - 1, JUMP_CANDIDATES).round().astype(int)
    poses = [track.pose_2d(i) for i in range(track.num_frames)]
    best = []
    for i in anchors:
        far = [j for j in range(track.num_frames) if abs(j - i) >= gap]
        if far:
            j = min(far, key=lambda k: pose_distance(poses[i], poses[k]))
            best.append((pose_distance(poses[i], poses[j]), int(i), j))
    chosen: list[tuple[int, int]] = []
    for _, i, j in sorted(best):
        used = [f for pair in chosen for f in pair]
        if len(chosen) < count and all(abs(f - u) >= gap for f in (i, j) for u in used):
            chosen.append((i, j))
    return chosen


def evaluate_video(path: Path, track: BodyTrack, n: int, count: int,
                   jumps: list[tuple[int, int]]) -> tuple[Scores, dict[int, np.ndarray]]:
    """Score the held-out windows while streaming the video; keep the frames the jumps need."""
    pending = deque(window_starts(track.num_frames, n, count))
    wanted = {i for pair in jumps for i in pair}
    kept: dict[int, np.ndarray] = {}
    buffer: deque[np.ndarray] = deque(maxlen=n + 2)
    scores = Scores()
    for index, frame in enumerate(iter_frames(path)):
        buffer.append(frame)
        if index in wanted:
            kept[index] = frame
        while pending and pending[0] + n + 1 == index:  # a window is complete
            start = pending.popleft()
            if has_cut(list(buffer)):
                scores.skipped += 1
            else:
                score_window(list(buffer), n, keyframe(track, start, -1), keyframe(track, index, +1), scores)
    return scores, kept


def strip_row(frames: list[np.ndarray]) -> np.ndarray:
    h, w = frames[0].shape[:2]
    size = (round(w * STRIP_HEIGHT / h), STRIP_HEIGHT)
    return np.hstack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def save_jump_strips(out: Path, stem: str, track: BodyTrack, jumps: list[tuple[int, int]],
                     frames: dict[int, np.ndarray], n: int) -> Path | None:
    """PNG of each jump a -> b: a, STRIP_FRAMES in-between frames, b; in_between over cross-fade."""
    rows = []
    picks = np.linspace(0, n - 1, min(n, STRIP_FRAMES)).round().astype(int)
    for i, j in jumps:
        a, b = frames[i], frames[j]
        ka, kb = keyframe(track, i, -1), keyframe(track, j, +1)
        made = in_between(a, b, n, ka.pose, kb.pose, ka.mask, kb.mask, bones=POSE_2D_BONES,
                          pose_before=ka.beside, pose_after=kb.beside)
        made = [made[k] for k in picks]
        faded = [crossfade(a, b, n)[k] for k in picks]
        rows += [strip_row([a, *made, b]), strip_row([a, *faded, b])]
    if not rows:
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"transitions_{stem}.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return path


def report(name: str, scores: Scores, n: int, by_motion: bool = False) -> None:
    pairs = len(scores.estimate_s)
    print(f"{name}: {pairs} held-out transitions x {n} frames ({scores.skipped} windows skipped: shot cut; "
          f"{scores.no_background_fit} without a trusted background homography)")
    if not pairs:
        return
    for m in METHODS:
        print(f"  {m:<12} PSNR {np.mean(scores.psnr[m]):6.2f} dB   SSIM {np.mean(scores.ssim[m]):.4f}")
    if by_motion:
        report_by_motion(scores)
    fit, flows = 1000 * np.mean(scores.homography_s), 1000 * np.mean(scores.estimate_s)
    per_frame = 1000 * np.mean(scores.render_s)
    print(f"  in_between CPU time: {fit:.0f} ms homography + {flows:.0f} ms flows per pair, "
          f"{per_frame:.0f} ms per frame = {(fit + flows) / n + per_frame:.0f} ms per generated frame")


def report_by_motion(scores: Scores) -> None:
    """PSNR per group of windows with growing pose motion (small motion ~ a motion-graph jump)."""
    motion = np.array(scores.motion)
    known = np.flatnonzero(np.isfinite(motion))
    for group in np.array_split(known[np.argsort(motion[known])], MOTION_GROUPS):
        if len(group) == 0:
            continue
        lo, hi = motion[group].min(), motion[group].max()
        cells = "   ".join(f"{m} {np.mean(np.array(scores.psnr[m])[group]):.2f}" for m in METHODS)
        print(f"  motion {lo:.2f}-{hi:.2f} shoulder widths: PSNR {cells}")


def find_videos(inputs: list[str]) -> list[Path]:
    paths = [Path(p) for p in inputs] or ([DEFAULT_VIDEOS] if DEFAULT_VIDEOS.is_dir() else [])
    videos = [v for p in paths for v in (sorted(p.glob("*.mp4")) if p.is_dir() else [p])]
    if not videos:
        raise AvatarError("no videos to benchmark", ", ".join(map(str, paths)) or "(none given)",
                          "pass video files or a folder of .mp4 files")
    return videos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", help="videos or folders of .mp4 (default: the shared upper-body clips)")
    ap.add_argument("--tracks", type=Path, default=DEFAULT_TRACKS, help="folder of <stem>.npz body tracks")
    ap.add_argument("--pairs", type=int, default=50, help="held-out transitions per video")
    ap.add_argument("--n", type=int, default=GESTURE.transition_frames, help="in-between frames")
    ap.add_argument("--jumps", type=int, default=3, help="similar-pose jumps per video to save as PNG")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNG strips")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    threadpool_limits(limits=1, user_api="blas")  # one core really means one core
    total = Scores()
    for video in find_videos(args.inputs):
        info = probe(video)
        track = load_track(video, args.tracks)
        jumps = similar_jumps(track, args.jumps)
        scores, frames = evaluate_video(video, track, args.n, args.pairs, jumps)
        report(f"{video.stem} ({info.width}x{info.height}, {info.fps:g} fps)", scores, args.n)
        strip = save_jump_strips(args.out, video.stem, track, jumps, frames, args.n)
        if strip:
            print(f"  jumps {jumps} -> {strip}")
        total.merge(scores)
    report("all videos", total, args.n, by_motion=True)


if __name__ == "__main__":
    main()
