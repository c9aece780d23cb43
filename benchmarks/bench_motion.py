"""Motion-generation speed: seconds to generate motion for 60 s of speech, per generator.

    python benchmarks/bench_motion.py [--checkpoint vasa=vasa.safetensors ...] [--seconds 60]

Every generator of the registry is timed. Speech comes from the built-in TTS (features
and phones are computed once, outside the timing). A learned generator without
--checkpoint is timed with an untrained model of the default size (the same computation
as a trained one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import avatar
from avatar.generators.base import Controls
from avatar.generators import registry

SENTENCE = "The quick brown fox jumps over the lazy dog, and my mother paints a map. "


def checkpoint_of(name: str, given: dict[str, str], folder: Path) -> str | Path:
    from avatar.diffusion.checkpoint import save_model

    return given.get(name) or save_model(folder / f"untrained_{name}.safetensors", registry.untrained_model(name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=CKPT",
                    help="trained checkpoint of a learned generator (repeatable)")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    speech, features = avatar.load_speech(text=SENTENCE * max(1, round(args.seconds / 5)))
    given = dict(c.split("=", 1) for c in args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        for name, e in registry.GENERATORS.items():
            options = {"checkpoint": checkpoint_of(name, given, Path(tmp))} if e.needs_checkpoint else {}
            generator = registry.get_generator(name, **options)
            generator.generate(speech, features, Controls(), seed=0)  # warm-up
            t0 = time.perf_counter()
            motion = generator.generate(speech, features, Controls(), seed=1)
            dt = time.perf_counter() - t0
            print(f"{name}: motion for {motion.duration:.1f} s of speech in {dt:.2f} s "
                  f"({motion.duration / dt:.0f}x real time)")


if __name__ == "__main__":
    main()
