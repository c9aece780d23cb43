"""Does keyface's general-sound stream move the face? The same audio with and without it.

    python benchmarks/bench_sound_ab.py --checkpoint keyface.safetensors [--audio A.wav ...] [--seeds 3]

KeyFace (seed 003) adds a general-sound encoder so that non-speech sound (laughs, sighs)
animates the face. ../shared/data holds no recorded laughter or sighs, so this A/B uses
what it has: sung and accompanied audio (a16) and speech. For each file the keyface
generator runs on its real audio input ("on") and on the same input with the four
general-sound channels set to their training means ("off": what the model sees when the
stream carries nothing). Printed per file and frame class (speech: voice activity;
other sound: no voice activity but sound_level > 0.05; silence: the rest): the mean jaw
opening, the mean expression (mouth and blinks excluded) and the head speed (deg/frame),
on and off, averaged over seeds.
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
from avatar.generators.motion_vector import MOUTH_ACTIONS, audio_frames, global_conditions, retime
from avatar.motion.types import ACTIONS, BLINK_ACTIONS

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"  # development media only
FILES = ["a16_sing_imagine_6s.wav", "a03_en_abstract_33s.mp3", "a05_en_pats_chemistry_14s.wav"]
EXPRESSION = [i for i, a in enumerate(ACTIONS) if a not in BLINK_ACTIONS and a not in MOUTH_ACTIONS]
OTHER_SOUND_LEVEL = 0.05


def run(model, audio_in: np.ndarray, seeds: int) -> list[np.ndarray]:
    g = global_conditions((0.0, 0.0), 1.0, 0.0, 0.0)
    return [model.generate(audio_in, g, seed=s) for s in range(seeds)]


def describe(xs: list[np.ndarray], frames: np.ndarray) -> tuple[float, float, float]:
    jaw, expr, speed = [], [], []
    j = ACTIONS.index("jawOpen")
    for x in xs:
        jaw.append(x[frames, j].mean())
        expr.append(x[frames][:, EXPRESSION].mean())
        rot = np.degrees(x[:, len(ACTIONS):len(ACTIONS) + 3])
        d = np.abs(np.diff(rot, axis=0, prepend=rot[:1])).mean(1)
        speed.append(d[frames].mean())
    return float(np.mean(jaw)), float(np.mean(expr)), float(np.mean(speed))


def main() -> None:
    from avatar.diffusion.checkpoint import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a keyface checkpoint")
    ap.add_argument("--audio", nargs="+", type=Path, default=[AUDIO_DIR / n for n in FILES])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    model = load_model(args.checkpoint)
    if model.kind != "keyface":
        raise SystemExit(f"{args.checkpoint} holds a {model.kind} model, not keyface")
    fps = VIDEO.fps
    n_sound = len(SOUND_CHANNELS)
    print("| file | frames | n | jaw on / off | expression on / off | head deg/frame on / off |")
    print("|---|---|---|---|---|---|")
    for path in args.audio:
        audio = load_audio(path, AUDIO.sample_rate)
        vad = voice_activity(audio, fps)
        features = extract_features(audio, fps, num_frames=len(vad), vad=vad)
        sound = sound_frames(features)
        on = np.concatenate([audio_frames(features), sound], 1).astype(np.float32)
        off = on.copy()
        off[:, -n_sound:] = model.audio_mean[-n_sound:].numpy()  # normalised to 0: the stream says nothing
        model_fps = model.config["fps"]
        xs_on = [retime(x, model_fps, fps, len(on)) for x in run(model, retime(on, fps, model_fps), args.seeds)]
        xs_off = [retime(x, model_fps, fps, len(on)) for x in run(model, retime(off, fps, model_fps), args.seeds)]
        level = sound[:, SOUND_CHANNELS.index("sound_level")]
        classes = {"speech": features.vad > 0.5, "other sound": (features.vad <= 0.5) & (level > OTHER_SOUND_LEVEL)}
        classes["silence"] = ~(classes["speech"] | classes["other sound"])
        for name, frames in classes.items():
            if frames.sum() < 5:
                continue
            a, b = describe(xs_on, frames), describe(xs_off, frames)
            print(f"| {path.name} | {name} | {int(frames.sum())} | {a[0]:.3f} / {b[0]:.3f} | {a[1]:.3f} / {b[1]:.3f} "
                  f"| {a[2]:.3f} / {b[2]:.3f} |")


if __name__ == "__main__":
    main()
