"""What Loopy's two parts buy: the generator trained with and without each, judged alike.

    python benchmarks/bench_loopy_ablation.py --data DATASET --out-dir DIR [--full loopy.safetensors]
        [--steps 5000] [--seeds 3] [--capp CAPP] [--variants full no_long_context no_latents]

Variants (LoopyConfig flags): ``full``; ``no_long_context`` (the context is the last 4
frames only, a plain prefix, instead of 124 frames in 20 segment tokens; Loopy §3.2);
``no_latents`` (no audio-to-latents module; Loopy §3.3). Each is trained on DATASET with
the same seed and steps (a checkpoint already in DIR, or --full, is reused) and then run
by ``avatar evaluate`` on the dataset's held-out ranges with one CAPP model. Printed per
variant: head motion (Glo, and its ratio to the real motion), expression (Exp, ratio),
ΔP, bilabial closure, opening-vs-loudness r, CAPP and Frechet distance. Loopy reports
its long context mainly in the naturalness of motion (head and expression dynamics), so
Glo/GT and Exp/GT are the figures to read first.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from avatar.eval import evaluate
from avatar.generators.loopy import LoopyConfig
from avatar.training.dataset import load_dataset
from avatar.training.loop import TrainSettings
from avatar.training.loopy import train_loopy

VARIANTS = {"full": {}, "no_long_context": {"long_context": False}, "no_latents": {"audio_to_latents": False}}
COLUMNS = [("glo", "Glo"), ("glo_ratio", "Glo/GT"), ("exp", "Exp"), ("exp_ratio", "Exp/GT"),
           ("delta_p_ratio", "ΔP/GT"), ("bilabial_closure", "bilabial"), ("opening_energy_corr", "open~loud r"),
           ("capp", "CAPP"), ("fd_capp", "FD")]


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
        rows[name] = result.table["loopy"]
        rows.setdefault("ground truth", result.table["ground truth"])
    print("| variant | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(_fmt(row.get(key)) for key, _ in COLUMNS) + " |")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
