"""How long the ``vasa`` generator needs to train: its loss curves and when each is best.

    python benchmarks/bench_train.py --data DATASET -o vasa.safetensors [--minutes 45]

Trains as ``avatar train --method vasa`` does (default settings) but for a time budget
instead of a number of steps, and prints the selection loss and the loss on the clips'
held-out validation ranges (never trained on, never used to choose) every few minutes,
then the minute at which each was lowest. With --snapshots it also saves the model at
given minutes, so ``avatar evaluate`` can say how the generated motion changes with
training time.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from avatar.diffusion.checkpoint import save_model
from avatar.training.dataset import load_dataset
from avatar.training.loop import TrainSettings
from avatar.training.vasa import train_vasa

PRINT_EVERY_MINUTES = 2.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="prepared dataset (avatar prepare --fps 25 ...)")
    ap.add_argument("-o", "--output", required=True, help="where the kept checkpoint goes")
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=TrainSettings.threads, help="torch threads (default %(default)s)")
    ap.add_argument("--snapshots", type=float, nargs="*", default=[], metavar="MIN",
                    help="also save the model as it is after these minutes (OUTPUT.MINmin.safetensors), "
                         "e.g. to compare them with avatar evaluate")
    args = ap.parse_args()
    clips = load_dataset(args.data)
    settings = TrainSettings(max_steps=None, minutes=args.minutes, seed=args.seed, threads=args.threads)
    pending = sorted(args.snapshots)

    def snapshot(model, evaluation) -> None:
        while pending and evaluation.minutes >= pending[0]:
            path = Path(args.output).with_suffix(f".{pending.pop(0):g}min.safetensors")
            save_model(path, model, extra={"step": evaluation.step, "minutes": evaluation.minutes})

    report = train_vasa(clips, args.output, settings=settings, log=lambda msg: print(msg, file=sys.stderr),
                        on_evaluation=snapshot)
    print(f"{len(clips)} clips; {report.steps} steps in {report.minutes:.1f} min")
    print(f"{'min':>6} {'step':>6} {'train':>8} {'select':>8} {'held-out':>8}")
    next_print = 0.0
    for e in report.history:
        if e.minutes >= next_print or e is report.history[-1]:
            print(f"{e.minutes:6.1f} {e.step:6d} {e.train:8.4f} {e.select:8.4f} {e.held_out:8.4f}")
            next_print = math.floor(e.minutes / PRINT_EVERY_MINUTES + 1) * PRINT_EVERY_MINUTES
    best, held = report.lowest_select, report.best_held_out
    print(f"selection loss lowest at {best.minutes:.1f} min (step {best.step}, {best.select:.4f})")
    print(f"held-out loss lowest at {held.minutes:.1f} min (step {held.step}, {held.held_out:.4f})")
    for limit in (10, 20, 30):
        within = [e for e in report.history if e.minutes <= limit]
        if within:
            low = min(e.held_out for e in within)
            print(f"  best held-out loss within {limit} min: {low:.4f} "
                  f"({100 * (low - held.held_out) / held.held_out:+.1f}% vs the whole run)")


if __name__ == "__main__":
    main()
