"""What Loopy's two parts buy: the generator trained with and without each, judged alike.

    python benchmarks/bench_loopy_ablation.py --data DATASET --out-dir DIR [--full loopy.safetensors]
        [--steps 5000] [--seeds 3] [--capp CAPP] [--variants full no_long_context no_latents]

Variants (LoopyConfig flags): ``full``; ``no_long_context`` (the context is the last 4
frames only, a plain prefix, instead of 124 frames in 20 segment tokens; Loopy §3.2);
``no_latents`` (no audio-to-latents module; Loopy §3.3). Each is trained on DATASET with
the same seed and steps (a checkpoint already in DIR, or --full, is reused) and then run
by ``avatar evaluate`` on the dataset's held-out ranges with one CAPP model. Printed per
variant: head motion (Glo, and its ratio to the real motion), expression (Exp, ratio),
ΔP, bilabial closure, opening-vs-loudness r, CAPP, Frechet distance, and smoothness: the
mean absolute second difference of the head angles (deg/frame^2) over its ground-truth
value (Loopy §4 reports smoothness next to Glo and Exp). Loopy reports its long context
mainly in the naturalness of motion (head and expression dynamics), so Glo/GT, Exp/GT and
smoothness are the figures to read first.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from avatar.eval import GROUND_TRUTH, evaluate
from avatar.generators.loopy import LoopyConfig
from avatar.training.dataset import load_dataset
from avatar.training.loop import TrainSettings
from avatar.training.loopy import train_loopy

VARIANTS = {"full": {}, "no_long_context": {"long_context": False}, "no_latents": {"audio_to_latents": False}}
AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"  # development media only
SPEECH = ["a01_en_male_speech_60s.wav", "a04_en_beat_scott_29s.wav", "a05_en_pats_chemistry_14s.wav",
          "a22_en_narration_jane_16s.wav"]
LONG_WINDOW_S = 10.0
COLUMNS = [("glo", "Glo"), ("glo_ratio", "Glo/GT"), ("exp", "Exp"), ("exp_ratio", "Exp/GT"),
           ("delta_p_ratio", "ΔP/GT"), ("bilabial_closure", "bilabial"), ("opening_energy_corr", "open~loud r"),
           ("capp", "CAPP"), ("fd_capp", "FD"), ("jerk_ratio", "head jerk/GT")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset from avatar prepare")
    ap.add_argument("--out-dir", required=True, help="checkpoints and evaluation folders go here")
    ap.add_argument("--full", help="an already trained full loopy checkpoint (same data and steps)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--capp", help="trained CAPP model (default: trained once, in OUT_DIR/capp)")
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_dataset(args.data)
    checkpoints = {}
    for name in args.variants:
        path = Path(args.full) if name == "full" and args.full else out / f"loopy_{name}.safetensors"
        if not path.exists():
            t0 = time.time()
            train_loopy(clips, path, replace(LoopyConfig(), **VARIANTS[name]),
                        TrainSettings(max_steps=args.steps, seed=args.seed, threads=args.threads), log=lambda _: None)
            print(f"{name}: trained {args.steps} steps in {(time.time() - t0) / 60:.1f} min")
        checkpoints[name] = path
    capp = args.capp
    rows = {}
    for name, path in checkpoints.items():
        result = evaluate(args.data, [("loopy", {"checkpoint": str(path)})], out / f"eval_{name}", seeds=args.seeds,
                          capp_checkpoint=capp, plots=False)
        capp = capp or result.capp_checkpoint  # every variant is scored by the same CAPP model
        rows[name] = {**result.table["loopy"], "jerk_ratio": head_jerk(result, "loopy") / head_jerk(result, GROUND_TRUTH)}
        rows.setdefault("ground truth", {**result.table[GROUND_TRUTH], "jerk_ratio": 1.0})
    print("| variant | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(_fmt(row.get(key)) for key, _ in COLUMNS) + " |")
    long_speech_table(checkpoints, clips, [AUDIO_DIR / n for n in SPEECH])


def long_speech_table(checkpoints: dict, clips, speech_files: list[Path]) -> None:
    from avatar.audio.features import extract_features
    from avatar.audio.io import load_audio
    from avatar.audio.types import Audio, Speech
    from avatar.audio.vad import voice_activity
    from avatar.config import AUDIO, VIDEO
    from avatar.generators.base import Controls
    from avatar.generators.registry import get_generator
    from avatar.metrics.motion import exp_variation, glo_variation

    fps = VIDEO.fps
    audio = Audio(np.concatenate([load_audio(p, AUDIO.sample_rate).samples for p in speech_files]), AUDIO.sample_rate)
    vad = voice_activity(audio, fps)
    features = extract_features(audio, fps, num_frames=len(vad), vad=vad)
    n = int(round(LONG_WINDOW_S * fps))

    def windows(motion):
        return [motion.slice(i, i + n) for i in range(0, len(motion) - n + 1, n)]

    def stats(ws):
        return (np.mean([glo_variation(w) for w in ws]), np.mean([exp_variation(w) for w in ws]),
                np.mean([np.abs(np.diff(np.degrees(w.rotation), n=2, axis=0)).mean() for w in ws]))

    real = stats([w for c in clips for w in windows(c.motion)])
    print(f"\nlong speech: {len(audio.samples) / AUDIO.sample_rate:.0f} s, {LONG_WINDOW_S:g}-s windows "
          f"(real motion: {real[0]:.3f} deg Glo, {real[1]:.4f} Exp, {real[2]:.4f} deg/frame^2 jerk)")
    print("| variant | Glo/real | Exp/real | head jerk/real |")
    print("|---|---|---|---|")
    for name, path in checkpoints.items():
        motion = get_generator("loopy", checkpoint=str(path)).generate(Speech(audio), features, Controls(), seed=0)
        g, e, j = stats(windows(motion))
        print(f"| {name} | {g / real[0]:.3f} | {e / real[1]:.3f} | {j / real[2]:.3f} |")


def head_jerk(result, method: str) -> float:
    """Mean absolute second difference of the head angles (deg/frame^2) over a method's samples."""
    values = [np.abs(np.diff(np.degrees(s.motion.rotation), n=2, axis=0)).mean()
              for s in result.samples if s.method == method and len(s.motion) > 2]
    return float(np.mean(values))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
