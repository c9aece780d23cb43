"""What the general-sound stream (avatar.audio.sound) adds to the speech stream.

    python benchmarks/bench_sound.py [--audio FILE ...]

For each descriptor: its R^2 from a ridge regression on the speech stream
(motion_vector.audio_frames, frames t-2..t+2), fitted on half of the frames of every
recording and measured on the other half; and its mean in speech frames (vad > 0.5),
in sound outside speech (vad < 0.5, energy > 0.3) and in silence. Low R^2 with a
separation between "sound" and the rest is what the stream is for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avatar.audio.features import extract_features
from avatar.audio.io import load_audio
from avatar.audio.sound import SOUND_CHANNELS, sound_frames
from avatar.audio.vad import voice_activity
from avatar.config import AUDIO, VIDEO
from avatar.generators.motion_vector import audio_frames

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # development media only
CONTEXT = 2
RIDGE = 1e-2


def features_of(path: Path):
    audio = load_audio(path, AUDIO.sample_rate)
    vad = voice_activity(audio, VIDEO.fps)
    return extract_features(audio, VIDEO.fps, num_frames=len(vad), vad=vad)


def stacked(a: np.ndarray) -> np.ndarray:
    idx = np.clip(np.arange(len(a))[:, None] + np.arange(-CONTEXT, CONTEXT + 1)[None], 0, len(a) - 1)
    return a[idx].reshape(len(a), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", nargs="+", type=Path,
                    default=sorted((DATA / "audio").glob("*")) + sorted((DATA / "talking_face").glob("*.mp4")))
    args = ap.parse_args()
    X, Y, V, E = [], [], [], []
    for path in args.audio:
        f = features_of(path)
        X.append(stacked(audio_frames(f)))
        Y.append(sound_frames(f))
        V.append(f.vad)
        E.append(f.energy)
    half = [np.arange(len(x)) % 50 < 25 for x in X]  # alternate 1-s blocks: fit / measure
    fit = lambda parts, m: np.concatenate([p[k] for p, k in zip(parts, m)])  # noqa: E731
    Xf, Yf = fit(X, half), fit(Y, half)
    Xt, Yt = fit(X, [~h for h in half]), fit(Y, [~h for h in half])
    mu, sd = Xf.mean(0), Xf.std(0) + 1e-6
    A = np.c_[(Xf - mu) / sd, np.ones(len(Xf))]
    W = np.linalg.solve(A.T @ A + RIDGE * len(A) * np.eye(A.shape[1]), A.T @ Yf)
    pred = np.c_[(Xt - mu) / sd, np.ones(len(Xt))] @ W
    r2 = 1 - ((Yt - pred) ** 2).mean(0) / Yt.var(0)
    Y_all, V_all, E_all = np.concatenate(Y), np.concatenate(V), np.concatenate(E)
    groups = {"speech": V_all > 0.5, "sound": (V_all < 0.5) & (E_all > 0.3), "silence": (V_all < 0.5) & (E_all < 0.1)}
    print(f"{len(Y_all)} frames of {len(args.audio)} recordings; frames per group: "
          + ", ".join(f"{k} {m.sum()}" for k, m in groups.items()))
    print(f"{'descriptor':<18} {'R2 from speech':>14} " + " ".join(f"{k:>9}" for k in groups))
    for i, name in enumerate(SOUND_CHANNELS):
        means = " ".join(f"{Y_all[m, i].mean():>9.3f}" if m.any() else f"{'-':>9}" for m in groups.values())
        print(f"{name:<18} {r2[i]:>14.2f} {means}")


if __name__ == "__main__":
    main()
