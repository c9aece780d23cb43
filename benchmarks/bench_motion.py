"""Motion-generation speed: seconds to generate motion for 60 s of speech, per generator.

    python benchmarks/bench_motion.py [--checkpoint vasa.safetensors] [--seconds 60]

Speech comes from the built-in TTS (features and phones are computed once, outside the
timing). Without --checkpoint, vasa is timed with an untrained model of the default size
(the same computation as a trained one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import avatar
from avatar.generators.base import Controls, get_generator

SENTENCE = "The quick brown fox jumps over the lazy dog, and my mother paints a map. "


def untrained_vasa(folder: Path) -> Path:
    from avatar.diffusion.checkpoint import save_model
    from avatar.generators.vasa import VasaConfig, build_vasa

    return save_model(folder / "untrained_vasa.safetensors", build_vasa(VasaConfig()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="trained vasa checkpoint")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    speech, features = avatar.load_speech(text=SENTENCE * max(1, round(args.seconds / 5)))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or untrained_vasa(Path(tmp))
        for name, options in (("rules", {}), ("vasa", {"checkpoint": checkpoint})):
            generator = get_generator(name, **options)
            generator.generate(speech, features, Controls(), seed=0)  # warm-up
            t0 = time.perf_counter()
            motion = generator.generate(speech, features, Controls(), seed=1)
            dt = time.perf_counter() - t0
            print(f"{name}: motion for {motion.duration:.1f} s of speech in {dt:.2f} s "
                  f"({motion.duration / dt:.0f}x real time)")


if __name__ == "__main__":
    main()
