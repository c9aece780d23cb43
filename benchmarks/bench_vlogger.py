"""The vlogger generator: its upper-body motion against real, and what the outpainting overlap costs.

    python benchmarks/bench_vlogger.py --checkpoint vlogger.safetensors body --data DATASET [--seeds 3]
    python benchmarks/bench_vlogger.py --checkpoint vlogger.safetensors overlap --data DATASET
        [--overlaps 0 5 10 25] [--seconds 60]

``body``: on the held-out ranges of the dataset's clips that have a body track (avatar
prepare on upper-body video), the generated upper-body residuals (from the clip's own
audio) against the real ones, per clip and pooled: beat consistency with the audio
(avatar.metrics.gesture, TANGO §4.2), diversity of 1-s windows, and joint speed (mean
and 90th percentile, face widths per second) of shoulders, elbows and wrists. Joints
the real track does not see in a range are left out of that range's real figures.

``overlap``: for each overlap (frames of the previous window each new window is
conditioned on), the seconds to generate ``--seconds`` of motion, and the seam: mean
frame-to-frame change of the face/head channels at window starts over the mean change
elsewhere (1 = no visible seam), on the held-out ranges' audio, repeated to length.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from avatar.audio.types import Audio, Speech
from avatar.generators.base import Controls
from avatar.generators.motion_vector import MOTION_DIM, audio_frames, global_conditions
from avatar.generators.registry import get_generator
from avatar.metrics import gesture
from avatar.motion.types import BODY_JOINTS
from avatar.training.dataset import load_dataset
from avatar.training.vlogger import body_channels

GROUPS = {"shoulders": (0, 1), "elbows": (2, 3), "wrists": (4, 5)}
SILENCE = Speech(Audio(np.zeros(16000, np.float32), 16000))  # learned generators read the features only


def speed_stats(body: np.ndarray, fps: float) -> dict[str, tuple[float, float]]:
    """Per joint group: (mean, 90th percentile) speed in face widths per second; NaN joints skipped."""
    out = {}
    speed = np.linalg.norm(np.diff(body, axis=0), axis=-1) * fps  # (T-1, J)
    for name, joints in GROUPS.items():
        values = speed[:, list(joints)].ravel()
        values = values[np.isfinite(values)]
        out[name] = (float(values.mean()), float(np.percentile(values, 90))) if values.size else (np.nan, np.nan)
    return out


def body_figures(body: np.ndarray, onset: np.ndarray, fps: float) -> dict:
    seen = [j for j in range(len(BODY_JOINTS)) if np.isfinite(body[:, j]).all()]
    joints = body[:, seen] if seen else body[:, :0]
    bc = gesture.beat_consistency(gesture.audio_beats(onset, fps), gesture.motion_beats(joints, fps)) \
        if seen else np.nan
    return {"bc": bc, "diversity": gesture.diversity(joints, fps) if seen else np.nan,
            "speed": speed_stats(body, fps), "joints": len(seen)}


def run_body(args) -> None:
    generator = get_generator("vlogger", checkpoint=args.checkpoint)
    rows = []
    for clip in load_dataset(args.data):
        if not np.isfinite(body_channels(clip)).any():
            continue
        for piece in clip.split("val"):
            real = body_figures(body_channels(piece).reshape(piece.num_frames, len(BODY_JOINTS), 2),
                                piece.features.onset, piece.fps)
            fake = [body_figures(generator.generate(SILENCE, piece.features, Controls(), seed=s).upper_body,
                                 piece.features.onset, piece.fps) for s in range(args.seeds)]
            rows.append((clip.name, piece.num_frames, real, fake))
    if not rows:
        raise SystemExit("no clip of the dataset has a body track: prepare upper-body video")
    print("| clip | frames | BC real | BC vlogger | diversity real | diversity vlogger | "
          + " | ".join(f"{g} speed real (mean/p90) | {g} vlogger" for g in GROUPS) + " |")
    print("|" + "---|" * (6 + 2 * len(GROUPS)))
    for name, n, real, fake in rows:
        mean = lambda key: np.nanmean([f[key] for f in fake])  # noqa: E731
        cells = [name, str(n), f"{real['bc']:.3f}", f"{mean('bc'):.3f}", f"{real['diversity']:.4f}",
                 f"{mean('diversity'):.4f}"]
        for g in GROUPS:
            r = real["speed"][g]
            f = np.nanmean([x["speed"][g] for x in fake], axis=0)
            cells += [f"{r[0]:.3f}/{r[1]:.3f}", f"{f[0]:.3f}/{f[1]:.3f}"]
        print("| " + " | ".join(cells) + " |")
    weights = np.array([n for _, n, _, _ in rows], float)
    pooled = lambda values: float(np.nansum(np.array(values) * weights) / weights[np.isfinite(values)].sum())  # noqa: E731
    print(f"pooled ({int(weights.sum())} frames, {args.seeds} seeds): BC real {pooled([r['bc'] for _, _, r, _ in rows]):.3f} "
          f"vlogger {pooled([np.nanmean([f['bc'] for f in fk]) for *_, fk in rows]):.3f}; diversity real "
          f"{pooled([r['diversity'] for _, _, r, _ in rows]):.4f} vlogger "
          f"{pooled([np.nanmean([f['diversity'] for f in fk]) for *_, fk in rows]):.4f}")


def seam_ratio(x: np.ndarray, starts: list[int]) -> float:
    """Mean |x_t - x_{t-1}| (face/head channels, standardised) at window starts over elsewhere."""
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    step = np.abs(np.diff(z, axis=0)).mean(1)  # (T-1,): change into frame t+1
    at = np.zeros(len(step), bool)
    at[[s - 1 for s in starts if 0 < s <= len(step)]] = True
    return float(step[at].mean() / step[~at].mean()) if at.any() else float("nan")


def run_overlap(args) -> None:
    from avatar.diffusion.checkpoint import load_model

    model = load_model(args.checkpoint)
    pieces = [p for c in load_dataset(args.data) for p in c.split("val")]
    audio = np.concatenate([audio_frames(p.features) for p in pieces])
    T = int(round(args.seconds * model.config["fps"]))
    audio = np.resize(audio, (T, audio.shape[1]))  # repeated to length
    g = global_conditions((0.0, 0.0), 1.0, 0.0, 0.0)
    N = model.config["window"]
    model.generate(audio[:N], g)  # warm-up
    print("| overlap | new frames per window | windows | seconds for %g s | seam (1 = none) |" % args.seconds)
    print("|---|---|---|---|---|")
    for overlap in args.overlaps:
        seams, times = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            x, windows = model.windows(audio, g, seed=seed, overlap=overlap)
            times.append(time.perf_counter() - t0)
            new = N - overlap
            seams.append(seam_ratio(x[:, :MOTION_DIM], [w * new + overlap for w in range(1, len(windows))]))
        print(f"| {overlap} | {N - overlap} | {len(windows)} | {np.median(times):.2f} | {np.mean(seams):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, metavar="CKPT", help="trained vlogger checkpoint")
    ap.add_argument("--seeds", type=int, default=3)
    sub = ap.add_subparsers(dest="part", required=True)
    b = sub.add_parser("body", help="upper-body motion against real on held-out ranges")
    b.add_argument("--data", required=True, metavar="DATASET", help="a dataset with body tracks (upper-body video)")
    o = sub.add_parser("overlap", help="speed and seams against the outpainting overlap")
    o.add_argument("--data", required=True, metavar="DATASET", help="dataset whose held-out audio drives it")
    o.add_argument("--overlaps", type=int, nargs="+", default=[0, 5, 10, 25])
    o.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    {"body": run_body, "overlap": run_overlap}[args.part](args)


if __name__ == "__main__":
    main()
