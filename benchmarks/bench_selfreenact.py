"""Self-reenactment: a real clip's first frame as the photo, its own audio as the speech.

    python benchmarks/bench_selfreenact.py [--split test|tune|all] [--clips V ...]
        [--generators rules vasa] [--checkpoint vasa=CKPT] [--seed 0] [--out-dir DIR] [--dub]

The output is rendered at the clip's own frame rate, so its frames pair one to one with
the real video's. The face mesh is run on every frame of both (static mode, as
bench_lipsync.py does) and compared (avatar.metrics.lipsync, avatar.metrics.blinks):

- opening r: Pearson correlation of mouth opening (inner-lip gap / mouth width) of the
  output with the real person's; the floor is the real curve against itself 1 s later;
- closure recall: the real person's closures (closed for 2+ frames between openings) that
  the output also closes within +-2 frames. "Closed": gap / width below the track's own
  5th percentile + 0.03, capped at 0.08 (MediaPipe keeps a small per-person gap for lips
  that touch);
- false closures: the share of frames where the real mouth is wide open (above its own
  75th percentile) in which the output is closed;
- blinks per minute of output and real clip, from the eye aspect ratio (EAR below 75% of
  the clip's median), with their mean duration (frames) and peak EAR relative to the median.

``--dub``: the output is instead ``avatar dub`` of the clip with its own audio (issue 11):
every frame is the real one except the lower face, re-rendered by the generator.

Goals (issue 9): opening r >= 0.6 pooled, closure recall >= 0.85, false closures <= 5%,
output blinks 12-30 per minute, on the test clips, which are never used for tuning.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import avatar
from avatar.dub import dub_video
from avatar.metrics import blinks as bl
from avatar.metrics import lipsync as ls
from avatar.video.reader import iter_frames, probe
from bench_lipsync import track_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "talking_face"  # development media only
TEST = ["tf05_aoc_hdtf_en_8s.mp4", "tf09_woman_blue_bg_en_6.6s.mp4", "tf12_young_man_outdoor_7s.mp4",
        "tf18_voxceleb_glasses_14s.mp4", "grid_3s/grid_s_lbax4n.mpg", "grid_3s/grid_s_swiz3n.mpg"]
TUNE = ["tf01_cnn_anchor_en_71s.mp4", "tf03_german_news_anchor_de_20s.mp4", "tf07_asian_man_suit_en_6s.mp4",
        "tf17_voxceleb_man_suit_12s.mp4", "grid_3s/grid_s_bbaf2n.mpg", "grid_3s/grid_s_brbk7n.mpg"]
TOLERANCE = 2  # frames either side of a real closure
MIN_CLOSED = 2  # frames a real closure must last


def real_track(clip: Path, cache: Path) -> np.ndarray:
    path = cache / f"real_{clip.stem}.npy"
    if not path.exists():
        np.save(path, track_video(clip))
    return np.load(path)


def measure(real: np.ndarray, out: np.ndarray, fps: float) -> dict:
    n = min(len(real), len(out))
    real, out = real[:n], out[:n]
    r_open, o_open = ls.opening_ratio(real), ls.opening_ratio(out)  # (T,)
    r_closed = r_open < ls.closed_threshold(r_open)
    o_closed = o_open < ls.closed_threshold(o_open)
    closures = ls.closed_runs(r_closed, MIN_CLOSED)
    recall, n_closures = ls.closure_recall(closures, o_closed, TOLERANCE)
    false, n_wide = ls.false_closure_share(r_open, o_closed)
    r_ear, o_ear = bl.ear(real), bl.ear(out)
    r_blinks, o_blinks = bl.blink_events(r_ear), bl.blink_events(o_ear)
    o_median = np.nanmedian(o_ear)
    return dict(
        frames=n, r=ls.pearson(o_open, r_open), floor=ls.shifted_floor(r_open, round(fps)),
        recall=recall, closures=n_closures, hits=recall * n_closures if n_closures else 0.0,
        false=false, wide=n_wide, false_hits=false * n_wide if n_wide else 0.0,
        blinks_out=bl.blink_rate(o_blinks, n, fps), blinks_real=bl.blink_rate(r_blinks, n, fps),
        blink_frames=float(np.mean([b.frames for b in o_blinks])) if o_blinks else float("nan"),
        blink_peak=float(np.min([b.min_ear for b in o_blinks]) / o_median) if o_blinks else float("nan"),
        n_blinks_out=len(o_blinks), n_blinks_real=len(r_blinks),
        curves=(r_open, o_open),
    )


def pooled(rows: list[dict], fps_of: list[float]) -> dict:
    real = np.concatenate([m["curves"][0] for m in rows])
    out = np.concatenate([m["curves"][1] for m in rows])
    closures, wide = sum(m["closures"] for m in rows), sum(m["wide"] for m in rows)
    minutes = sum(m["frames"] / f for m, f in zip(rows, fps_of)) / 60
    return dict(frames=len(real), r=ls.pearson(out, real),
                floor=float(np.nanmean([m["floor"] for m in rows])),
                recall=sum(m["hits"] for m in rows) / max(closures, 1), closures=closures,
                false=sum(m["false_hits"] for m in rows) / max(wide, 1), wide=wide,
                blinks_out=sum(m["n_blinks_out"] for m in rows) / minutes,
                blinks_real=sum(m["n_blinks_real"] for m in rows) / minutes,
                blink_frames=float(np.nanmean([m["blink_frames"] for m in rows])),
                blink_peak=float(np.nanmin([m["blink_peak"] for m in rows])))


def line(name: str, m: dict) -> str:
    return (f"{name:34s} {m['frames']:6d} {m['r']:6.2f} {m['floor']:6.2f} {m['recall']:6.2f} ({m['closures']:3d})"
            f" {100 * m['false']:6.1f}% {m['blinks_out']:6.1f} {m['blinks_real']:6.1f}"
            f" {m['blink_frames']:5.1f} {m['blink_peak']:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder of the talking-face clips")
    ap.add_argument("--split", choices=("test", "tune", "all"), default="test")
    ap.add_argument("--clips", nargs="*", type=Path, help="clips to use instead of a split")
    ap.add_argument("--generators", nargs="+", default=["rules"])
    ap.add_argument("--checkpoint", nargs="*", default=[], metavar="NAME=CKPT")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "avatar_selfreenact")
    ap.add_argument("--dub", action="store_true", help="dub each clip with its own audio instead of animating "
                                                      "its first frame")
    args = ap.parse_args()
    names = {"test": TEST, "tune": TUNE, "all": TEST + TUNE}[args.split]
    clips = args.clips or [args.data / n for n in names]
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    header = (f"{'clip':34s} {'frames':>6s} {'r':>6s} {'floor':>6s} {'recall':>6s} (n)  "
              f"{'false':>7s} {'bl/min':>6s} {'real':>6s} {'dur':>5s} {'peak':>5s}")
    results = {}
    for gen in args.generators:
        rows, fps_of = [], []
        print(f"\n== {gen} ==\n{header}")
        for clip in clips:
            fps = probe(clip).fps
            out = args.out_dir / f"{'dub_' if args.dub else ''}{gen}_{clip.stem}.mp4"
            if args.dub:
                dub_video(clip, out, audio=clip, motion=gen, checkpoint=checkpoints.get(gen), seed=args.seed,
                          progress=False)
            else:
                photo = next(iter(iter_frames(clip)))
                avatar.speak(photo, out, audio=clip, fps=fps, motion=gen, checkpoint=checkpoints.get(gen),
                             seed=args.seed)
            m = measure(real_track(clip, args.out_dir), track_video(out), fps)
            rows.append(m)
            fps_of.append(fps)
            print(line(clip.stem[:34], m), flush=True)
        total = pooled(rows, fps_of)
        print(line("POOLED", total))
        results[gen] = {"clips": {c.stem: {k: v for k, v in m.items() if k != "curves"}
                                  for c, m in zip(clips, rows)}, "pooled": total}
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out_dir / 'results.json'}")


if __name__ == "__main__":
    main()
