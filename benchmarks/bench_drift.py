"""Drift over long speech: does the motion of minute 10 still look like minute 1?

    python benchmarks/bench_drift.py --checkpoint vasa=V.safetensors --checkpoint keyface=K.safetensors
        [--minutes 10] [--seed 0] [--audio A.wav ...]

Real English recordings (../shared/data/audio by default) are joined, cut to one minute
and that minute repeated to the requested length, so every minute holds the same speech:
a later minute that leaves the first minute's band has drifted, it is not reacting to
other words (with a loop of another length, minutes hold different stretches of speech
and a generator that follows its audio closely seems to drift when it does not). Each
generator makes motion for all of it in one call. Per minute it
prints the mean and the spread (std over frames) of the head angles (pitch, yaw, roll, in
degrees) and of the expression (the mean of the expression actions, blinks and mouth
excluded). The first minute's band is the range of those statistics over its six 10-s
windows; a later minute is "in band" when its mean lies in the band of the first
minute's window means and its mean 10-s spread in the band of their spreads. Rules has
no long-range state and serves as the reference; it needs phones, so it is left out
(the learned generators read only the audio features).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avatar.audio.features import extract_features
from avatar.audio.io import load_audio
from avatar.audio.types import Audio, Speech
from avatar.audio.vad import voice_activity
from avatar.config import AUDIO, VIDEO
from avatar.generators import registry
from avatar.generators.base import Controls
from avatar.motion.types import ACTIONS, BLINK_ACTIONS
from avatar.generators.motion_vector import MOUTH_ACTIONS

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"  # development media only
SPEECH = ["a01_en_male_speech_60s.wav", "a04_en_beat_scott_29s.wav", "a05_en_pats_chemistry_14s.wav",
          "a07_en_hdtf_radio_8s.wav", "a22_en_narration_jane_16s.wav"]
WINDOW_S = 10.0  # the band of the first minute is built from windows this long
LOOP_S = 60.0  # the speech that every minute repeats
EXPRESSION = [i for i, a in enumerate(ACTIONS) if a not in BLINK_ACTIONS and a not in MOUTH_ACTIONS]
SERIES = ("pitch", "yaw", "roll", "expression")


def long_speech(paths: list[Path], seconds: float, loop: float = LOOP_S) -> Audio:
    """``seconds`` of audio: the recordings joined, cut to ``loop`` seconds, repeated."""
    parts = [load_audio(p, AUDIO.sample_rate).samples for p in paths]
    joined = np.concatenate(parts)[:int(loop * AUDIO.sample_rate)]
    reps = int(np.ceil(seconds * AUDIO.sample_rate / len(joined)))
    return Audio(np.tile(joined, reps)[:int(seconds * AUDIO.sample_rate)].astype(np.float32), AUDIO.sample_rate)


def series(motion) -> dict[str, np.ndarray]:
    rot = np.degrees(motion.rotation)  # (T, 3)
    return {"pitch": rot[:, 0], "yaw": rot[:, 1], "roll": rot[:, 2],
            "expression": motion.actions[:, EXPRESSION].mean(1)}


def drift_table(motion, fps: float) -> tuple[list[dict], int]:
    """Per minute: mean, spread and whether both are in the first minute's band."""
    per_min, per_win = int(round(60 * fps)), int(round(WINDOW_S * fps))
    s = series(motion)
    rows, minutes = [], len(motion) // per_min
    band = {}
    for k in range(minutes):
        row = {"minute": k + 1}
        for name in SERIES:
            x = s[name][k * per_min:(k + 1) * per_min]
            wins = x[:len(x) // per_win * per_win].reshape(-1, per_win)  # (6, per_win)
            if k == 0:
                band[name] = (wins.mean(1).min(), wins.mean(1).max(), wins.std(1).min(), wins.std(1).max())
            lo_m, hi_m, lo_s, hi_s = band[name]
            row[name] = (x.mean(), x.std(), lo_m <= x.mean() <= hi_m and lo_s <= wins.std(1).mean() <= hi_s)
        rows.append(row)
    return rows, minutes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=CKPT", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--audio", nargs="+", type=Path, default=[AUDIO_DIR / n for n in SPEECH])
    args = ap.parse_args()
    fps = VIDEO.fps
    audio = long_speech(args.audio, 60 * args.minutes)
    vad = voice_activity(audio, fps)
    features = extract_features(audio, fps, num_frames=len(vad), vad=vad)
    speech = Speech(audio)
    for name, path in (c.split("=", 1) for c in args.checkpoint):
        motion = registry.get_generator(name, checkpoint=path).generate(speech, features, Controls(), seed=args.seed)
        rows, _ = drift_table(motion, fps)
        print(f"\n{name}: {len(motion) / fps / 60:.1f} min; per minute mean / spread (in band of minute 1: +)")
        print("min " + "".join(f"{n:>22}" for n in SERIES))
        for row in rows:
            cells = "".join(f"{m:>12.3f} /{sd:6.3f} {'+' if ok else '-'}" for m, sd, ok in (row[n] for n in SERIES))
            print(f"{row['minute']:>3} {cells}")
        inside = [row[n][2] for row in rows[1:] for n in SERIES]
        print(f"{name}: {sum(inside)}/{len(inside)} minute statistics in the first minute's band")


if __name__ == "__main__":
    main()
