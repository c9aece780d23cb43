"""Do the vasa generator's non-audio conditions steer its output? (VASA-1 §3.2)

    python benchmarks/bench_conditions.py --checkpoint vasa.safetensors --data DATASET

For each condition (main gaze direction, head distance, valence, arousal) the script asks
for a low and a high value, the 10th and 90th percentile of that condition over the
dataset's training windows, with the others at their medians (for gaze also the CLI's
presets and a head 30% farther or 40% nearer: far outside the real clips), and generates motion for
the audio of every held-out range (3 seeds). It prints what came out, measured the way
the condition was made from the training videos (mean gaze; valence = smile minus frown;
arousal = head speed; for distance, head movement), and the response: the change in the
output divided by the change asked for (1 = follows exactly, 0 = ignored). Each is run
with the checkpoint's guidance and with extra guidance on that condition.
"""

from __future__ import annotations

import argparse

import numpy as np

from avatar.eval.evaluate import held_out_segments
from avatar.generators.base import Controls
from avatar.generators.motion_vector import emotion_proxy
from avatar.generators.vasa import VasaGenerator
from avatar.training.dataset import load_dataset
from avatar.training.windows import sources, window_conditions, window_starts

SEEDS = 3
EXTRA_GUIDANCE = 2.0
LOW, HIGH = 10, 90  # percentiles of the training windows' conditions
# Asks far outside the data: the CLI's left/right and up/down gaze presets, and a head 30%
# farther or 40% nearer than in every training clip.
WIDE_ASKS = [("gaze_x", -np.radians(15.0), np.radians(15.0)), ("gaze_y", -np.radians(12.0), np.radians(12.0)),
             ("distance", 0.7, 1.4)]


def training_conditions(clips, window: int) -> dict[str, np.ndarray]:
    """Each condition's values over the training windows (as training computes them)."""
    values = {"gaze_x": [], "gaze_y": [], "distance": [], "valence": [], "arousal": []}
    for src in sources(clips, "train", window):
        for s in window_starts(src, window, 0)[::window // 2]:
            c = window_conditions(src.seq.slice(int(s), int(s) + window))
            row = (*c["gaze"], np.exp(c["distance"][0]), *c["emotion"])  # distance is stored as its log
            for name, x in zip(values, row):
                values[name].append(float(x))
    return {k: np.array(v) for k, v in values.items()}


def measured(motion) -> dict[str, float]:
    """What each condition should move, read off generated motion."""
    v, a = emotion_proxy(motion)
    head_speed = float(np.degrees(np.abs(np.diff(motion.rotation, axis=0))).mean())
    return {"gaze_x": float(motion.gaze[:, 0].mean()), "gaze_y": float(motion.gaze[:, 1].mean()),
            "valence": float(v), "arousal": float(a), "distance": head_speed}


def controls_for(name: str, value: float, base: dict[str, float]) -> Controls:
    c = {**base, name: value}
    return Controls(valence=c["valence"], arousal=c["arousal"], gaze=(c["gaze_x"], c["gaze_y"]),
                    head_distance=c["distance"])


GUIDED = {"gaze_x": "gaze", "gaze_y": "gaze", "distance": "distance", "valence": "emotion", "arousal": "emotion"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="the prepared dataset the checkpoint was trained on")
    args = ap.parse_args()
    clips = load_dataset(args.data)
    base_gen = VasaGenerator(args.checkpoint)
    window = base_gen.model.config["window"]
    cond = training_conditions(clips, window)
    base = {k: float(np.median(v)) for k, v in cond.items()}
    segments = [s for s in held_out_segments(clips) if s.num_frames >= window]
    default_guidance = dict(base_gen.model.config["guidance"])
    print(f"{len(segments)} held-out ranges, {sum(s.num_frames for s in segments)} frames, {SEEDS} seeds; "
          f"conditions at the {LOW}th and {HIGH}th percentile of {len(cond['valence'])} training windows")
    print(f"{'condition':<10} {'guidance':<22} {'asked low':>9} {'asked high':>10} {'got low':>9} "
          f"{'got high':>9} {'response':>9}")
    asks = [(name, *np.percentile(values, [LOW, HIGH])) for name, values in cond.items()]
    asks += WIDE_ASKS
    for name, low, high in asks:
        for guidance in (default_guidance, {**default_guidance, GUIDED[name]: EXTRA_GUIDANCE}):
            gen = VasaGenerator(args.checkpoint, guidance=guidance)
            got = {}
            for label, value in (("low", low), ("high", high)):
                controls = controls_for(name, float(value), base)
                runs = [measured(gen.generate(s.speech(), s.features, controls, seed=seed))[name]
                        for s in segments for seed in range(SEEDS)]
                got[label] = float(np.mean(runs))
            asked = high - low
            response = (got["high"] - got["low"]) / asked if name != "distance" else float("nan")
            g = ", ".join(f"{k} {v:g}" for k, v in guidance.items())
            print(f"{name:<10} {g:<22} {low:9.4f} {high:10.4f} {got['low']:9.4f} {got['high']:9.4f} "
                  f"{response:9.2f}")
    print("distance rows report head speed (deg/frame), not distance: the distance condition has no target in "
          "the motion itself")


if __name__ == "__main__":
    main()
