"""Whole-job speed and memory: portrait + speech -> mp4.

    python benchmarks/bench_pipeline.py [--image PHOTO] [--audio FILE] [--long-minutes 10]

1. Loading costs: MediaPipe face mesh, the TTS voice, the phone aligner/recogniser, Whisper.
2. Real-time factor (job time / speech duration, loading excluded) for ~10 s and ~60 s of
   speech, from text (TTS + exact phones) and, with --audio, from a file (speech recognition
   + forced alignment).
3. Peak memory of a whole `avatar speak` run on --long-minutes of speech (a subprocess;
   the speech file is the synthesised text repeated).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import avatar
from avatar.audio.io import save_wav
from avatar.audio.types import Audio
from avatar.image import bundled_portrait

SENTENCE = ("The quick brown fox jumps over the lazy dog, while my brave mother paints "
            "a big blue map of the bay. ")


def text_of(seconds: float) -> str:
    """About ``seconds`` of speech for the bundled voice (~5 s per sentence)."""
    return SENTENCE * max(1, round(seconds / 5.0))


def loading_costs() -> dict[str, float]:
    from avatar.audio.align import default_aligner
    from avatar.audio.tts import synthesize
    from avatar.face.tracker import FaceTracker

    costs = {}
    t = time.perf_counter()
    FaceTracker(static=True).close()
    costs["face mesh"] = time.perf_counter() - t
    t = time.perf_counter()
    synthesize("Hi.")
    costs["TTS voice (first sentence)"] = time.perf_counter() - t
    aligner = default_aligner()
    short = Audio(np.zeros(16000, np.float32), 16000)
    t = time.perf_counter()
    aligner.recognize(short)
    costs["phone recogniser"] = time.perf_counter() - t
    from avatar.audio.asr import Recognizer

    t = time.perf_counter()
    Recognizer().transcribe(short)
    costs["speech recogniser (Whisper tiny.en)"] = time.perf_counter() - t
    return costs


def timed_job(image, out, **speech) -> tuple[float, dict]:
    result = avatar.speak(image, out, **speech)
    return result.motion.duration, result.timings


def report(label: str, duration: float, t: dict) -> None:
    rtf = t["total"] / duration
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in t.items() if k != "total")
    print(f"{label}: {duration:5.1f} s of speech in {t['total']:5.2f} s -> RTF {rtf:.3f}  ({stages})")


def peak_memory(image, minutes: float, workdir: Path) -> None:
    speech, _ = avatar.load_speech(text=SENTENCE * 3)
    reps = int(np.ceil(minutes * 60 / speech.audio.duration))
    long = Audio(np.tile(speech.audio.samples, reps), speech.audio.sample_rate)
    wav = workdir / "long.wav"
    save_wav(long, wav)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "avatar.cli", "speak", "--image", str(image), "--audio", str(wav),
                    "-o", str(workdir / "long.mp4"), "-q"], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{long.duration / 60:.1f} min of speech (speech recognition): {time.perf_counter() - t:.0f} s, "
          f"peak memory {peak:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(bundled_portrait()))
    ap.add_argument("--audio", help="also time a speech file (words recognised, then aligned)")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="0 skips the memory run")
    args = ap.parse_args()
    for name, sec in loading_costs().items():
        print(f"load {name}: {sec:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        avatar.speak(args.image, out, text="Warm up.")  # models loaded, caches warm
        for seconds in (10, 60):
            report(f"text ~{seconds}s", *timed_job(args.image, out, text=text_of(seconds)))
        if args.audio:
            report(Path(args.audio).name, *timed_job(args.image, out, audio=args.audio))
        if args.long_minutes > 0:
            peak_memory(args.image, args.long_minutes, Path(tmp))


if __name__ == "__main__":
    main()
