"""Time and peak memory of `avatar speak` on the long bad inputs of tests/test_bad_inputs.py.

    python benchmarks/bench_bad_inputs.py [--silence-minutes 60] [--text-chars 20000]

1. An hour (--silence-minutes) of digital silence as --audio: refused with one line (the
   goal: under 1.5 GB of memory while decoding it).
2. With --text-chars N, a text of N characters (accepted: minutes of speech) end to end.

Each runs in a subprocess (avatar.cli.main) that reports its own peak resident memory
(VmHWM).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from avatar.image import bundled_portrait

GOAL_MB = 1500
SILENCE_RATE = 16000  # 16-bit mono: an hour is 115 MB on disk
BLOCK_SECONDS = 60  # the silence is written a minute at a time


def write_silence(path: Path, minutes: float) -> None:
    block = np.zeros(BLOCK_SECONDS * SILENCE_RATE, np.int16)
    with soundfile.SoundFile(str(path), "w", SILENCE_RATE, 1, subtype="PCM_16") as f:
        for _ in range(int(np.ceil(minutes * 60 / BLOCK_SECONDS))):
            f.write(block)


# The CLI, then its peak memory (kB) on stdout: VmHWM counts only this program, whereas
# ru_maxrss also counts the forking parent's pages before exec.
PEAK_PROBE = ("import sys, avatar.cli\n"
              "code = avatar.cli.main(sys.argv[1:])\n"
              "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
              "sys.exit(code)")


def run_cli(args: list[str]) -> tuple[int, str, float, float]:
    """(exit code, stderr, seconds, peak MB) of one `avatar` run in a subprocess."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_PROBE, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return proc.returncode, proc.stderr.strip(), seconds, int(proc.stdout.split()[-1]) / 1024


def report(name: str, code: int, err: str, seconds: float, peak_mb: float) -> None:
    last = err.splitlines()[-1] if err else ""
    print(f"{name}: exit {code} in {seconds:.1f} s, peak {peak_mb:.0f} MB "
          f"({'within' if peak_mb < GOAL_MB else 'OVER'} the {GOAL_MB} MB goal)")
    print(f"  stderr: {last}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--silence-minutes", type=float, default=60.0)
    parser.add_argument("--text-chars", type=int, default=0, help="also run a text of this many characters")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bad-inputs-") as tmp:
        folder = Path(tmp)
        silence = folder / "silence.wav"
        write_silence(silence, args.silence_minutes)
        print(f"{args.silence_minutes:g} min of silence: {silence.stat().st_size / 1e6:.0f} MB on disk")
        image = str(bundled_portrait())
        report(f"{args.silence_minutes:g} min of digital silence",
               *run_cli(["speak", "--image", image, "--audio", str(silence), "-o", str(folder / "s.mp4"), "-q"]))
        if args.text_chars:
            text = ("Hello there. " * (args.text_chars // 13 + 1))[: args.text_chars]
            out = folder / "t.mp4"
            report(f"{args.text_chars} characters of text",
                   *run_cli(["speak", "--image", image, "--text", text, "-o", str(out), "-q"]))
            if out.exists():
                from avatar.video.reader import probe

                info = probe(out)
                print(f"  output: {info.width}x{info.height}, {info.num_frames} frames, {info.duration:.0f} s")


if __name__ == "__main__":
    main()
